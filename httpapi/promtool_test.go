package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPromtoolCheckMetrics runs Prometheus's own linter, `promtool check metrics`, on the
// /metrics of a node of a 2-node cluster that has served clients, peers, errors and the
// status page, so that every family has series. promtool comes with Debian's prometheus
// package, which .ci/run installs; without it the test skips, except in CI (CI=true).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		const msg = "promtool not found: install it (Debian: apt-get install prometheus) to lint /metrics"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	o := &origin{}
	gcfg := testGroupConfig()
	gcfg.Sizing = true
	a := startClusterNodeGroup(t, "node-a", o, func(c *NodeConfig) { c.API.AccessLog = true }, gcfg)
	b := startClusterNode(t, "node-b", o, a.Cluster().GossipAddr())
	waitMembers(t, a, b)
	// Past the sizing estimator's warm-up, so that its hit ratios are exported too.
	for i := range 100_000 {
		if _, err := a.Groups()[0].GetLocal(context.Background(), fmt.Sprintf("sized-%d", i%4000)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		for _, n := range []*clusterNode{a, b} {
			n.get(t, http.MethodGet, keyPath("g", fmt.Sprintf("key-%d", i)))
		}
	}
	for _, path := range []string{keyPath("g", "missing-1"), keyPath("g", "fail-1"), keyPath("nope", "k"), "/", "/cluster", "/nothing"} {
		a.get(t, http.MethodGet, path)
	}
	a.get(t, http.MethodDelete, keyPath("g", "key-1"))
	_, body := a.get(t, http.MethodGet, "/metrics")
	for _, want := range []string{"groupcached_http_requests_total{", "groupcached_http_request_duration_seconds_bucket{",
		"groupcached_build_info{", `route="/groups/{group}/keys/{key}"`, `groupcached_sizing_hit_ratio{group="g",size="0.5x"}`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Logf("promtool: %s", s)
	}
}
