package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
)

// discardWriter is a ResponseWriter that keeps nothing but the status, so a benchmark
// measures the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

var benchValue = bytes.Repeat([]byte("v"), 1024)

// benchAPI is a full API with one group "bench" whose key is already cached, and the given
// middleware in front of it.
func benchAPI(b *testing.B, key string, mws ...Middleware) *API {
	b.Helper()
	return benchAPIConfig(b, key, func(c *Config) { c.Middleware = mws }, discardLogger())
}

// benchAPIConfig is benchAPI with DefaultConfig changed by set, logging to logger.
func benchAPIConfig(b *testing.B, key string, set func(*Config), logger *slog.Logger) *API {
	b.Helper()
	g := newTestGroup(b, "bench", group.LoaderFunc(func(context.Context, string) (group.Value, error) {
		return group.Value{Bytes: benchValue}, nil
	}), group.DefaultConfig())
	if _, err := g.Get(context.Background(), key); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	set(&cfg)
	a, err := New(cfg, []*group.Group{g}, nil, logger)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// bareChi is the baseline: a chi route serving the same bytes from a map.
func bareChi(key string) http.Handler {
	values := map[string][]byte{key: benchValue}
	r := chi.NewRouter()
	r.Get("/groups/{group}/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := values[chi.URLParam(r, "key")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		_, _ = w.Write(v)
	})
	return r
}

func runHandler(b *testing.B, h http.Handler, path string, header ...string) {
	b.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, r)
	if w.status != http.StatusOK && w.status != http.StatusNotModified {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
	}
}

// BenchmarkGetHit is a local-hit GET through the full stack (the handler chain: request
// metrics and recoverer; hot-path routing, key decoding, Group.Get, headers), with one
// pass-through middleware added to the chain, without the request metrics, with the access
// log, through the API's chi router alone, and on a bare chi route over a map.
func BenchmarkGetHit(b *testing.B) {
	b.Run("api", func(b *testing.B) {
		runHandler(b, benchAPI(b, "key-1"), "/groups/bench/keys/key-1")
	})
	b.Run("api-one-middleware", func(b *testing.B) {
		pass := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
		}
		runHandler(b, benchAPI(b, "key-1", pass), "/groups/bench/keys/key-1")
	})
	b.Run("api-without-request-metrics", func(b *testing.B) {
		// The chain New builds inside the request metrics: what they cost is the difference
		// from "api".
		a := benchAPI(b, "key-1")
		h, err := chain([]Middleware{a.recoverer}, http.HandlerFunc(a.dispatch))
		if err != nil {
			b.Fatal(err)
		}
		runHandler(b, h, "/groups/bench/keys/key-1")
	})
	b.Run("api-access-log", func(b *testing.B) {
		// Config.AccessLog with a text handler writing to io.Discard: formatting included.
		runHandler(b, benchAPIConfig(b, "key-1", func(c *Config) { c.AccessLog = true },
			slog.New(slog.NewTextHandler(io.Discard, nil))), "/groups/bench/keys/key-1")
	})
	b.Run("api-through-chi", func(b *testing.B) {
		runHandler(b, benchAPI(b, "key-1").router, "/groups/bench/keys/key-1")
	})
	b.Run("api-escaped-key", func(b *testing.B) {
		runHandler(b, benchAPI(b, "dir/key 1"), "/groups/bench/keys/"+EscapeKey("dir/key 1"))
	})
	b.Run("api-304", func(b *testing.B) {
		a := benchAPI(b, "key-1")
		w := &discardWriter{h: make(http.Header)}
		a.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/groups/bench/keys/key-1", nil))
		runHandler(b, a, "/groups/bench/keys/key-1", "If-None-Match", w.h.Get("Etag"))
	})
	b.Run("bare-chi", func(b *testing.B) {
		runHandler(b, bareChi("key-1"), "/groups/bench/keys/key-1")
	})
}

// BenchmarkGetHitParallel is BenchmarkGetHit on every CPU.
func BenchmarkGetHitParallel(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    func(*testing.B) http.Handler
	}{
		{"api", func(b *testing.B) http.Handler { return benchAPI(b, "key-1") }},
		{"bare-chi", func(*testing.B) http.Handler { return bareChi("key-1") }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h(b)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchValue)))
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "/groups/bench/keys/key-1", nil)
				w := &discardWriter{h: make(http.Header)}
				for pb.Next() {
					w.reset()
					h.ServeHTTP(w, r)
				}
			})
		})
	}
}

func BenchmarkNoneMatchHits(b *testing.B) {
	const tag = `"0123456789abcdef"`
	fields := []string{`"aaaaaaaaaaaaaaaa", W/"bbbbbbbbbbbbbbbb", ` + tag}
	b.ReportAllocs()
	for b.Loop() {
		if !noneMatchHits(fields, tag) {
			b.Fatal("no match")
		}
	}
}
