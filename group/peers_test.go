package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestFetchFromOwner checks what a Group does with each kind of answer from a key's owner:
// only an unreachable owner leads to a local load.
func TestFetchFromOwner(t *testing.T) {
	ownerFailure := errors.New("owner's origin: connection reset")
	tests := []struct {
		name         string
		answer       func(ctx context.Context) (Value, error)
		wantErr      error // nil: a value
		wantSource   Source
		wantTTL      time.Duration
		wantLoads    int64 // loader calls on this node
		wantStats    func(Stats) bool
		describeWant string
	}{
		{
			name:         "value",
			answer:       func(context.Context) (Value, error) { return Value{Bytes: []byte("owned"), TTL: time.Minute}, nil },
			wantSource:   SourcePeer,
			wantTTL:      time.Minute,
			wantStats:    func(s Stats) bool { return s.PeerLoads == 1 && s.PeerErrors == 0 && s.FallbackLoads == 0 },
			describeWant: "PeerLoads 1",
		},
		{
			name:         "not found at the owner",
			answer:       func(context.Context) (Value, error) { return Value{}, fmt.Errorf("owner: %w", ErrNotFound) },
			wantErr:      ErrNotFound,
			wantStats:    func(s Stats) bool { return s.PeerLoads == 1 && s.PeerErrors == 0 && s.FallbackLoads == 0 },
			describeWant: "PeerLoads 1, no fallback",
		},
		{
			name:         "the owner's loader failed",
			answer:       func(context.Context) (Value, error) { return Value{}, ownerFailure },
			wantErr:      ownerFailure,
			wantStats:    func(s Stats) bool { return s.PeerErrors == 1 && s.FallbackLoads == 0 && s.LocalLoads == 0 },
			describeWant: "PeerErrors 1, no fallback",
		},
		{
			name:         "the owner's loader panicked",
			answer:       func(context.Context) (Value, error) { return Value{}, fmt.Errorf("owner: %w", ErrLoaderPanic) },
			wantErr:      ErrLoaderPanic,
			wantStats:    func(s Stats) bool { return s.PeerErrors == 1 && s.FallbackLoads == 0 && s.LoaderPanics == 0 },
			describeWant: "PeerErrors 1, no fallback",
		},
		{
			name:         "the owner timed out loading",
			answer:       func(context.Context) (Value, error) { return Value{}, fmt.Errorf("owner: %w", ErrLoadTimeout) },
			wantErr:      ErrLoadTimeout,
			wantStats:    func(s Stats) bool { return s.PeerErrors == 1 && s.FallbackLoads == 0 },
			describeWant: "PeerErrors 1, no fallback",
		},
		{
			name: "owner unreachable",
			answer: func(context.Context) (Value, error) {
				return Value{}, fmt.Errorf("dial 127.0.0.1:1: %w", ErrPeerUnavailable)
			},
			wantSource:   SourceLoader,
			wantLoads:    1,
			wantStats:    func(s Stats) bool { return s.PeerErrors == 1 && s.FallbackLoads == 1 && s.LocalLoads == 1 },
			describeWant: "PeerErrors 1, FallbackLoads 1, LocalLoads 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &countingLoader{}
			peer := &fakePeer{fn: func(ctx context.Context, group, key string) (Value, error) {
				if key != "k" || group != t.Name() {
					return Value{}, fmt.Errorf("asked for %s/%s", group, key)
				}
				return tt.answer(ctx)
			}}
			cfg := testConfig()
			cfg.HotCacheRate = 1
			g := newTestGroup(t, l, cfg)
			g.SetPeers(&ownerPicker{peer: peer})

			res, err := g.Get(t.Context(), "k")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || res.Source != tt.wantSource || res.TTL != tt.wantTTL {
				t.Fatalf("Get = %v TTL %v, %v; want %v TTL %v", res.Source, res.TTL, err, tt.wantSource, tt.wantTTL)
			}
			if n := l.calls.Load(); n != tt.wantLoads {
				t.Fatalf("loader calls = %d, want %d", n, tt.wantLoads)
			}
			if peer.calls.Load() != 1 {
				t.Fatalf("owner asked %d times, want 1", peer.calls.Load())
			}
			if st := g.Stats(); !tt.wantStats(st) {
				t.Fatalf("Stats %+v, want %s", st, tt.describeWant)
			}
		})
	}
}

