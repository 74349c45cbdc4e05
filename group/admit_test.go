package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxTracker records the most loader calls in progress at once.
type maxTracker struct{ now, top atomic.Int64 }

func (m *maxTracker) enter() {
	n := m.now.Add(1)
	for old := m.top.Load(); n > old && !m.top.CompareAndSwap(old, n); old = m.top.Load() {
	}
}

func (m *maxTracker) leave() { m.now.Add(-1) }

func TestAdmissionBoundsLoadsQueuesAndRejects(t *testing.T) {
	gt := newGate()
	var inFlight maxTracker
	l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
		inFlight.enter()
		defer inFlight.leave()
		if err := gt.wait(ctx); err != nil {
			return Value{}, err
		}
		return Value{Bytes: []byte(key)}, nil
	}}
	cfg := testConfig()
	cfg.MaxConcurrentLoads, cfg.MaxQueuedLoads, cfg.MaxLoadingBytes = 3, 2, 0
	cfg.ErrorTTL = time.Hour // an overload must not be remembered
	g := newTestGroup(t, l, cfg)

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Go(func() {
			_, err := g.Get(context.Background(), fmt.Sprintf("k%d", i))
			errs <- err
		})
	}
	gt.waitEntered(t, 3)
	eventually(t, 10*time.Second, "two loads queued", func() bool { return g.Stats().Admission.Queued == 2 })
	if st := g.Stats().Admission; st.InFlight != 3 {
		t.Fatalf("Admission = %+v, want 3 in flight", st)
	}

	// Past the queue: refused at once, with nothing asked of the loader.
	_, err := g.Get(context.Background(), "k-extra")
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Get past the queue = %v, want ErrOverloaded", err)
	}
	st := g.Stats()
	if st.Admission.Rejected != 1 || st.LocalLoadErrs != 0 || l.calls.Load() != 3 {
		t.Fatalf("Rejected %d, LocalLoadErrs %d, loader calls %d; want 1, 0, 3", st.Admission.Rejected, st.LocalLoadErrs, l.calls.Load())
	}

	gt.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("admitted or queued Get: %v", err)
		}
	}
	if top := inFlight.top.Load(); top != 3 {
		t.Fatalf("%d loads ran at once, want 3", top)
	}
	if st := g.Stats().Admission; st.InFlight != 0 || st.Queued != 0 || st.Waited != 2 {
		t.Fatalf("Admission after the loads = %+v, want nothing in flight or queued, 2 waited", st)
	}
	// The refused key was not remembered as a failure: it loads now.
	if res, err := g.Get(context.Background(), "k-extra"); err != nil || string(res.Bytes) != "k-extra" {
		t.Fatalf("Get of the refused key afterwards = %q, %v", res.Bytes, err)
	}
}

// A queued load waits at most until its load timeout, and leaves the queue then.
func TestQueuedLoadEndsAtTheLoadTimeout(t *testing.T) {
	gt := newGate()
	defer gt.release()
	l := LoaderFunc(func(ctx context.Context, key string) (Value, error) {
		if key == "holder" {
			_ = gt.wait(context.Background()) // ignores its context: holds the slot
		}
		return Value{Bytes: []byte(key)}, nil
	})
	cfg := testConfig()
	cfg.MaxConcurrentLoads, cfg.MaxQueuedLoads = 1, 4
	cfg.LoadTimeout = 100 * time.Millisecond
	g := newTestGroup(t, l, cfg)
	go func() { _, _ = g.Get(context.Background(), "holder") }()
	gt.waitEntered(t, 1)
	_, err := g.Get(context.Background(), "queued")
	if !errors.Is(err, ErrLoadTimeout) && !errors.Is(err, ErrOverloaded) {
		t.Fatalf("queued Get = %v, want a timeout", err)
	}
	eventually(t, 10*time.Second, "the queue emptied", func() bool { return g.Stats().Admission.Queued == 0 })
}

// Hits and fetches from the key's owner do not take a load slot.
func TestAdmissionSkipsHitsAndPeerFetches(t *testing.T) {
	gt := newGate()
	defer gt.release()
	l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
		if key == "slow" {
			_ = gt.wait(ctx)
		}
		return Value{Bytes: []byte(key)}, nil
	}}
	cfg := testConfig()
	cfg.MaxConcurrentLoads, cfg.MaxQueuedLoads = 1, 0
	g := newTestGroup(t, l, cfg)
	if _, err := g.Get(t.Context(), "cached"); err != nil {
		t.Fatal(err)
	}
	peer := &fakePeer{fn: func(_ context.Context, _, key string) (Value, error) {
		return Value{Bytes: []byte("remote " + key)}, nil
	}}
	g.SetPeers(&ownerPicker{peer: peer, owns: func(key string) bool { return key == "remote" }})
	go func() { _, _ = g.Get(context.Background(), "slow") }()
	gt.waitEntered(t, 1)

	if res, err := g.Get(t.Context(), "cached"); err != nil || res.Source != SourceMain {
		t.Fatalf("hit while the slot is taken = %v %v", res.Source, err)
	}
	if res, err := g.Get(t.Context(), "remote"); err != nil || res.Source != SourcePeer {
		t.Fatalf("fetch from the owner while the slot is taken = %v %v", res.Source, err)
	}
	if _, err := g.Get(t.Context(), "another"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a second load = %v, want ErrOverloaded (no queue)", err)
	}
}

