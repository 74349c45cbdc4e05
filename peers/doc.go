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
// The transport is the peer wire of peers/wire: a framed binary protocol, multiplexed on a few
// persistent TCP connections per peer, that starts as an HTTP/1.1 Upgrade (GET
// /_peer/v2/conn) on the node's own HTTP port, so that it passes the node's middleware chain
// and its TLS before the connection is hijacked. Each member of the view has one wire.Client,
// made when the member enters the view and closed (its fetches in flight failing as
// unavailable) when it leaves it or moves to another address; the Cluster's wire.Server
// answers through a Handler over the groups' GetLocal, RemoveLocal and PurgeLocal. A fetch is
// a 10-byte header and the group and key; the answer a header, the remaining TTL in
// nanoseconds (no clock synchronisation needed) and the raw value, which the reader allocates
// once at its declared, bounded length; a failure is a one-byte code and a short message.
// Each member's peer is a group.AsyncPeer: the Group's fill sends its fetch with FetchFunc
// and the connection's reader goroutine hands the answer to the waiting caller, so a fetch
// costs the asking node no goroutine of its own (a blocking Fetch costs one).
//
// Why not the v1 HTTP wire (net/http, one request per fetch), h2c or gRPC (measured in
// peers/wire/doc.go and BENCHMARKS.md, 1 KiB values on a shared 2-core VM): net/http spends
// about 68 µs of the asking node's CPU and 35 µs of the owner's per hop, with 81 allocations,
// and issue 9 measured the hop at 0.23x the requests/s of a local hit, close to what net/http
// allows (0.26–0.32x for a bare net/http hop). h2c multiplexes (which bounds the sockets, why
// Thanos enabled it between its groupcache peers) but keeps net/http's machinery per request
// and adds HPACK and flow control: 84 µs and 57 µs. gRPC puts protobuf and its own streams on
// the same HTTP/2. The framed wire costs 31–33 µs on the asking node (20–22 µs of which are
// the client's own request) and 8 µs on the owner, 6–8 allocations per fetch; with 32
// concurrent callers its writes coalesce 12–16 frames per syscall without a timer (a sender
// that finds no write in progress yields once before writing). A bare two-process hop over it
// reaches 0.94x a local answer (0.76x with MACs) against 0.36x over net/http;
// BENCHMARKS.md's "Peer hop (issue 9)" has the whole node's figures before and after. A
// batch of 50 keys to one owner travels in one message (0.12 ms against 1.7 ms for 50
// serial fetches): each member's peer is also a group.BatchPeer (batch.go), so a Group's
// GetMany sends the keys one owner must fill in one batch message (256 keys at most per
// message), which the owner serves key by key with GetLocal; Stats.BatchesServed counts them.
//
// The rules that make "fill once per cluster" hold on a changing cluster:
//   - a request that arrives on the wire is answered with group.GetLocal, never asking
//     another node, whatever this node's own ring says (the hop guard is the wire itself: it
//     carries nothing else);
//   - the owner's ErrNotFound and its load failures (ErrLoaderPanic, ErrLoadTimeout, its
//     remembered failures, ErrValueTooLarge and plain errors, as *RemoteError) come back as
//     such, and the asking Group does not load again; so does the owner's refusal to start a
//     load (group.ErrOverloaded, wire code load_overloaded), so that a flood is not turned
//     into local loads on the other nodes;
//   - only an owner that cannot be reached yields group.ErrPeerUnavailable, after which the
//     asking Group loads the key itself and counts it: refused, reset, a refused upgrade, no
//     answer within FetchTimeout, a connection that stops answering pings (a frozen owner is
//     detected in 1.5 s, however long a legitimate load runs), a protocol violation, an answer
//     above the value bound, or the owner "shutting down";
//   - a caller whose own deadline (the group's LoadTimeout) ends first gets that timeout, not
//     ErrPeerUnavailable, so that a slow origin is not asked twice.
//
// A stale value (group.Result.Stale) is sent with a TTL of 1 ns, so the asking node keeps no
// copy of it.
//
// Warm ownership changes (warm.go, handoff.go). A change of the ring moves keys whose values
// the cluster still holds. The view keeps the ring before the last change; for WarmTime after
// it, the Cluster is a group.PreviousOwnerPicker: a local load of a key that moved here first
// peeks the member that owned it (its memory only, within PeekTimeout), and a node that was
// alone before the change (it just started or came back) counts the ring without itself as the
// previous one. A fallback load (the owner did not answer) peeks the member that owns the key
// without that owner. A node that stops gracefully calls HandOff before Leave: it pushes the
// values it owns, in its eviction policy's order and within a byte bound, to their owners in
// the ring without it, on the same authenticated connections; the receivers keep a value only
// where they hold none (group.Push).
//
// Bounds. At most MaxConnsPerPeer (2) connections per peer, whatever the number of fetches
// (500 concurrent fetches use 2 sockets; beyond 256 per connection callers wait for a slot).
// A reply's header is checked before anything is allocated for its payload: a value above
// MaxValueBytes (each group's CacheBytes unless configured, the largest of them for a
// connection) closes the connection and the key is loaded here. A received TTL is cut to the
// asking group's TTL when it has one. Keys longer than MaxKeyBytes (the node's max_key_bytes)
// are refused by both sides. When a member leaves or dies, every group drops its hot cache:
// entries do not record the member they came from (a tag per entry would cost memory on
// every entry, or a scan of the hot cache per departure to find them), departures are rare,
// and the hot cache refills with popular keys at one fetch in HotCacheRate, so a coarse drop
// is cheap and leaves nothing a departed (perhaps rogue) member served.
//
// Authentication. With Config.SecretKey (the gossip key) set, the wire authenticates every
// connection (peers/wire/auth.go): the upgrade carries the sender, the receiver, a Unix time
// and a nonce under an HMAC-SHA256 keyed by HKDF(secret, "groupcached peer auth v1"), a label
// of its own, so the AES key of gossip never keys a MAC directly; the owner refuses (401/403,
// before anything is served) a missing or bad MAC, another receiver, a time more than 30 s
// from its clock, a replayed nonce, and a sender that is not an alive member of its view
// (or joining it) connecting from an address that member advertises; it proves it holds the
// secret in its answer, and every frame then carries a 16-byte MAC (1.4 µs per 1 KiB fetch
// on each side). Refusals are counted (Stats.AuthRefused, ClockSkewRefused) and logged at
// most once per 10 s per kind. A shared secret rather than mutual TLS: the cluster already
// shares the gossip key, identity stays the membership the cluster has (a node a member
// joined with the key), and there are no certificates to distribute and rotate; TLS can be
// layered under it (Config.TLS on the dialling side, the node's TLS listener on the other)
// where values must not travel in clear. Without a secret nothing is authenticated: anyone
// who reaches the port may fetch (loopback, or a network trusted as a whole).
//
// Removals and partitions. Remove and Purge go to every alive member in parallel and wait
// for each to confirm; the members this node holds as dead (cut off or crashed, listed for
// five minutes after) and the alive ones whose call fails count as unconfirmed, and the
// answer is an *IncompleteError (httpapi: 502 invalidation_incomplete). A member cut off by a
// partition keeps serving what it owned, and would serve a removed value again after the
// heal, for good when the group has no TTL. So the issuing node keeps every unconfirmed
// removal as a tombstone, per member name (tombstone.go), for Config.TombstoneTTL (10
// minutes by default), and sends it to the member when it comes back: during the rebuild
// that brings it back into this node's ring, before that view is swapped in (up to 2 s), then
// with a backoff from 100 ms to 5 s until the member confirms or the tombstone expires. In
// network namespaces (partition_test.go, local preset) a DELETE at the cut answers 502 in
// about 1.5 s (the wire's ping timeout), the owner leaves the other rings in about 2.5 s,
// and the removals are re-sent about 1.5 s after the link comes back, as the ring takes the
// owner back. Bounds: 1024 key removals (1 MiB of keys) per member, beyond which a group's
// keys collapse into a purge of the group; 1024 members, beyond which the oldest member's are
// dropped. What it does not cover: a member cut off for longer than TombstoneTTL; the
// issuing node dying or restarting before the member is back (tombstones live in its
// memory only; another node's DELETE of the key after the heal fixes it); a member that
// another node routes to before this one has re-sent (a Get through a node that saw the
// member come back a moment earlier may still be answered the old value, until the
// re-send); and a member that left gracefully is not counted (it has stopped, and its cache
// with it).
//
// Upgrading from the v1 HTTP wire: the two do not talk. During a rolling upgrade a v1 node
// gets 404 without an error code from /_peer/v1/* on a v2 node, and a v2 node a refused
// upgrade from a v1 node; both count the owner unreachable and load the key themselves, so
// the cluster serves throughout, each mixed pair loading twice.
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
//   - connections: every node holds at most MaxConnsPerPeer (2) peer wire connections to
//     every other it fetches from, dialled on demand and closed after 90 s idle: 300 nodes
//     hold at most 598 each way, whatever the load; each node's wire server accepts at most
//     1024 peer connections in all, so keep MaxConnsPerPeer at 2 or lower it to 1 above
//     500 nodes.
//
// Timeouts: every wait on a peer, in one place. The principle: waits that prove a peer is
// there (connecting, answering a ping) are short and separate from the owner's own load,
// which may legitimately take the whole load_timeout; only the first kind ever sends a key
// to a local load, so a slow origin is never mistaken for a dead peer (and asked twice).
//   - group load_timeout (30 s): a fill, local or from the owner; the owner's load has its
//     own. The asking node reports a fetch that outlives it as ErrLoadTimeout, not as an
//     unreachable owner. Longer lets slow origins finish; shorter frees callers sooner.
//   - FetchTimeout (30 s, 10 s on the local preset): the most one peer call may take; keep it
//     at or above load_timeout, so that the group's deadline ends a slow fetch first.
//   - connect: min(FetchTimeout, 2 s) for TCP, TLS and the upgrade's 101 (wire
//     DialTimeout). A frozen or hung peer (the kernel accepts, nobody answers) costs the
//     callers waiting for that dial 2 s at most; longer would tolerate a slower network.
//   - liveness: a connection with fetches in flight that has been silent for 500 ms is
//     pinged, and closed without a pong within 1 s (wire PingAfter, PingTimeout); its
//     fetches fail as unreachable and fall back to one local load per key. An owner that is
//     loading still answers pings (its reader goroutine does), so a 20 s load is waited for;
//     a stopped process is detected in 1.5 s, well before memberlist suspects it. Shorter
//     would cut peers on a GC pause or a loaded machine.
//   - redial backoff: 50 ms doubling to 5 s after a failed dial (jittered), during which
//     fetches fail at once as unreachable instead of each waiting for a dial.
//   - outlier ejection (outlier.go): PeerEjectAfter (3) unreachable fetches in a row eject the
//     peer from this node's routing; its keys are loaded here at once, with no wait at all,
//     and its fetches in flight are failed (they fall back). A ping after PeerEjectFor (5 s,
//     doubled per failed ping up to 10x) gives it its keys back. Lower ejects sooner and
//     over shorter blips; each ejection costs the origin the ejected peer's share of misses.
//   - membership: memberlist probes a member every ProbeInterval (1 s, 500 ms local) and
//     declares it dead after its suspicion timeout (4 to 7 s for 3 nodes on the LAN preset,
//     about 2.5 s on the local one); RebuildQuiet (500 ms) later the ring drops it and its
//     peer is closed, failing what is still in flight to it.
//
// Measured (TestFrozenPeerUnderLoad, BENCHMARKS.md "Peer failures (issue 11)"): with one of
// three nodes stopped by SIGSTOP under load, no request to a healthy node took more than
// about 1.6 s, the longest time without a completion was the first 1.5 s (the liveness
// check), and after the ejection the healthy nodes served at full rate until memberlist
// declared the node dead, then after SIGCONT took it back.
//
// The package never parses configuration files and never registers on a global mux: a node
// is the values main.go builds, so many nodes live in one test process.
package peers
