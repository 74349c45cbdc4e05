package peers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := LocalConfig()
		c.NodeName = "a"
		c.HTTPAddr = "127.0.0.1:8080"
		c.Logger = testLogger()
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"local preset", func(*Config) {}, ""},
		{"default preset", func(c *Config) {
			d := DefaultConfig()
			d.NodeName, d.HTTPAddr, d.Logger = c.NodeName, c.HTTPAddr, c.Logger
			*c = d
		}, ""},
		{"zero fields take defaults", func(c *Config) { *c = Config{NodeName: "a", HTTPAddr: "127.0.0.1:1", Logger: c.Logger} }, ""},
		{"no name", func(c *Config) { c.NodeName = "" }, "NodeName: required"},
		{"no HTTP address", func(c *Config) { c.HTTPAddr = "" }, "HTTPAddr: required"},
		{"HTTP port 0", func(c *Config) { c.HTTPAddr = "127.0.0.1:0" }, "port 0 cannot be advertised"},
		{"bad gossip address", func(c *Config) { c.GossipAddr = "localhost" }, "GossipAddr"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"no-port"} }, `Seeds[0]: seed "no-port"`},
		{"seed on port 0", func(c *Config) { c.Seeds = []string{"a:1", "b:0"} }, `Seeds[1]: seed "b:0"`},
		{"short key", func(c *Config) { c.SecretKey = []byte("short") }, "16, 24 or 32 bytes"},
		{"long label", func(c *Config) { c.Label = strings.Repeat("x", 256) }, "at most 255"},
		{"negative fetch timeout", func(c *Config) { c.FetchTimeout = -time.Second }, "FetchTimeout: must be > 0"},
		{"probe timeout above interval", func(c *Config) { c.ProbeTimeout = 2 * c.ProbeInterval }, "must not exceed ProbeInterval"},
		{"negative reclaim time", func(c *Config) { c.DeadNodeReclaimTime = -1 }, "DeadNodeReclaimTime"},
		{"a name with a space", func(c *Config) { c.NodeName = "node one" }, "NodeName: \"node one\": only printable ASCII"},
		{"a name too long", func(c *Config) { c.NodeName = strings.Repeat("n", 256) }, "longer than 255 bytes"},
		{"negative connections per peer", func(c *Config) { c.MaxConnsPerPeer = -1 }, "MaxConnsPerPeer: must be > 0"},
		{"keys above 1 MiB", func(c *Config) { c.MaxKeyBytes = 1<<20 + 1 }, "MaxKeyBytes"},
		{"values above 2 GiB", func(c *Config) { c.MaxValueBytes = 1<<31 + 1 }, "MaxValueBytes"},
		{"negative value bound", func(c *Config) { c.MaxValueBytes = -1 }, "MaxValueBytes"},
		{"bounds at their limits", func(c *Config) { c.MaxKeyBytes, c.MaxValueBytes = 1<<20, 1<<31 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			_, newErr := New(c)
			switch {
			case tt.want == "" && (err != nil || newErr != nil):
				t.Fatalf("Validate: %v; New: %v; want both to accept", err, newErr)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v; want an error mentioning %q", err, tt.want)
			case tt.want != "" && newErr == nil:
				t.Fatal("New accepted a config that Validate rejects")
			}
			var fe *group.FieldError
			if tt.want != "" && !errors.As(err, &fe) {
				t.Fatalf("Validate: %v is not a *group.FieldError", err)
			}
		})
	}
}

func TestLocalConfigIsFasterThanDefault(t *testing.T) {
	d, l := DefaultConfig(), LocalConfig()
	if l.ProbeInterval >= d.ProbeInterval || l.GossipInterval >= d.GossipInterval || l.RebuildQuiet >= d.RebuildQuiet {
		t.Errorf("LocalConfig should probe, gossip and rebuild faster than DefaultConfig: %+v vs %+v", l, d)
	}
	if l.GossipAddr != "127.0.0.1:0" {
		t.Errorf("LocalConfig binds %q, want loopback on a free port", l.GossipAddr)
	}
}

