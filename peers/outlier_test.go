package peers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// TestHungPeerEjected: a member whose peer wire stops answering (its HTTP server accepts the
// connection and never answers the upgrade) while memberlist still acks it, so gossip calls
// it alive. The asking node ejects it after PeerEjectAfter unreachable fetches, then loads its
// keys itself without dialling it again; once it answers again a probe gives it its keys
// back.
func TestHungPeerEjected(t *testing.T) {
	var hung atomic.Bool
	log := newLoadLog()
	nodes := startCluster(t, 3, log, func(name string) nodeOptions {
		o := nodeOptions{tune: func(c *Config) {
			c.PeerEjectAfter = 3
			c.PeerEjectFor = 200 * time.Millisecond
		}}
		if name == "node-2" {
			o.server = func(s *http.Server) {
				h := s.Handler
				s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if hung.Load() {
						<-r.Context().Done() // the asker gives up: its dial timeout
						return
					}
					h.ServeHTTP(w, r)
				})
			}
		}
		return o
	})
	asker := nodes[0]
	ring := names(nodes)
	hung.Store(true)

	ctx := context.Background()
	var i int
	owned := func() string {
		i++
		return keyOwnedBy(t, ring, "node-2", fmt.Sprintf("hung %d", i))
	}
	// Each fetch waits for the dial (or fails at once during its backoff), then loads here.
	for n := 0; asker.c.Stats().Ejected == 0; n++ {
		if n == 10 {
			t.Fatalf("node-2 not ejected after %d unreachable fetches; stats %+v", n, asker.c.Stats())
		}
		k := owned()
		v, err := asker.g.Get(ctx, k)
		if err != nil || string(v.Bytes) != "value of "+k {
			t.Fatalf("Get(%q) while node-2 hangs = %q, %v", k, v.Bytes, err)
		}
		if got := log.loads(k); !slices.Equal(got, []string{"node-0"}) {
			t.Fatalf("%q loaded by %v, want by node-0 alone", k, got)
		}
	}
	st := asker.c.Stats()
	if st.Ejected != 1 || st.Ejections != 1 {
		t.Errorf("stats after the ejection: Ejected %d, Ejections %d; want 1, 1", st.Ejected, st.Ejections)
	}
	var seen bool
	for _, m := range asker.c.Members() {
		if m.Name == "node-2" {
			seen = true
			if !m.Ejected || m.EjectedUntil == nil || m.State != Alive {
				t.Errorf("Members: node-2 is %+v, want alive and ejected with a probe time", m)
			}
		} else if m.Ejected {
			t.Errorf("Members: %s ejected too", m.Name)
		}
	}
	if !seen {
		t.Fatal("Members does not list node-2")
	}

	// Routed around: node-0 owns node-2's keys now, and never waits on a dial for them.
	peer := asker.c.view.Load().peer("node-2")
	dials := peer.client.Stats().Dials
	for range 20 {
		k := owned()
		start := time.Now()
		v, err := asker.g.Get(ctx, k)
		took := time.Since(start)
		if err != nil || string(v.Bytes) != "value of "+k {
			t.Fatalf("Get(%q) with node-2 ejected = %q, %v", k, v.Bytes, err)
		}
		if got := log.loads(k); !slices.Equal(got, []string{"node-0"}) {
			t.Errorf("%q loaded by %v with node-2 ejected, want by node-0 alone", k, got)
		}
		// A dial to the hung peer would take the dial timeout (2 s); a probe may run meanwhile,
		// but no Get waits for it.
		if took > time.Second {
			t.Errorf("Get(%q) with node-2 ejected took %v: it waited on the peer", k, took)
		}
	}
	// The only dials while ejected are the probes', at most one per doubling interval.
	if d := peer.client.Stats().Dials - dials; d > 5 {
		t.Errorf("%d dials to the ejected peer during 20 Gets, want only the probes' (a few)", d)
	}
	if got := asker.c.RingMembers(); !slices.Equal(got, ring) {
		t.Errorf("ring %v while node-2 is ejected: ejection must not change membership (want %v)", got, ring)
	}

	hung.Store(false)
	waitFor(t, 15*time.Second, func() bool { return asker.c.Stats().Ejected == 0 })
	k := owned()
	if v, err := asker.g.Get(ctx, k); err != nil || string(v.Bytes) != "value of "+k {
		t.Fatalf("Get(%q) after node-2 is back = %q, %v", k, v.Bytes, err)
	}
	if got := log.loads(k); !slices.Equal(got, []string{"node-2"}) {
		t.Errorf("%q loaded by %v after node-2 is back, want by its owner node-2", k, got)
	}
}

