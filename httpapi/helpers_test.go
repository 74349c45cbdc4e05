package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// origin is a test loader that records every key it is asked for. Some keys have a meaning:
//
//	missing*  ErrNotFound
//	fail*     a load failure
//	panic*    the loader panics
//	slow*     the loader blocks until the group's load timeout
//
// Every other key has the value "value of " + key.
type origin struct {
	mu    sync.Mutex
	seen  []string
	calls map[string]int
}

func (o *origin) Load(ctx context.Context, key string) (group.Value, error) {
	o.mu.Lock()
	o.seen = append(o.seen, key)
	if o.calls == nil {
		o.calls = make(map[string]int)
	}
	o.calls[key]++
	o.mu.Unlock()
	switch {
	case strings.HasPrefix(key, "missing"):
		return group.Value{}, group.ErrNotFound
	case strings.HasPrefix(key, "fail"):
		return group.Value{}, errors.New("origin is down")
	case strings.HasPrefix(key, "panic"):
		panic("loader bug for " + key)
	case strings.HasPrefix(key, "slow"):
		<-ctx.Done()
		return group.Value{}, ctx.Err()
	}
	return group.Value{Bytes: []byte("value of " + key)}, nil
}

func (o *origin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[key]
}

func (o *origin) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return ""
	}
	return o.seen[len(o.seen)-1]
}

// testGroupConfig is small and fails slow loads fast.
func testGroupConfig() group.Config {
	c := group.DefaultConfig()
	c.CacheBytes = 1 << 20
	c.LoadTimeout = 300 * time.Millisecond
	c.NegativeTTL = 0
	return c
}

func newTestGroup(t testing.TB, name string, l group.Loader, cfg group.Config) *group.Group {
	t.Helper()
	g, err := group.New(name, l, cfg, discardLogger())
	if err != nil {
		t.Fatalf("group.New(%q): %v", name, err)
	}
	return g
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// node is one API behind a real HTTP server built by NewServer.
type node struct {
	api    *API
	srv    *httptest.Server
	origin *origin
	group  *group.Group
	logs   *syncBuffer
}

// startNode serves one group "g" over an origin, plus extra groups, through a real server.
func startNode(t *testing.T, cfg Config, cluster Cluster, extra ...*group.Group) *node {
	t.Helper()
	o := &origin{}
	g := newTestGroup(t, "g", o, testGroupConfig())
	logs := &syncBuffer{}
	a, err := New(cfg, append([]*group.Group{g}, extra...), cluster, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &node{api: a, srv: serve(t, a), origin: o, group: g, logs: logs}
}

// serve runs h on 127.0.0.1 with the server that a.NewServer configures.
func serve(t *testing.T, a *API) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(a)
	srv.Config = a.NewServer()
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request; path is already escaped. header is name, value pairs. It returns the
// response (body closed) and its body.
func (n *node) do(t *testing.T, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return request(t, n.srv.Client(), n.srv.URL, method, path, header...)
}

// request is the one helper every test sends its requests with: baseURL+path (path already
// escaped), header as name, value pairs, a 10 s bound. It returns the response (body closed)
// and its body.
func request(t *testing.T, client *http.Client, baseURL, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, nil)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, baseURL, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s%s: reading body: %v", method, baseURL, path, err)
	}
	return resp, body
}

// keyPath is the escaped path of key in group g.
func keyPath(g, key string) string { return "/groups/" + EscapeKey(g) + "/keys/" + EscapeKey(key) }

// decodeJSON decodes body into a fresh T.
func decodeJSON[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return v
}

// wantError checks an error answer: status, JSON content type and code.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) errorBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	e := decodeJSON[errorBody](t, body)
	if e.Code != code {
		t.Errorf("code = %q, want %q (error %q)", e.Code, code, e.Error)
	}
	if e.Error == "" {
		t.Errorf("empty error message in %q", body)
	}
	return e
}

// fakeCluster stands in for *peers.Cluster: fixed members and stats, and a peer handler.
type fakeCluster struct {
	members []peers.Member
	stats   peers.Stats
	handler http.Handler
	// notReady, when set, is the reason Ready gives for not being ready.
	notReady atomic.Pointer[string]
}

func (f *fakeCluster) Members() []peers.Member { return f.members }
func (f *fakeCluster) Ready() (bool, string) {
	if r := f.notReady.Load(); r != nil {
		return false, *r
	}
	return true, "joined"
}
func (f *fakeCluster) Stats() peers.Stats    { return f.stats }
func (f *fakeCluster) Handler() http.Handler { return f.handler }

// fakeInvalidator confirms on a fixed number of peers, or fails.
type fakeInvalidator struct {
	mu        sync.Mutex
	confirmed int
	err       error
	keys      []string
	purges    int
}

func (f *fakeInvalidator) InvalidateKey(_ context.Context, _, key string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	return f.confirmed, f.err
}

func (f *fakeInvalidator) InvalidateGroup(context.Context, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purges++
	return f.confirmed, f.err
}

// counts returns how many purges and key removes reached the invalidator.
func (f *fakeInvalidator) counts() (purges, removes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.purges, len(f.keys)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
