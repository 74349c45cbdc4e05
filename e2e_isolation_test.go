package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groupcached/groupcached/internal/downproxy"
)

// TestFrozenPeerUnderLoad stops (SIGSTOP) one node of three, on the lan preset (production
// timings: a probe every second, suspicion of 4 s or more), for longer than failure detection,
// while clients read fresh keys (owned by all three nodes) from the two healthy ones. Both
// healthy nodes eject it (outlier detection) once their fetches in flight to it fail the
// wire's liveness check, long before memberlist declares it dead. No request to a healthy node
// may wait longer than the detection time plus one second, and once both healthy nodes hold
// the stopped one dead there is no second without completions. After SIGCONT the node
// rejoins. The figures (detection time, longest request, longest gap without
// completions) are logged for BENCHMARKS.md.
func TestFrozenPeerUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t, t.TempDir())
	origin := newCountingOrigin(t)
	cfg := nodeConfig(t, origin.loaderURL(), presetLAN, 0)
	n1 := startProc(t, bin, "s1", nodeArgs(cfg, "s1")...)
	n2 := startProc(t, bin, "s2", nodeArgs(cfg, "s2", n1.gossip)...)
	n3 := startProc(t, bin, "s3", nodeArgs(cfg, "s3", n1.gossip)...)
	waitMembers(t, []*proc{n1, n2, n3}, "s1", "s2", "s3")

	load := startReaders(t, []*proc{n1, n2}, 4)
	defer load.stop()
	load.waitCompletions(t, 200)

	n3.signal(syscall.SIGSTOP)
	stopped := time.Now()
	t.Cleanup(func() { _ = n3.cmd.Process.Signal(syscall.SIGCONT) })
	// Ejected first: the fetches in flight to s3 fail the liveness check (1.5 s), which
	// ejects it from both healthy nodes' routing long before memberlist declares it dead.
	for _, p := range []*proc{n1, n2} {
		waitFor(t, 30*time.Second, p.name+" ejects s3", func() error {
			state, ejected, err := memberState(p.http, "s3")
			if err != nil || (state == "alive" && !ejected) {
				return fmt.Errorf("s3 %s, ejected %v, %v", state, ejected, err)
			}
			if !ejected {
				t.Errorf("%s: s3 is %s without having been ejected", p.name, state)
			}
			return nil
		})
	}
	t.Logf("both healthy nodes ejected s3 %v after SIGSTOP", time.Since(stopped).Round(time.Millisecond))
	// Declared dead: both healthy nodes have dropped s3 from their rings.
	waitMembers(t, []*proc{n1, n2}, "s1", "s2")
	dead := time.Now()
	detection := dead.Sub(stopped)
	// Stay stopped a while after detection, so that the ring without s3 is measured too.
	waitUntil(dead.Add(3 * time.Second))
	n3.signal(syscall.SIGCONT)
	resumed := time.Now()
	waitMembers(t, []*proc{n1, n2, n3}, "s1", "s2", "s3")
	rejoined := time.Now()
	load.stop()

	recs := load.records()
	var during []request
	maxLatency, failures := time.Duration(0), 0
	for _, r := range recs {
		if r.end.Before(stopped) || r.start.After(resumed) {
			continue
		}
		during = append(during, r)
		maxLatency = max(maxLatency, r.end.Sub(r.start))
		if r.err != nil {
			failures++
			if failures <= 5 {
				t.Errorf("while s3 was stopped: %v", r.err)
			}
		}
	}
	gapStopped, gapStoppedAt := longestGap(during, stopped, resumed)
	gapDead, gapDeadAt := longestGap(during, dead, resumed)
	t.Logf("s3 stopped for %v; both healthy nodes held it dead after %v; it was back in every ring %v after SIGCONT",
		resumed.Sub(stopped).Round(time.Millisecond), detection.Round(time.Millisecond), rejoined.Sub(resumed).Round(time.Millisecond))
	t.Logf("%d requests completed while s3 was stopped (%d failed); longest request %v; longest gap without completions %v (at t=%v after SIGSTOP), %v once s3 was dead (at t=%v)",
		len(during), failures, maxLatency.Round(time.Millisecond), gapStopped.Round(time.Millisecond),
		gapStoppedAt.Round(100*time.Millisecond), gapDead.Round(time.Millisecond), gapDeadAt.Round(100*time.Millisecond))
	t.Logf("completions per second after SIGSTOP: %v", perSecond(during, stopped, resumed))
	if maxLatency > detection+time.Second {
		t.Errorf("a request to a healthy node took %v, more than the detection time %v plus one second", maxLatency, detection)
	}
	if gapDead >= time.Second {
		t.Errorf("no completion for %v once s3 was dead (from t=%v after SIGSTOP), want under 1 s", gapDead, gapDeadAt)
	}
}

