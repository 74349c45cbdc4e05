package httpapi

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// seriesOf returns the series of the metric family name in reg whose labels include want.
func seriesOf(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	var out []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// requestCount is groupcached_http_requests_total for one method, route and class (0 when the
// series does not exist), and the count of the matching duration histogram.
func requestCount(t *testing.T, reg prometheus.Gatherer, method, route, code string) (requests float64, timed uint64) {
	t.Helper()
	labels := map[string]string{"method": method, "route": route, "code": code}
	for _, m := range seriesOf(t, reg, "groupcached_http_requests_total", labels) {
		requests += m.GetCounter().GetValue()
	}
	for _, m := range seriesOf(t, reg, "groupcached_http_request_duration_seconds", labels) {
		timed += m.GetHistogram().GetSampleCount()
	}
	return requests, timed
}

// TestRequestMetricsCountEveryRoute sends requests to the fast path, the chi routes, the peer
// endpoints and no route at all, and checks each is counted and timed once under its method,
// route pattern and status class, and that no key reaches /metrics.
func TestRequestMetricsCountEveryRoute(t *testing.T) {
	peerHandler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "peer") })
	n := startNode(t, LocalConfig(), &fakeCluster{members: threeMembers(), stats: peerStats(3), handler: peerHandler})
	const secret = "user@example.com-secret"

	for range 3 {
		n.do(t, http.MethodGet, keyPath("g", secret))
	}
	n.do(t, http.MethodHead, keyPath("g", secret))
	n.do(t, http.MethodGet, keyPath("g", "missing-"+secret))
	n.do(t, http.MethodGet, keyPath("g", "panic-"+secret))
	n.do(t, http.MethodGet, keyPath("nogroup", secret))
	n.do(t, http.MethodGet, "/groups/g/keys/a/"+secret)
	n.do(t, http.MethodPost, keyPath("g", secret))
	n.do(t, http.MethodGet, "/groups/g")
	n.do(t, http.MethodGet, "/cluster")
	n.do(t, http.MethodGet, "/"+secret)
	n.do(t, http.MethodGet, "/_peer/v2/conn?key="+secret, "Groupcached-Peer", "node-b")

	reg := n.api.Registry()
	for _, tt := range []struct {
		method, route, code string
		want                float64
	}{
		{"GET", "/groups/{group}/keys/{key}", "2xx", 3},
		{"HEAD", "/groups/{group}/keys/{key}", "2xx", 1},
		{"GET", "/groups/{group}/keys/{key}", "4xx", 2}, // not found, unknown group
		{"GET", "/groups/{group}/keys/{key}", "5xx", 1}, // the loader panicked
		{"GET", "/groups/{group}/keys/*", "4xx", 1},
		{"POST", "/groups/{group}/keys/{key}", "4xx", 1}, // 405
		{"GET", "/groups/{group}", "2xx", 1},
		{"GET", "/cluster", "2xx", 1},
		{"GET", "unmatched", "4xx", 1},
		{"GET", "/_peer/v2/conn", "2xx", 1},
	} {
		got, timed := requestCount(t, reg, tt.method, tt.route, tt.code)
		if got != tt.want || float64(timed) != tt.want {
			t.Errorf("%s %s %s: counted %v, timed %d; want %v", tt.method, tt.route, tt.code, got, timed, tt.want)
		}
	}

	_, body := n.do(t, http.MethodGet, "/metrics")
	if strings.Contains(string(body), secret) {
		t.Errorf("a key reached /metrics:\n%s", grepLines(string(body), secret))
	}
	if !strings.Contains(string(body), `groupcached_http_requests_total{code="2xx",method="GET",route="/groups/{group}/keys/{key}"} 3`) {
		t.Errorf("/metrics lacks the key route's count:\n%s", grepLines(string(body), "http_requests_total"))
	}
	if !strings.Contains(string(body), "groupcached_build_info{") {
		t.Error("/metrics lacks groupcached_build_info")
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			b.WriteString(sc.Text() + "\n")
		}
	}
	return b.String()
}

// TestRequestMetricsHijack checks that a connection taken over through a ResponseController
// (the peer wire's upgrade) still works through the wrapper, is counted, and is not timed.
func TestRequestMetricsHijack(t *testing.T) {
	m := newRequestMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.collectors()...)
	srv := httptest.NewServer(m.middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup")
		_ = brw.Flush()
	})))
	defer srv.Close()
	resp, body := request(t, srv.Client(), srv.URL, http.MethodGet, "/_peer/v2/conn")
	if resp.StatusCode != http.StatusOK || string(body) != "up" {
		t.Fatalf("hijacked answer: %d %q", resp.StatusCode, body)
	}
	// The middleware counts after the handler returns, which can be after the client has read
	// the hijacked answer: wait for the count, with a deadline.
	var got float64
	var timed uint64
	poll(t, 5*time.Second, "the hijacked request counted", func() bool {
		got, timed = requestCount(t, reg, "GET", "/_peer/v2/conn", "1xx")
		return got != 0
	})
	if got != 1 || timed != 0 {
		t.Errorf("hijacked request: counted %v, timed %d; want counted once, not timed", got, timed)
	}
}

// TestRequestMetricsAllocateNothing: once a series is resolved, counting a request costs no
// allocation (the wrapper comes from a pool).
func TestRequestMetricsAllocateNothing(t *testing.T) {
	m := newRequestMetrics()
	h := m.middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	r := httptest.NewRequest(http.MethodGet, "/groups/g/keys/k", nil)
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, r)
	if allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) }); allocs != 0 {
		t.Errorf("a counted request allocates %v times", allocs)
	}
	// One request before, and AllocsPerRun's warm-up run before its 1000.
	if got, timed := requestCount(t, prometheusGatherer(m), "GET", "/groups/{group}/keys/{key}", "2xx"); got != 1002 || timed != 1002 {
		t.Errorf("counted %v, timed %d; want 1002", got, timed)
	}
}

func prometheusGatherer(m *requestMetrics) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.collectors()...)
	return reg
}

func TestRecorderStatus(t *testing.T) {
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  int
		bytes int64
	}{
		{"nothing written", func(http.ResponseWriter) {}, 200, 0},
		{"body only", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "abc") }, 200, 3},
		{"status then body", func(w http.ResponseWriter) { w.WriteHeader(404); _, _ = io.WriteString(w, "no") }, 404, 2},
		{"early hints then status", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(204) }, 204, 0},
		{"second status ignored", func(w http.ResponseWriter) { w.WriteHeader(500); w.WriteHeader(200) }, 500, 0},
		{"flush", func(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &responseRecorder{ResponseWriter: httptest.NewRecorder()}
			tt.serve(rec)
			if rec.Status() != tt.want || rec.bytes != tt.bytes {
				t.Errorf("status %d, %d bytes; want %d, %d", rec.Status(), rec.bytes, tt.want, tt.bytes)
			}
		})
	}
}

// BenchmarkRequestMetrics is the request metrics middleware around a handler that does
// nothing: the whole cost it adds to a request.
func BenchmarkRequestMetrics(b *testing.B) {
	m := newRequestMetrics()
	h := m.middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	r := httptest.NewRequest(http.MethodGet, "/groups/g/keys/k", nil)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
