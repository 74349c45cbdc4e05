package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestSizingInJSONAndMetrics: a group with sizing shows its estimate in GET /groups/{group}
// and at /metrics, with no hit ratio while it warms up; a group without has neither.
func TestSizingInJSONAndMetrics(t *testing.T) {
	cfg := testGroupConfig()
	cfg.Sizing = true
	sized := newTestGroup(t, "sized", &origin{}, cfg)
	n := startNode(t, LocalConfig(), nil, sized)

	info := func(name string) groupInfo {
		t.Helper()
		resp, body := n.do(t, http.MethodGet, "/groups/"+name)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /groups/%s: %d %s", name, resp.StatusCode, body)
		}
		return decodeJSON[groupInfo](t, body)
	}
	if gi := info("g"); gi.Sizing != nil || gi.Config.Sizing {
		t.Errorf("a group without sizing shows %+v (config %v)", gi.Sizing, gi.Config.Sizing)
	}
	warm := info("sized")
	if warm.Sizing == nil || !warm.Sizing.Warming || len(warm.Sizing.Sizes) != 5 || warm.Sizing.Sizes[2].HitRatio != nil || !warm.Config.Sizing {
		t.Fatalf("sizing while warming up: %+v", warm.Sizing)
	}
	_, body := n.do(t, http.MethodGet, "/metrics")
	if strings.Contains(string(body), "groupcached_sizing_hit_ratio{") || !strings.Contains(string(body), `groupcached_sizing_size_bytes{group="sized",size="0.5x"}`) {
		t.Errorf("metrics while warming up:\n%s", grepLines(string(body), "sizing"))
	}

	for i := range 100_000 {
		if _, err := sized.GetLocal(context.Background(), fmt.Sprintf("k%d", i%4000)); err != nil {
			t.Fatal(err)
		}
	}
	gi := info("sized")
	s := gi.Sizing
	if s == nil || s.Warming || s.Requests != 100_000 || s.Sampled < 512 {
		t.Fatalf("sizing after 100,000 requests: %+v", s)
	}
	for _, z := range s.Sizes {
		if z.HitRatio == nil || *z.HitRatio < 0 || *z.HitRatio > 1 || z.Bytes <= 0 || z.Rate <= 0 {
			t.Errorf("size %+v", z)
		}
	}
	_, body = n.do(t, http.MethodGet, "/metrics")
	for _, want := range []string{
		`groupcached_sizing_hit_ratio{group="sized",size="0.25x"}`,
		`groupcached_sizing_hit_ratio{group="sized",size="4x"}`,
		`groupcached_sizing_sampled_requests_total{group="sized"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(body), "sizing"))
		}
	}
	if strings.Contains(string(body), `sizing_hit_ratio{group="g"`) {
		t.Error("sizing series for a group without sizing")
	}
}
