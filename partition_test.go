//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPartitionNoResurrection runs three real groupcached processes, each in a network
// namespace of its own, linked by veth pairs to a bridge in a fourth namespace (so nothing
// reaches the host's network, and the host's bridge filtering does not apply), on a /24 of
// 10.213.x.0 that exists only in those namespaces. It cuts the owner of a key off (its
// veth down), removes the key on another node (reported incomplete), heals the link and
// checks that, once the cluster is whole again, no node serves the removed value: the
// removal was kept as a tombstone and re-sent to the owner, which still held it.
func TestPartitionNoResurrection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it in network namespaces; skipped with -short")
	}
	tn := newTestNet(t, 3)
	bin := buildBinary(t, t.TempDir())

	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "k"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*7 + os.Getpid())
	}
	const token = "partition-test-admin-token"
	config := writeConfig(t, fmt.Sprintf(`node:
  preset: local
  shutdown_delay: 0s
  log_level: info
  tombstone_ttl: 1m
groups:
  - name: files
    cache_bytes: 8MiB
    loader: {type: file, root: %q}
`, root))
	env := []string{"GROUPCACHED_SECRET_KEY=" + base64.StdEncoding.EncodeToString(secret),
		"GROUPCACHED_ADMIN_TOKEN=" + token}

	names := []string{"a", "b", "c"}
	nodes := make([]*proc, len(names))
	for i, name := range names {
		args := []string{"-config", config, "-name", name,
			"-http", tn.ips[i] + ":8080", "-gossip", tn.ips[i] + ":7946"}
		if i > 0 {
			args = append(args, "-join", tn.ips[0]+":7946")
		}
		nodes[i] = startNetnsProc(t, tn.ns[i], bin, name, env, args...)
	}
	c := tn.client()
	waitFor(t, 30*time.Second, "three members in every ring", func() error {
		return tn.allSee(c, nodes, names...)
	})

	// Load the key, then find its owner: the node that called the loader.
	if status, body, err := nsGet(c, nodes[0].http, "files", "k"); err != nil || status != 200 || body != "old" {
		t.Fatalf("first GET: %d %q %v", status, body, err)
	}
	owner := -1
	for i, n := range nodes {
		var gv groupsView
		if err := nsJSON(c, n.http, "/groups", &gv); err != nil {
			t.Fatal(err)
		}
		if gv.Groups[0].Stats.LocalLoads == 1 {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no node loaded the key")
	}
	issuer := (owner + 1) % len(nodes)
	if err := os.WriteFile(filepath.Join(root, "k2"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes { // the owner caches both, and the others may keep hot copies
		for _, key := range []string{"k", "k2"} {
			if status, body, err := nsGet(c, n.http, "files", key); err != nil || status != 200 || body != "old" {
				t.Fatalf("GET %s on %s: %d %q %v", key, names[i], status, body, err)
			}
		}
	}
	t.Logf("owner %s, removal issued on %s", names[owner], names[issuer])

	for _, key := range []string{"k", "k2"} {
		if err := os.WriteFile(filepath.Join(root, key), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	tn.link(t, owner, false)

	// At once, the owner is still in every ring and the issuer's call to it fails. Another
	// key: TCP may still deliver this removal after the heal (the frame sits in a socket's
	// send queue), which would hide a missing tombstone for "k".
	status, body := nsDelete(t, c, nodes[issuer].http, "/groups/files/keys/k2", token)
	t.Logf("DELETE at the cut, answered %v after it: %d %s", time.Since(cut).Round(time.Millisecond), status, body)
	wantIncomplete(t, status, body)

	// Once the others hold the owner dead, a removal is not sent to it at all and counts it
	// unconfirmed: only the tombstone can take the value off the owner after the heal.
	others := slices.Delete(slices.Clone(nodes), owner, owner+1)
	otherNames := slices.Delete(slices.Clone(names), owner, owner+1)
	waitFor(t, 20*time.Second, "the owner out of the other rings", func() error {
		return tn.allSee(c, others, otherNames...)
	})
	t.Logf("owner out of the other rings %v after the cut", time.Since(cut).Round(time.Millisecond))
	status, body = nsDelete(t, c, nodes[issuer].http, "/groups/files/keys/k", token)
	t.Logf("DELETE with the owner dead: %d %s", status, body)
	wantIncomplete(t, status, body)
	if status, body, err := nsGet(c, nodes[owner].http, "files", "k"); err != nil || body != "old" {
		t.Fatalf("the cut-off owner serves %d %q %v; want its old copy (is it really cut off?)", status, body, err)
	}

	t.Logf("heal at %s", time.Now().UTC().Format("15:04:05.000"))
	healed := time.Now()
	tn.link(t, owner, true)
	waitFor(t, 30*time.Second, "three members in every ring after the heal", func() error {
		return tn.allSee(c, nodes, names...)
	})
	t.Logf("cluster whole again %v after the heal", time.Since(healed).Round(time.Millisecond))
	for i, n := range nodes {
		for _, key := range []string{"k", "k2"} {
			status, body, err := nsGet(c, n.http, "files", key)
			if err != nil || status != 200 {
				t.Fatalf("GET %s on %s after the heal: %d %q %v", key, names[i], status, body, err)
			}
			if body != "new" {
				t.Errorf("GET %s on %s after the heal: %q, the removed value came back", key, names[i], body)
			}
		}
	}
	resent := false
	for line := range strings.Lines(nodes[issuer].log()) {
		if strings.Contains(line, "removals re-sent") || strings.Contains(line, "re-sending removals") {
			t.Logf("%s: %s", names[issuer], strings.TrimSpace(line))
			resent = resent || strings.Contains(line, "removals re-sent")
		}
	}
	if !resent {
		t.Errorf("%s did not log the re-sent removals", names[issuer])
	}
}

// wantIncomplete fails the test unless a DELETE answer says that one of the two other
// members did not confirm.
func wantIncomplete(t *testing.T, status int, body string) {
	t.Helper()
	var answer struct {
		PeersConfirmed int    `json:"peers_confirmed"`
		Peers          int    `json:"peers"`
		Code           string `json:"code"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("DELETE answer %q: %v", body, err)
	}
	if status != http.StatusBadGateway || answer.Code != "invalidation_incomplete" || answer.Peers != 2 || answer.PeersConfirmed != 1 {
		t.Fatalf("DELETE during the partition: %d %s; want 502 invalidation_incomplete, 1 of 2 peers confirmed", status, body)
	}
}

// testNet is a set of network namespaces, one per node, bridged in a namespace of their own.
type testNet struct {
	bridgeNS string
	ns       []string // per node
	ips      []string // per node
	links    []string // per node: its veth end on the bridge, in bridgeNS
}

// newTestNet creates n node namespaces, or skips the test when it cannot. Everything is
// removed in t.Cleanup, whatever happens.
func newTestNet(t *testing.T, n int) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2): cannot create network namespaces")
	}
	pid := os.Getpid()
	tn := &testNet{bridgeNS: fmt.Sprintf("gcpart%d-br", pid)}
	if out, err := exec.Command("ip", "netns", "add", tn.bridgeNS).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", tn.bridgeNS).Run() })
	subnet := 1 + pid%250
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("-n", tn.bridgeNS, "link", "add", "br0", "type", "bridge")
	ip("-n", tn.bridgeNS, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("gcpart%d-%d", pid, i)
		ip("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		link := fmt.Sprintf("n%d", i)
		// Created in the node's namespace, its peer moved to the bridge's: both ends die
		// with the namespaces.
		ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", link, "netns", tn.bridgeNS)
		addr := fmt.Sprintf("10.213.%d.%d", subnet, i+1)
		ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip("-n", ns, "link", "set", "eth0", "up")
		ip("-n", ns, "link", "set", "lo", "up")
		ip("-n", tn.bridgeNS, "link", "set", link, "master", "br0")
		ip("-n", tn.bridgeNS, "link", "set", link, "up")
		tn.ns, tn.ips, tn.links = append(tn.ns, ns), append(tn.ips, addr), append(tn.links, link)
	}
	return tn
}

// link sets node i's link to the bridge up or down.
func (tn *testNet) link(t *testing.T, i int, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "-n", tn.bridgeNS, "link", "set", tn.links[i], state).CombinedOutput(); err != nil {
		t.Fatalf("link %s %s: %v: %s", tn.links[i], state, err, out)
	}
}

// client returns an HTTP client whose connections to a node's address are made from inside
// that node's namespace (the test process itself stays in the host's).
func (tn *testNet) client() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, _, _ := net.SplitHostPort(addr)
				i := slices.Index(tn.ips, host)
				if i < 0 {
					return nil, fmt.Errorf("%s is not a test node", addr)
				}
				return dialInNetns(ctx, tn.ns[i], network, addr)
			},
		},
	}
}

// allSee reports an error unless every node in nodes sees exactly want alive in its ring.
func (tn *testNet) allSee(c *http.Client, nodes []*proc, want ...string) error {
	for _, n := range nodes {
		var cv clusterView
		if err := nsJSON(c, n.http, "/cluster", &cv); err != nil {
			return err
		}
		var alive []string
		for _, m := range cv.Members {
			if m.State == "alive" && m.Share > 0 {
				alive = append(alive, m.Name)
			}
		}
		if !slices.Equal(alive, want) {
			return fmt.Errorf("%s sees %v, want %v", n.name, alive, want)
		}
	}
	return nil
}

// dialInNetns creates the socket inside the namespace ns: a socket belongs to the namespace
// of the thread that creates it, so the dial runs on a locked thread switched into ns and
// back. A thread that cannot switch back is left locked, and Go ends it with the goroutine.
func dialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if setns(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func setns(f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	return nil
}

func nsGet(c *http.Client, addr, groupName, key string) (int, string, error) {
	resp, err := c.Get(fmt.Sprintf("http://%s/groups/%s/keys/%s", addr, groupName, key))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func nsJSON(c *http.Client, addr, path string, v any) error {
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s", path, addr, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func nsDelete(t *testing.T, c *http.Client, addr, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s on %s: %v", path, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// startNetnsProc runs the binary inside namespace ns with env added, like startProc.
func startNetnsProc(t *testing.T, ns, bin, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go p.read(bufio.NewReader(stderr))
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // ip netns exec execs the binary: this is its pid
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.log())
		}
	})
	select {
	case <-p.ready:
	case <-p.exited:
		t.Fatalf("%s exited before it was ready (%v):\n%s", name, p.state, p.log())
	case <-time.After(startLimit):
		t.Fatalf("%s not ready after %v:\n%s", name, startLimit, p.log())
	}
	return p
}
