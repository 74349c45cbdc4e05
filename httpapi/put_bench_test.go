package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkPut: PUTs of 1 KiB values with max-age=60 over real loopback to one node of 3,
// serially, keys spread over the owners: each PUT removes the key on the two other nodes and
// stores it on its owner (over the wire when that is another node) before it is answered.
func BenchmarkPut(b *testing.B) {
	o := &origin{}
	a := startClusterNodeGroup(b, "node-a", o, nil, testGroupConfig())
	n2 := startClusterNodeGroup(b, "node-b", o, nil, testGroupConfig(), a.Cluster().GossipAddr())
	n3 := startClusterNodeGroup(b, "node-c", o, nil, testGroupConfig(), a.Cluster().GossipAddr())
	waitMembers(b, a, n2, n3)
	b.SetBytes(int64(len(benchValue)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req, err := http.NewRequest(http.MethodPut, a.url+keyPath("g", "put-"+strconv.Itoa(i%1000)), bytes.NewReader(benchValue))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Cache-Control", "max-age=60")
		benchDo(b, a, req)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}
