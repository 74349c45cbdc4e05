package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupcached/groupcached/peers"
)

// TestBinary runs the real binary, built once into a temporary directory, as separate
// processes on loopback: a 3-node cluster that survives a SIGKILL, a graceful stop on SIGTERM,
// configuration mistakes, the embedded default config as shipped, and scripts/cluster.sh.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t, t.TempDir())

	// The cases mostly wait (for gossip, for a stop), so they run side by side.
	for _, c := range []struct {
		name string
		run  func(*testing.T, string)
	}{
		{"three nodes fill once and survive a SIGKILL", testClusterSurvivesKill},
		{"a SIGSTOPped owner: fetches fall back within the deadline", testFrozenOwner},
		{"SIGTERM stops gracefully", testGracefulStop},
		{"bad config exits 2 with file and line", testBadConfig},
		{"embedded config serves examples/data", testEmbeddedConfig},
		{"scripts/cluster.sh --smoke", testClusterScript},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, bin)
		})
	}
}

// nodeConfig writes a config file for test processes: the given cluster preset, a shutdown
// delay, and one group "items" over the origin.
func nodeConfig(t *testing.T, originURL, preset string, shutdownDelay time.Duration) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`node:
  preset: %s
  shutdown_delay: %s
  log_level: info
groups:
  - name: items
    cache_bytes: 8MiB
    load_timeout: 20s
    loader: {type: http, url: %q}
`, preset, shutdownDelay, originURL))
}

// nodeArgs are the flags of test node name: loopback, ports picked by the kernel.
func nodeArgs(config, name string, join ...string) []string {
	args := []string{"-config", config, "-name", name, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}
	if len(join) > 0 {
		args = append(args, "-join", strings.Join(join, ","))
	}
	return args
}

// waitMembers waits until every node in nodes sees exactly the members want, alive and
// owning part of the ring. The deadline covers the lan preset's failure detection (a probe
// every second, then a suspicion timeout of 4 to 24 seconds).
func waitMembers(t *testing.T, nodes []*proc, want ...string) {
	t.Helper()
	slices.Sort(want)
	for _, p := range nodes {
		waitFor(t, 45*time.Second, p.name+" sees members "+strings.Join(want, ","), func() error {
			got, err := aliveMembers(p.http)
			if err != nil {
				return err
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("sees %v", got)
			}
			return nil
		})
	}
}

func testClusterSurvivesKill(t *testing.T, bin string) {
	origin := newCountingOrigin(t)
	// The production timings: the "local" preset's 100ms probes can declare a process that the
	// machine is slow to schedule dead, and a ring that changes between the three requests
	// would load the key twice. Detecting the SIGKILL takes a few seconds longer with them.
	cfg := nodeConfig(t, origin.loaderURL(), presetLAN, 0)
	n1 := startProc(t, bin, "n1", nodeArgs(cfg, "n1")...)
	n2 := startProc(t, bin, "n2", nodeArgs(cfg, "n2", n1.gossip)...)
	n3 := startProc(t, bin, "n3", nodeArgs(cfg, "n3", n1.gossip)...)
	nodes := []*proc{n1, n2, n3}
	joined := time.Now()
	waitMembers(t, nodes, "n1", "n2", "n3")
	t.Logf("all three nodes have the three members in their rings %v after n3 was ready", time.Since(joined).Round(time.Millisecond))

	const key = "shared key/with spaces+slash"
	for _, p := range nodes {
		status, body, _, err := get(p.http, "items", key)
		if err != nil || status != http.StatusOK || body != originValue(key) {
			t.Fatalf("GET on %s = %d %q, %v; want 200 %q", p.name, status, body, err, originValue(key))
		}
	}
	if n := origin.count(key); n != 1 {
		t.Errorf("the origin saw %d requests for the key asked on three nodes, want 1", n)
	}
	var loads int64
	for _, p := range nodes {
		n, err := localLoads(p.http, "items")
		if err != nil {
			t.Fatal(err)
		}
		loads += n
	}
	if loads != 1 {
		t.Errorf("GET /groups: the nodes report %d loads in all, want 1", loads)
	}

	n3.signal(syscall.SIGKILL)
	if _, err := n3.wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitMembers(t, []*proc{n1, n2}, "n1", "n2")
	t.Logf("both survivors dropped the killed node from their rings %v after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	for _, p := range []*proc{n1, n2} {
		for _, k := range []string{key, "after the kill", "another one"} {
			status, body, _, err := get(p.http, "items", k)
			if err != nil || status != http.StatusOK || body != originValue(k) {
				t.Errorf("after the kill, GET %q on %s = %d %q, %v; want 200", k, p.name, status, body, err)
			}
		}
	}
}

