package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/groupcached/groupcached/peers/wire"
)

// TestPeerAddr runs two nodes whose peer endpoints live on a listener of their own: each
// advertises that address, fills keys through it once per cluster, removes through it, and
// each listener answers 404 to the other's paths.
func TestPeerAddr(t *testing.T) {
	o := &origin{}
	withPeerAddr := func(c *NodeConfig) { c.PeerAddr = "127.0.0.1:0" }
	a := startClusterNodeWith(t, "node-a", o, withPeerAddr)
	b := startClusterNodeWith(t, "node-b", o, withPeerAddr, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b}
	waitMembers(t, nodes...)

	for _, n := range nodes {
		if n.PeerAddr() == n.Addr() {
			t.Fatalf("%s: PeerAddr %s is the client address", n.Name(), n.PeerAddr())
		}
		for _, m := range n.Cluster().Members() {
			owner := a
			if m.Name == b.Name() {
				owner = b
			}
			if m.HTTPAddr != owner.PeerAddr() {
				t.Errorf("%s sees %s at %s, want its peer address %s", n.Name(), m.Name, m.HTTPAddr, owner.PeerAddr())
			}
		}
	}

	sources := map[string]int{}
	for i := range 20 {
		key := fmt.Sprintf("key-%d", i)
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
	if sources["peer"] == 0 {
		t.Errorf("sources %v: no fetch from an owner went through the peer listeners", sources)
	}
	resp, body := b.get(t, http.MethodDelete, keyPath("g", "key-0"))
	if inv := decodeJSON[invalidation](t, body); resp.StatusCode != http.StatusOK || inv.PeersConfirmed != 1 {
		t.Errorf("DELETE on node-b: %d %s, want 1 peer confirmed", resp.StatusCode, body)
	}

	peerBase := "http://" + a.PeerAddr()
	for _, tc := range []struct {
		name, base, path string
	}{
		{"peer path on the client listener", a.url, wire.DefaultPath},
		{"key on the peer listener", peerBase, keyPath("g", "k")},
		{"health on the peer listener", peerBase, "/healthz"},
		{"groups on the peer listener", peerBase, "/groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := request(t, a.client, tc.base, http.MethodGet, tc.path, "Groupcached-Peer", "node-b")
			wantError(t, resp, body, http.StatusNotFound, CodeNoRoute)
		})
	}
}

func TestPeerAddrNeedsACluster(t *testing.T) {
	cfg := aloneConfig()
	cfg.PeerAddr = "127.0.0.1:0"
	if _, err := NewNode(cfg, nil); err == nil {
		t.Error("a node alone accepted a PeerAddr")
	}
	cfg = LocalNodeConfig()
	cfg.PeerAddr = "no-port"
	if _, err := NewNode(cfg, nil); err == nil {
		t.Error("PeerAddr without a port accepted")
	}
}
