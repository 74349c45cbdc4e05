package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Issue 12's warm half, on real processes: through a rolling restart of three nodes (the seed
// last) and a scale-out from three to four, under read load, the origin is asked again for
// almost no key: the stopping node hands its values to their next owners, and a node that
// (re)joins asks each key's previous owner before the origin.
//
// GROUPCACHED_WARM_BASELINE=1 also runs both with the hand-off and the peeks disabled
// (handoff_bytes: 0, warm_time: 0s) and logs the figures, for BENCHMARKS.md; it asserts
// nothing about them.

const (
	warmKeys    = 300
	warmClients = 16
)

func TestWarmRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t, t.TempDir())
	variants := []bool{true}
	if os.Getenv("GROUPCACHED_WARM_BASELINE") != "" {
		variants = append(variants, false)
	}
	for _, warm := range variants {
		name := "warm"
		if !warm {
			name = "baseline without hand-off and peeks"
		}
		t.Run(name+"/rolling restart, seed last", func(t *testing.T) {
			c := startWarmCluster(t, bin, warm, 3)
			load := c.startLoad()
			for _, i := range []int{1, 2, 0} {
				c.restart(i)
			}
			c.readEvery(load)
			c.check(load.stop(), warm, 1.05, "loads per key through the rolling restart")
		})
		t.Run(name+"/scale-out 3 to 4", func(t *testing.T) {
			c := startWarmCluster(t, bin, warm, 3)
			load := c.startLoad()
			c.add()
			c.readEvery(load)
			c.check(load.stop(), warm, 1.05, "loads per key through the scale-out (at most 5% reloaded)")
		})
	}
}

// warmCluster is a cluster of test processes over a counting origin, with the pool of nodes
// its clients read from (a load balancer's view: a node leaves it before its SIGTERM and
// joins it once every node sees every member).
type warmCluster struct {
	t      *testing.T
	bin    string
	config string
	origin *countingOrigin
	names  []string
	procs  []*proc
	pool   atomic.Pointer[[]string] // HTTP addresses the clients use
	seed   string                   // n0's gossip address, which the others join
	keys   []string
}

func startWarmCluster(t *testing.T, bin string, warm bool, n int) *warmCluster {
	c := &warmCluster{t: t, bin: bin, origin: newCountingOrigin(t)}
	handOff, warmTime := "64MiB", "1m"
	if !warm {
		handOff, warmTime = "0", "0s"
	}
	// The lan preset: the production timings, which a loaded machine does not mistake for
	// failures. shutdown_delay 0s: the test's pool is the load balancer, and drops the node
	// before the signal.
	c.config = writeConfig(t, fmt.Sprintf(`node:
  preset: lan
  shutdown_delay: 0s
  handoff_bytes: %s
  warm_time: %s
  log_level: info
groups:
  - name: items
    cache_bytes: 8MiB
    hot_cache_fraction: 0
    load_timeout: 20s
    loader: {type: http, url: %q}
`, handOff, warmTime, c.origin.loaderURL()))
	for i := range n {
		c.names = append(c.names, "n"+strconv.Itoa(i))
		c.procs = append(c.procs, nil)
		c.procs[i] = c.start(i)
	}
	waitMembers(t, c.procs, c.names...)
	c.publish()
	for i := range warmKeys {
		c.keys = append(c.keys, "key-"+strconv.Itoa(i))
	}
	for _, k := range c.keys { // warm: every key loaded once, through the seed
		if status, body, _, err := get(c.procs[0].http, "items", k); err != nil || status != 200 || body != originValue(k) {
			t.Fatalf("warming %s: %d %q %v", k, status, body, err)
		}
	}
	if req, keys := c.origin.total(); req != warmKeys || keys != warmKeys {
		t.Fatalf("warming: %d origin requests for %d keys", req, keys)
	}
	return c
}

// start runs node i, joining the seed n0 unless it is n0: the seed starts with no join, as
// in the deploy, and is merged back by the others.
func (c *warmCluster) start(i int) *proc {
	var join []string
	if i > 0 {
		join = []string{c.seed}
	}
	args := nodeArgs(c.config, c.names[i], join...)
	if old := c.procs[i]; old != nil { // a restart: the same addresses, as a host keeps them
		args = append(args, "-http", old.http, "-gossip", old.gossip)
	}
	p := startProc(c.t, c.bin, c.names[i], args...)
	if i == 0 {
		c.seed = p.gossip
	}
	return p
}

