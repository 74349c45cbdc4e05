package peers

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps every record, for tests that check what the
// cluster logs and at which level.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// find returns the levels of the records whose message contains s.
func (r *logRecorder) find(s string) []slog.Level {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Level
	for _, rec := range r.records {
		if strings.Contains(rec.Message, s) {
			out = append(out, rec.Level)
		}
	}
	return out
}

// reserveAddr returns a 127.0.0.1 address with a port that was free a moment ago, so that a
// node can be given as a seed before it starts.
func reserveAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestClusterFirstJoinRetriesSoon(t *testing.T) {
	// Every case rejoins only every 30 s (DefaultConfig's RejoinInterval) or never, and the
	// nodes must merge within 15 s: only the quick retries of the first join can do that.
	tests := []struct {
		name    string
		rejoin  time.Duration
		waiting int // nodes started, seeded with node-0, before node-0 exists
	}{
		{"the seed starts a moment later", 30 * time.Second, 1},
		{"the nodes start together, the seed last", 30 * time.Second, 2},
		{"rejoining disabled", -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seedAddr := reserveAddr(t)
			log := newLoadLog()
			tune := func(c *Config) { c.RejoinInterval = tt.rejoin }
			var nodes []*testNode
			for i := range tt.waiting {
				name := "node-" + strconv.Itoa(i+1)
				nodes = append(nodes, startNode(t, name, log, nodeOptions{seeds: []string{seedAddr}, tune: tune}))
			}
			seed := startNode(t, "node-0", log, nodeOptions{tune: func(c *Config) {
				tune(c)
				c.GossipAddr = seedAddr
			}})
			nodes = append(nodes, seed)
			took := waitConverged(t, nodes, 15*time.Second)
			t.Logf("FIRSTJOIN %s: merged %v after the seed started", tt.name, took.Round(time.Millisecond))
		})
	}
}

func TestClusterLeaveReturnsOnceGossiped(t *testing.T) {
	// memberlist waits until its leave message has been sent, or its timeout: when the other
	// members leave meanwhile, nobody is left to send it to. Leave must return once no other
	// member is alive, long before the caller's generous deadline.
	tests := []struct {
		name    string
		size    int
		leaving int // the last nodes of the cluster, which Leave at the same time
	}{
		{"a single node", 1, 1},
		{"one of 3 nodes", 3, 1},
		{"3 nodes together", 3, 3},
		{"5 nodes together", 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &logRecorder{}
			nodes := startCluster(t, tt.size, newLoadLog(), func(string) nodeOptions {
				return nodeOptions{tune: func(c *Config) {
					c.Logger = slog.New(rec)
					c.LeaveTimeout = time.Minute // the caller's context is the bound here
				}}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			start := time.Now()
			for _, n := range nodes[tt.size-tt.leaving:] {
				wg.Go(func() {
					if err := n.c.Leave(ctx); err != nil {
						t.Errorf("%s: Leave: %v", n.name, err)
					}
				})
			}
			wg.Wait()
			t.Logf("LEAVE %s: every Leave returned after %v", tt.name, time.Since(start).Round(time.Millisecond))
			if ctx.Err() != nil {
				t.Fatal("Leave waited for the caller's whole deadline")
			}
			if stayed := nodes[:tt.size-tt.leaving]; len(stayed) > 0 {
				waitConverged(t, stayed, 15*time.Second)
			}
			for _, n := range nodes {
				_ = n.c.Shutdown()
			}
			// A normal stop closes memberlist's sockets under its goroutines: that is not
			// an error.
			for _, level := range rec.find(closedConn) {
				if level > slog.LevelDebug {
					t.Errorf("a closed socket during shutdown logged at %v, want Debug", level)
				}
			}
		})
	}
}

func TestMemberlistLogLevels(t *testing.T) {
	rec := &logRecorder{}
	c, err := New(Config{NodeName: "n", GossipAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	mlc, err := c.memberlistConfig() // binds the gossip sockets: on loopback, port 0
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mlc.Transport.Shutdown() })
	const closedLine = "[ERR] memberlist: Failed to send indirect UDP ping: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"
	tests := []struct {
		name     string
		stopped  bool
		line     string
		contains string
		want     slog.Level
	}{
		{"debug", false, "[DEBUG] memberlist: Stream connection from=127.0.0.1:5", "Stream connection", slog.LevelDebug},
		{"warn", false, "[WARN] memberlist: Refuting a suspect message", "Refuting", slog.LevelWarn},
		{"closed socket while running", false, closedLine + " (running)", "(running)", slog.LevelError},
		{"closed socket while stopping", true, closedLine + " (stopping)", "(stopping)", slog.LevelDebug},
		{"another error while stopping", true, "[ERR] memberlist: Push/Pull with m failed: EOF", "Push/Pull", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stopped {
				if err := c.Shutdown(); err != nil {
					t.Fatal(err)
				}
			}
			mlc.Logger.Print(tt.line)
			got := rec.find(tt.contains)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("levels %v, want one record at %v", got, tt.want)
			}
		})
	}
}

func TestClusterShutdownDuringLeave(t *testing.T) {
	// memberlist panics on a Leave after Shutdown, on Leave's own goroutine: a Shutdown that
	// lands while Leave is still announcing must make Leave give up, not crash the process.
	nodes := startCluster(t, 2, newLoadLog(), nil)
	leaver := nodes[1]
	// The other node is gone but not yet declared dead: the announcement takes its time.
	nodes[0].stop()
	done := make(chan error, 1)
	go func() { done <- leaver.c.Leave(context.Background()) }()
	waitFor(t, 10*time.Second, func() bool { return leaver.c.currentMeta().Leaving })
	if err := leaver.c.Shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Logf("Leave interrupted by Shutdown: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Leave did not return after Shutdown")
	}
}

func TestClusterShutdownDoesNotWaitForAHangingSeed(t *testing.T) {
	// A seed that accepts connections and never answers holds memberlist's Join for
	// TCPTimeout (10 s on the LAN preset). The seed loop retries missing seeds all the time,
	// so without care Shutdown would nearly always wait for such a join, and a graceful stop
	// would overrun its budget. The seed is down while the node starts (so that Start's own
	// join fails at once), then comes back as a tarpit.
	seedAddr := reserveAddr(t)
	n := startNode(t, "node-1", newLoadLog(), nodeOptions{
		seeds: []string{seedAddr},
		tune:  func(c *Config) { c.TCPTimeout = DefaultConfig().TCPTimeout },
	})
	tarpit, err := net.Listen("tcp", seedAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tarpit.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := tarpit.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	var conn net.Conn
	select {
	case conn = <-accepted: // the seed loop is inside a join, waiting for an answer
		defer conn.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the seed loop did not retry the seed within 10 s")
	}

	start := time.Now()
	if err := n.c.Shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	took := time.Since(start)
	t.Logf("SHUTDOWN with a join hanging on a seed took %v", took.Round(time.Millisecond))
	if limit := time.Second; took > limit {
		t.Errorf("Shutdown took %v with a join hanging on a seed, want within %v (TCPTimeout is %v)",
			took.Round(time.Millisecond), limit, DefaultConfig().TCPTimeout)
	}
}
