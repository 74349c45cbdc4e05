package group

import (
	"context"
	"errors"
	"testing"
	"time"
)

// previousPicker owns every key here and names prev as every key's previous owner.
type previousPicker struct{ prev Peeker }

func (p previousPicker) PickPeer(string) (Peer, bool)        { return nil, false }
func (p previousPicker) PreviousOwner(string) (Peeker, bool) { return p.prev, p.prev != nil }

// TestPeekServesMemoryOnly: Peek answers from the main and hot caches with the remaining TTL
// and the metadata, never calls the loader, and finds nothing for a remembered ErrNotFound.
func TestPeekServesMemoryOnly(t *testing.T) {
	modified := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
		if key == "gone" {
			return Value{}, ErrNotFound
		}
		return Value{Bytes: []byte("v:" + key), ContentType: "text/csv", LastModified: modified}, nil
	}}
	cfg := testConfig()
	cfg.TTL = time.Minute
	cfg.NegativeTTL = time.Minute
	g := newTestGroup(t, l, cfg)
	if _, ok := g.Peek("k"); ok || l.calls.Load() != 0 {
		t.Fatalf("Peek of a missing key: ok %v, %d loads", ok, l.calls.Load())
	}
	if _, err := g.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Get(context.Background(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	res, ok := g.Peek("k")
	if !ok || string(res.Bytes) != "v:k" || res.TTL <= 0 || res.TTL > time.Minute || res.ContentType != "text/csv" || !res.LastModified.Equal(modified) {
		t.Fatalf("Peek(k) = %+v, %v", res, ok)
	}
	if _, ok := g.Peek("gone"); ok {
		t.Fatal("Peek found a remembered ErrNotFound")
	}
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d loads, want 2 (the Gets')", n)
	}
	if ws := g.WarmStats(); ws.PeeksServed != 3 || ws.PeeksServedHits != 1 {
		t.Fatalf("WarmStats = %+v", ws)
	}
}

// TestLocalLoadPeeksPreviousOwner: a local load asks the previous owner first; its value is
// stored with the remaining TTL and metadata and counted as a peek hit, not a load; a miss
// there (or an error) ends in the loader.
func TestLocalLoadPeeksPreviousOwner(t *testing.T) {
	cfg := testConfig()
	cfg.TTL = time.Hour
	old := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
		return Value{Bytes: []byte("old owner's " + key), TTL: 30 * time.Second, ContentType: "application/json"}, nil
	}}
	prev := newTestGroup(t, old, cfg)
	if _, err := prev.Get(context.Background(), "warm"); err != nil {
		t.Fatal(err)
	}
	l := &countingLoader{}
	g := newTestGroup(t, l, cfg)
	g.SetPeers(previousPicker{prev: PeekerFunc(func(_ context.Context, _, key string) (Value, error) {
		if key == "broken" {
			return Value{}, errors.New("peer unreachable")
		}
		res, ok := prev.Peek(key)
		if !ok {
			return Value{}, ErrNotFound
		}
		return Value{Bytes: res.Bytes, TTL: res.TTL, ContentType: res.ContentType}, nil
	})})

	res, err := g.Get(context.Background(), "warm")
	if err != nil || string(res.Bytes) != "old owner's warm" || res.ContentType != "application/json" {
		t.Fatalf("Get(warm) = %+v, %v", res, err)
	}
	if res.TTL > 30*time.Second || res.TTL <= 0 {
		t.Fatalf("TTL %v: want the previous owner's remaining TTL (at most 30s), not the group's hour", res.TTL)
	}
	if l.calls.Load() != 0 || g.Stats().LocalLoads != 0 {
		t.Fatalf("the loader ran %d times, %d local loads counted, after a peek hit", l.calls.Load(), g.Stats().LocalLoads)
	}
	if res, err := g.Get(context.Background(), "warm"); err != nil || res.Source != SourceMain {
		t.Fatalf("second Get(warm) = %+v, %v: want a main-cache hit", res, err)
	}
	for _, key := range []string{"cold", "broken"} {
		if res, err := g.Get(context.Background(), key); err != nil || string(res.Bytes) != "value of "+key {
			t.Fatalf("Get(%s) = %+v, %v", key, res, err)
		}
	}
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d loads, want 2 (cold, broken)", n)
	}
	if ws := g.WarmStats(); ws.Peeks != 3 || ws.PeekHits != 1 {
		t.Fatalf("WarmStats = %+v, want 3 peeks, 1 hit", ws)
	}
}

