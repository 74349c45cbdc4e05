package peers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

var testSecret = []byte("a cluster secret of 32 bytes....")

// withSecret gives every node of a test cluster the cluster secret.
func withSecret(string) nodeOptions {
	return nodeOptions{tune: func(c *Config) { c.SecretKey = testSecret }}
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines that contain s.
func (b *logBuffer) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for line := range strings.Lines(b.buf.String()) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestPeerAuthentication: with a cluster secret, the owner's peer wire accepts only a member
// of its view that signs its upgrade; everything else is refused on the real socket, counted
// (clock skews apart) and logged at most once per kind per 10 s.
func TestPeerAuthentication(t *testing.T) {
	logs := &logBuffer{}
	log := newLoadLog()
	nodes := startCluster(t, 2, log, func(name string) nodeOptions {
		return nodeOptions{tune: func(c *Config) {
			c.SecretKey = testSecret
			if name == "node-0" {
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			}
		}}
	})
	owner, asker := nodes[0], nodes[1]
	addr := owner.srv.Listener.Addr().String()
	ctx := context.Background()

	key := keyOwnedBy(t, names(nodes), "node-0", "auth")
	if res, err := asker.g.Get(ctx, key); err != nil || res.Source != group.SourcePeer {
		t.Fatalf("a member's fetch: source %v, err %v", res.Source, err)
	}
	if st := owner.c.Stats(); st.AuthRefused != 0 {
		t.Fatalf("AuthRefused = %d after a member's fetch", st.AuthRefused)
	}

	now := time.Now().Unix()
	accepted := signedUpgrade(testSecret, "node-1", "node-0", now)
	for _, tt := range []struct {
		name    string
		request string
		status  int
	}{
		{"unauthenticated", signedUpgrade(nil, "node-1", "node-0", now), 401},
		{"wrongly signed", signedUpgrade([]byte("another secret of 32 bytes......"), "node-1", "node-0", now), 403},
		{"signed by a non-member", signedUpgrade(testSecret, "node-9", "node-0", now), 403},
		{"signed with this node's own name", signedUpgrade(testSecret, "node-0", "node-0", now), 403},
		{"addressed to another node", signedUpgrade(testSecret, "node-1", "node-1", now), 403},
		{"a clock two minutes behind", signedUpgrade(testSecret, "node-1", "node-0", now-120), 403},
		{"signed by a member", accepted, 101},
		{"the same upgrade replayed", accepted, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := upgradeStatus(t, addr, tt.request); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
		})
	}

	// A real node's upgrade, captured on its way to the owner and replayed.
	proxy, captured := recordingProxy(t, addr)
	p := newWirePeer(asker.c, "node-0", proxy)
	if _, err := p.Fetch(ctx, testGroup, key); err != nil {
		t.Fatalf("fetch through the recording proxy: %v", err)
	}
	p.close()
	if got := upgradeStatus(t, addr, captured()); got != 403 {
		t.Errorf("a member's captured upgrade replayed: status %d, want 403", got)
	}

	st := owner.c.Stats()
	if st.AuthRefused != 8 || st.ClockSkewRefused != 1 {
		t.Errorf("AuthRefused %d, ClockSkewRefused %d; want 8 and 1", st.AuthRefused, st.ClockSkewRefused)
	}
	if got := logs.lines("NTP"); len(got) != 1 || !strings.Contains(got[0], "skew=-2m0s") {
		t.Errorf("clock skew log lines: %q; want one, with the skew", got)
	}
	if got := logs.lines(`msg="peer connection refused"`); len(got) != 1 {
		t.Errorf("refusal log lines: %q; want one (the others within 10 s suppressed)", got)
	}
	if got := log.loads(key); len(got) != 1 {
		t.Errorf("the key was loaded %d times, want once (refused upgrades load nothing)", len(got))
	}
}

// recordingProxy forwards one TCP connection to addr and keeps what the client sent; captured
// returns the client's first request (the upgrade).
func recordingProxy(t *testing.T, addr string) (proxyAddr string, captured func() string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		sent bytes.Buffer
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		in, err := l.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		out, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer out.Close()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			mu.Lock()
			sent.Write(buf[:n])
			mu.Unlock()
			if _, werr := out.Write(buf[:n]); err != nil || werr != nil {
				return
			}
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String(), func() string {
		mu.Lock()
		defer mu.Unlock()
		req, _, ok := strings.Cut(sent.String(), "\r\n\r\n")
		if !ok {
			t.Fatalf("the proxy saw no complete upgrade: %q", sent.String())
		}
		return req + "\r\n\r\n"
	}
}