// publish sets the clients' pool to every node.
func (c *warmCluster) publish(except ...int) {
	var addrs []string
	for i, p := range c.procs {
		if !slicesContains(except, i) {
			addrs = append(addrs, p.http)
		}
	}
	c.pool.Store(&addrs)
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

var handOffLine = regexp.MustCompile(`msg="stopping: handed off".* entries=(\d+) bytes=(\d+) failed=(\d+) duration=(\S+)`)

// restart takes node i out of the pool, stops it with SIGTERM, starts it again (at new
// ports, under its name) and puts it back once every node sees all members.
func (c *warmCluster) restart(i int) {
	t := c.t
	c.publish(i)
	before, _ := c.origin.total()
	p := c.procs[i]
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	if code, err := p.wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("%s after SIGTERM: exit %d, %v", p.name, code, err)
	}
	stopped := time.Since(sent)
	handed := "no hand-off logged"
	if m := handOffLine.FindStringSubmatch(p.log()); m != nil {
		handed = fmt.Sprintf("handed off %s entries, %s bytes, %s failed, in %s", m[1], m[2], m[3], m[4])
	}
	others := append(append([]*proc(nil), c.procs[:i]...), c.procs[i+1:]...)
	var otherNames []string
	for _, q := range others {
		otherNames = append(otherNames, q.name)
	}
	waitMembers(t, others, otherNames...)
	c.procs[i] = c.start(i)
	waitMembers(t, c.procs, c.names...)
	c.publish()
	after, _ := c.origin.total()
	t.Logf("restart of %s: stopped in %v (%s); origin requests +%d", p.name, stopped.Round(time.Millisecond), handed, after-before)
}

// add starts one more node, joining the seed, and puts it in the pool once every node sees
// all members.
func (c *warmCluster) add() {
	before, _ := c.origin.total()
	i := len(c.procs)
	c.names = append(c.names, "n"+strconv.Itoa(i))
	c.procs = append(c.procs, nil)
	c.procs[i] = c.start(i)
	waitMembers(c.t, c.procs, c.names...)
	c.publish()
	after, _ := c.origin.total()
	c.t.Logf("scale-out to %d nodes: origin requests +%d", len(c.procs), after-before)
}

// readLoad is warmClients clients reading random warm keys from the pool until stopped.
type readLoad struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	requests atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	firstErr string
}

func (c *warmCluster) startLoad() *readLoad {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // bounded whatever happens
	l := &readLoad{cancel: cancel}
	for range warmClients {
		l.wg.Go(func() {
			for n := 0; n < 1_000_000 && ctx.Err() == nil; n++ {
				pool := *c.pool.Load()
				addr, key := pool[rand.IntN(len(pool))], c.keys[rand.IntN(len(c.keys))]
				status, body, _, err := get(addr, "items", key)
				l.requests.Add(1)
				if err != nil || status != 200 || body != originValue(key) {
					l.failures.Add(1)
					l.mu.Lock()
					if l.firstErr == "" {
						l.firstErr = fmt.Sprintf("GET %s from %s: %d %q %v", key, addr, status, body, err)
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// readEvery reads every warm key from every node once, with the clients still reading, so
// that every key whose owner changed is asked for before the origin is counted.
func (c *warmCluster) readEvery(l *readLoad) {
	for _, addr := range *c.pool.Load() {
		for _, key := range c.keys {
			status, body, _, err := get(addr, "items", key)
			l.requests.Add(1)
			if err != nil || status != 200 || body != originValue(key) {
				l.failures.Add(1)
				l.mu.Lock()
				if l.firstErr == "" {
					l.firstErr = fmt.Sprintf("GET %s from %s: %d %q %v", key, addr, status, body, err)
				}
				l.mu.Unlock()
			}
		}
	}
}

func (l *readLoad) stop() *readLoad {
	l.cancel()
	l.wg.Wait()
	return l
}

// check reports the origin's requests per warm key and the clients' failures; with warm set
// it fails the test when the loads per key exceed limit or any request failed.
func (c *warmCluster) check(l *readLoad, warm bool, limit float64, what string) {
	t := c.t
	req, _ := c.origin.total()
	perKey := float64(req) / warmKeys
	t.Logf("%s: %.3f (%d origin requests for %d keys; %d client requests, %d failed; warm %v)",
		what, perKey, req, warmKeys, l.requests.Load(), l.failures.Load(), warm)
	if !warm {
		return
	}
	if l.failures.Load() != 0 {
		t.Errorf("%d of %d client requests failed; first: %s", l.failures.Load(), l.requests.Load(), l.firstErr)
	}
	if perKey > limit {
		t.Errorf("%.3f origin loads per key, limit %.2f", perKey, limit)
	}
}