// With a byte budget, a load that would take the estimated bytes past it waits.
func TestLoadingBytesBudget(t *testing.T) {
	gt := newGate()
	var gated atomic.Bool
	l := LoaderFunc(func(ctx context.Context, key string) (Value, error) {
		if gated.Load() {
			if err := gt.wait(ctx); err != nil {
				return Value{}, err
			}
		}
		return Value{Bytes: make([]byte, 600)}, nil
	})
	cfg := testConfig()
	cfg.MaxConcurrentLoads, cfg.MaxQueuedLoads, cfg.MaxLoadingBytes = 10, 10, 1000
	g := newTestGroup(t, l, cfg)
	if _, err := g.Get(t.Context(), "first"); err != nil { // teaches the estimate: 600 bytes
		t.Fatal(err)
	}
	gated.Store(true)
	var wg sync.WaitGroup
	for _, k := range []string{"a", "b", "c"} {
		wg.Go(func() {
			if _, err := g.Get(context.Background(), k); err != nil {
				t.Errorf("Get(%s): %v", k, err)
			}
		})
	}
	gt.waitEntered(t, 1)
	eventually(t, 10*time.Second, "two loads wait for the budget", func() bool { return g.Stats().Admission.Queued == 2 })
	if st := g.Stats().Admission; st.InFlight != 1 || st.LoadingBytes != 600 {
		t.Fatalf("Admission = %+v, want 1 load of 600 estimated bytes", st)
	}
	gt.release()
	wg.Wait()
}

// A queued caller whose context ends leaves the queue; a slot granted meanwhile is used.
func TestAdmissionWaiterLeaves(t *testing.T) {
	a := newAdmission(Config{MaxConcurrentLoads: 1, MaxQueuedLoads: 1})
	charge, err := a.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := a.acquire(ctx)
		done <- err
	}()
	eventually(t, 10*time.Second, "queued", func() bool { return a.stats().Queued == 1 })
	cancel()
	if err := <-done; !errors.Is(err, ErrOverloaded) {
		t.Fatalf("acquire after its context ended = %v, want ErrOverloaded", err)
	}
	if st := a.stats(); st.Queued != 0 || st.InFlight != 1 {
		t.Fatalf("stats = %+v, want the queue empty and one in flight", st)
	}
	a.release(charge, 10, true)
	if st := a.stats(); st.InFlight != 0 {
		t.Fatalf("stats after release = %+v", st)
	}
	if _, err := a.acquire(context.Background()); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

func TestIsolationConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		field string
		set   func(*Config)
	}{
		{"MaxConcurrentLoads", func(c *Config) { c.MaxConcurrentLoads = -1 }},
		{"MaxQueuedLoads", func(c *Config) { c.MaxQueuedLoads = -1 }},
		{"MaxLoadingBytes", func(c *Config) { c.MaxLoadingBytes = -1 }},
		{"ErrorTTL", func(c *Config) { c.ErrorTTL = -time.Second }},
		{"MaxErrorTTL", func(c *Config) { c.MaxErrorTTL = -time.Second }},
		{"StaleWhileRevalidate", func(c *Config) { c.StaleWhileRevalidate = -time.Second }},
		{"StaleIfError", func(c *Config) { c.StaleIfError = -time.Second }},
	} {
		cfg := DefaultConfig()
		tt.set(&cfg)
		var fe *FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s out of range: Validate = %v", tt.field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestReserveBytesBoundsLoadingBytes is issue 11's case of many cold large values on a fresh
// node, where the estimate knows nothing yet: 32 loads admitted at once, each learning (as an
// HTTP origin's Content-Length tells it) that its value has 8 MiB. Only what fits the 64 MiB
// budget goes on; the others end with ErrOverloaded before holding their bytes, and the
// bytes charged never pass the budget.
func TestReserveBytesBoundsLoadingBytes(t *testing.T) {
	const (
		loads  = 32
		size   = 8 << 20
		budget = 64 << 20
	)
	gt := newGate()
	var reserved, refused atomic.Int32
	l := LoaderFunc(func(ctx context.Context, key string) (Value, error) {
		if err := ReserveBytes(ctx, size); err != nil {
			refused.Add(1)
			return Value{}, err
		}
		reserved.Add(1)
		if err := gt.wait(ctx); err != nil {
			return Value{}, err
		}
		return Value{Bytes: []byte("eight mebibytes, notionally")}, nil
	})
	cfg := testConfig()
	cfg.MaxConcurrentLoads, cfg.MaxQueuedLoads, cfg.MaxLoadingBytes = loads, loads, budget
	g := newTestGroup(t, l, cfg)
	var wg sync.WaitGroup
	var overloaded atomic.Int32
	for i := range loads {
		wg.Go(func() {
			_, err := g.Get(context.Background(), fmt.Sprintf("big-%d", i))
			switch {
			case errors.Is(err, ErrOverloaded):
				overloaded.Add(1)
			case err != nil:
				t.Errorf("Get: %v", err)
			}
		})
	}
	eventually(t, 10*time.Second, "every load reserved or was refused", func() bool {
		return reserved.Load()+refused.Load() == loads
	})
	if st := g.Stats().Admission; reserved.Load() != budget/size || st.LoadingBytes > budget {
		t.Errorf("%d loads hold their 8 MiB, %d bytes charged; want %d loads, at most %d bytes",
			reserved.Load(), st.LoadingBytes, budget/size, budget)
	}
	gt.release()
	wg.Wait()
	if overloaded.Load() != loads-budget/size {
		t.Errorf("%d Gets answered ErrOverloaded, want %d", overloaded.Load(), loads-budget/size)
	}
	if st := g.Stats().Admission; st.LoadingBytes != 0 || st.InFlight != 0 {
		t.Errorf("after the loads: %+v, want nothing charged", st)
	}
	// Outside a load ReserveBytes does nothing.
	if err := ReserveBytes(context.Background(), 1<<40); err != nil {
		t.Errorf("ReserveBytes outside a load: %v", err)
	}
}
