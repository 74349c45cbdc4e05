package httpapi

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
)

// DefaultMaxKeyBytes is the longest key, in decoded bytes, that DefaultConfig accepts.
const DefaultMaxKeyBytes = 1024

// DefaultNoTTLMaxAge is the max-age DefaultConfig gives values that never expire: long enough
// that downstream caches do not revalidate every read, short enough that a PUT or a DELETE
// reaches their readers within a minute.
const DefaultNoTTLMaxAge = time.Minute

// Defaults of the batch read, POST /groups/{group}/mget (mget.go): a thousand keys, a 1 MiB
// request body (a thousand keys of up to about 1 KiB, JSON-escaped), 16 MiB of values in one
// answer (about 21 MiB of JSON once base64-encoded).
const (
	DefaultMaxBatchKeys          = 1000
	DefaultMaxBatchRequestBytes  = 1 << 20
	DefaultMaxBatchResponseBytes = 16 << 20
)

// batchKeysLimit is the largest MaxBatchKeys accepted.
const batchKeysLimit = 100_000

// keyBytesLimit is the largest MaxKeyBytes accepted. A key is one segment of a URL path;
// escaped it may take three times its size, and proxies, logs and browsers handle request
// lines of more than a few hundred KiB poorly or not at all.
const keyBytesLimit = 64 << 10

// Config tunes the HTTP API of one node. Start from DefaultConfig (production) or LocalConfig
// (tests and a laptop) and change what you need; New validates it.
type Config struct {
	// NodeName names this node in /healthz and /cluster. When the API has no Cluster it is the
	// only member /cluster lists. Empty shows as an empty name.
	NodeName string

	// MaxKeyBytes is the longest key accepted, counted in bytes after URL-decoding; a longer
	// key, like an empty one, is answered 400 ("bad_key") before any cache or loader sees it.
	// Zero means DefaultMaxKeyBytes (1 KiB); at most 64 KiB; negative is invalid.
	MaxKeyBytes int

	// NoTTLMaxAge is the Cache-Control max-age sent with values that never expire (TTL 0),
	// whole seconds. Such a value may still be replaced (PUT), removed or purged, so it bounds
	// how long a downstream cache may serve it stale after that, as a TTL would; DefaultConfig
	// sets DefaultNoTTLMaxAge (1 minute). Zero sends "Cache-Control: no-cache": downstream
	// caches must revalidate every time with the ETag (a body-less 304, but a round trip per
	// read). Negative is invalid. Values with a TTL always get max-age from their remaining
	// lifetime.
	NoTTLMaxAge time.Duration

	// GroupNoTTLMaxAge overrides NoTTLMaxAge for the groups it names: a group whose values
	// never expire but change often can send a shorter max-age (or "no-cache", with 0) than
	// the node's other groups. A group it does not name gets NoTTLMaxAge. Negative is invalid.
	GroupNoTTLMaxAge map[string]time.Duration

	// MaxBatchKeys bounds the keys of one batch read (POST /groups/{group}/mget): a longer
	// list is answered 413 "too_large" before any key is looked up. Zero means
	// DefaultMaxBatchKeys (1000); at most 100000; negative is invalid.
	MaxBatchKeys int

	// MaxBatchRequestBytes bounds the body of a batch read: a longer one is answered 413
	// "too_large" without reading more of it than the limit. Zero means
	// DefaultMaxBatchRequestBytes (1 MiB); negative is invalid.
	MaxBatchRequestBytes int64

	// MaxBatchResponseBytes bounds the value bytes (before base64) that one batch read
	// answers with. Items are filled in request order; a value that no longer fits in what
	// is left is answered as an item with status 413 "too_large" and no value (the client
	// asks for it again in another request), so one large value does not cost the whole
	// answer. Zero means DefaultMaxBatchResponseBytes (16 MiB); negative is invalid.
	MaxBatchResponseBytes int64

	// ReadHeaderTimeout bounds reading a request's headers, so a client that opens
	// connections and trickles bytes cannot hold the node's sockets. Zero means
	// ReadTimeout, and both zero means no limit.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, headers and body (a PUT's value, an mget's
	// list of keys). Zero means no limit.
	ReadTimeout time.Duration

	// WriteTimeout bounds the time from the end of the request headers to the end of the
	// response, so a client that stops reading cannot hold a handler. It includes the time a
	// cold Get spends loading, so it must exceed every group's LoadTimeout, or a slow load is
	// cut off with a reset connection instead of a 504 (New logs a warning when it does not).
	// Zero means no limit.
	WriteTimeout time.Duration

	// IdleTimeout bounds how long a keep-alive connection waits for its next request. Zero
	// means ReadTimeout, and both zero means no limit.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds the size of a request's headers (the request line included).
	// A key of MaxKeyBytes may take three times as many bytes escaped. Zero means
	// net/http's default of 1 MiB.
	MaxHeaderBytes int

	// AdminToken, when set, is required as "Authorization: Bearer <token>" on every request
	// that may change the cache: any method but GET, HEAD and OPTIONS outside the peer
	// endpoints and the batch read POST /groups/{group}/mget, which only reads (today PUT and
	// DELETE of a key, DELETE of a group; a write route added later is covered by its
	// method). Without it, or with another token, the answer is 401 "unauthorized" with a
	// WWW-Authenticate challenge. Tokens are compared in constant time (as SHA-256 digests).
	// Reads never need it. It may not hold spaces or control characters. Zero: anyone who
	// reaches the port may remove keys and purge groups (the command refuses that on a
	// non-loopback address unless node.insecure says the network is trusted).
	AdminToken string

	// PurgeRate bounds the group purges (DELETE /groups/{group}) this node accepts, per
	// second on average, all groups and clients together: a purge empties the group on every
	// node and sends the following reads to the origin. Past it a purge is answered 429
	// "rate_limited" with Retry-After, and reaches neither the group nor the peers. Requests
	// refused for want of the admin token do not count. Zero: no limit; negative is invalid.
	PurgeRate float64

	// PurgeBurst is how many purges may arrive at once, above PurgeRate, after a quiet spell.
	// Zero: 1.
	PurgeBurst int

	// AccessLog logs one Info line per request on the API's logger, peers' requests
	// included: method, route pattern, group, the key's length (never the key), status,
	// bytes, duration, client address and, from a peer, its name (accesslog.go). It costs
	// each request about 1.7 µs and one allocation with slog's text handler (BENCHMARKS.md).
	// Zero: no access log.
	AccessLog bool

	// Middleware wraps every request the API serves, the first outermost: the key fast path,
	// the peer endpoints (every path under peers.PathPrefix) and the chi routes alike, so that
	// authentication, an access log, request metrics or limits added here cover the whole node.
	// A peer connection passes it once, as the HTTP request that upgrades to the peer wire;
	// the fetches multiplexed on it afterwards do not (the wire authenticates and bounds them).
	// Each is chi-style (see Middleware), called once by New. They run outside
	// the API's recoverer and so see the 500 it answers for a panicking handler; a panic in a
	// middleware itself is left to net/http, which logs it and drops the connection. A
	// middleware that authenticates clients must let the cluster's members through on the peer
	// paths. Zero: none.
	Middleware []Middleware
}