// memberState returns the state of member name as the node at addr sees it, and whether it
// routes around it (outlier ejection).
func memberState(addr, name string) (state string, ejected bool, err error) {
	var cv struct {
		Members []struct {
			Name    string `json:"name"`
			State   string `json:"state"`
			Ejected bool   `json:"ejected"`
		} `json:"members"`
	}
	if err := getJSON(addr, "/cluster", &cv); err != nil {
		return "", false, err
	}
	for _, m := range cv.Members {
		if m.Name == name {
			return m.State, m.Ejected, nil
		}
	}
	return "", false, fmt.Errorf("%s does not list %s", addr, name)
}

// request is one GET of the readers: when it started and ended, and what went wrong.
type request struct {
	start, end time.Time
	err        error
}

// readers are client goroutines reading fresh keys from a set of nodes, each request recorded.
type readers struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu   sync.Mutex
	recs []request
}

// maxReaderRequests bounds a readers' run, whatever the test's timing.
const maxReaderRequests = 400_000

// startReaders starts perNode sequential readers on each node; every request asks a key never
// asked before, so each is a miss that the key's owner (any of the nodes) fills.
func startReaders(t *testing.T, nodes []*proc, perNode int) *readers {
	t.Helper()
	rd := &readers{done: make(chan struct{})}
	deadline := time.Now().Add(3 * time.Minute)
	for ni, p := range nodes {
		for c := range perNode {
			rd.wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-rd.done:
						return
					default:
					}
					if time.Now().After(deadline) {
						return
					}
					key := fmt.Sprintf("reader %d-%d key %d", ni, c, i)
					r := request{start: time.Now()}
					status, body, _, err := get(p.http, "items", key)
					r.end = time.Now()
					switch {
					case err != nil:
						r.err = fmt.Errorf("GET %q on %s: %w", key, p.name, err)
					case status != http.StatusOK || body != originValue(key):
						r.err = fmt.Errorf("GET %q on %s = %d %q after %v", key, p.name, status, body, r.end.Sub(r.start))
					}
					rd.mu.Lock()
					rd.recs = append(rd.recs, r)
					full := len(rd.recs) >= maxReaderRequests
					rd.mu.Unlock()
					if full {
						return
					}
				}
			})
		}
	}
	t.Cleanup(rd.stop)
	return rd
}

func (rd *readers) stop() {
	rd.once.Do(func() { close(rd.done) })
	rd.wg.Wait()
}

func (rd *readers) records() []request {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return slices.Clone(rd.recs)
}

// waitCompletions waits until n requests have completed without error.
func (rd *readers) waitCompletions(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d completed reads", n), func() error {
		ok := 0
		for _, r := range rd.records() {
			if r.err == nil {
				ok++
			} else {
				return r.err
			}
		}
		if ok < n {
			return fmt.Errorf("%d so far", ok)
		}
		return nil
	})
}

