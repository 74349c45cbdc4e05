// Package peers turns single groupcached nodes into one cache: it finds the other nodes, agrees
// with them on who owns each key, carries fetches to the owner, and spreads Remove and Purge.
//
// Membership is github.com/hashicorp/memberlist (SWIM gossip): a Cluster joins seeds (host:port
// or DNS names that may resolve to several addresses), advertises its HTTP address in its node
// metadata, keeps trying any seed that is not an alive member with a short backoff (100 ms
// doubling to SeedRetryInterval), joins one seed every RejoinInterval whatever its state so
// that any partition heals, and leaves gracefully (returning as soon as the departure is
// gossiped) or stops abruptly.
// memberlist's event callbacks only queue a copy of the event; a goroutine waits for
// membership to be quiet for Config.RebuildQuiet, applies the queued events in order to the
// current view in one pure step (the member table, then a Ring of the alive members and a peer
// for each), and swaps the new view in atomically, so PickPeer, which runs on every cache
// miss, never takes a lock. A member is Alive, Left (it announced its departure) or Dead (it
// went without an announcement that reached this node); memberlist does not expose suspicion,
// so a member it suspects stays Alive, and in the ring, until memberlist declares it dead.
//
// The Ring is rendezvous hashing computed per bucket (2^18 buckets, xxhash): every node that
// sees the same member names computes the same owner for every key; a joining member takes
// only the keys it wins (its share, close to the ideal 1/(N+1)); a lookup is one hash and one
// table read. BENCHMARKS.md compares its balance, movement and speed with golang/groupcache's
// consistenthash.
//
// The transport is plain HTTP on the node's own server, under PathPrefix (see transport.go for
// the endpoints). It is not groupcachepb over protobuf: the value travels as the raw response
// body (no protobuf dependency, no copy into a message, and Content-Length lets the reader
// allocate once), the remaining TTL travels as a Groupcached-Ttl header in time.Duration
// syntax (so no clock synchronisation is needed), and a failure travels as a status with a
// Groupcached-Error code, which is all the structure the messages had. Group and key are
// query-escaped, so keys of any bytes round-trip and no path cleaning can touch them.
//
// The rules that make "fill once per cluster" hold on a changing cluster:
//   - a fetch carries the Groupcached-Peer header and the receiver answers it with
//     group.GetLocal, never asking another node, whatever its own ring says;
//   - the owner's ErrNotFound and its load failures (ErrLoaderPanic, ErrLoadTimeout and plain
//     errors, as *RemoteError) come back as such, and the asking Group does not load again;
//   - only an owner that cannot be reached (refused, reset, no answer within FetchTimeout, or
//     answering "shutting down") yields group.ErrPeerUnavailable, after which the asking Group
//     loads the key itself and counts it;
//   - connections are pooled per Cluster (never http.DefaultTransport) and every call has a
//     deadline.
//
// Readiness and identity. Ready says whether the node should get traffic and why: not before
// it has joined a seed (or has none but itself and its members), not while another live node
// holds its name, not once it is leaving. (A DNS seed that resolves to no address counts as
// unreachable: a Kubernetes headless Service must publish not-ready addresses, or the first
// pod never becomes ready.) Every process gossips a random boot identifier in its metadata
// and sends it in every ack; this is how the package tells a member from a new
// process in its place, which memberlist cannot (it knows a name and an address):
//   - a seed that restarted alone (no seeds, or only itself) after the others saw it leave or
//     die is a missing seed, which they retry within SeedRetryInterval; one that restarted
//     before they noticed answers their probes with a new boot, and the prober joins it at
//     once. Either way the new process learns the member table and refutes what it says
//     about it, and the refutation spreads by gossip: about 1 s on the LAN preset after a
//     Leave, 1 to 2 s after a crash (probes reach a member every ProbeInterval or two);
//   - a node whose name a live member holds at another address is refused by the member
//     it joins and refuses the merge itself (memberlist's MergeDelegate), so it never enters
//     anyone's table; it stays unready with the holder's address as the reason, logs that
//     once, retries slowly, and becomes ready if the holder dies and the cluster lets the
//     name go after DeadNodeReclaimTime. The holder keeps serving. With DeadNodeReclaimTime
//     0 (DefaultConfig's) memberlist never lets a dead member's name move, so a node that
//     comes back under it at a new address is refused for good, and says so.
//
// Growing to hundreds of nodes. Gossip spreads a change in O(log N) rounds: every
// GossipInterval a node forwards news to 3 random members, retransmitting it 4·⌈log10(N+1)⌉
// times, so a join or a departure reaches 300 members in only a round or two more than it
// takes to reach 30, then waits RebuildQuiet (16 nodes on loopback, local preset: a join is
// in every ring in 0.3 to 1 s, a crash in about 3 s, 4.5 s under -race). Failure detection
// probes one member per ProbeInterval per node and declares a node dead after SuspicionMult
// × max(1, log10 N) × ProbeInterval at least (about 10 s for 300 nodes on the LAN preset),
// so lower SuspicionMult slightly as N grows if that matters. What grows with N and what to
// change:
//   - the full state exchange (push/pull and every join) carries one entry per member (name,
//     address, about 60 bytes of metadata): memberlist spaces its push/pulls by one more
//     PushPullInterval per doubling above 32 members, and so do the periodic rejoins; keep
//     RejoinInterval at 30 s or more;
//   - every membership change rebuilds the ring on every node, O(2^18 × N) hashes (about
//     13 ms at 16 members, 115 ms at 100, 230 ms at 300): raise RebuildQuiet (1–2 s) so that
//     a rolling deploy costs a few rebuilds, not one per node;
//   - seeds: name 3 to 5 (or one DNS name); retries of a missing seed are capped at about 8
//     per SeedRetryInterval for the whole cluster, so a seed that is gone for good costs
//     little, but drop it from the list;
//   - connections: every node may keep MaxIdleConnsPerPeer idle HTTP connections to every
//     other; lower it (8 is plenty) so that 300 nodes do not each hold 19,000 sockets.
//
// The package never parses configuration files and never registers on a global mux: a node
// is the values main.go builds, so many nodes live in one test process.
package peers