// TestPeerAuthenticationOfNodes: nodes that are not members of the owner's view, or hold
// another secret, or none, cannot fetch; a node that joins the cluster can, at once.
func TestPeerAuthenticationOfNodes(t *testing.T) {
	log := newLoadLog()
	nodes := startCluster(t, 2, log, withSecret)
	owner := nodes[0]
	addr := owner.srv.Listener.Addr().String()
	ctx := context.Background()
	key := keyOwnedBy(t, []string{"node-0", "node-1", "node-2"}, "node-0", "outsider")

	for _, tt := range []struct {
		name, node string
		secret     []byte
	}{
		{"a node not in the ring", "node-2", testSecret},
		{"a member's name with another secret", "node-1", []byte("another secret of 32 bytes......")},
		{"a member's name without a secret", "node-1", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.node, log, nodeOptions{tune: func(c *Config) { c.SecretKey = tt.secret }})
			p := newWirePeer(n.c, "node-0", addr)
			defer p.close()
			_, err := p.Fetch(ctx, testGroup, key)
			if !errors.Is(err, group.ErrPeerUnavailable) || !errors.Is(err, wire.ErrAuth) {
				t.Errorf("error = %v, want ErrPeerUnavailable from a refused authentication", err)
			}
		})
	}
	if got := log.loads(key); len(got) != 0 {
		t.Errorf("refused fetches loaded the key on %v", got)
	}
	if st := owner.c.Stats(); st.AuthRefused != 3 {
		t.Errorf("AuthRefused = %d, want 3", st.AuthRefused)
	}

	// The outsider joins: once in the owner's view it fetches like any member.
	joiner := startNode(t, "node-2", log, nodeOptions{seeds: []string{owner.c.GossipAddr()}, tune: withSecret("").tune})
	waitConverged(t, append(nodes, joiner), 20*time.Second)
	res, err := joiner.g.Get(ctx, key)
	if err != nil || res.Source != group.SourcePeer {
		t.Fatalf("after joining: source %v, err %v; want a fetch from the owner", res.Source, err)
	}
	if got := log.loads(key); len(got) != 1 || got[0] != "node-0" {
		t.Errorf("loads = %v, want one on the owner", got)
	}
}

func TestFromMember(t *testing.T) {
	m := Member{Name: "a", HTTPAddr: "10.0.0.1:8080", GossipAddr: "10.0.1.1:7946"}
	for _, tt := range []struct {
		name   string
		m      Member
		remote string
		want   bool
	}{
		{"from the HTTP address", m, "10.0.0.1:50000", true},
		{"from the gossip address", m, "10.0.1.1:50000", true},
		{"from elsewhere", m, "10.0.0.2:50000", false},
		{"IPv4 in IPv6", m, "[::ffff:10.0.0.1]:50000", true},
		{"a bad remote address", m, "nonsense", false},
		{"host names cannot be checked", Member{HTTPAddr: "a.example:8080", GossipAddr: "a.example:7946"}, "10.9.9.9:1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromMember(tt.m, tt.remote); got != tt.want {
				t.Errorf("fromMember = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestJoiningMemberIsAMember: a member whose join is queued but not yet in the ring (the
// rebuild waits for quiet) may already connect.
func TestJoiningMemberIsAMember(t *testing.T) {
	n := newNode(t, "node-0", newLoadLog(), nodeOptions{tune: func(c *Config) { c.RebuildQuiet = time.Hour }})
	if n.c.isMember("node-1", "127.0.0.1:1") {
		t.Fatal("an unknown node is a member")
	}
	n.c.notify(nodeEvent{name: "node-1", addr: "127.0.0.1:7946", meta: []byte(`{"http":"127.0.0.1:8080"}`)})
	if !n.c.isMember("node-1", "127.0.0.1:1") {
		t.Error("a node whose join is queued is not a member")
	}
	if n.c.isMember("node-1", "192.0.2.1:1") {
		t.Error("a joining member connecting from another address is a member")
	}
	n.c.notify(nodeEvent{left: true, name: "node-1", addr: "127.0.0.1:7946"})
	if n.c.isMember("node-1", "127.0.0.1:1") {
		t.Error("a node whose departure is queued is a member")
	}
}
