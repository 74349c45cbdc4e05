package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/peers"
)

// TestEjectedPeerShown: a member the cluster routes around (outlier detection) is marked on
// /cluster, on the status page and in the metrics.
func TestEjectedPeerShown(t *testing.T) {
	until := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	members := []peers.Member{
		{Name: "node-a", State: peers.Alive, HTTPAddr: "127.0.0.1:1", Self: true, Share: 0.5},
		{Name: "node-b", State: peers.Alive, HTTPAddr: "127.0.0.1:2", Share: 0.5, Ejected: true, EjectedUntil: &until},
	}
	st := peerStats(2)
	st.Ejected, st.Ejections = 1, 4
	n := startNode(t, LocalConfig(), &fakeCluster{members: members, stats: st, handler: http.NotFoundHandler()})
	n.api.SetReady(true)

	_, body := n.do(t, http.MethodGet, "/cluster")
	for _, want := range []string{`"name":"node-b"`, `"ejected":true`, `"ejected_until":"2026-12-02T03:00:00Z"`, `"ejected":1`, `"ejections":4`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/cluster lacks %s: %s", want, body)
		}
	}
	if strings.Count(string(body), `"ejected":true`) != 1 {
		t.Errorf("/cluster marks more than node-b ejected: %s", body)
	}
	_, body = n.do(t, http.MethodGet, "/")
	if !strings.Contains(string(body), `class="badge ejected"`) {
		t.Error("the status page does not mark the ejected member")
	}
	_, body = n.do(t, http.MethodGet, "/metrics")
	for _, want := range []string{"groupcached_peers_ejected 1", "groupcached_peer_ejections_total 4"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
