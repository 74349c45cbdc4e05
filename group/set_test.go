package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// setPeer is an owner in another group of the same process, reached through SetPeer.
type setPeer struct {
	owner *Group
	sets  atomic.Int64
}

func (p *setPeer) Fetch(ctx context.Context, group, key string) (Value, error) {
	res, err := p.owner.GetLocal(ctx, key)
	return Value{Bytes: res.Bytes, TTL: res.TTL}, err
}

func (p *setPeer) Set(_ context.Context, group, key string, v Value) error {
	p.sets.Add(1)
	return p.owner.SetLocal(key, v)
}

func TestSetLocalOwner(t *testing.T) {
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	ctx := context.Background()
	if _, err := g.Set(ctx, "k", []byte("written"), time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err := g.Get(ctx, "k")
	if err != nil || string(res.Bytes) != "written" || res.Source != SourceMain {
		t.Fatalf("Get = %q from %v, %v; want the written value from main", res.Bytes, res.Source, err)
	}
	if res.TTL <= 0 || res.TTL > time.Minute {
		t.Errorf("TTL %v, want in (0, 1m]", res.TTL)
	}
	if n := l.calls.Load(); n != 0 {
		t.Errorf("loader called %d times, want 0", n)
	}
}

func TestSetOnPeerOwnerDropsHotCopy(t *testing.T) {
	ctx := context.Background()
	ownerLoads := &countingLoader{}
	owner := newTestGroup(t, ownerLoads, testConfig())
	peer := &setPeer{owner: owner}
	inv := &fakeInvalidator{}
	cfg := testConfig()
	cfg.HotCacheRate = 1 // every fetch keeps a hot copy, which the Set must drop
	asker := newTestGroup(t, &countingLoader{}, cfg)
	asker.SetPeers(PeerPickerFunc(func(string) (Peer, bool) { return peer, true }))
	asker.SetInvalidator(inv)

	// A hot copy of the origin's value, then a Set over it.
	if res, err := asker.Get(ctx, "k"); err != nil || string(res.Bytes) != "value of k" {
		t.Fatalf("first Get = %q, %v", res.Bytes, err)
	}
	if _, err := asker.Set(ctx, "k", []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if n := peer.sets.Load(); n != 1 {
		t.Errorf("owner received %d sets, want 1", n)
	}
	inv.mu.Lock()
	if len(inv.keys) != 1 {
		t.Errorf("invalidations sent: %v, want one", inv.keys)
	}
	inv.mu.Unlock()
	res, err := asker.Get(ctx, "k")
	if err != nil || string(res.Bytes) != "new" {
		t.Fatalf("Get after Set = %q, %v; want new", res.Bytes, err)
	}
	if n := ownerLoads.calls.Load(); n != 1 {
		t.Errorf("owner's origin loaded %d times, want 1 (before the Set only)", n)
	}
}

// A fill under way when Set stores must not overwrite the newer value.
func TestSetMarksFillStale(t *testing.T) {
	ctx := context.Background()
	gt := newGate()
	l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
		if err := gt.wait(ctx); err != nil {
			return Value{}, err
		}
		return Value{Bytes: []byte("old")}, nil
	}}
	g := newTestGroup(t, l, testConfig())
	got := make(chan Result, 1)
	go func() {
		res, _ := g.Get(ctx, "k")
		got <- res
	}()
	gt.waitEntered(t, 1)
	if _, err := g.Set(ctx, "k", []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	gt.release()
	if res := <-got; string(res.Bytes) != "old" {
		t.Errorf("the waiting Get got %q, want old (it was waiting before the Set)", res.Bytes)
	}
	res, err := g.Get(ctx, "k")
	if err != nil || string(res.Bytes) != "new" {
		t.Fatalf("Get after the fill = %q, %v; want new", res.Bytes, err)
	}
}

// TestSetAtTheValueLimit: a key of n bytes takes a value of MaxValueBytes()-n bytes, stored and
// read back; one byte more is refused with ErrNotStored and ErrValueTooLarge, on this node and
// through a SetPeer owner alike, and the key's old value, which the write superseded, is gone
// (the next Get loads the origin's). MaxValueBytes once left the key out: a Set of it returned
// no error and stored nothing.
func TestSetAtTheValueLimit(t *testing.T) {
	for _, viaPeer := range []bool{false, true} {
		t.Run(fmt.Sprintf("via peer %v", viaPeer), func(t *testing.T) {
			l := &countingLoader{}
			g := newTestGroup(t, l, testConfig())
			owner := g
			if viaPeer {
				owner = newTestGroup(t, &countingLoader{}, testConfig())
				g.SetPeers(&ownerPicker{peer: &setPeer{owner: owner}})
			}
			ctx := context.Background()
			const key = "key-of-12"
			fits := bytes.Repeat([]byte{'w'}, int(owner.MaxValueBytes())-len(key))
			if _, err := g.Set(ctx, key, fits, time.Minute); err != nil {
				t.Fatalf("Set of %d bytes under a %d-byte key: %v", len(fits), len(key), err)
			}
			if res, err := owner.GetLocal(ctx, key); err != nil || !bytes.Equal(res.Bytes, fits) || res.Source != SourceMain {
				t.Fatalf("after the Set that fits: %d bytes from %v, %v; want the written value from the main cache", len(res.Bytes), res.Source, err)
			}
			over := append(fits, 'x')
			_, err := g.Set(ctx, key, over, time.Minute)
			if !errors.Is(err, ErrNotStored) || !errors.Is(err, ErrValueTooLarge) {
				t.Fatalf("Set of one byte more: %v, want ErrNotStored and ErrValueTooLarge", err)
			}
			res, err := owner.GetLocal(ctx, key)
			if err != nil || res.Source != SourceLoader {
				t.Fatalf("after the refused Set: %d bytes from %v, %v; want the old value gone and a load", len(res.Bytes), res.Source, err)
			}
		})
	}
}
