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
