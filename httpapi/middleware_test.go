package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/groupcached/groupcached/peers"
)

// statusRecorder remembers the status a handler answered, as an access log would.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// TestMiddlewareSeesEveryRequest puts an access log and a guard that refuses requests marked
// X-Deny in Config.Middleware, and checks that both cover the key fast path, the peer
// endpoints and the chi routes: the log sees every answer (the recoverer's 500 included), and
// a refused request reaches neither the group nor the peer handler.
func TestMiddlewareSeesEveryRequest(t *testing.T) {
	var (
		mu     sync.Mutex
		logged []string
	)
	accessLog := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			mu.Lock()
			logged = append(logged, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status))
			mu.Unlock()
		})
	}
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Deny") != "" {
				http.Error(w, "denied", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	var peerCalls atomic.Int64
	peerHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peerCalls.Add(1)
		if r.URL.Path == peers.PathPrefix+"/panic" {
			panic("peer handler bug")
		}
		_, _ = io.WriteString(w, "peer")
	})
	cfg := LocalConfig()
	cfg.Middleware = []Middleware{accessLog, guard}
	n := startNode(t, cfg, &fakeCluster{members: threeMembers(), stats: peerStats(3), handler: peerHandler})

	deny := []string{"X-Deny", "1"}
	tests := []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{"key GET, fast path", http.MethodGet, keyPath("g", "k"), nil, http.StatusOK},
		{"key HEAD, fast path", http.MethodHead, keyPath("g", "k"), nil, http.StatusOK},
		{"key GET whose loader panics", http.MethodGet, keyPath("g", "panic-1"), nil, http.StatusInternalServerError},
		{"peer request", http.MethodGet, peers.PathPrefix + "/g/k", nil, http.StatusOK},
		{"peer handler that panics", http.MethodGet, peers.PathPrefix + "/panic", nil, http.StatusInternalServerError},
		{"chi route", http.MethodGet, "/healthz", nil, http.StatusOK},
		{"key DELETE, chi route", http.MethodDelete, keyPath("g", "k"), nil, http.StatusOK},
		{"malformed key path, chi", http.MethodGet, "/groups/g/keys/a/b", nil, http.StatusBadRequest},
		{"no route", http.MethodGet, "/nowhere", nil, http.StatusNotFound},
		{"key GET refused", http.MethodGet, keyPath("g", "refused"), deny, http.StatusForbidden},
		{"peer request refused", http.MethodGet, peers.PathPrefix + "/g/refused", deny, http.StatusForbidden},
		{"chi route refused", http.MethodGet, "/groups", deny, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := n.do(t, tt.method, tt.path, tt.header...)
			if resp.StatusCode != tt.status {
				t.Errorf("%s %s = %d %q, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			want := fmt.Sprintf("%s %s %d", tt.method, tt.path, tt.status)
			mu.Lock()
			defer mu.Unlock()
			if len(logged) == 0 || logged[len(logged)-1] != want {
				t.Errorf("the access log ends with %q, want %q", logged, want)
			}
		})
	}
	if c := n.origin.count("refused"); c != 0 {
		t.Errorf("a refused key GET reached the loader %d times", c)
	}
	if c := peerCalls.Load(); c != 2 {
		t.Errorf("the peer handler ran %d times, want 2 (the refused request must not reach it)", c)
	}
}

// TestMiddlewareOrder: the first middleware is the outermost, as with chi's Use.
func TestMiddlewareOrder(t *testing.T) {
	mark := func(name string) Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("X-Order", name)
				next.ServeHTTP(w, r)
			})
		}
	}
	cfg := LocalConfig()
	cfg.Middleware = []Middleware{mark("first"), mark("second")}
	n := startNode(t, cfg, nil)
	for _, path := range []string{keyPath("g", "k"), "/healthz"} {
		resp, _ := n.do(t, http.MethodGet, path)
		if got := resp.Header.Values("X-Order"); !slices.Equal(got, []string{"first", "second"}) {
			t.Errorf("GET %s: middleware ran in the order %q, want first, second", path, got)
		}
	}
}

func TestMiddlewareWiringMistakes(t *testing.T) {
	pass := func(next http.Handler) http.Handler { return next }
	for _, tt := range []struct {
		name string
		mws  []Middleware
	}{
		{"nil middleware", []Middleware{pass, nil}},
		{"middleware that returns nil", []Middleware{func(http.Handler) http.Handler { return nil }, pass}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := LocalConfig()
			cfg.Middleware = tt.mws
			if _, err := New(cfg, nil, nil, discardLogger()); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}
