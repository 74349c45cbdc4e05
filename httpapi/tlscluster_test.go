package httpapi

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
)

// TestTLSClusterWithSecretFillsOnce runs three nodes that serve TLS and share a cluster secret:
// clients get their answers over HTTPS from any node, every key is loaded once in the cluster,
// and the fetches between nodes travel on authenticated peer wire connections over TLS (a node
// that dialled plain TCP, or without the secret, would be refused and load the key itself).
func TestTLSClusterWithSecretFillsOnce(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	secret := []byte("a cluster secret of 32 bytes....")
	o := &origin{}
	var nodes []*clusterNode
	for i := range 3 {
		tc := tlsFiles(t, t.TempDir(), ca, int64(10+i))
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Cluster().GossipAddr()}
		}
		n := startClusterNodeWith(t, fmt.Sprintf("node-%d", i), o, func(c *NodeConfig) {
			c.TLS = &tc
			c.Cluster.SecretKey = secret
		}, seeds...)
		n.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
		t.Cleanup(n.client.CloseIdleConnections)
		n.url = "https://" + n.Addr()
		nodes = append(nodes, n)
	}
	waitMembers(t, nodes...)

	sources := map[string]int{}
	for i := range 30 {
		key := fmt.Sprintf("tls key %d", i)
		for _, n := range nodes {
			resp, body := n.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != "value of "+key || resp.TLS == nil {
				t.Fatalf("GET %q on %s: %d %q, TLS %v", key, n.Name(), resp.StatusCode, body, resp.TLS != nil)
			}
			sources[resp.Header.Get("X-Groupcached-Source")]++
		}
		if c := o.count(key); c != 1 {
			t.Errorf("key %q loaded %d times in the cluster, want 1", key, c)
		}
	}
	if sources["peer"] == 0 {
		t.Errorf("sources %v: no key was fetched from its owner", sources)
	}
	conns := 0
	for _, n := range nodes {
		st := n.Cluster().Stats()
		conns += st.PeerConns
		if st.Unreachable != 0 || st.AuthRefused != 0 {
			t.Errorf("%s: %d fetches found their owner unreachable, %d connections refused; want none", n.Name(), st.Unreachable, st.AuthRefused)
		}
	}
	if conns == 0 {
		t.Error("no peer wire connection is open")
	}
}
