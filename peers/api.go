package peers

import "time"

// This file fixes the surface that httpapi/ and main.go build against. The Cluster type and
// its methods live in cluster.go.

// PathPrefix is where the peer endpoints live on a node's HTTP server. Cluster.Handler serves
// every path below it (the full request path, not a stripped one).
const PathPrefix = "/_peer"

// Member is one node as this node sees it.
type Member struct {
	Name       string  `json:"name"`
	GossipAddr string  `json:"gossip_addr"` // memberlist host:port
	HTTPAddr   string  `json:"http_addr"`   // client and peer API host:port, from node metadata
	State      string  `json:"state"`       // "alive", "suspect", "dead" or "left"
	Self       bool    `json:"self"`
	Share      float64 `json:"share"` // fraction of the key space this member owns, 0..1
}

// Stats is a snapshot of the cluster's counters.
type Stats struct {
	Members        int           // alive members, this node included
	RingRebuilds   uint64        // times a new ring was swapped in
	LastRebuild    time.Time     // when the current ring was swapped in
	FetchErrors    uint64        // peer fetches that failed on this node, any reason
	Unreachable    uint64        // peer fetches that failed because the owner could not be reached
	Invalidations  uint64        // Remove/Purge broadcasts sent
	RebuildLatency time.Duration // last membership event to ring swap
}
