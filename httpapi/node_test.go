package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// countingCloser counts its Close calls, standing for a loader's pool.
type countingCloser struct{ closed atomic.Int32 }

func (c *countingCloser) Close() error {
	c.closed.Add(1)
	return nil
}

// aloneConfig is LocalNodeConfig without a cluster.
func aloneConfig() NodeConfig {
	cfg := LocalNodeConfig()
	cfg.Cluster = nil
	cfg.Logger = discardLogger()
	return cfg
}

// mustNode builds a node over one group "g" on o, or fails the test.
func mustNode(t *testing.T, cfg NodeConfig, o group.Loader, closers ...*countingCloser) *Node {
	t.Helper()
	var cs []io.Closer
	for _, c := range closers {
		cs = append(cs, c)
	}
	n, err := NewNode(cfg, []*group.Group{newTestGroup(t, "g", o, testGroupConfig())}, cs...)
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

// startNodeValue builds and starts a node, or fails the test.
func startNodeValue(t *testing.T, cfg NodeConfig, o group.Loader, closers ...*countingCloser) *Node {
	t.Helper()
	n := mustNode(t, cfg, o, closers...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return n
}

func accepts(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func TestNodeAlone(t *testing.T) {
	o := &origin{}
	closer := &countingCloser{}
	n := startNodeValue(t, aloneConfig(), o, closer)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	base := "http://" + n.Addr()

	if resp, _ := request(t, client, base, http.MethodGet, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after Start = %d, want 200", resp.StatusCode)
	}
	if resp, body := request(t, client, base, http.MethodGet, keyPath("g", "k")); resp.StatusCode != http.StatusOK || string(body) != "value of k" {
		t.Errorf("GET a key = %d %q", resp.StatusCode, body)
	}
	resp, body := request(t, client, base, http.MethodGet, "/cluster")
	if info := decodeJSON[clusterInfo](t, body); resp.StatusCode != http.StatusOK || info.Node != "local" || len(info.Members) != 1 {
		t.Errorf("/cluster of a node alone = %d %s, want itself as the only member", resp.StatusCode, body)
	}
	if n.Cluster() != nil || n.Name() != "local" || len(n.Groups()) != 1 || n.Registry() == nil {
		t.Errorf("Cluster %v, Name %q, Groups %v, Registry %v", n.Cluster(), n.Name(), n.Groups(), n.Registry())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.WaitMembers(ctx, 1); err != nil {
		t.Errorf("WaitMembers(1) on a node alone: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := n.WaitMembers(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitMembers(2) on a node alone = %v, want the context's deadline", err)
	}
	if err := n.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}

	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if accepts(n.Addr()) {
		t.Error("the node still accepts connections after Stop")
	}
	if c := closer.closed.Load(); c != 1 {
		t.Errorf("the closer was closed %d times by Stop, want 1", c)
	}
	if err := n.Stop(ctx); err != nil || closer.closed.Load() != 1 {
		t.Errorf("a second Stop = %v and closed the closer again: %d", err, closer.closed.Load())
	}
	if err := n.Start(ctx); err == nil {
		t.Error("Start after Stop succeeded")
	}
	select {
	case err := <-n.Failed():
		t.Errorf("Failed delivered %v after a normal Stop", err)
	default:
	}
}

// TestNodeStopOrder: a stop turns /readyz to 503 while the node still serves, then stops
// accepting connections, and still answers the request in flight before it returns.
func TestNodeStopOrder(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		close(arrived)
		<-release
		return group.Value{Bytes: []byte("slow value")}, nil
	})
	cfg := aloneConfig()
	cfg.ShutdownDelay = 2 * time.Second
	gcfg := testGroupConfig()
	gcfg.LoadTimeout = 20 * time.Second
	n, err := NewNode(cfg, []*group.Group{newTestGroup(t, "g", slow, gcfg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.Addr()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	type answer struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, err := client.Get(base + keyPath("g", "slow"))
		if err != nil {
			inFlight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		inFlight <- answer{resp.StatusCode, string(body), err}
	}()
	<-arrived

	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop(ctx) }()
	poll(t, cfg.ShutdownDelay, "/readyz answers 503 during the shutdown delay", func() bool {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("the node stopped listening before its shutdown delay: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	poll(t, 10*time.Second, "the node stops accepting connections", func() bool { return !accepts(n.Addr()) })
	select {
	case a := <-inFlight:
		t.Fatalf("the request in flight ended before its load did: %+v", a)
	case err := <-stopped:
		t.Fatalf("Stop returned before the request in flight was answered: %v", err)
	default:
	}
	close(release)
	if a := <-inFlight; a.err != nil || a.status != http.StatusOK || a.body != "slow value" {
		t.Errorf("the request in flight got %+v, want 200 and its value", a)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// poll calls cond every 10 ms until it is true, and fails the test if within passes first.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		<-tick.C
	}
}

func TestNodeReportsAServerFailure(t *testing.T) {
	n := startNodeValue(t, aloneConfig(), &origin{})
	n.listener.Close() // the listener fails under the running server
	select {
	case err := <-n.Failed():
		if err == nil {
			t.Error("Failed delivered a nil error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Failed delivered nothing within 10 s of the listener's failure")
	}
}

func TestNodeStartFailureReleasesEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := LocalNodeConfig()
	cfg.Logger = discardLogger()
	pc := *cfg.Cluster
	pc.GossipAddr = taken.Addr().String()
	cfg.Cluster = &pc
	closer := &countingCloser{}
	n := mustNode(t, cfg, &origin{}, closer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err == nil {
		t.Fatal("Start succeeded on a gossip port that is taken")
	}
	l, err := net.Listen("tcp", n.Addr())
	if err != nil {
		t.Fatalf("the failed node kept its HTTP port: %v", err)
	}
	l.Close()
	if c := closer.closed.Load(); c != 1 {
		t.Errorf("a failed Start closed the closer %d times, want 1", c)
	}
}

func TestNodeConfig(t *testing.T) {
	withName := func(c NodeConfig) NodeConfig { c.Name = "n1"; return c }
	for _, tt := range []struct {
		name   string
		cfg    func() NodeConfig
		errHas []string // empty: valid
	}{
		{"DefaultNodeConfig with a name", func() NodeConfig { return withName(DefaultNodeConfig()) }, nil},
		{"LocalNodeConfig", LocalNodeConfig, nil},
		{"alone, unnamed", func() NodeConfig { c := LocalNodeConfig(); c.Cluster, c.Name = nil, ""; return c }, nil},
		{"DefaultNodeConfig unnamed", DefaultNodeConfig, []string{"Name: required"}},
		{"no address", func() NodeConfig { c := LocalNodeConfig(); c.HTTPAddr = ""; return c }, []string{"HTTPAddr"}},
		{"address without a port", func() NodeConfig { c := LocalNodeConfig(); c.HTTPAddr = "localhost"; return c }, []string{"HTTPAddr"}},
		{"negative durations", func() NodeConfig {
			c := LocalNodeConfig()
			c.ShutdownDelay, c.LeaveTimeout, c.StopTimeout = -1, -1, -1
			return c
		}, []string{"ShutdownDelay: must be at least 0s", "LeaveTimeout: must be >= 0", "StopTimeout: must be >= 0"}},
		{"delay as long as the stop", func() NodeConfig {
			c := LocalNodeConfig()
			c.ShutdownDelay, c.StopTimeout = time.Second, time.Second
			return c
		}, []string{"ShutdownDelay: 1s must be shorter than StopTimeout (1s)"}},
		{"bad API setting", func() NodeConfig { c := LocalNodeConfig(); c.API.MaxKeyBytes = -1; return c }, []string{"API.MaxKeyBytes: "}},
		{"bad cluster setting", func() NodeConfig {
			c := LocalNodeConfig()
			pc := *c.Cluster
			pc.SecretKey = []byte("short")
			c.Cluster = &pc
			return c
		}, []string{"Cluster.SecretKey: "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg()
			err := cfg.Validate()
			if len(tt.errHas) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, want := range tt.errHas {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %q, want it to mention %q", err, want)
				}
			}
			if _, nerr := NewNode(cfg, nil); nerr == nil {
				t.Error("NewNode accepted it")
			}
		})
	}
}

func TestNewNodeDoesNotChangeItsConfig(t *testing.T) {
	cfg := LocalNodeConfig()
	cfg.Name = "n1"
	cfg.Logger = discardLogger()
	before := *cfg.Cluster
	n := mustNode(t, cfg, &origin{})
	if cfg.Cluster.NodeName != before.NodeName || cfg.Cluster.HTTPAddr != before.HTTPAddr || cfg.Cluster.Logger != before.Logger {
		t.Errorf("NewNode changed the caller's peers.Config: %+v, was %+v", *cfg.Cluster, before)
	}
	if n.Cluster() == nil || n.Cluster().Name() != "n1" {
		t.Errorf("the node's cluster is named %q, want n1", n.Cluster().Name())
	}
}

// TestNewNodeFailureReleasesItsPort: groups of one name are refused after the listener is
// bound, and the port is free again.
func TestNewNodeFailureReleasesItsPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := LocalNodeConfig()
	cfg.HTTPAddr = addr
	cfg.Logger = discardLogger()
	g1, g2 := newTestGroup(t, "g", &origin{}, testGroupConfig()), newTestGroup(t, "g", &origin{}, testGroupConfig())
	if n, err := NewNode(cfg, []*group.Group{g1, g2}); err == nil {
		_ = n.Stop(context.Background())
		t.Fatal("NewNode accepted two groups named g")
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the failed node kept its HTTP port: %v", err)
	}
	l.Close()
}