// TestOutlierCounts: which fetch outcomes count toward an ejection. Only "unreachable" does;
// an owner's verdict, a caller's own deadline and an overloaded owner reset or leave the count.
func TestOutlierCounts(t *testing.T) {
	unreachable := fmt.Errorf("x: %w: %w", group.ErrPeerUnavailable, errors.New("refused"))
	overloadedWire := &wire.Error{Code: wire.CodeOverloaded, Message: "busy"}
	overloaded := fmt.Errorf("x: %w: %w", group.ErrPeerUnavailable, overloadedWire)
	verdict := &RemoteError{Peer: "p", Code: "load_failed", Message: "origin 500"}
	deadline := fmt.Errorf("no answer: %w", context.DeadlineExceeded)
	type outcome struct{ err, wireErr error }
	for _, c := range []struct {
		name     string
		outcomes []outcome
		ejected  bool
	}{
		{"three unreachable in a row", []outcome{{unreachable, nil}, {unreachable, nil}, {unreachable, nil}}, true},
		{"two unreachable", []outcome{{unreachable, nil}, {unreachable, nil}}, false},
		{"a success between", []outcome{{unreachable, nil}, {unreachable, nil}, {nil, nil}, {unreachable, nil}, {unreachable, nil}}, false},
		{"a verdict between", []outcome{{unreachable, nil}, {unreachable, nil}, {verdict, nil}, {unreachable, nil}, {unreachable, nil}}, false},
		{"the caller's deadline between", []outcome{{unreachable, nil}, {unreachable, nil}, {deadline, nil}, {unreachable, nil}}, false},
		{"overloaded never counts", []outcome{{overloaded, overloadedWire}, {overloaded, overloadedWire}, {overloaded, overloadedWire}, {overloaded, overloadedWire}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := LocalConfig()
			cfg.NodeName, cfg.HTTPAddr, cfg.Logger = "self", "127.0.0.1:1", testLogger()
			cfg.PeerEjectAfter, cfg.PeerEjectFor = 3, time.Hour
			cl, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			p := newWirePeer(cl, "p", "127.0.0.1:1")
			defer p.close()
			for _, o := range c.outcomes {
				p.observe(o.err, o.wireErr)
			}
			if p.isEjected() != c.ejected {
				t.Errorf("ejected = %v, want %v", p.isEjected(), c.ejected)
			}
		})
	}
}

// TestSlowOwnerNotCut: an owner whose origin takes longer than the wire's liveness check
// (1.5 s) is alive, and keeps answering pings: the asking node waits for its answer, never
// loads the key itself, and does not count it toward an ejection.
func TestSlowOwnerNotCut(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 1)
	log := newLoadLog()
	nodes := startCluster(t, 2, log, func(name string) nodeOptions {
		return nodeOptions{
			tune: func(c *Config) { c.PeerEjectAfter = 1 },
			load: func(ctx context.Context, node, key string) (group.Value, error) {
				if node == "node-1" {
					arrived <- key
					select {
					case <-release:
					case <-ctx.Done():
						return group.Value{}, ctx.Err()
					}
				}
				return group.Value{Bytes: []byte("value of " + key)}, nil
			},
		}
	})
	asker := nodes[0]
	k := keyOwnedBy(t, names(nodes), "node-1", "slow")
	type result struct {
		v   group.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := asker.g.Get(context.Background(), k)
		done <- result{v, err}
	}()
	<-arrived
	// Hold the load past the liveness check (500 ms of silence, 1 s without a pong): an owner
	// that answers pings must survive it, so the asker's Get must still be waiting then.
	held := time.NewTimer(2500 * time.Millisecond)
	select {
	case r := <-done:
		held.Stop()
		t.Fatalf("Get(%q) returned %q, %v while its owner was still loading it", k, r.v.Bytes, r.err)
	case <-held.C:
	}
	close(release)
	r := <-done
	if r.err != nil || string(r.v.Bytes) != "value of "+k {
		t.Fatalf("Get(%q) = %q, %v; want the owner's value", k, r.v.Bytes, r.err)
	}
	if got := log.loads(k); !slices.Equal(got, []string{"node-1"}) {
		t.Errorf("%q loaded by %v, want by its owner node-1 alone", k, got)
	}
	if st := asker.c.Stats(); st.Unreachable != 0 || st.Ejected != 0 || st.Ejections != 0 {
		t.Errorf("a slow owner counted as unreachable or ejected: %+v", st)
	}
}

