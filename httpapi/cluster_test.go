package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// clusterNode is one node of a real cluster: memberlist gossip, the peers transport, and the
// API on one HTTP server, all on 127.0.0.1.
type clusterNode struct {
	name    string
	api     *API
	cluster *peers.Cluster
	url     string
	client  *http.Client
}

func startClusterNode(t *testing.T, name string, o *origin, seeds ...string) *clusterNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc := peers.LocalConfig()
	pc.NodeName = name
	pc.HTTPAddr = ln.Addr().String()
	pc.Seeds = seeds
	pc.Logger = discardLogger()
	cl, err := peers.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGroup(t, "g", o, testGroupConfig())
	cl.Register(g)

	cfg := LocalConfig()
	cfg.NodeName = name
	a, err := New(cfg, []*group.Group{g}, cl, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	srv := a.NewServer()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Shutdown() })
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return &clusterNode{name: name, api: a, cluster: cl, url: "http://" + ln.Addr().String(), client: client}
}

func (n *clusterNode) get(t *testing.T, method, path string) (*http.Response, []byte) {
	t.Helper()
	return request(t, n.client, n.url, method, path)
}

// TestRealCluster runs two nodes with the real peers package behind the API: each key is
// loaded once in the cluster whichever node is asked, the peer endpoints answer on the API's
// server, /cluster shows both members, and DELETE reaches the other node.
func TestRealCluster(t *testing.T) {
	o := &origin{}
	a := startClusterNode(t, "node-a", o)
	b := startClusterNode(t, "node-b", o, a.cluster.GossipAddr())
	nodes := []*clusterNode{a, b}

	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		converged := true
		for _, n := range nodes {
			_, body := n.get(t, http.MethodGet, "/cluster")
			if info := decodeJSON[clusterInfo](t, body); info.Stats.Members != 2 || len(info.Members) != 2 {
				converged = false
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two nodes did not see each other within 20 s")
		}
		<-tick.C
	}

	sources := map[string]int{}
	for i := range 20 {
		key := fmt.Sprintf("key %d/of+20", i)
		for _, n := range nodes {
			resp, body := n.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != "value of "+key {
				t.Fatalf("GET %q on %s: %d %q", key, n.name, resp.StatusCode, body)
			}
			sources[resp.Header.Get("X-Groupcached-Source")]++
		}
		if c := o.count(key); c != 1 {
			t.Errorf("key %q loaded %d times in the cluster, want 1", key, c)
		}
	}
	// A node asked first for a key it owns loads it; a node that does not own it fetches
	// it from the owner (which loads it, unseen here, or answers from its main cache).
	if sources["peer"] == 0 || sources["loader"] == 0 || sources["loader"]+sources["peer"]+sources["main"] != 40 {
		t.Errorf("sources %v: want some loads here, some fetches from the owner, and nothing else", sources)
	}

	resp, body := b.get(t, http.MethodGet, keyPath("g", "missing-x"))
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
	resp, body = a.get(t, http.MethodGet, keyPath("g", "fail-x"))
	wantError(t, resp, body, http.StatusBadGateway, CodeLoadFailed)
	if c := o.count("fail-x"); c != 1 {
		t.Errorf("a failing load ran %d times, want once, on its owner", c)
	}

	key := "key 0/of+20"
	resp, body = b.get(t, http.MethodDelete, keyPath("g", key))
	if inv := decodeJSON[invalidation](t, body); resp.StatusCode != http.StatusOK || inv.PeersConfirmed != 1 || inv.Peers != 1 {
		t.Errorf("DELETE on node-b: %d %s, want 200 with 1 of 1 peers confirmed", resp.StatusCode, body)
	}
	for _, n := range nodes {
		n.get(t, http.MethodGet, keyPath("g", key))
	}
	if c := o.count(key); c != 2 {
		t.Errorf("after DELETE the key was loaded %d times in all, want 2", c)
	}

	_, body = a.get(t, http.MethodGet, "/metrics")
	if !strings.Contains(string(body), "groupcached_cluster_members 2") {
		t.Error("metrics do not show two members")
	}
}
