package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/groupcached/groupcached/httpapi"
)

// BenchmarkClusterGet measures a cached GET through the whole node: a real HTTP request on
// loopback, the router, the group and, when the node asked does not own the key, the peer
// transport to the owner. Three nodes run in this process; the client's cost (the same in
// every case) is included, so compare the cases with each other.
//
//	owner:        the key's owner answers from its main cache
//	peer:         another node fetches the key from the owner on every request (hot cache off)
//	hot:          another node answers from its hot cache (copies of other nodes' keys)
func BenchmarkClusterGet(b *testing.B) {
	nodes := startInProcessCluster(b, 3, `groups:
  - name: nohot
    hot_cache_fraction: 0
    loader: {type: file, root: ./examples/data}
  - name: files
    loader: {type: file, root: ./examples/data}
`)
	const key = "hello.txt"
	owner := nodes[0].Cluster().Owner(key)
	var ownerNode, otherNode *httpapi.Node
	for _, n := range nodes {
		if n.Name() == owner {
			ownerNode = n
		} else {
			otherNode = n
		}
	}
	// Warm up: the owner loads the key once; the hot copy is taken on one fetch in ten.
	for range 50 {
		for _, g := range []string{"nohot", "files"} {
			if status, _, _, err := get(otherNode.Addr(), g, key); err != nil || status != http.StatusOK {
				b.Fatalf("warm-up GET %s: %d %v", g, status, err)
			}
		}
	}

	cases := []struct {
		name, group, wantSource string
		n                       *httpapi.Node
	}{
		{"owner", "files", "main", ownerNode},
		{"peer", "nohot", "peer", otherNode},
		{"hot", "files", "hot", otherNode},
	}
	for _, c := range cases {
		url := fmt.Sprintf("http://%s/groups/%s/keys/%s", c.n.Addr(), c.group, key)
		b.Run(c.name, func(b *testing.B) {
			resp, err := testClient.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("X-Groupcached-Source"); got != c.wantSource {
				b.Fatalf("answered from %q, want %q", got, c.wantSource)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := testClient.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
