package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds a Chromium for the browser test: $GROUPCACHED_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH. Where there is none it skips the test, except in
// CI (CI=true), where a missing browser is a failure: .ci/run installs Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GROUPCACHED_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found (looked for $GROUPCACHED_CHROMIUM, chromium, chromium-browser, google-chrome): " +
		"install it (Debian: apt-get install chromium) to run the status page in a real browser"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestStatusPageInBrowser opens the status page of a running 3-node cluster (real sockets on
// 127.0.0.1) in headless Chromium, finds the three members and a group's hit ratio in the
// DOM, checks that the charts and the page's policy let it render without errors, and saves a
// screenshot: to $GROUPCACHED_SCREENSHOT when set, else to the test's temporary directory.
func TestStatusPageInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	if testing.Short() {
		t.Skip("starts a browser")
	}

	o := &origin{}
	fast := func(c *NodeConfig) { c.History = HistoryConfig{Interval: 50 * time.Millisecond, Samples: 61} }
	gcfg := testGroupConfig()
	gcfg.Sizing = true
	a := startClusterNodeGroup(t, "node-a", o, fast, gcfg)
	b := startClusterNodeGroup(t, "node-b", o, fast, gcfg, a.Cluster().GossipAddr())
	c := startClusterNodeGroup(t, "node-c", o, fast, gcfg, a.Cluster().GossipAddr())
	waitMembers(t, a, b, c)

	// Enough requests for node-a's sizing estimator to end its warm-up (512 sampled requests,
	// at most 1 key in 128 sampled): 100,000 reads of 4,000 keys, served locally as a peer's
	// requests would be, with a skew so that the sizes differ.
	g := a.Groups()[0]
	for i := range 100_000 {
		n := i % 4000
		if i%3 != 0 {
			n %= 400
		}
		if _, err := g.GetLocal(context.Background(), fmt.Sprintf("sized-%d", n)); err != nil {
			t.Fatal(err)
		}
	}
	if est, _ := g.Sizing(); est.Warming {
		t.Fatalf("sizing still warming after %d sampled requests", est.Sampled)
	}

	// The browser starts before the traffic: the charts cover the samples of the last 3 s,
	// and Chromium's start on a loaded machine can take longer than that.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.WindowSize(1280, 1600),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}

	// Traffic over several samples, so that the charts have lines: a burst per sample, of 20
	// keys read three times each from node-a (hits after the first read), some missing.
	// The time of the newest sample (the count of samples stops at the ring's size, 61, which
	// a slow machine passes within the bursts).
	newest := func() time.Time {
		h := a.api.history
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n == 0 {
			return time.Time{}
		}
		return h.samples[(h.next+len(h.samples)-1)%len(h.samples)].at
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for burst := range 12 {
		for i := range 20 {
			key := fmt.Sprintf("key-%d", i+burst*2)
			if i%7 == 6 {
				key = "missing-" + key
			}
			for range 3 {
				a.get(t, http.MethodGet, keyPath("g", key))
			}
		}
		// The sampler runs every 50 ms: 10 s without a sample (measured from the end of the
		// burst, so that slow requests on a loaded machine do not count) means it stalled.
		deadline := time.After(10 * time.Second)
		for burstEnd := time.Now(); !newest().After(burstEnd); {
			select {
			case <-deadline:
				t.Fatal("the history sampler stalled")
			case <-tick.C:
			}
		}
	}

	// The ratio the page must show: node-a's, the way the page formats it.
	st := a.Groups()[0].Stats()
	wantRatio := strconv.FormatFloat(100*float64(st.CacheHits)/float64(st.CacheHits+st.Loads), 'f', 1, 64) + "%"

	if err := chromedp.Do(browser,
		chromedp.Navigate(a.url+"/?refresh=0"),
		chromedp.WaitVisible(chromedp.CSS("#members")),
	); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	members, err := chromedp.Run(browser, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#members tr.member")).map(r => r.dataset.name + " " + r.querySelector(".badge").textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(members)
	if want := []string{"node-a alive", "node-b alive", "node-c alive"}; !slices.Equal(members, want) {
		t.Errorf("members in the DOM: %q, want %q", members, want)
	}
	ratio, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`section.group[data-group="g"] .hit-ratio`)))
	if err != nil {
		t.Fatal(err)
	}
	if ratio != wantRatio {
		t.Errorf("hit ratio in the DOM: %q, want %q (node-a's stats)", ratio, wantRatio)
	}
	// The charts were drawn: three per group, each with a line, laid out with a width.
	charts, err := chromedp.Run(browser, chromedp.Evaluate[[]float64](
		`Array.from(document.querySelectorAll("section.group .chart svg")).map(s => s.querySelector("path") ? s.getBoundingClientRect().width : 0)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 3 || slices.Contains(charts, 0) {
		t.Errorf("charts (width of each, 0 when it has no line): %v, want 3 drawn", charts)
	}

	// The sizing curve: a point and a label per size, 1x marked as now.
	sizes, err := chromedp.Run(browser, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('section.group[data-group="g"] .sizing-table tbody tr')).map(r => r.cells[0].textContent + " " + r.cells[2].textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 5 || !strings.HasPrefix(sizes[2], "1x (now) ") || !strings.HasSuffix(sizes[4], "%") {
		t.Errorf("sizing table in the DOM: %q, want 5 sizes with hit ratios, 1x marked", sizes)
	}
	if dots, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll(".sizing-curve circle").length`)); err != nil || dots != 5 {
		t.Errorf("sizing curve: %d points (%v), want 5", dots, err)
	}

	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := os.Getenv("GROUPCACHED_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "status.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page (%d bytes): %s", len(shot), path)
}
