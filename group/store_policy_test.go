package group

import (
	"math/rand/v2"
	"testing"
)

// setKeys sets keys from..to-1, each of weight 1; read also reads each one once.
func setKeys(st *testStore, from, to uint64, read bool) {
	var v int
	for k := from; k < to; k++ {
		st.set(k, int(k), 1)
		if read {
			st.get(k, &v)
		}
	}
}

// The policy's tests use a store of one shard of 100 bytes and entries of weight 1: the small
// queue keeps 10 entries when the main one is full.

// TestStoreScanResistance puts 80 keys in the main queue, reads them there, and then writes
// 1000 keys once each: the 80 stay.
func TestStoreScanResistance(t *testing.T) {
	st := newStore[uint64, int](100, 1, identity)
	setKeys(st, 0, 80, true)
	// Unread keys behind them move the read ones to the main queue as they reach the small
	// queue's tail.
	for f := uint64(1000); ; f++ {
		if f == 1100 {
			t.Fatal("the read keys never moved to the main queue")
		}
		st.set(f, 0, 1)
		if n := nodeOf(st, 79); n != nil && n.inMain() {
			break
		}
	}
	var v int
	for k := range uint64(80) {
		if n := nodeOf(st, k); n == nil || !n.inMain() {
			t.Fatalf("key %d: node %v, want it in the main queue", k, n)
		}
		st.get(k, &v)
	}
	evictions := st.evictions.Load()
	setKeys(st, 10_000, 11_000, false)
	for k := range uint64(80) {
		if nodeOf(st, k) == nil {
			t.Errorf("key %d was evicted by the scan", k)
		}
	}
	if got := st.evictions.Load() - evictions; got < 900 {
		t.Fatalf("the scan evicted %d entries, want at least 900", got)
	}
}

// TestStoreAdmission checks where a new key enters: the main queue when the ghost remembers
// it (evicted unread from the small queue within the last ~100 evictions), the small queue
// otherwise; and what the small queue's tail does with a key read while in it.
func TestStoreAdmission(t *testing.T) {
	tests := []struct {
		name        string
		setBefore   bool // set the key, then evict it with 100 newer keys
		read        bool // read it once after that first set
		forget      bool // then evict another 1000 keys, past the ghost's memory
		wantPresent bool // after the 100 newer keys (set before only)
		wantMain    bool // after it is set again (or for the first time)
	}{
		{name: "never seen", wantMain: false},
		{name: "evicted unread, back within the ghost's memory", setBefore: true, wantMain: true},
		{name: "evicted unread, back after the ghost forgot it", setBefore: true, forget: true, wantMain: false},
		{name: "read in the small queue", setBefore: true, read: true, wantPresent: true, wantMain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore[uint64, int](100, 1, identity)
			const key = 7
			if tt.setBefore {
				setKeys(st, key, key+1, tt.read)
				setKeys(st, 1000, 1100, false)
				if n := nodeOf(st, key); (n != nil) != tt.wantPresent {
					t.Fatalf("after 100 newer keys: node %v, want present %v", n, tt.wantPresent)
				}
			} else {
				setKeys(st, 1000, 1100, false)
			}
			if tt.forget {
				setKeys(st, 2000, 3000, false)
			}
			if nodeOf(st, key) == nil {
				st.set(key, 1, 1)
			}
			if n := nodeOf(st, key); n == nil || n.inMain() != tt.wantMain {
				t.Fatalf("node %v, want inMain %v", n, tt.wantMain)
			}
			if err := checkStore(st); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStoreMainFrequency puts keys a and b in the main queue, a nearer its tail, reads a once
// there, and keeps the main queue evicting: b goes first, a gets one more round, with its
// count decremented, and then goes too.
func TestStoreMainFrequency(t *testing.T) {
	st := newStore[uint64, int](100, 1, identity)
	const a, b = 1, 2
	setKeys(st, a, b+1, true)
	// Unread keys behind a and b, so that the small queue's tail moves a and b to the main
	// queue and then evicts those; then keys read as soon as written, which each move to the
	// main queue in their turn, and make it evict one entry per write.
	setKeys(st, 100, 150, false)
	next := uint64(1000)
	step := func() { setKeys(st, next, next+1, true); next++ }
	for nodeOf(st, a) == nil || !nodeOf(st, a).inMain() || !nodeOf(st, b).inMain() {
		if next == 1100 {
			t.Fatal("a and b never reached the main queue together")
		}
		step()
	}
	var v int
	st.get(a, &v)
	bGone, aGone := -1, -1
	for i := 0; i < 1000 && aGone < 0; i++ {
		step()
		na := nodeOf(st, a)
		if bGone < 0 && nodeOf(st, b) == nil {
			bGone = i
			if na == nil || na.freq() != 0 {
				t.Fatalf("b evicted at step %d; a's node %v, want it present, its count down to 0", i, na)
			}
		}
		if na == nil {
			aGone = i
		}
	}
	if bGone < 0 || aGone <= bGone {
		t.Fatalf("b evicted at step %d, a at step %d (-1: never); want b first, then a", bGone, aGone)
	}
}

// TestStoreGhost pushes hashes into a ghost sized for n entries and checks that the last n/2
// are all remembered, and that under 2% of hashes never pushed are (false matches), at the
// end of a generation, where both are full, and in its middle; also for hashes of the form
// the sizer's sampled keys have: their high bits zero.
func TestStoreGhost(t *testing.T) {
	tests := []struct {
		name    string
		entries int
		bits    uint // the hashes' significant bits
		fill    int  // the newer generation's fill, in eighths
	}{
		{"16 entries", 16, 64, 8},
		{"100 entries, generation full", 100, 64, 8},
		{"100 entries, generation half full", 100, 64, 4},
		{"1000 entries", 1000, 64, 8},
		// Generations of 3276 and 4096 hashes, whose 10 and 16 bits per hash are a power of
		// two: the fewest bits per hash of the sizing before and after the ghost's fix.
		{"6552 entries", 6552, 64, 8},
		{"6552 entries, generation half full", 6552, 64, 4},
		{"8192 entries", 8192, 64, 8},
		{"100 entries, 32-bit hashes", 100, 32, 8},
		{"8192 entries, 32-bit hashes", 8192, 32, 8},
		{"1000 entries, 20-bit hashes", 1000, 20, 8},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 5))
			hash := func() uint64 { return rng.Uint64() >> (64 - tt.bits) }
			pushed := map[uint64]bool{}
			var g ghost
			half := max(tt.entries/2, 16)
			seq := make([]uint64, 3*half+half*tt.fill/8)
			for j := range seq {
				seq[j] = hash()
				pushed[seq[j]] = true
				g.push(seq[j], tt.entries)
			}
			for j, h := range seq[len(seq)-half:] {
				if !g.take(h) {
					t.Fatalf("push %d of the last %d (hash %#x) is forgotten", j, half, h)
				}
			}
			const probes = 5000
			falses := 0
			for j := 0; j < probes; {
				if h := hash(); !pushed[h] {
					if g.take(h) {
						falses++
					}
					j++
				}
			}
			if rate := float64(falses) / probes; rate >= 0.02 {
				t.Fatalf("%d of %d hashes never pushed are remembered (%.2f%%), want under 2%%", falses, probes, 100*rate)
			}
		})
	}
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
