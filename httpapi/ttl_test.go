package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxAge is a response's Cache-Control max-age, or -1.
func maxAge(resp *http.Response) int {
	n, err := strconv.Atoi(strings.TrimPrefix(resp.Header.Get("Cache-Control"), "max-age="))
	if err != nil {
		return -1
	}
	return n
}

// TestRemainingTTLEverywhere: a value loaded with a 2 s TTL and aged by a second is served
// with what is left of it (under a second) by the owner and, over the peer wire, by a non-owner, whose hot copy
// then expires at the owner's deadline, not a whole TTL after it arrived. The same for a PUT.
// An owner that reported the full TTL would fail both (non-owner max-age 2, hot copy alive
// about a second past the deadline).
func TestRemainingTTLEverywhere(t *testing.T) {
	gcfg := testGroupConfig()
	gcfg.TTL = 2 * time.Second
	gcfg.HotCacheRate = 1 // every peer fetch leaves a hot copy
	o := &origin{}
	a := startClusterNodeGroup(t, "node-a", o, nil, gcfg)
	b := startClusterNodeGroup(t, "node-b", o, nil, gcfg, a.Cluster().GossipAddr())
	c := startClusterNodeGroup(t, "node-c", o, nil, gcfg, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b, c}
	waitMembers(t, nodes...)

	for _, how := range []string{"load", "put"} {
		t.Run(how, func(t *testing.T) {
			key := "aged-" + how
			var owner, asker *clusterNode
			for _, n := range nodes {
				if n.Cluster().Owner(key) == n.Name() {
					owner = n
				} else if asker == nil {
					asker = n
				}
			}
			stored := time.Now()
			want := "value of " + key
			if how == "load" {
				if resp, _ := owner.get(t, http.MethodGet, keyPath("g", key)); resp.StatusCode != http.StatusOK || maxAge(resp) != 2 {
					t.Fatalf("first GET on the owner: %d, max-age %d; want 200, 2", resp.StatusCode, maxAge(resp))
				}
			} else {
				want = "put " + key
				if resp, body := put(t, owner, key, want, "Cache-Control", "max-age=2"); resp.StatusCode != http.StatusOK {
					t.Fatalf("PUT: %d %s", resp.StatusCode, body)
				}
			}
			deadline := stored.Add(2 * time.Second)
			// Age the entry: poll the owner until it reports less than a second left (max-age
			// counts whole seconds, rounded down).
			for {
				resp, _ := owner.get(t, http.MethodGet, keyPath("g", key))
				if maxAge(resp) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the owner still reports max-age %s at the entry's deadline", resp.Header.Get("Cache-Control"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The asker fetches it now over the wire: it must get the remaining TTL.
			resp, body := asker.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != want {
				t.Fatalf("GET on the asker: %d %q", resp.StatusCode, body)
			}
			if src, age := resp.Header.Get("X-Groupcached-Source"), maxAge(resp); src != "peer" || age != 0 {
				t.Fatalf("GET on the asker: source %s, max-age %d; want peer and 0 (the owner's remaining TTL, under a second)", src, age)
			}
			// Its hot copy is served until the owner's deadline and gone by then (a margin for
			// the sweep and the rounding of max-age).
			for first := true; ; first = false {
				resp, body := asker.get(t, http.MethodGet, keyPath("g", key))
				src := resp.Header.Get("X-Groupcached-Source")
				if first && src != "hot" {
					t.Fatalf("second GET on the asker: source %s, want its hot copy", src)
				}
				if src != "hot" || string(body) != want {
					break
				}
				if time.Now().After(deadline.Add(500 * time.Millisecond)) {
					t.Fatalf("the asker's hot copy outlives the owner's deadline by more than 0.5 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