// testFrozenOwner stops (SIGSTOP) the owner of a key while another node holds a peer wire
// connection to it: the kernel still accepts the fetch, nobody answers, and the asking node
// must give up on the owner (no pong for 1.5 s) and load the key itself, long before the
// group's load timeout.
func testFrozenOwner(t *testing.T, bin string) {
	origin := newCountingOrigin(t)
	// The lan preset: a stopped process stays in the ring for 4 s or more (its suspicion), so
	// the fetch meets a frozen owner, not a ring without it.
	cfg := nodeConfig(t, origin.loaderURL(), presetLAN, 0)
	n1 := startProc(t, bin, "f1", nodeArgs(cfg, "f1")...)
	n2 := startProc(t, bin, "f2", nodeArgs(cfg, "f2", n1.gossip)...)
	waitMembers(t, []*proc{n1, n2}, "f1", "f2")
	ring := peers.NewRing([]string{"f1", "f2"})
	var owned []string
	for i := 0; len(owned) < 2; i++ {
		if k := fmt.Sprintf("frozen %d", i); ring.OwnerName(k) == "f2" {
			owned = append(owned, k)
		}
	}
	// The first fetch opens f1's connection to f2.
	status, body, hdr, err := get(n1.http, "items", owned[0])
	if err != nil || status != http.StatusOK || body != originValue(owned[0]) || hdr.Get("X-Groupcached-Source") != "peer" {
		t.Fatalf("GET on f1 of a key f2 owns = %d %q from %q, %v; want 200 from the peer", status, body, hdr.Get("X-Groupcached-Source"), err)
	}

	n2.signal(syscall.SIGSTOP)
	t.Cleanup(func() { _ = n2.cmd.Process.Signal(syscall.SIGCONT) })
	start := time.Now()
	status, body, hdr, err = get(n1.http, "items", owned[1])
	took := time.Since(start)
	if err != nil || status != http.StatusOK || body != originValue(owned[1]) || hdr.Get("X-Groupcached-Source") != "loader" {
		t.Fatalf("GET on f1 while f2 is stopped = %d %q from %q, %v; want 200 loaded by f1", status, body, hdr.Get("X-Groupcached-Source"), err)
	}
	// 0.5 s of silence, then 1 s without a pong; the group's load_timeout is 20 s.
	if took > 5*time.Second {
		t.Errorf("the fallback took %v, want under 5 s", took)
	}
	t.Logf("with the owner stopped, the fetch fell back to a local load after %v", took.Round(time.Millisecond))
	if n := origin.count(owned[1]); n != 1 {
		t.Errorf("the origin saw %d requests for the key, want 1", n)
	}
	n2.signal(syscall.SIGCONT)
}

func testGracefulStop(t *testing.T, bin string) {
	origin := newCountingOrigin(t)
	release := origin.hold("slow")
	defer release()
	// shutdown_delay is the window in which /readyz answers 503 while the node still listens:
	// 4s (the most a config may ask is under 5s) leaves a loaded machine time to see it.
	const delay = 4 * time.Second
	p := startProc(t, bin, "solo", nodeArgs(nodeConfig(t, origin.loaderURL(), presetLocal, delay), "solo")...)

	// A request in flight when the signal arrives must be answered, not cut off.
	type answer struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan answer, 1)
	go func() {
		status, body, _, err := get(p.http, "items", "slow")
		inFlight <- answer{status, body, err}
	}()
	select {
	case <-origin.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow request never reached the origin")
	}

	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	readyz := func() (int, error) {
		resp, err := probe.Get("http://" + p.http + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := readyz(); err != nil || status != http.StatusOK {
		t.Fatalf("/readyz before the signal = %d, %v; want 200", status, err)
	}

	sent := time.Now()
	p.signal(syscall.SIGTERM)
	waitFor(t, delay, "/readyz answers 503 while the node stops", func() error {
		status, err := readyz()
		if err != nil {
			return err
		}
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d", status)
		}
		return nil
	})
	// The node stops accepting connections, yet still owes the in-flight request its answer.
	waitFor(t, 8*time.Second, "the node stops accepting connections", func() error {
		conn, err := net.DialTimeout("tcp", p.http, time.Second)
		if err != nil {
			return nil
		}
		conn.Close()
		return errors.New("still accepting")
	})
	select {
	case a := <-inFlight:
		t.Fatalf("the in-flight request ended before the origin answered: %d %q %v", a.status, a.body, a.err)
	default:
	}
	release()
	a := <-inFlight
	if a.err != nil || a.status != http.StatusOK || a.body != originValue("slow") {
		t.Errorf("in-flight request = %d %q, %v; want 200 %q", a.status, a.body, a.err, originValue("slow"))
	}
	code, err := p.wait(10*time.Second - time.Since(sent))
	if err != nil {
		t.Fatalf("not stopped within 10s of SIGTERM: %v", err)
	}
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	t.Logf("exited %v after SIGTERM (shutdown_delay %v, then leave and drain)", time.Since(sent).Round(10*time.Millisecond), delay)
}

func testBadConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		config string
		args   []string
		want   string // FILE is replaced by the config's path
	}{
		{"unknown key", "node:\n  name: a\n  htp_addr: 127.0.0.1:1\ngroups:\n  - name: g\n    loader: {type: file, root: .}\n",
			nil, `FILE:3: node.htp_addr: unknown key "htp_addr"`},
		{"bad size", "groups:\n  - name: g\n    loader: {type: file, root: .}\n    cache_bytes: 12 parsecs\n",
			nil, `FILE:4: groups[0].cache_bytes: invalid size "12 parsecs"`},
		{"bad duration", "groups:\n  - name: g\n    ttl: 5 minutes\n    loader: {type: file, root: .}\n",
			nil, `FILE:3: groups[0].ttl: invalid duration "5 minutes"`},
		{"value out of range", "groups:\n  - name: g\n    hot_cache_fraction: 2\n    loader: {type: file, root: .}\n",
			nil, `FILE:3: groups[0].hot_cache_fraction: must be in [0, 0.5]`},
		{"loader that cannot start", "groups:\n  - name: g\n    loader:\n      type: file\n      root: /nonexistent/groupcached\n",
			nil, `FILE:4: groups[0].loader:`},
		{"bad flag value", "groups:\n  - name: g\n    loader: {type: file, root: .}\n",
			[]string{"-http", "no-port"}, `flag -http: invalid address "no-port"`},
		{"unknown flag", "groups:\n  - name: g\n    loader: {type: file, root: .}\n",
			[]string{"-port", "1"}, `flag provided but not defined: -port`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad%d.yaml", i))
			if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-config", path, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}, tt.args...)
			code, out := runBinary(t, bin, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; output:\n%s", code, out)
			}
			if want := strings.ReplaceAll(tt.want, "FILE", path); !strings.Contains(out, want) {
				t.Errorf("output:\n%s\nwant it to contain:\n%s", out, want)
			}
		})
	}
}

func testEmbeddedConfig(t *testing.T, bin string) {
	entries, err := os.ReadDir("examples/data")
	if err != nil {
		t.Fatalf("the embedded config serves examples/data: %v", err)
	}
	var file string
	for _, e := range entries {
		if e.Type().IsRegular() {
			file = e.Name()
			break
		}
	}
	if file == "" {
		t.Fatal("examples/data has no file to serve")
	}
	want, err := os.ReadFile(filepath.Join("examples/data", file))
	if err != nil {
		t.Fatal(err)
	}
	// No -config: the embedded config.yaml, with only the ports moved off the defaults so the
	// test cannot collide with a node someone is running.
	p := startProc(t, bin, "default", "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0")
	status, body, _, err := get(p.http, "files", file)
	if err != nil || status != http.StatusOK || body != string(want) {
		t.Errorf("GET /groups/files/keys/%s = %d %q, %v; want 200 and the file's bytes", file, status, body, err)
	}
	status, _, _, err = get(p.http, "files", "no/such/file")
	if err != nil || status != http.StatusNotFound {
		t.Errorf("GET a missing file = %d, %v; want 404", status, err)
	}
	p.signal(syscall.SIGINT)
	if code, err := p.wait(10 * time.Second); err != nil || code != 0 {
		t.Errorf("after SIGINT: exit status %d, %v; want 0", code, err)
	}
}

// testClusterScript runs scripts/cluster.sh --smoke with the test's binary on free ports: it
// starts three nodes, waits for membership, checks a key is served everywhere and loaded
// once, and stops them.
func testClusterScript(t *testing.T, bin string) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scripts/cluster.sh needs %s: %v", tool, err)
		}
	}
	httpBase, gossipBase := freePortRun(t, 3), freePortRun(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "scripts/cluster.sh", "--smoke")
	// On timeout, SIGTERM: the script's trap then stops the nodes it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	// The lan preset, for the reason the SIGKILL test gives: the smoke check counts loads.
	cmd.Env = append(os.Environ(), fmt.Sprintf("HTTP_BASE=%d", httpBase), fmt.Sprintf("GOSSIP_BASE=%d", gossipBase),
		"GROUPCACHED_PRESET=lan", "GROUPCACHED_BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/cluster.sh --smoke: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "smoke check passed") {
		t.Errorf("scripts/cluster.sh --smoke succeeded without its check:\n%s", out)
	}
}

// freePortRun finds n consecutive loopback ports that are free for TCP and UDP right now,
// below Linux's ephemeral range (32768 and up), where the kernel hands out ":0" ports and
// client ports, so that nothing else in this test run takes them in the meantime.
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(12000)
		var closers []io.Closer
		ok := true
		for p := base; p < base+n && ok; p++ {
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, l)
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, u)
		}
		for _, c := range closers {
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no run of free ports found")
	return 0
}
