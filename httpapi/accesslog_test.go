package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/groupcached/groupcached/group"
)

// TestAccessLog turns Config.AccessLog on and checks one JSON line per request with the route
// pattern, the group, the key's length and never the key or the query, the status and bytes
// sent, and the peer's name on the peer endpoints; and that it is off by default.
func TestAccessLog(t *testing.T) {
	peerHandler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "peer") })
	cfg := LocalConfig()
	cfg.AccessLog = true
	logs := &syncBuffer{}
	a, err := New(cfg, []*group.Group{newTestGroup(t, "g", &origin{}, testGroupConfig())},
		&fakeCluster{members: threeMembers(), stats: peerStats(3), handler: peerHandler},
		slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, a)
	const secret = "alice@example.com"
	get := func(method, path string, header ...string) {
		t.Helper()
		request(t, srv.Client(), srv.URL, method, path, header...)
	}
	get(http.MethodGet, keyPath("g", secret))
	get(http.MethodGet, "/groups/g/keys/dir%2F"+secret)
	get(http.MethodGet, keyPath("nope", secret))
	get(http.MethodGet, "/cluster")
	get(http.MethodGet, "/_peer/v2/conn?key="+secret, "Groupcached-Peer", "node-b")

	if strings.Contains(logs.String(), "alice") {
		t.Errorf("a key reached the access log:\n%s", logs)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "http request" {
			lines = append(lines, m)
		}
	}
	want := []map[string]any{
		{"method": "GET", "route": "/groups/{group}/keys/{key}", "group": "g", "key_bytes": float64(len(secret)), "status": float64(200), "bytes": float64(len("value of " + secret))},
		{"method": "GET", "route": "/groups/{group}/keys/{key}", "group": "g", "key_bytes": float64(len(secret) + 4), "status": float64(200)},
		{"route": "/groups/{group}/keys/{key}", "group": "nope", "status": float64(404)},
		{"route": "/cluster", "status": float64(200)},
		{"route": "/_peer/v2/conn", "peer": "node-b", "status": float64(200), "bytes": float64(4)},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d access log lines, want %d:\n%s", len(lines), len(want), logs)
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (line %v)", i, k, lines[i][k], v, lines[i])
			}
		}
		for _, k := range []string{"remote", "duration"} {
			if _, ok := lines[i][k]; !ok {
				t.Errorf("line %d has no %s: %v", i, k, lines[i])
			}
		}
	}

	quiet := startNode(t, LocalConfig(), nil)
	quiet.do(t, http.MethodGet, keyPath("g", "k"))
	if strings.Contains(quiet.logs.String(), "http request") {
		t.Errorf("access log without Config.AccessLog:\n%s", quiet.logs)
	}
}

func TestKeyBytes(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want int
	}{
		{"/groups/g/keys/abc", 3},
		{"/groups/g/keys/a%20b", 3},
		{"/groups/g/keys/dir%2Fkey", 7},
		{"/groups/g%2Ex/keys/dir%2Fkey", 7},
		{"/groups/g/keys/a/b/c", 5},
	} {
		r, err := http.NewRequest(http.MethodGet, "http://x"+tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		path := routingPath(r.URL)
		_, groupSeg := classifyRoute(path)
		if got := keyBytes(r, path, groupSeg); got != tt.want {
			t.Errorf("keyBytes(%s) = %d, want %d", tt.url, got, tt.want)
		}
	}
}

// BenchmarkAccessLog is the access log middleware around a handler that does nothing, inside
// the request metrics as in the API's chain, logging through a text handler to io.Discard:
// the whole cost a line adds to a request, formatting included. "off" is the same chain
// with the log's level above Info.
func BenchmarkAccessLog(b *testing.B) {
	for _, tc := range []struct {
		name  string
		level slog.Level
	}{{"on", slog.LevelInfo}, {"off", slog.LevelWarn}} {
		b.Run(tc.name, func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: tc.level}))
			m := newRequestMetrics()
			h := m.middleware(accessLog(log)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write(benchValue)
			})))
			r := httptest.NewRequest(http.MethodGet, "/groups/g/keys/some-key", nil)
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
