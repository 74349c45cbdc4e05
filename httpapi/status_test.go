package httpapi

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// TestStatusPage serves the page of a node whose members and group have hostile names, and
// checks that it is HTML under a strict policy, shows every member and the group's hit ratio,
// escapes the names, and holds nothing that could run or change anything.
func TestStatusPage(t *testing.T) {
	const evil = `<script>alert("x")</script>`
	members := []peers.Member{
		{Name: "node-a", State: peers.Alive, HTTPAddr: "127.0.0.1:1", Self: true, Share: 0.5},
		{Name: evil, State: peers.Alive, HTTPAddr: "127.0.0.1:2", Share: 0.5},
		{Name: "node-c", State: peers.Dead, HTTPAddr: "127.0.0.1:3"},
	}
	cfg := LocalConfig()
	cfg.NodeName = "node-a"
	hostile := newTestGroup(t, `<img src=x onerror=alert(1)>`, &origin{}, testGroupConfig())
	n := startNode(t, cfg, &fakeCluster{members: members, stats: peerStats(2)}, hostile)
	n.api.history = newHistory(HistoryConfig{}, n.api.order)
	n.api.history.record(time.Now().Add(-10 * time.Second))
	for _, key := range []string{"a", "a", "a", "b"} { // 2 loads, 2 hits
		n.do(t, http.MethodGet, keyPath("g", key))
	}
	n.api.history.record(time.Now())
	n.api.SetReady(true)

	resp, body := n.do(t, http.MethodGet, "/")
	page := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d %s", resp.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
	} {
		if got := resp.Header.Get(h); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	for _, want := range []string{
		"node-a", "node-c", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;",
		`class="v hit-ratio">50.0%`, "(this node)", `<meta http-equiv="refresh" content="10">`,
		"<svg", `<path d="M`, "requests/s", "hit ratio", "origin loads/s", "ready",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "<form", "<iframe", "javascript:", "method=", "http://", "https://"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the page holds %q", bad)
		}
	}

	_, body = n.do(t, http.MethodGet, "/?refresh=0")
	if strings.Contains(string(body), "http-equiv") {
		t.Error("?refresh=0 still refreshes")
	}
	resp, body = n.do(t, http.MethodHead, "/")
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength <= 0 {
		t.Errorf("HEAD /: %d, %d bytes of body, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
}

// TestStatusPageAlone: an API without a cluster or a history shows itself as the only member
// and no charts.
func TestStatusPageAlone(t *testing.T) {
	cfg := LocalConfig()
	cfg.NodeName = "solo"
	n := startNode(t, cfg, nil)
	_, body := n.do(t, http.MethodGet, "/")
	page := string(body)
	for _, want := range []string{"solo", "serves alone", "not ready", "100.0%", `class="v hit-ratio">–`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<svg") {
		t.Error("charts without a history")
	}
}

func TestLineChart(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	at := []time.Time{now.Add(-10 * time.Minute), now.Add(-5 * time.Minute), now.Add(-4 * time.Minute), now}
	c := lineChart("t", at, []float64{0, 1, math.NaN(), 0.5}, now, 10*time.Minute, 0, 1)
	if want := "M2.0 62.0 h0 L130.0 2.0 M258.0 32.0 h0"; c.Path != want {
		t.Errorf("path %q, want %q", c.Path, want)
	}
	if !c.HasLast || c.LastX != 258 || c.LastY != 32 {
		t.Errorf("last point (%v, %v) %v", c.LastX, c.LastY, c.HasLast)
	}
	if c := lineChart("t", nil, nil, now, 0, 0, 1); c.Path != "" || c.HasLast {
		t.Errorf("empty chart: %+v", c)
	}
}

func TestRoundUpAndFormats(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.03: 0.05, 1: 1, 1.2: 2, 3: 5, 7: 10, 11: 20, 450: 500} {
		if got := roundUp(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("roundUp(%v) = %v, want %v", v, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.00 KiB", 64 << 20: "64.0 MiB", 1536 << 20: "1.50 GiB", 300 << 10: "300 KiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := shortRevision("0123456789abcdef0123-dirty"); got != "0123456789ab-dirty" {
		t.Errorf("shortRevision: %q", got)
	}
}

// BenchmarkStatusPage renders the page of a node with 3 groups and a full history.
func BenchmarkStatusPage(b *testing.B) {
	var groups []*group.Group
	for _, name := range []string{"a", "b", "c"} {
		groups = append(groups, newTestGroup(b, name, &origin{}, testGroupConfig()))
	}
	a, err := New(LocalConfig(), groups, &fakeCluster{members: threeMembers(), stats: peerStats(3)}, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	a.history = newHistory(HistoryConfig{}, a.order)
	t0 := time.Now()
	for i := range defaultHistorySamples {
		a.history.record(t0.Add(time.Duration(i-defaultHistorySamples) * defaultHistoryInterval))
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		a.ServeHTTP(w, r)
	}
}

func testEstimate(warming bool) group.SizingEstimate {
	est := group.SizingEstimate{Requests: 100_000, Sampled: 5_000, Warming: warming}
	for i, r := range []float64{0.25, 0.5, 1, 2, 4} {
		est.Sizes = append(est.Sizes, group.SizeEstimate{Ratio: r, Bytes: int64(r * (64 << 20)), HitRatio: 0.5 + 0.07*float64(i)})
	}
	return est
}

func TestSizingView(t *testing.T) {
	v := sizingViewOf(testEstimate(false))
	if len(v.Points) != 5 {
		t.Fatalf("%d points, want 5", len(v.Points))
	}
	labels := ""
	for i, p := range v.Points {
		labels += p.Label + " "
		if p.Current != (i == 2) {
			t.Errorf("point %d (%s): current %v", i, p.Label, p.Current)
		}
		if i > 0 && (p.X <= v.Points[i-1].X || p.Y >= v.Points[i-1].Y) {
			t.Errorf("point %d at (%v, %v) after (%v, %v): want right of and above it (a higher hit ratio)", i, p.X, p.Y, v.Points[i-1].X, v.Points[i-1].Y)
		}
		if p.Y < sizingTop || p.Y > sizingB {
			t.Errorf("point %d at y %v, outside the plot [%d, %d]", i, p.Y, sizingTop, sizingB)
		}
	}
	if labels != "¼x ½x 1x 2x 4x " || v.Points[1].Bytes != "32.0 MiB" || v.Points[4].HitRatio != "78.0%" {
		t.Errorf("points %+v", v.Points)
	}
	if strings.Count(v.Path, "L") != 4 || !strings.HasPrefix(v.Path, "M52.0 ") {
		t.Errorf("path %q", v.Path)
	}
	if v.Top != "80%" || v.Bottom != "45%" {
		t.Errorf("y axis %s to %s, want 45%% to 80%%", v.Bottom, v.Top)
	}

	w := sizingViewOf(testEstimate(true))
	if w.Path != "" || w.Points[0].HitRatio != "" {
		t.Errorf("a warming estimate drew %q, %+v", w.Path, w.Points)
	}
}

// TestStatusPageSizing renders a group's sizing curve, and its warm-up.
func TestStatusPageSizing(t *testing.T) {
	for _, warming := range []bool{false, true} {
		v := statusView{Node: "n", Groups: []groupView{{Name: "g", HitRatio: "–", Sizing: sizingViewOf(testEstimate(warming))}}}
		var b strings.Builder
		if err := statusTemplate.Execute(&b, v); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		want := []string{`class="sizing-curve"`, "½x", "1x (now)", "78.0%", "64.0 MiB", "Estimated from 5000 sampled of 100000 requests"}
		if warming {
			want = []string{"Warming up: 5000 sampled requests"}
		}
		for _, s := range want {
			if !strings.Contains(page, s) {
				t.Errorf("warming %v: the page lacks %q", warming, s)
			}
		}
	}
}
