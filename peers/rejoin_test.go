package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lanPreset gives a test node DefaultConfig, the production LAN preset, changing only what a
// test must: loopback on a free port, and the node's name, HTTP address, seeds and logger.
func lanPreset(c *Config) {
	d := DefaultConfig()
	d.NodeName, d.HTTPAddr, d.Seeds, d.Logger = c.NodeName, c.HTTPAddr, c.Seeds, c.Logger
	d.GossipAddr = "127.0.0.1:0"
	*c = d
}

// waitMerged polls until every node's ring holds exactly the given nodes and every node
// maps every member to that member's current HTTP address (a restarted node has a new one),
// and returns how long that took.
func waitMerged(t testing.TB, nodes []*testNode, limit time.Duration) time.Duration {
	t.Helper()
	want := names(nodes)
	slices.Sort(want)
	merged := func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.c.RingMembers(), want) {
				return false
			}
			for _, m := range n.c.Members() {
				if m.State == Alive && m.HTTPAddr != byName(nodes, m.Name).srv.Listener.Addr().String() {
					return false
				}
			}
		}
		return true
	}
	start := time.Now()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !merged() {
		select {
		case <-deadline.C:
			for _, n := range nodes {
				t.Logf("%s sees %+v", n.name, n.c.Members())
			}
			t.Fatalf("nodes did not merge into %v within %v", want, limit)
		case <-tick.C:
		}
	}
	return time.Since(start)
}

func TestClusterSeedRestartedAloneRemerges(t *testing.T) {
	// The seed of a 3-node cluster restarts with no seeds of its own, at its old gossip
	// address, so it comes back alone. On the LAN preset (DefaultConfig, nothing shortened)
	// the others must merge it back within about 2 s of its start.
	//
	// After a Leave they saw it go and retry it as a missing seed: the first try comes within
	// SeedRetryInterval (1 s), then its refutation is gossiped (200 ms) and the rings wait
	// RebuildQuiet (500 ms). After a crash they still count it alive and find out from its
	// acks that a new process answers: in a cluster of 3 each member probes it every other
	// ProbeInterval (1 s), so the first probe may take two intervals; hence the larger limit.
	d := DefaultConfig()
	leaveLimit := 2 * time.Second
	crashLimit := 2*d.ProbeInterval + d.RebuildQuiet + d.GossipInterval + 300*time.Millisecond
	leave := func(n *testNode) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.c.Leave(ctx); err != nil {
			t.Errorf("Leave: %v", err)
		}
		n.stop()
	}
	tests := []struct {
		name  string
		stop  func(*testNode)
		limit time.Duration
	}{
		{"after Leave", leave, leaveLimit},
		{"after a crash", (*testNode).stop, crashLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := newLoadLog()
			seed := startNode(t, "node-0", log, nodeOptions{tune: lanPreset})
			seedAddr := seed.c.GossipAddr()
			nodes := []*testNode{seed}
			for _, name := range []string{"node-1", "node-2"} {
				nodes = append(nodes, startNode(t, name, log, nodeOptions{seeds: []string{seedAddr}, tune: lanPreset}))
			}
			waitMerged(t, nodes, 15*time.Second)

			tt.stop(seed)
			restarted := startNode(t, "node-0", log, nodeOptions{tune: func(c *Config) {
				lanPreset(c)
				c.GossipAddr = seedAddr
			}})
			if ok, reason := restarted.c.Ready(); !ok {
				t.Errorf("a node with no seeds is not ready: %s", reason)
			}
			nodes[0] = restarted
			took := waitMerged(t, nodes, 15*time.Second)
			t.Logf("REMERGE lan preset, seed restarted alone %s: all 3 merged %v after its Start returned",
				tt.name, took.Round(time.Millisecond))
			if took > tt.limit {
				t.Errorf("re-merge took %v, want within %v", took.Round(time.Millisecond), tt.limit)
			}
		})
	}
}

// partition cuts the network between two sides of a test cluster: while cut, each node's
// transport drops the packets it sends to the other side and fails its connections there,
// so nothing crosses in either direction.
type partition struct {
	mu   sync.Mutex
	cut  bool
	side map[string]int // gossip address -> side
}

func (p *partition) set(cut bool) {
	p.mu.Lock()
	p.cut = cut
	p.mu.Unlock()
}

func (p *partition) blocked(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut && p.side[from] != p.side[to]
}

// hook returns the memberlistHook that gives a node a transport under p.
func (p *partition) hook(t testing.TB) func(*memberlist.Config) {
	return func(mlc *memberlist.Config) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mlc.BindAddr},
			BindPort:  mlc.BindPort,
			Logger:    mlc.Logger,
		})
		if err != nil {
			t.Fatalf("transport: %v", err)
		}
		mlc.Transport = &cutTransport{NetTransport: nt, p: p,
			self: net.JoinHostPort(mlc.BindAddr, strconv.Itoa(nt.GetAutoBindPort()))}
	}
}

var errPartitioned = errors.New("partitioned (test)")

