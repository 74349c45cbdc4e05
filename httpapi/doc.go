// Package httpapi is a groupcached node: the HTTP API that clients and peers talk to, and the
// Node that owns its listener, server, cluster membership and lifecycle, as a value a Go
// program builds, starts and stops (several may live in one process).
//
// A Node is built by NewNode from typed configuration (NodeConfig: the listen address, the
// API's Config, the cluster's peers.Config or nil for a node alone, the stop's timings) and
// the groups it serves. Start serves HTTP, joins the cluster and turns /readyz to 200;
// WaitMembers waits until the ring holds the whole cluster; Stop takes the node out of service
// in the order load balancers and peers need: /readyz 503, ShutdownDelay, hand the hottest
// owned values to their next owners (HandOffBytes, HandOffTimeout; handoff.go), leave the cluster
// (bounded), stop accepting and drain the requests in flight, stop the change feeds and
// gossip, close the listener and the loaders. A group whose loader is a group.Watcher (the sql
// loader with listen_channel) is watched from Start to Stop: changed keys are dropped on every
// node, and a feed that was down purges the group when it is back (watch.go). A group whose
// loader is a group.Readier (the sql loader, whose database may be down at start) keeps
// /readyz at 503, with its reason, until its origin can serve (groupready.go).
//
// Every request passes one handler chain, so that what is added to it (authentication, an
// access log, request metrics, limits) covers everything:
//
//	request → request metrics → access log (Config.AccessLog) → Config.Middleware (first
//	    outermost) → recoverer → requireAdmin → dispatch
//	    GET/HEAD /groups/{group}/keys/{key}  → serveKey → group.Group.Get   (the fast path)
//	    peers.PathPrefix and below           → the cluster's peer handler
//	    everything else                      → the chi router (DELETE /groups/{g}: limitPurges;
//	                                           POST /groups/{g}/mget: mget → Group.GetMany)
//
// What the node trusts: anyone who reaches the port may read; a request that may change the
// cache (any method but GET, HEAD and OPTIONS, outside the peer endpoints and the batch read
// POST /groups/{group}/mget, which only reads) needs
// Config.AdminToken when one is set (requireAdmin, 401 otherwise), and group purges are
// rate-limited per node (Config.PurgeRate, 429). The peer endpoints are the cluster's to
// authenticate. NodeConfig.TLS serves the listeners over TLS with certificates reloaded as
// they rotate, NodeConfig.PeerAddr moves the peer endpoints to a listener of their own (a
// cluster-only network), and NodeConfig.MaxConnections caps each listener's connections,
// closing the longest-idle one to make room, so that a flood of idle sockets cannot lock
// clients out. Error bodies say what happened in the request's own terms; the causes (file
// paths, SQL, peers' names and addresses) go to the log.
//
// Clients read values with GET /groups/{group}/keys/{key}, where the key is one escaped path
// segment of any bytes; the answer carries the value's ETag, a Cache-Control max-age from its
// remaining TTL and an X-Groupcached-Source header (main, hot, peer or loader; stale, with
// Warning and Age, for an expired value served under the group's stale settings). POST
// /groups/{group}/mget reads many keys in one round trip (mget.go): a JSON list in, one item
// per key out with its own status, bounded in keys, body and value bytes; the node sends one
// peer request per owner for the keys it does not hold. PUT stores a value on its owner;
// DELETE removes a key or purges a group across the cluster. GET /groups, /cluster, /healthz, /readyz and
// /metrics describe the node; GET / is a status page for people (status.go): members, ring
// shares, each group's hit ratio, loads and bytes, charts of the last minutes from the
// node's history (history.go: a fixed ring sampled by one goroutine between Start and Stop),
// drawn on the server as inline SVG with no script and no external asset.
//
// The package turns group's sentinel errors into statuses in one place (errorStatus) and
// answers every error as JSON {"error": "...", "code": "..."}. It keeps the fast path lean: a
// well-formed value GET is matched by chi's rules without chi's per-request allocations, the
// request metrics classify the route without allocating and resolve their labelled series
// once (requestmetrics.go), the access log is off unless Config.AccessLog turns it on, the
// group and cluster series are read from Group.Stats at scrape time, and the header values
// are built in one allocation. No label and no log line ever holds a key. It never loads, caches or routes keys itself: that is group's and peers' work;
// it never reads YAML or flags: that is the command's.
package httpapi
