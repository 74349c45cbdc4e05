package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file holds what the end-to-end tests share: building and running the real binary,
// reading its JSON endpoints, and polling with a deadline.

// waitFor polls cond every 20ms until it returns nil or the deadline passes, then fails the
// test with cond's last error.
func waitFor(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, within, err)
		}
		<-tick.C
	}
}

// testClient is the tests' client: a timeout, so a stuck node fails the test instead of
// hanging it, and enough idle connections per node that 100 concurrent clients reuse theirs
// instead of opening one per request.
var testClient = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 400, MaxIdleConnsPerHost: 200, IdleConnTimeout: 30 * time.Second},
}

// get fetches a key and returns its status and body.
func get(base, groupName, key string) (int, string, http.Header, error) {
	u := fmt.Sprintf("http://%s/groups/%s/keys/%s", base, groupName, url.PathEscape(key))
	resp, err := testClient.Get(u)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// getJSON decodes a JSON endpoint of a node into v.
func getJSON(addr, path string, v any) error {
	resp, err := testClient.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// clusterView is the part of GET /cluster the tests read.
type clusterView struct {
	Node    string `json:"node"`
	Members []struct {
		Name  string  `json:"name"`
		State string  `json:"state"`
		Share float64 `json:"share"`
	} `json:"members"`
}

// aliveMembers returns the sorted names of the members addr sees alive and owning part of
// the ring.
func aliveMembers(addr string) ([]string, error) {
	var cv clusterView
	if err := getJSON(addr, "/cluster", &cv); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range cv.Members {
		if m.State == "alive" && m.Share > 0 {
			names = append(names, m.Name)
		}
	}
	return names, nil
}

// groupsView is the part of GET /groups the tests read.
type groupsView struct {
	Groups []struct {
		Name  string `json:"name"`
		Stats struct {
			Gets       int64 `json:"gets"`
			LocalLoads int64 `json:"local_loads"`
			PeerLoads  int64 `json:"peer_loads"`
		} `json:"stats"`
	} `json:"groups"`
}

// localLoads returns how many loader calls group made on the node at addr.
func localLoads(addr, groupName string) (int64, error) {
	var gv groupsView
	if err := getJSON(addr, "/groups", &gv); err != nil {
		return 0, err
	}
	for _, g := range gv.Groups {
		if g.Name == groupName {
			return g.Stats.LocalLoads, nil
		}
	}
	return 0, fmt.Errorf("node %s has no group %q", addr, groupName)
}

// buildBinary compiles this package into dir and returns the binary's path.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "groupcached")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a groupcached process started by a test.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	http   string // bound HTTP address, read from the ready log line
	gossip string // bound gossip address

	mu     sync.Mutex
	output strings.Builder // stderr so far, for failure messages
	ready  chan struct{}
	exited chan struct{} // closed when the process has exited; then state is set
	state  *os.ProcessState
}

// readyLine is the log line a node writes once it serves and has joined its cluster.
var readyLine = regexp.MustCompile(`msg="groupcached ready".* http=(\S+) gossip=(\S+)`)

// startLimit bounds how long a process may take to become ready.
const startLimit = 30 * time.Second

// startProc runs the binary with args and waits until it logs that it is ready. The process
// is killed at the end of the test if it is still running.
func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), "GROUPCACHED_SECRET_KEY=", "GROUPCACHED_ADMIN_TOKEN=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.log())
		}
	})
	started := time.Now()
	timer := time.NewTimer(startLimit)
	defer timer.Stop()
	select {
	case <-p.ready:
		t.Logf("%s ready %v after exec, http %s, gossip %s", name, time.Since(started).Round(time.Millisecond), p.http, p.gossip)
	case <-p.exited:
		t.Fatalf("%s exited before it was ready (%v):\n%s", name, p.state, p.log())
	case <-timer.C:
		t.Fatalf("%s not ready after %v:\n%s", name, startLimit, p.log())
	}
	return p
}

// read collects the process's stderr, spots the ready line and reaps the process.
func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	readySeen := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.output.WriteString(line + "\n")
		if m := readyLine.FindStringSubmatch(line); m != nil && !readySeen {
			p.http, p.gossip = m[1], m[2]
			readySeen = true
			close(p.ready)
		}
		p.mu.Unlock()
	}
	_ = p.cmd.Wait()
	p.state = p.cmd.ProcessState
	close(p.exited)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling %s: %v", p.name, err)
	}
	if sig == syscall.SIGSTOP {
		p.waitStopped()
	}
}

// waitStopped returns once every thread of the process is stopped (state T in
// /proc/<pid>/task/*/stat): kill returns when the signal is sent, and a thread running on
// another core can still answer a request before it takes effect.
func (p *proc) waitStopped() {
	p.t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid)
	waitFor(p.t, 5*time.Second, p.name+" stopped after SIGSTOP", func() error {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			return fmt.Errorf("no threads in %s", dir)
		}
		for _, task := range tasks {
			stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			// The state follows the command name in parentheses: "pid (comm) T ...".
			if i := bytes.LastIndexByte(stat, ')'); err == nil && i >= 0 && i+2 < len(stat) && stat[i+2] != 'T' && stat[i+2] != 't' {
				return fmt.Errorf("thread %s is in state %c", task.Name(), stat[i+2])
			}
		}
		return nil
	})
}

// wait waits at most d for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) (int, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.state.ExitCode(), nil
	case <-timer.C:
		return 0, fmt.Errorf("%s still running after %v", p.name, d)
	}
}

// runBinary runs the binary to completion (bounded by a minute) and returns its exit code and
// combined output.
func runBinary(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running %s: %v", bin, err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}