// cutTransport is memberlist's own UDP/TCP transport with the partition applied to what it
// sends.
type cutTransport struct {
	*memberlist.NetTransport
	p    *partition
	self string
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return c.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.p.blocked(c.self, a.Addr) {
		return time.Now(), nil // lost on the way
	}
	return c.NetTransport.WriteToAddress(b, a)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return c.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.p.blocked(c.self, a.Addr) {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errPartitioned)
	}
	return c.NetTransport.DialAddressTimeout(a, timeout)
}

func TestClusterPartitionsMerge(t *testing.T) {
	// Four nodes split into two halves that each declare the other half dead and carry on as
	// "the cluster", with a complete ring of their own. Once the network heals they must
	// merge, whichever side the seeds are on, through the retries of missing seeds; and
	// while it is cut, those retries must stay within their backoff cap.
	tests := []struct {
		name  string
		seeds []int // indexes of the nodes every node is seeded with
	}{
		{"a seed on each side", []int{0, 2}},
		{"the seed on one side", []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // both mostly wait for the halves to declare each other dead
			p := &partition{side: map[string]int{}}
			log := newLoadLog()
			addrs := make([]string, 4)
			for i := range addrs {
				addrs[i] = reserveAddr(t)
			}
			var seeds []string
			for _, i := range tt.seeds {
				seeds = append(seeds, addrs[i])
			}
			recs := make([]*logRecorder, 4)
			var nodes []*testNode
			for i := range 4 {
				recs[i] = &logRecorder{}
				n := newNode(t, "node-"+strconv.Itoa(i), log, nodeOptions{seeds: seeds, tune: func(c *Config) {
					c.GossipAddr = addrs[i]
					c.Logger = slog.New(recs[i])
				}})
				n.c.memberlistHook = p.hook(t)
				p.side[addrs[i]] = i / 2
				nodes = append(nodes, n)
			}
			for _, n := range nodes {
				if err := n.c.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			waitMerged(t, nodes, 15*time.Second)

			p.set(true)
			cutAt := time.Now()
			waitMerged(t, nodes[:2], 20*time.Second)
			waitMerged(t, nodes[2:], 20*time.Second)
			t.Logf("PARTITION %s: both halves carried on alone after %v", tt.name, time.Since(cutAt).Round(time.Millisecond))
			for _, n := range nodes {
				if ok, reason := n.c.Ready(); !ok {
					t.Errorf("%s is not ready in its half: %s", n.name, reason)
				}
			}

			// The missing seeds are tried, within the backoff: once it reaches its cap, each
			// node tries at most once per half a cap (the jitter's shortest wait); a loop
			// without backoff would try thousands of times.
			aloneAt, before := time.Now(), seedTries(recs)
			waitFor(t, 10*time.Second, func() bool { return seedTries(recs)-before >= 20 })
			span, tries := time.Since(aloneAt), seedTries(recs)-before
			ceiling := LocalConfig().SeedRetryInterval
			if bound := 4 * (int(span/(ceiling/2)) + 2); tries > bound {
				t.Errorf("%d failed seed tries in %v, want at most %d", tries, span.Round(time.Millisecond), bound)
			}
			t.Logf("PARTITION %s: %d failed seed tries in %v (SeedRetryInterval %v)", tt.name, tries, span.Round(time.Millisecond), ceiling)

			p.set(false)
			took := waitMerged(t, nodes, 15*time.Second)
			t.Logf("PARTITION %s: merged %v after the network healed", tt.name, took.Round(time.Millisecond))
		})
	}
}

// seedTries counts the failed tries of missing seeds the nodes logged.
func seedTries(recs []*logRecorder) int {
	n := 0
	for _, r := range recs {
		n += len(r.find("missing seeds still unreachable"))
	}
	return n
}

// tcpProxy forwards every connection it accepts to target, as a NAT or a load balancer in
// front of a seed would, and counts them.
type tcpProxy struct {
	ln       net.Listener
	accepted atomic.Int32
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return p
}

func TestClusterSeedBehindAnotherAddressIsNotRejoinedInALoop(t *testing.T) {
	// node-1's seed is node-0 behind a proxy: the join works, but node-0 is a member under
	// its own address, so the seed address never shows up in the view. It must not count as
	// missing for ever, or node-1 would join it at every retry; the periodic rejoin (30 s
	// here) is enough for it.
	log := newLoadLog()
	seed := startNode(t, "node-0", log, nodeOptions{})
	proxy := newTCPProxy(t, seed.c.GossipAddr())
	n := startNode(t, "node-1", log, nodeOptions{
		seeds: []string{proxy.ln.Addr().String()},
		tune:  func(c *Config) { c.RejoinInterval = 30 * time.Second },
	})
	checkReady(t, n, true, "joined seed "+proxy.ln.Addr().String())
	waitConverged(t, []*testNode{seed, n}, 10*time.Second)

	// Ten retry caps: a seed taken for missing would be joined about ten times meanwhile.
	window := 10 * LocalConfig().SeedRetryInterval
	<-time.After(window)
	if got := proxy.accepted.Load(); got != 1 {
		t.Errorf("node-1 joined its seed %d times in %v, want once", got, window)
	}
}