// DefaultConfig returns production values: keys up to 1 KiB, batch reads of up to 1000 keys
// (1 MiB of request, 16 MiB of values), max-age=60 for values without a
// TTL, 5 s to send headers, 10 s to send a request, 60 s for a response (twice group's
// default 30 s load timeout), 2 minutes of keep-alive, 64 KiB of headers, and a purge every
// 5 s on average with bursts of 3. No admin token: set one.
func DefaultConfig() Config {
	return Config{
		MaxKeyBytes:           DefaultMaxKeyBytes,
		MaxBatchKeys:          DefaultMaxBatchKeys,
		MaxBatchRequestBytes:  DefaultMaxBatchRequestBytes,
		MaxBatchResponseBytes: DefaultMaxBatchResponseBytes,
		NoTTLMaxAge:           DefaultNoTTLMaxAge,
		ReadHeaderTimeout:     5 * time.Second,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxHeaderBytes:        64 << 10,
		PurgeRate:             0.2,
		PurgeBurst:            3,
	}
}

// LocalConfig returns DefaultConfig with the node named "local" and short timeouts that suit
// tests on loopback, where a stuck request should fail the test quickly. Keep WriteTimeout
// above the groups' LoadTimeout.
func LocalConfig() Config {
	c := DefaultConfig()
	c.NodeName = "local"
	c.ReadHeaderTimeout = time.Second
	c.ReadTimeout = 2 * time.Second
	c.WriteTimeout = 10 * time.Second
	c.IdleTimeout = 10 * time.Second
	return c
}

// Validate reports every field that is out of range, each as a *group.FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, group.FieldErrorf(field, format, args...))
	}
	if c.MaxKeyBytes < 0 || c.MaxKeyBytes > keyBytesLimit {
		fail("MaxKeyBytes", "must be between 0 (the default, %v) and %v, got %d",
			group.ByteSize(DefaultMaxKeyBytes), group.ByteSize(keyBytesLimit), c.MaxKeyBytes)
	}
	if c.MaxBatchKeys < 0 || c.MaxBatchKeys > batchKeysLimit {
		fail("MaxBatchKeys", "must be between 0 (the default, %d) and %d, got %d", DefaultMaxBatchKeys, batchKeysLimit, c.MaxBatchKeys)
	}
	if c.MaxBatchRequestBytes < 0 {
		fail("MaxBatchRequestBytes", "must be >= 0 (0: the default, %v), got %d", group.ByteSize(DefaultMaxBatchRequestBytes), c.MaxBatchRequestBytes)
	}
	if c.MaxBatchResponseBytes < 0 {
		fail("MaxBatchResponseBytes", "must be >= 0 (0: the default, %v), got %d", group.ByteSize(DefaultMaxBatchResponseBytes), c.MaxBatchResponseBytes)
	}
	if c.NoTTLMaxAge < 0 {
		fail("NoTTLMaxAge", "must be >= 0s, got %v", c.NoTTLMaxAge)
	}
	for _, name := range slices.Sorted(maps.Keys(c.GroupNoTTLMaxAge)) {
		if d := c.GroupNoTTLMaxAge[name]; d < 0 {
			fail("GroupNoTTLMaxAge["+name+"]", "must be >= 0s, got %v", d)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout},
	} {
		if d.v < 0 {
			fail(d.name, "must be >= 0s, got %v", d.v)
		}
	}
	if c.MaxHeaderBytes < 0 {
		fail("MaxHeaderBytes", "must be >= 0, got %d", c.MaxHeaderBytes)
	}
	if strings.IndexFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		fail("AdminToken", "must not hold spaces or control characters")
	}
	if !(c.PurgeRate >= 0) || math.IsInf(c.PurgeRate, 0) {
		fail("PurgeRate", "must be a number of purges per second >= 0 (0: no limit), got %v", c.PurgeRate)
	}
	if c.PurgeBurst < 0 {
		fail("PurgeBurst", "must be >= 0, got %d", c.PurgeBurst)
	}
	return errors.Join(errs...)
}