// longestGap returns the longest interval inside [from, to] with no request completing, and
// where it started, as an offset from from.
func longestGap(recs []request, from, to time.Time) (gap, at time.Duration) {
	var ends []time.Time
	for _, r := range recs {
		if !r.end.Before(from) && !r.end.After(to) {
			ends = append(ends, r.end)
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	ends = append(ends, to)
	prev := from
	for _, e := range ends {
		if d := e.Sub(prev); d > gap {
			gap, at = d, prev.Sub(from)
		}
		prev = e
	}
	return gap, at
}

// perSecond counts the completions in each second from from to to.
func perSecond(recs []request, from, to time.Time) []int {
	n := make([]int, int(to.Sub(from)/time.Second)+1)
	for _, r := range recs {
		if !r.end.Before(from) && !r.end.After(to) {
			n[int(r.end.Sub(from)/time.Second)]++
		}
	}
	return n
}

// waitUntil sleeps until t: a pacing step between the phases of a fault test, not an assertion.
func waitUntil(t time.Time) {
	time.Sleep(time.Until(t))
}

// TestOriginDownAtStart runs the binary with a sql loader whose PostgreSQL refuses
// connections (a port nothing listens on, which a proxy to the real PostgreSQL of
// GROUPCACHED_TEST_POSTGRES_DSN takes over later): the node starts, /readyz answers 503 with
// the reason, and once the database is up it becomes ready by itself and serves from it. A
// DSN that does not parse is still a configuration mistake: exit status 2.
func TestOriginDownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	dsn := os.Getenv("GROUPCACHED_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("set GROUPCACHED_TEST_POSTGRES_DSN to run it, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := downproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	t.Setenv("GROUPCACHED_TEST_ORIGIN_DSN", u.String())
	bin := buildBinary(t, t.TempDir())
	cfg := writeConfig(t, `node:
  preset: local
  shutdown_delay: 0s
groups:
  - name: rows
    cache_bytes: 1MiB
    loader:
      type: sql
      driver: postgres
      dsn_env: GROUPCACHED_TEST_ORIGIN_DSN
      query: "SELECT 'value of ' || $1::text"
`)
	n := startProc(t, bin, "o1", nodeArgs(cfg, "o1")...)
	status, body, err := readyz(n.http)
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "origin not ready") || !strings.Contains(body, "refuses connections") {
		t.Fatalf("/readyz with the database down = %d %s, %v; want 503 saying the origin refuses connections", status, body, err)
	}
	if strings.Contains(body, proxy.Addr()) || strings.Contains(body, "postgres@") {
		t.Errorf("/readyz reveals the DSN: %s", body)
	}
	t.Logf("/readyz with the database down: %d %s", status, body)

	proxy.Up(t)
	up := time.Now()
	waitFor(t, 20*time.Second, "/readyz 200 once the database is up", func() error {
		status, body, err := readyz(n.http)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("%d %s, %v", status, body, err)
		}
		return nil
	})
	t.Logf("ready %v after the database came up", time.Since(up).Round(time.Millisecond))
	if status, body, _, err := get(n.http, "rows", "k1"); err != nil || status != http.StatusOK || body != "value of k1" {
		t.Errorf("GET once ready = %d %q, %v", status, body, err)
	}

	bad := writeConfig(t, `groups:
  - name: rows
    loader: {type: sql, driver: postgres, dsn: "postgres://u@127.0.0.1:5432/test?sslmode=bogus", query: "SELECT $1::text"}
`)
	code, out := runBinary(t, bin, "-config", bad, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0")
	if code != 2 || !strings.Contains(out, "does not parse") {
		t.Errorf("a DSN that does not parse: exit status %d, want 2 saying so; output:\n%s", code, out)
	}
}

// readyz returns the status and body of GET /readyz.
func readyz(addr string) (int, string, error) {
	resp, err := testClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestPeerEjectSettings: node.peer_eject_after and node.peer_eject_for reach the cluster's
// configuration; left out, they are peers.DefaultConfig's.
func TestPeerEjectSettings(t *testing.T) {
	const okGroup = "groups:\n  - name: g\n    loader: {type: file, root: .}\n"
	for _, tt := range []struct {
		file  string
		after int
		for_  time.Duration
	}{
		{okGroup, 3, 5 * time.Second},
		{"node:\n  peer_eject_after: -1\n  peer_eject_for: 30s\n" + okGroup, -1, 30 * time.Second},
	} {
		cfg, err := loadConfig(mustFlags(t, "-config", writeConfig(t, tt.file)), envMap{}.lookup)
		if err != nil {
			t.Fatal(err)
		}
		pc := cfg.peersConfig("127.0.0.1:1", nil)
		if pc.PeerEjectAfter != tt.after || pc.PeerEjectFor != tt.for_ {
			t.Errorf("%q: PeerEjectAfter %d, PeerEjectFor %v; want %d, %v", tt.file, pc.PeerEjectAfter, pc.PeerEjectFor, tt.after, tt.for_)
		}
	}
}
