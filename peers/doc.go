// Package peers turns single groupcached nodes into one cache: it finds the other nodes, agrees
// with them on who owns each key, carries fetches to the owner, and spreads Remove and Purge.
//
// Membership is github.com/hashicorp/memberlist (SWIM gossip): a Cluster joins seeds (host:port
// or DNS names that may resolve to several addresses), advertises its HTTP address in its node
// metadata, retries the first join quickly until a seed answers (nodes started together find
// each other at once), then rejoins its seeds periodically so that a healed partition merges,
// and leaves gracefully (returning as soon as the departure is gossiped) or stops abruptly.
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
// The package never parses configuration files and never registers on a global mux: a node
// is the values main.go builds, so many nodes live in one test process.
package peers
