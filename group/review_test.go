package group

import (
	"context"
	"testing"
	"time"
)

// TestRevalidationNotHeldByHungLoad: a stale-while-revalidate refresh whose Load ignores its
// context is cut off at the load timeout like any fill, so that a later stale Get starts a
// new refresh. The refresh's goroutine calls flights.do with context.Background, which makes
// the slow call inline (flight.go): do then returns only when the hung Load does, and the key
// stays in g.refreshing, so no Get revalidates it again for as long as the Load hangs.
func TestRevalidationNotHeldByHungLoad(t *testing.T) {
	hung := make(chan struct{})
	entered := make(chan struct{}, 16)
	t.Cleanup(func() { close(hung) })
	l := &countingLoader{}
	l.fn = func(ctx context.Context, key string) (Value, error) {
		switch l.calls.Load() {
		case 1:
			return Value{Bytes: []byte("v1"), TTL: shortTTL}, nil
		case 2:
			entered <- struct{}{}
			<-hung // ignores ctx
			return Value{Bytes: []byte("late")}, nil
		default:
			return Value{Bytes: []byte("v3")}, nil
		}
	}
	cfg := testConfig()
	cfg.StaleWhileRevalidate = time.Hour
	cfg.LoadTimeout = 50 * time.Millisecond
	g := newTestGroup(t, l, cfg)
	if res, err := g.Get(t.Context(), "k"); err != nil || string(res.Bytes) != "v1" {
		t.Fatalf("first Get = %q %v", res.Bytes, err)
	}
	expire(t, g, "k")
	if res, err := g.Get(t.Context(), "k"); err != nil || !res.Stale {
		t.Fatalf("Get of the expired key = %q stale=%v %v, want the stale v1", res.Bytes, res.Stale, err)
	}
	receive(t, entered, "the refresh's Load")
	eventually(t, 5*time.Second, "a new refresh once the first timed out", func() bool {
		res, err := g.Get(t.Context(), "k")
		return err == nil && string(res.Bytes) == "v3"
	})
}

// TestRankedIsEvictionOrder: ranked (and so Group.Hottest, which hands a leaving node's
// entries to their next owners) lists "the one it would keep longest first". A key in the
// small queue that has been read moves to the main queue's head when the small queue's tail
// reaches it, ahead of a main-queue key nobody read; yet ranked puts every main-queue key
// before every small-queue key, so a hand-off with a byte budget sends the unread key and
// leaves out the one being read, which the policy keeps.
func TestRankedIsEvictionOrder(t *testing.T) {
	st := newStore[uint64, int](1000, 1, spread)
	for k := uint64(1); k <= 11; k++ { // key 1 is dropped unread: the ghost remembers it
		st.set(k, 0, 100)
	}
	st.set(1, 0, 100) // back through the ghost: main queue, never read
	var v int
	for range 3 { // key 3, in the small queue, is read
		st.get(3, &v)
	}
	rank := func(key uint64) int {
		for i, n := range st.ranked() {
			if n.key == key {
				return i
			}
		}
		return -1
	}
	cold, hot := nodeOf(st, 1), nodeOf(st, 3)
	if cold == nil || !cold.inMain() || cold.freq() != 0 || hot == nil || hot.inMain() || hot.freq() == 0 {
		t.Fatalf("setup: key 1 %+v, key 3 %+v", cold, hot)
	}
	coldRank, hotRank := rank(1), rank(3)
	// Pressure: new keys until the policy drops one of the two.
	for k := uint64(100); nodeOf(st, 1) != nil && nodeOf(st, 3) != nil; k++ {
		st.set(k, 0, 100)
	}
	kept, dropped := uint64(3), uint64(1)
	if nodeOf(st, 1) != nil {
		kept, dropped = 1, 3
	}
	if (kept == 1) != (coldRank < hotRank) {
		t.Fatalf("ranked put key 1 (main, unread) at %d and key 3 (small, read) at %d; the policy then dropped key %d and kept key %d",
			coldRank, hotRank, dropped, kept)
	}
}

// TestSetHeavierThanBoundKeepsTheRest: an entry heavier than the whole bound cannot stay, and
// the bound requires nothing else to go; set stored it, evicted every other entry of every
// shard while it was there, then the entry itself. cache.add refuses such an entry against
// its own copy of the bound, which SetPeers lowers just before the store's (setMaxBytes): an
// add that checked the old bound and sets after the new one emptied the cache.
func TestSetHeavierThanBoundKeepsTheRest(t *testing.T) {
	st := newStore[uint64, int](10_000, 4, spread)
	for k := uint64(1); k <= 50; k++ {
		st.set(k, 0, 100)
	}
	before := st.items.Load()
	st.set(1000, 0, 10_001)
	if err := checkStore(st); err != nil {
		t.Fatal(err)
	}
	if got := st.items.Load(); got != before || st.evictions.Load() > 1 {
		t.Fatalf("after a set heavier than the bound: %d entries (were %d), %d evictions; want the %d kept",
			got, before, st.evictions.Load(), before)
	}
}
