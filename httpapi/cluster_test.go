package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// clusterNode is one Node of a real cluster on 127.0.0.1 (memberlist gossip, the peers
// transport, the API on one HTTP server), with a middleware that counts the peer requests it
// serves.
type clusterNode struct {
	*Node
	url          string
	client       *http.Client
	peerRequests atomic.Int64
}

func startClusterNode(t *testing.T, name string, o *origin, seeds ...string) *clusterNode {
	t.Helper()
	return startClusterNodeWith(t, name, o, nil, seeds...)
}

// startClusterNodeWith is startClusterNode with the node's configuration changed by adjust.
func startClusterNodeWith(t *testing.T, name string, o *origin, adjust func(*NodeConfig), seeds ...string) *clusterNode {
	t.Helper()
	return startClusterNodeGroup(t, name, o, adjust, testGroupConfig(), seeds...)
}

// startClusterNodeGroup is startClusterNodeWith with the group "g" configured by gcfg.
func startClusterNodeGroup(t testing.TB, name string, o group.Loader, adjust func(*NodeConfig), gcfg group.Config, seeds ...string) *clusterNode {
	t.Helper()
	cn := &clusterNode{client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(cn.client.CloseIdleConnections)
	cfg := LocalNodeConfig()
	cfg.Name = name
	cfg.Cluster.Seeds = seeds
	if adjust != nil {
		adjust(&cfg)
	}
	cfg.Logger = discardLogger()
	cfg.API.Middleware = append(cfg.API.Middleware, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isPeerPath(r.URL.Path) {
				cn.peerRequests.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	n, err := NewNode(cfg, []*group.Group{newTestGroup(t, "g", o, gcfg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(context.Background()); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
	})
	cn.Node, cn.url = n, "http://"+n.Addr()
	return cn
}

func (n *clusterNode) get(t *testing.T, method, path string) (*http.Response, []byte) {
	t.Helper()
	return request(t, n.client, n.url, method, path)
}

// waitMembers waits until every node's ring holds every node.
func waitMembers(t testing.TB, nodes ...*clusterNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitMembers(ctx, len(nodes)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRealCluster runs two nodes with the real peers package behind the API: each key is
// loaded once in the cluster whichever node is asked, the peer endpoints answer on the API's
// server behind its middleware chain, /cluster shows both members, and DELETE reaches the
// other node.
func TestRealCluster(t *testing.T) {
	o := &origin{}
	a := startClusterNode(t, "node-a", o)
	b := startClusterNode(t, "node-b", o, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b}

	waitMembers(t, nodes...)
	for _, n := range nodes {
		_, body := n.get(t, http.MethodGet, "/cluster")
		if info := decodeJSON[clusterInfo](t, body); info.Stats.Members != 2 || len(info.Members) != 2 {
			t.Errorf("/cluster on %s shows %d members in the ring and %d listed, want 2 and 2", n.Name(), info.Stats.Members, len(info.Members))
		}
	}

	sources := map[string]int{}
	for i := range 20 {
		key := fmt.Sprintf("key %d/of+20", i)
		for _, n := range nodes {
			resp, body := n.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != "value of "+key {
				t.Fatalf("GET %q on %s: %d %q", key, n.Name(), resp.StatusCode, body)
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
	// Every fetch from the owner travelled on a peer wire connection, whose upgrade passed the
	// owner's middleware chain: at least one upgrade, and no more than the connections the
	// nodes may hold to each other (MaxConnsPerPeer each way), however many fetches.
	held := a.Cluster().Stats().PeerConns + b.Cluster().Stats().PeerConns
	maxConns := 2 * LocalNodeConfig().Cluster.MaxConnsPerPeer
	if seen := a.peerRequests.Load() + b.peerRequests.Load(); seen < 1 || seen < int64(held) || seen > int64(maxConns) {
		t.Errorf("the middleware saw %d peer upgrades for %d fetches from an owner and %d connections held, want 1 to %d and at least the connections",
			seen, sources["peer"], held, maxConns)
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
