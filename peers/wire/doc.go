// Package wire is the peer transport of groupcached: how one node asks the owner of a key for
// its value (or to drop it) at close to the cost of a local request. A Client per peer address
// sends requests; the owner's Server answers them through a Handler (the peers package's
// adapter over the groups' GetLocal, RemoveLocal, PurgeLocal). The package knows nothing of
// groups, rings or membership, and a request that arrives on this wire is only ever answered
// by the Handler: the hop guard is the wire itself.
//
// # Design
//
// Framed binary protocol on persistent TCP connections, multiplexed. A connection starts as an
// HTTP/1.1 Upgrade (GET DefaultPath, Upgrade: groupcached-peer/2) on the node's own HTTP port,
// so it passes the node's one middleware chain (authentication, limits, metrics) and its TLS,
// and is then hijacked (http.NewResponseController, so wrapped ResponseWriters work). After
// the 101 each side sends frames: a 10-byte header (u32 payload length, u8 type, u8 flags, u32
// request id), the payload and, when a cluster secret is set, a 16-byte tag. Requests: fetch
// (group, key), batch fetch (group, up to MaxBatchKeys keys), remove, purge, set, peek (a
// previous owner's memory only, never its loader) and push (a value handed to its new owner,
// kept only where the receiver holds none; warm.go), ping; replies: a
// result per request (u64 remaining TTL in nanoseconds; then, flagged from version 2, for a
// stale value (the owner's serve-stale: its TTL then travels as 1 ns) the u64 nanoseconds
// since it expired; then, flagged, the value's Content-Type (at most MaxContentTypeBytes) and
// Last-Modified (Unix seconds); and the value;
// or an error code and a message of at most MaxMessageBytes), one item per key of a batch (each answered as soon as
// it is known; the client reassembles them in order), pong; and GoAway from the server. Types
// 0x08–0x3f are reserved; a server answers a type it does not know (or a peek or push when
// its Handler is no WarmHandler) bad_request, so a newer client learns what is missing. The
// upgrade settles the version both sides speak (Version, 2; the lower of the two): a server
// marks a stale value only on a connection speaking 2, and a version-1 client gets it as a
// value that expires at once, so that it keeps no copy of it.
//
// A Client holds up to MaxConns connections (default 2), dialled lazily one at a time,
// filled oldest first up to SpreadAt requests in flight, redialled with a jittered backoff
// during which calls fail at once as unavailable. 500 concurrent fetches use at most MaxConns
// sockets; beyond the server's announced stream limit callers wait for a slot within their
// deadline. One reader goroutine per connection completes calls; a caller blocks in Fetch
// (leaving at once when its context ends) or passes a callback to FetchFunc, which the reader
// calls, so a singleflight can be completed by the transport with no goroutine per fetch.
// Writes coalesce without delay: a sender that finds no write in progress yields once
// (runtime.Gosched, not a timer) and writes whatever senders runnable meanwhile appended. With
// 32 concurrent callers that is 12–16 frames per write on one connection instead of 1.2, and
// halves the cost per fetch. Deadlines are checked by one monitor goroutine per Client every
// SweepInterval, not by a timer per request; while requests are in flight and the connection
// has been silent for PingAfter it is pinged, and without an answer within PingTimeout it is
// closed and its calls fail: a stopped peer (SIGSTOP, the kernel still accepts) is detected in
// 1.5 s by default, however long a legitimate load runs. Abort fails the calls in flight as
// unavailable and closes the connections, the Client staying usable (the peers package
// calls it when it ejects a peer that keeps failing).
//
// Errors keep their meaning: a reply's code (not_found, unknown_group, invalid_key,
// loader_panic, load_failed, load_timeout, bad_request, unauthorized) is the peer's verdict,
// an *Error; anything that means the peer did not answer (refused, reset, timeout, no pong,
// GoAway, a protocol violation, an upgrade refused, and the codes shutting_down and
// overloaded) wraps ErrUnavailable, after which the caller may load the key itself. The peers
// package maps ErrUnavailable to group.ErrPeerUnavailable (check it first: shutting_down also
// carries a code) and the verdicts to the group's sentinels and its *RemoteError; it also caps
// a received TTL at the group's TTL.
//
// Everything is bounded: each header is checked against the limit of its type before anything
// is allocated for its payload (a value: MaxValueBytes; a request: its key or batch bound), and
// a frame over it is a protocol error that closes the connection; a TTL with the sign bit set,
// a batch item answered twice and a message over the bound are protocol errors too. The
// client reads at most 16 KiB of the upgrade's answer within DialTimeout. A server serves at
// most MaxStreams requests per connection and stops reading beyond (backpressure), queues at
// most WriteQueueBytes of replies, closes a connection whose writes stall for WriteTimeout or
// that is idle for IdleTimeout (the client closes its idle ones first), and serves at most
// MaxConns connections. Close sends GoAway and ends every connection; Shutdown lets the
// requests being served finish first.
//
// # Authentication
//
// With a cluster secret, the upgrade carries the sender's name, the receiver's, a Unix time,
// a random nonce and an HMAC-SHA256 over them, the method and the request-target, keyed by
// HKDF-SHA256(secret, "groupcached peer auth v1") (auth.go). The server refuses (401 without
// it, 403 otherwise, before hijacking) a wrong MAC, another receiver, a time outside
// ±AuthWindow (30 s), a nonce seen inside the window (bounded cache, filled only by valid MACs)
// and a sender that IsMember rejects (by name and source address); Accept returns the
// refusal as a *Refusal matching ErrAuth and its cause, so the node counts and logs it. It proves itself in the 101 with a MAC over both nonces,
// so the client never sends a frame to an impostor. Then every frame carries HMAC-SHA256
// truncated to 16 bytes, keyed per connection and direction from both nonces, over an implicit
// sequence number, the header and the payload: an injected, altered, replayed, dropped or
// reordered frame breaks the connection. A tag costs 1.1 µs for a 1 KiB frame and 0.3 µs for
// a request, so 1.4 µs per 1 KiB fetch on each side (AES-GMAC would cost a third, but a
// repeated nonce would leak its key; HMAC needs no such care). Mutual TLS was the alternative: it also encrypts, but needs
// a CA, certificate distribution and rotation on every node, and ties identity to certificates
// rather than to the membership the cluster already has; the MACs need only the secret the
// nodes share for gossip, and TLS can still be layered under them (ClientConfig.TLS, the
// node's TLS listener) where values must not travel in clear. Without a secret (loopback,
// insecure mode) nothing is signed.
//
// # Why not net/http, h2c or gRPC
//
// Measured with scripts/bench-wirehop.sh (an owner process, a front process answering
// GET /local/{key} from a map or /peer/{key} through a transport; wrk -t1 -c32; 1 KiB values;
// a shared 2-core VM at load 9; medians of 5 rounds), CPU time per request on the front: local
// answer 20–22 µs; a hop over this wire 31–33 µs (the MACs' 1.4 µs is below the run's noise);
// over net/http's HTTP/1.1 68 µs; over its h2c 84 µs; and on the owner, per hop, 8 µs over
// this wire against 35 µs and 57 µs. Requests/s of hops over local answers: 0.94 (0.76 with
// MACs) against 0.36 and 0.25. h2c multiplexes, which bounds file descriptors (why Thanos
// enabled it between its groupcache peers), but keeps net/http's per-request machinery (99
// allocations, headers, a goroutine per stream) and adds HPACK and flow control; gRPC puts
// protobuf and its own stream machinery on the same HTTP/2 framing. In one process
// (BenchmarkFetch, medians of -count 5): a serial round trip costs 25 µs here against 64 µs
// (HTTP/1.1) and 193 µs (h2c); with 32 concurrent callers 9 µs against 147 µs and 76 µs; 6–8
// allocations against 81 and 99. A batch of 50 keys costs 0.12 ms against 1.7 ms for 50
// serial fetches and 0.58 ms for 50 concurrent ones.
package wire
