package peers

import "time"

// This file fixes the surface that httpapi/ and main.go build against. The Cluster type and
// its accessors live in cluster.go.

// PathPrefix is where the peer endpoints live on a node's HTTP server. Cluster.Handler serves
// every path below it (the full request path, not a stripped one): today one, the peer wire's
// upgrade at PathPrefix + "/v2/conn" (wire.DefaultPath).
const PathPrefix = "/_peer"

// Member is one node as this node sees it.
type Member struct {
	Name       string      `json:"name"`
	GossipAddr string      `json:"gossip_addr"` // memberlist host:port
	HTTPAddr   string      `json:"http_addr"`   // client and peer API host:port, from node metadata
	State      MemberState `json:"state"`
	Self       bool        `json:"self"`
	Share      float64     `json:"share"` // fraction of the key space this member owns, 0..1
	// Ejected is set while this node routes around the member (outlier detection: its
	// fetches failed Config.PeerEjectAfter times in a row) and loads its keys itself, until
	// EjectedUntil, when a ping decides whether it gets them back.
	Ejected      bool       `json:"ejected,omitempty"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
}

// MemberState is what this node knows of a member's liveness. It is a string so that a
// Member's JSON (the /cluster page) shows the word itself.
//
// There is no "suspect": memberlist keeps suspicion to itself. It sends no event when it
// suspects a node, and the Node.State it hands to its callbacks and returns from Members is
// never updated (hashicorp/memberlist#266). A member that stops answering probes therefore
// stays Alive, and keeps its keys, until memberlist declares it dead (after the suspicion
// timeout of Config.SuspicionMult and SuspicionMaxTimeoutMult, unless it refutes the
// suspicion first); meanwhile a fetch it does not answer counts as unreachable and the asking
// node loads the key itself.
type MemberState string

const (
	// Alive members are in the ring and own keys; this node is always Alive in its own view.
	Alive MemberState = "alive"
	// Left members announced their departure (Cluster.Leave) and are out of the ring.
	Left MemberState = "left"
	// Dead members are out of the ring without an announcement that reached this node: they
	// crashed or were cut off, their Leave announcement arrived after memberlist had already
	// counted them gone, or their metadata names no HTTP address to fetch from.
	Dead MemberState = "dead"
)

// Stats is a snapshot of the cluster's counters.
type Stats struct {
	Members        int           // alive members, this node included
	RingRebuilds   uint64        // times a new ring was swapped in
	LastRebuild    time.Time     // when the current ring was swapped in
	FetchErrors    uint64        // peer fetches that failed on this node, any reason
	Unreachable    uint64        // peer fetches that failed because the owner could not be reached
	Invalidations  uint64        // Remove/Purge broadcasts sent
	RebuildLatency time.Duration // last membership event to ring swap

	// Ejected is the peers this node routes around now (outlier detection), Ejections how
	// many times it ejected one.
	Ejected   int
	Ejections uint64

	// PeerConns is the peer wire connections this node holds to its peers now: at most
	// MaxConnsPerPeer per peer, however many fetches are in flight.
	PeerConns int
	// AuthRefused counts peer connections this node refused because they failed the
	// authentication checks (no or a bad MAC, another receiver, a stale or future timestamp,
	// not a member, a replayed nonce). Each kind is also logged, at most once per 10 s.
	AuthRefused uint64
	// ClockSkewRefused counts those of AuthRefused whose timestamp was outside the window
	// (±30 s): the two nodes' clocks disagree; check NTP.
	ClockSkewRefused uint64
	// Tombstones counts the removals members did not confirm, kept to be sent again.
	Tombstones TombstoneStats
	// BatchesServed counts the batch fetches (a GetMany's keys for one owner, in one
	// message) that other nodes sent this node and it served; BatchKeysServed the keys they
	// held in all.
	BatchesServed, BatchKeysServed uint64
}
