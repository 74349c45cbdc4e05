package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/groupcached/groupcached/group"
)

// BenchmarkMget compares, in one run on one 3-node cluster over real loopback, reading 100
// warm keys (loaded once in the cluster beforehand, spread over the three owners) from one
// node with one POST /groups/{group}/mget against 100 serial GETs. One op is the 100 keys
// either way: ns/op compares directly; keys/s and requests/s (HTTP requests to the node)
// are reported for both. Values are 1 KiB. The node asked holds its own keys in its main
// cache and, for the others, a hot copy of one in HotCacheRate (10): the rest cross the
// peer wire, in one batch per owner for the mget and one fetch per key for the GETs.
func BenchmarkMget(b *testing.B) {
	o := group.LoaderFunc(func(context.Context, string) (group.Value, error) {
		return group.Value{Bytes: benchValue}, nil
	})
	a := startClusterNodeGroup(b, "node-a", o, nil, testGroupConfig())
	n2 := startClusterNodeGroup(b, "node-b", o, nil, testGroupConfig(), a.Cluster().GossipAddr())
	n3 := startClusterNodeGroup(b, "node-c", o, nil, testGroupConfig(), a.Cluster().GossipAddr())
	waitMembers(b, a, n2, n3)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-%d", i)
	}
	body, err := json.Marshal(map[string][]string{"keys": keys})
	if err != nil {
		b.Fatal(err)
	}
	// Warm: every key loaded on its owner (a GET on the owner itself).
	for _, k := range keys {
		owner := a
		for _, n := range []*clusterNode{a, n2, n3} {
			if n.Name() == a.Cluster().Owner(k) {
				owner = n
			}
		}
		benchGet(b, owner, keyPath("g", k))
	}
	mget := func() {
		req, err := http.NewRequest(http.MethodPost, a.url+"/groups/g/mget", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		benchDo(b, a, req)
	}
	report := func(b *testing.B, requestsPerOp int) {
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(100*b.N)/secs, "keys/s")
		b.ReportMetric(float64(requestsPerOp*b.N)/secs, "requests/s")
	}
	b.Run("mget-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mget()
		}
		report(b, 1)
	})
	b.Run("get-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				benchGet(b, a, keyPath("g", k))
			}
		}
		report(b, 100)
	})
}

// benchGet GETs path on n and fails the benchmark unless it is answered 200.
func benchGet(b *testing.B, n *clusterNode, path string) {
	req, err := http.NewRequest(http.MethodGet, n.url+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchDo(b, n, req)
}

// benchDo sends req to n, reads the whole answer and fails the benchmark unless it is 200.
func benchDo(b *testing.B, n *clusterNode, req *http.Request) {
	resp, err := n.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %d", req.Method, req.URL.Path, resp.StatusCode)
	}
}