// TestPushNeverOverwrites: a push is stored only where the group holds nothing for the key
// and no removal happened in the last pushRemovalWindow; a Set after it wins.
func TestPushNeverOverwrites(t *testing.T) {
	cfg := testConfig()
	cfg.TTL = time.Hour
	l := &countingLoader{}
	g := newTestGroup(t, l, cfg)
	if !g.Push("moved", Value{Bytes: []byte("handed"), TTL: 10 * time.Second, ContentType: "text/plain"}) {
		t.Fatal("a push to an empty group was not stored")
	}
	res, err := g.Get(context.Background(), "moved")
	if err != nil || string(res.Bytes) != "handed" || res.TTL > 10*time.Second || res.ContentType != "text/plain" || l.calls.Load() != 0 {
		t.Fatalf("Get(moved) = %+v, %v, %d loads", res, err, l.calls.Load())
	}
	g.SetLocal("written", Value{Bytes: []byte("new")})
	if g.Push("written", Value{Bytes: []byte("older")}) {
		t.Fatal("a push overwrote a value set here")
	}
	g.SetLocal("moved", Value{Bytes: []byte("set after the push")})
	if res, _ := g.Get(context.Background(), "written"); string(res.Bytes) != "new" {
		t.Fatalf("Get(written) = %q", res.Bytes)
	}
	if res, _ := g.Get(context.Background(), "moved"); string(res.Bytes) != "set after the push" {
		t.Fatalf("Get(moved) = %q after a Set", res.Bytes)
	}
	g.RemoveLocal("other")
	if g.Push("fresh", Value{Bytes: []byte("read before the removal")}) {
		t.Fatal("a push just after a removal was stored")
	}
	if ws := g.WarmStats(); ws.PushesReceived != 3 || ws.PushesStored != 1 {
		t.Fatalf("WarmStats = %+v", ws)
	}
}

// TestHottestBounded: Hottest returns values only, with remaining TTLs and metadata, within
// the byte bound.
func TestHottestBounded(t *testing.T) {
	cfg := testConfig()
	cfg.TTL = time.Hour
	cfg.NegativeTTL = time.Minute
	l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
		if key == "missing" {
			return Value{}, ErrNotFound
		}
		return Value{Bytes: make([]byte, 100), ContentType: "a/b"}, nil
	}}
	g := newTestGroup(t, l, cfg)
	for _, k := range []string{"k1", "k2", "k3", "missing"} {
		_, _ = g.Get(context.Background(), k)
	}
	if all, total := g.Hottest(1 << 20); len(all) != 3 || total != 3*(2+100) {
		t.Fatalf("Hottest = %d keys of %d bytes, want 3 values", len(all), total)
	}
	some, _ := g.Hottest(2 * 102)
	if len(some) != 2 {
		t.Fatalf("Hottest(204 bytes) = %d keys, want 2", len(some))
	}
	for _, k := range some {
		v, ok := g.HandOffValue(k)
		if !ok || v.TTL <= 0 || v.TTL > time.Hour || v.ContentType != "a/b" || len(v.Bytes) != 100 {
			t.Fatalf("HandOffValue(%s) = %+v, %v", k, v, ok)
		}
	}
	if _, ok := g.HandOffValue("missing"); ok {
		t.Fatal("HandOffValue returned a remembered ErrNotFound")
	}
}