func TestClusterBeforeStart(t *testing.T) {
	n := newNode(t, "alone", newLoadLog(), nodeOptions{})
	members := n.c.Members()
	if len(members) != 1 || !members[0].Self || members[0].Share != 1 || members[0].State != "alive" {
		t.Errorf("Members before Start = %+v, want this node alone with the whole ring", members)
	}
	if _, ok := n.c.PickPeer("k"); ok {
		t.Error("PickPeer before Start picked a peer")
	}
	confirmed, err := n.c.InvalidateKey(context.Background(), testGroup, "k")
	if confirmed != 0 || err != nil {
		t.Errorf("InvalidateKey alone = %d, %v; want 0, nil", confirmed, err)
	}
	if st := n.c.Stats(); st.Members != 1 {
		t.Errorf("Stats().Members = %d, want 1", st.Members)
	}
	if res, err := n.g.Get(context.Background(), "k"); err != nil || res.Source != group.SourceLoader {
		t.Errorf("Get alone = %v, %v; want a local load", res.Source, err)
	}
}

func TestClusterLifecycle(t *testing.T) {
	n := startNode(t, "a", newLoadLog(), nodeOptions{})
	if err := n.c.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := n.c.Leave(context.Background()); err != nil {
		t.Errorf("Leave: %v", err)
	}
	if err := n.c.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
	if err := n.c.Start(context.Background()); err == nil {
		t.Error("Start after Leave succeeded")
	}

	g2, err := group.New(testGroup, group.LoaderFunc(defaultLoad2), testGroupConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a second group under a taken name did not panic")
		}
	}()
	n.c.Register(g2)
}

func defaultLoad2(ctx context.Context, key string) (group.Value, error) {
	return defaultLoad(ctx, "", key)
}

func TestClusterGossipSecurity(t *testing.T) {
	key := []byte("0123456789abcdef")
	other := []byte("fedcba9876543210")
	tests := []struct {
		name           string
		seedKey, key   []byte
		seedLab, label string
		joins          bool
	}{
		{"same key and label", key, key, "prod", "prod", true},
		{"different label", nil, nil, "prod", "staging", false},
		{"different key", key, other, "", "", false},
		{"key against clear", key, nil, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := newLoadLog()
			seed := startNode(t, "seed", log, nodeOptions{tune: func(c *Config) { c.SecretKey, c.Label = tt.seedKey, tt.seedLab }})
			joiner := startNode(t, "joiner", log, nodeOptions{tune: func(c *Config) { c.SecretKey, c.Label = tt.key, tt.label }})
			_, err := joiner.c.ml.Join([]string{seed.c.GossipAddr()})
			if tt.joins {
				if err != nil {
					t.Fatalf("Join: %v", err)
				}
				waitConverged(t, []*testNode{seed, joiner}, 10*time.Second)
				return
			}
			if err == nil {
				t.Fatal("Join succeeded across mismatched gossip security")
			}
			if got := seed.c.ml.NumMembers(); got != 1 {
				t.Errorf("seed sees %d members, want 1", got)
			}
		})
	}
}

func TestClusterAdvertisesReachableHTTPAddr(t *testing.T) {
	log := newLoadLog()
	a := startNode(t, "a", log, nodeOptions{})
	var port string
	b := startNode(t, "b", log, nodeOptions{
		seeds: []string{a.c.GossipAddr()},
		tune: func(c *Config) {
			_, port, _ = strings.Cut(c.HTTPAddr, ":")
			c.HTTPAddr = "0.0.0.0:" + port // listens everywhere: must advertise an address
		},
	})
	waitConverged(t, []*testNode{a, b}, 10*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		for _, m := range a.c.Members() {
			if m.Name == "b" {
				return m.HTTPAddr == "127.0.0.1:"+port
			}
		}
		return false
	})
	key := keyOwnedBy(t, []string{"a", "b"}, "b", "adv")
	res, err := a.g.Get(context.Background(), key)
	if err != nil || res.Source != group.SourcePeer {
		t.Errorf("Get through the advertised address: %v, %v; want a peer fetch", res.Source, err)
	}
	if errors.Is(err, group.ErrPeerUnavailable) {
		t.Error("peer unreachable at its advertised address")
	}
}