// Many callers sharing a fetch from an unreachable owner make one fallback load between them.
func TestFallbackLoadSharedAndCountedOnce(t *testing.T) {
	const callers = 100
	gt := newGate()
	peer := &fakePeer{fn: func(ctx context.Context, _, _ string) (Value, error) {
		if err := gt.wait(ctx); err != nil {
			return Value{}, err
		}
		return Value{}, fmt.Errorf("connection refused: %w", ErrPeerUnavailable)
	}}
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	g.SetPeers(&ownerPicker{peer: peer})

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			res, err := g.Get(t.Context(), "k")
			if err == nil && res.Source != SourceLoader {
				err = fmt.Errorf("source %v", res.Source)
			}
			errs <- err
		})
	}
	gt.waitEntered(t, 1)
	eventually(t, 10*time.Second, "every caller joined the fetch", func() bool {
		return g.flights.waiters(flightKey{key: "k", remote: true}) == callers
	})
	gt.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := g.Stats()
	if peer.calls.Load() != 1 || l.calls.Load() != 1 || st.FallbackLoads != 1 || st.PeerErrors != 1 {
		t.Fatalf("fetches/loads/FallbackLoads/PeerErrors = %d/%d/%d/%d, want 1/1/1/1",
			peer.calls.Load(), l.calls.Load(), st.FallbackLoads, st.PeerErrors)
	}
	// The fallback value is cached in the main cache: the next Get asks nobody.
	if res, err := g.Get(t.Context(), "k"); err != nil || res.Source != SourceMain || peer.calls.Load() != 1 {
		t.Fatalf("Get after the fallback = %v %v, owner asked %d times", res.Source, err, peer.calls.Load())
	}
}

func TestHotCache(t *testing.T) {
	tests := []struct {
		name             string
		rate             int
		fraction         float64
		keys             int
		minHot, maxHot   int64
		secondGetHotOnly bool
	}{
		{"every fetch kept", 1, 0.5, 500, 500, 500, true},
		{"zero rate means every fetch", 0, 0.5, 500, 500, 500, true},
		// 10000 fetches kept with probability 1/10: 1000 expected, sd 30.
		{"one fetch in ten", 10, 0.5, 10000, 800, 1200, false},
		{"hot cache off", 1, 0, 500, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := &fakePeer{fn: func(_ context.Context, _, key string) (Value, error) {
				return Value{Bytes: []byte("remote " + key)}, nil
			}}
			cfg := testConfig()
			cfg.CacheBytes = 16 << 20
			cfg.HotCacheRate = tt.rate
			cfg.HotCacheFraction = tt.fraction
			l := &countingLoader{}
			g := newTestGroup(t, l, cfg)
			g.SetPeers(&ownerPicker{peer: peer})
			for i := range tt.keys {
				res, err := g.Get(t.Context(), fmt.Sprintf("key-%05d", i))
				if err != nil || res.Source != SourcePeer {
					t.Fatalf("Get = %v %v", res.Source, err)
				}
			}
			st := g.Stats()
			if st.Hot.Items < tt.minHot || st.Hot.Items > tt.maxHot || st.Main.Items != 0 {
				t.Fatalf("hot items %d (main %d), want %d..%d in the hot cache only", st.Hot.Items, st.Main.Items, tt.minHot, tt.maxHot)
			}
			if tt.secondGetHotOnly {
				for i := range tt.keys {
					res, err := g.Get(t.Context(), fmt.Sprintf("key-%05d", i))
					if err != nil || res.Source != SourceHot {
						t.Fatalf("second Get = %v %v, want a hot-cache hit", res.Source, err)
					}
				}
				if peer.calls.Load() != int64(tt.keys) || g.Stats().Hot.Hits != int64(tt.keys) {
					t.Fatalf("owner asked %d times, hot hits %d; want %d each", peer.calls.Load(), g.Stats().Hot.Hits, tt.keys)
				}
			}
			if l.calls.Load() != 0 {
				t.Fatal("a key owned by a peer was loaded here")
			}
		})
	}
}

// A hot copy carries the owner's remaining TTL and expires with it.
func TestHotCopyExpiresWithOwnersTTL(t *testing.T) {
	peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) {
		return Value{Bytes: []byte("v"), TTL: 30 * time.Millisecond}, nil
	}}
	cfg := testConfig()
	cfg.HotCacheRate = 1
	cfg.TTL = time.Hour // the group's own TTL must not stretch a peer's value
	g := newTestGroup(t, &countingLoader{}, cfg)
	g.SetPeers(&ownerPicker{peer: peer})
	if _, err := g.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	fetched := time.Now()
	eventually(t, 10*time.Second, "the hot copy expires", func() bool {
		start := time.Now()
		res, err := g.Get(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		if res.Source == SourceHot && start.Sub(fetched) >= 30*time.Millisecond {
			t.Fatalf("hot copy served %v after the owner's TTL", start.Sub(fetched))
		}
		return res.Source == SourcePeer
	})
}

