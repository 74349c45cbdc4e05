package wire

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// warmHandler is a fakeHandler that also answers peeks from a map and records pushes.
type warmHandler struct {
	fakeHandler
	mu     sync.Mutex
	memory map[string]Value
	pushed map[string]Value
}

func (h *warmHandler) Peek(_ context.Context, group, key string) (Value, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.memory[group+"/"+key]; ok {
		return v, nil
	}
	return Value{}, &Error{Code: CodeNotFound, Message: "not in memory"}
}

func (h *warmHandler) Push(_ context.Context, group, key string, v Value) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pushed[group+"/"+key] = v
	return nil
}

// TestPeekAndPush: a peek answers from the handler's memory only (a miss is not_found and
// never a fetch), with the value's TTL and metadata; a push carries the value, its TTL and
// metadata; both work with a cluster secret (MACs on every frame); a Handler without
// WarmHandler answers both bad_request.
func TestPeekAndPush(t *testing.T) {
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, secret := range [][]byte{nil, testSecret} {
		h := &warmHandler{memory: map[string]Value{
			"g/hot": {Bytes: []byte("kept"), TTL: 42 * time.Second, ContentType: "text/plain", LastModified: modified},
		}, pushed: map[string]Value{}}
		scfg := testServerConfig()
		scfg.Secret = secret
		if secret != nil {
			scfg.IsMember = func(name, _ string) bool { return name == "asker" }
		}
		ts := startServer(t, scfg, h, serverOptions{})
		ccfg := testClientConfig(ts.addr)
		ccfg.Secret = secret
		c := newClient(t, ccfg)
		ctx := context.Background()

		v, err := c.Peek(ctx, "g", "hot")
		if err != nil || string(v.Bytes) != "kept" || v.TTL != 42*time.Second || v.ContentType != "text/plain" || !v.LastModified.Equal(modified) {
			t.Fatalf("secret %v: Peek(hot) = %+v, %v", secret != nil, v, err)
		}
		if _, err := c.Peek(ctx, "g", "cold"); CodeOf(err) != CodeNotFound || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Peek(cold) = %v, want not_found", err)
		}
		if n := h.fetches.Load(); n != 0 {
			t.Fatalf("a peek called Fetch %d times", n)
		}
		want := Value{Bytes: []byte("handed"), TTL: 7 * time.Second, ContentType: "application/json", LastModified: modified}
		if err := c.Push(ctx, "g", "moved", want); err != nil {
			t.Fatalf("Push: %v", err)
		}
		h.mu.Lock()
		got := h.pushed["g/moved"]
		h.mu.Unlock()
		if string(got.Bytes) != "handed" || got.TTL != want.TTL || got.ContentType != want.ContentType || !got.LastModified.Equal(modified) {
			t.Fatalf("pushed %+v, want %+v", got, want)
		}
		if err := c.Push(ctx, "g", "", want); CodeOf(err) != CodeInvalidKey {
			t.Fatalf("Push with an empty key = %v, want invalid_key", err)
		}
	}

	ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	if _, err := c.Peek(context.Background(), "g", "k"); CodeOf(err) != CodeBadRequest {
		t.Fatalf("Peek on a server without WarmHandler = %v, want bad_request", err)
	}
	if err := c.Push(context.Background(), "g", "k", Value{Bytes: []byte("v")}); CodeOf(err) != CodeBadRequest {
		t.Fatalf("Push on a server without WarmHandler = %v, want bad_request", err)
	}
}
