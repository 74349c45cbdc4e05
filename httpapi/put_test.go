package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func put(t *testing.T, n *clusterNode, key, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, n.url+keyPath("g", key), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

// TestPutOnNonOwner: a PUT on a node that does not own the key is stored on the owner, read
// back from every node with its TTL without calling the origin, over a stale hot copy, and
// expires on time.
func TestPutOnNonOwner(t *testing.T) {
	o := &origin{}
	gcfg := testGroupConfig()
	gcfg.HotCacheRate = 1
	a := startClusterNodeGroup(t, "node-a", o, nil, gcfg)
	b := startClusterNodeGroup(t, "node-b", o, nil, gcfg, a.Cluster().GossipAddr())
	c := startClusterNodeGroup(t, "node-c", o, nil, gcfg, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b, c}
	waitMembers(t, nodes...)

	key := "written"
	var writer *clusterNode
	for _, n := range nodes {
		if n.Cluster().Owner(key) != n.Name() {
			writer = n
			break
		}
	}
	// A copy of the origin's value everywhere first: the PUT must replace it on every node.
	for _, n := range nodes {
		if resp, body := n.get(t, http.MethodGet, keyPath("g", key)); resp.StatusCode != http.StatusOK || string(body) != "value of "+key {
			t.Fatalf("GET before the PUT on %s: %d %q", n.Name(), resp.StatusCode, body)
		}
	}
	loads := o.count(key)
	// With hot_cache_rate 1 each non-owner now holds a hot copy of the old value: the stale
	// copies the PUT must replace.
	for _, n := range nodes {
		if n.Cluster().Owner(key) == n.Name() {
			continue
		}
		if resp, _ := n.get(t, http.MethodGet, keyPath("g", key)); resp.Header.Get("X-Groupcached-Source") != "hot" {
			t.Fatalf("second GET before the PUT on %s: source %q, want a hot copy", n.Name(), resp.Header.Get("X-Groupcached-Source"))
		}
	}

	resp, body := put(t, writer, key, `{"v":1}`, "Content-Type", "application/json", "Cache-Control", "max-age=2")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT on %s: %d %s", writer.Name(), resp.StatusCode, body)
	}
	var ans invalidation
	if err := json.Unmarshal(body, &ans); err != nil || ans.PeersConfirmed != 2 {
		t.Errorf("PUT answer %s (%v): want peers_confirmed 2", body, err)
	}
	for _, n := range nodes {
		resp, body := n.get(t, http.MethodGet, keyPath("g", key))
		if resp.StatusCode != http.StatusOK || string(body) != `{"v":1}` {
			t.Fatalf("GET after the PUT on %s: %d %q", n.Name(), resp.StatusCode, body)
		}
		cc := resp.Header.Get("Cache-Control")
		age, err := strconv.Atoi(strings.TrimPrefix(cc, "max-age="))
		if err != nil || age > 2 {
			t.Errorf("Cache-Control on %s = %q, want max-age <= 2", n.Name(), cc)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type on %s = %q, want the PUT's application/json", n.Name(), ct)
		}
	}
	if got := o.count(key); got != loads {
		t.Errorf("the origin loaded %q %d more times after the PUT, want 0", key, got-loads)
	}
	// Expiry: every node gives the origin's value again within the TTL and a margin.
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range nodes {
		for {
			_, body := n.get(t, http.MethodGet, keyPath("g", key))
			if string(body) == "value of "+key {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves %q 5 s after a PUT with max-age=2", n.Name(), body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestPutLimitsAndToken(t *testing.T) {
	o := &origin{}
	a := startClusterNodeWith(t, "node-a", o, func(cfg *NodeConfig) { cfg.API.AdminToken = testAdminToken })
	resp, body := put(t, a, "k", "v")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("PUT without the token: %d %s, want 401", resp.StatusCode, body)
	}
	auth := "Bearer " + testAdminToken
	resp, body = put(t, a, "k", "v", "Authorization", auth)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("PUT with the token: %d %s, want 200", resp.StatusCode, body)
	}
	big := strings.Repeat("x", int(testGroupConfig().CacheBytes))
	resp, body = put(t, a, "k", big, "Authorization", auth)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), CodeTooLarge) {
		t.Errorf("PUT over the limit: %d %s, want 413 too_large", resp.StatusCode, body)
	}
	// At the limit, which counts the key: stored and served; one byte more: 413, not a 200
	// for a value the cache then drops.
	limit := int(a.Groups()[0].MaxValueBytes()) - len("k")
	resp, body = put(t, a, "k", strings.Repeat("y", limit), "Authorization", auth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT at the limit (%d bytes): %d %s, want 200", limit, resp.StatusCode, body)
	}
	if _, got := a.get(t, http.MethodGet, keyPath("g", "k")); len(got) != limit {
		t.Errorf("GET after the PUT at the limit: %d bytes, want %d", len(got), limit)
	}
	resp, body = put(t, a, "k", strings.Repeat("y", limit+1), "Authorization", auth)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), CodeTooLarge) {
		t.Errorf("PUT one byte over the limit: %d %s, want 413 too_large", resp.StatusCode, body)
	}
}