// TestFetchInFlightToDeadMemberFallsBack: when membership declares the owner gone while a
// fetch to it is in flight (its load still running), the fetch is failed at once and the key
// is loaded here, one load, without waiting for the owner's answer or the load timeout.
func TestFetchInFlightToDeadMemberFallsBack(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	arrived := make(chan string, 1)
	log := newLoadLog()
	nodes := startCluster(t, 2, log, func(string) nodeOptions {
		return nodeOptions{load: func(ctx context.Context, node, key string) (group.Value, error) {
			if node == "node-1" {
				arrived <- key
				select {
				case <-release:
				case <-ctx.Done():
					return group.Value{}, ctx.Err()
				}
			}
			return group.Value{Bytes: []byte("value of " + key)}, nil
		}}
	})
	asker := nodes[0]
	k := keyOwnedBy(t, names(nodes), "node-1", "dying")
	type result struct {
		v   group.Result
		err error
	}
	done := make(chan result, 2)
	for range 2 { // two callers, one fill
		go func() {
			v, err := asker.g.Get(context.Background(), k)
			done <- result{v, err}
		}()
	}
	<-arrived
	// memberlist reports node-1 gone (as it does once its suspicion times out).
	asker.c.notify(nodeEvent{left: true, name: "node-1"})
	asker.c.rebuild()
	for range 2 {
		select {
		case r := <-done:
			if r.err != nil || string(r.v.Bytes) != "value of "+k {
				t.Fatalf("Get(%q) = %q, %v; want the value loaded here", k, r.v.Bytes, r.err)
			}
		case <-time.After(3 * time.Second): // the load timeout is 5 s
			t.Fatal("the fetch in flight to the departed owner was not failed when it left the view")
		}
	}
	if got := log.loads(k); !slices.Equal(got, []string{"node-1", "node-0"}) {
		t.Errorf("%q loaded by %v, want the owner's load (cut off) then one load on node-0", k, got)
	}
}

// TestRestartedPeerReadmitted: a peer kept across a rebuild (same member, same address) is
// readmitted when the member's boot identifier changed (a new process), and stays ejected
// otherwise.
func TestRestartedPeerReadmitted(t *testing.T) {
	cfg := LocalConfig()
	cfg.NodeName, cfg.HTTPAddr, cfg.Logger = "self", "127.0.0.1:1", testLogger()
	cfg.PeerEjectAfter, cfg.PeerEjectFor = 1, time.Hour
	cl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := newWirePeer(cl, "p", "127.0.0.1:1")
	defer p.close()
	unreachable := fmt.Errorf("x: %w", group.ErrPeerUnavailable)
	ring := NewRing([]string{"p", "self"})
	peersOf := make([]*wirePeer, ring.Len())
	peersOf[slices.Index(ring.Names(), "p")] = p
	view := func(boot string) *view {
		return &view{ring: ring, peers: peersOf, boots: map[string]string{"p": boot}}
	}

	p.observe(unreachable, nil)
	readmitRestarted(view("b1"), view("b1"))
	if !p.isEjected() {
		t.Fatal("the same process readmitted without a probe")
	}
	readmitRestarted(view("b1"), view("b2"))
	if p.isEjected() || !p.ejectedUntil().IsZero() {
		t.Fatal("a restarted process (new boot) still ejected")
	}
	p.observe(unreachable, nil)
	if !p.isEjected() {
		t.Fatal("not ejected again after a failure")
	}
}