// Negative answers from the owner are remembered in the hot cache like values.
func TestOwnersNotFoundIsRemembered(t *testing.T) {
	peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) { return Value{}, ErrNotFound }}
	cfg := testConfig()
	cfg.HotCacheRate = 1
	cfg.NegativeTTL = time.Hour
	g := newTestGroup(t, &countingLoader{}, cfg)
	g.SetPeers(&ownerPicker{peer: peer})
	for range 5 {
		if _, err := g.Get(t.Context(), "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v", err)
		}
	}
	if st := g.Stats(); peer.calls.Load() != 1 || st.NegativeHits != 4 || st.Hot.Hits != 4 {
		t.Fatalf("owner asked %d times, negative hits %d, hot hits %d; want 1/4/4", peer.calls.Load(), st.NegativeHits, st.Hot.Hits)
	}
}

func TestSetPeersMovesTheBound(t *testing.T) {
	cfg := testConfig()
	cfg.CacheBytes = 1 << 20
	cfg.HotCacheRate = 1
	l := &countingLoader{fn: func(context.Context, string) (Value, error) { return Value{Bytes: make([]byte, 1000)}, nil }}
	g := newTestGroup(t, l, cfg)
	if got := g.main.s.max.Load(); got != 1<<20 {
		t.Fatalf("main bound alone = %d, want all of CacheBytes", got)
	}
	// Fill the main cache to its bound, so that linking must evict to make room.
	for i := 0; g.Stats().Main.Evictions == 0; i++ {
		if _, err := g.GetLocal(t.Context(), fmt.Sprintf("fill-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) { return Value{Bytes: []byte("x")}, nil }}
	g.SetPeers(&ownerPicker{peer: peer})
	if m, h := g.main.s.max.Load(), g.hot.s.max.Load(); m+h != 1<<20 || h != 1<<17 {
		t.Fatalf("linked: main %d + hot %d, want 7/8 + 1/8 of %d", m, h, 1<<20)
	}
	if b := g.Stats().Main.Bytes; b > 1<<20-1<<17 || b < 1<<20-1<<17-2*(1000+EntryOverhead+16) {
		t.Fatalf("main holds %d bytes after linking, want just under %d", b, 1<<20-1<<17)
	}
	if _, err := g.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if g.Stats().Hot.Items != 1 {
		t.Fatal("the fetched value was not kept hot")
	}
	g.SetPeers(nil)
	st := g.Stats()
	if st.Hot.Items != 0 || st.Hot.Bytes != 0 || g.main.s.max.Load() != 1<<20 {
		t.Fatalf("unlinked: hot %+v, main bound %d; want an empty hot cache and the whole bound for main", st.Hot, g.main.s.max.Load())
	}
	// Unlinked, a late store into the hot cache cannot take any room.
	g.hot.add("late", g.newEntry([]byte("v"), 0))
	if st := g.Stats(); st.Hot.Items != 0 {
		t.Fatalf("hot cache took an entry while unlinked: %+v", st.Hot)
	}
}

func TestFuncAdapters(t *testing.T) {
	var asked []string
	peer := PeerFunc(func(_ context.Context, group, key string) (Value, error) {
		asked = append(asked, group+"/"+key)
		return Value{Bytes: []byte("remote")}, nil
	})
	picker := PeerPickerFunc(func(key string) (Peer, bool) { return peer, key == "theirs" })
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	g.SetPeers(picker)
	for _, tt := range []struct {
		key    string
		want   string
		source Source
	}{
		{"theirs", "remote", SourcePeer},
		{"ours", "value of ours", SourceLoader},
	} {
		t.Run(tt.key, func(t *testing.T) {
			res, err := g.Get(t.Context(), tt.key)
			if err != nil || string(res.Bytes) != tt.want || res.Source != tt.source {
				t.Fatalf("Get(%q) = %q %v %v, want %q from %v", tt.key, res.Bytes, res.Source, err, tt.want, tt.source)
			}
		})
	}
	if fmt.Sprint(asked) != "[TestFuncAdapters/theirs]" || l.calls.Load() != 1 {
		t.Fatalf("peer asked %v, loader called %d times", asked, l.calls.Load())
	}
}
