package httpapi

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// The longest ShutdownDelay and HandOffTimeout a NodeConfig may have with a StopTimeout of up
// to 10 s: each counts against a stop that container orchestrators usually bound at 10 s after
// SIGTERM, and the delay, the hand-off, the leave and the drain must all fit in it. A longer
// StopTimeout allows each up to half of it (see maxStep).
const (
	MaxShutdownDelay  = 5 * time.Second
	MaxHandOffTimeout = 5 * time.Second
)

// NodeConfig is everything a Node needs besides its groups: where it listens, the API's and
// the cluster's settings, and how it stops. Start from DefaultNodeConfig (production) or
// LocalNodeConfig (tests and a laptop) and change what you need; NewNode validates it.
type NodeConfig struct {
	// Name names the node in the cluster, where it must be unique because the ring is built
	// from names, in /healthz and /cluster, and in the node's log lines. NewNode copies it
	// into API.NodeName and Cluster.NodeName, whatever those hold. Required with a Cluster;
	// on a node alone, empty shows as an empty name.
	Name string

	// HTTPAddr is the host:port the node listens on for clients, /metrics and, unless
	// PeerAddr is set, peers. Port 0 picks a free port (read it back with Node.Addr).
	// Required.
	HTTPAddr string

	// PeerAddr, when set, is a second host:port that serves the peer endpoints only, so that
	// node-to-node traffic can live on a cluster-only network (Envoy's separate admin
	// listener is the model): it is the address the node advertises to its peers, every path
	// but peers.PathPrefix and below answers 404 there, and HTTPAddr answers 404 under
	// peers.PathPrefix. Both pass the same middleware chain, TLS and connection limits. Port
	// 0 picks a free port (read it back with Node.PeerAddr). Zero: HTTPAddr serves both.
	PeerAddr string

	// TLS, when set, serves HTTPAddr (and PeerAddr) over TLS, with certificates re-read when
	// their files change; Node.ClientTLS is then the configuration for dialling peers, and
	// NewNode gives it to the cluster (Cluster.TLS, unless set) so that the peer wire dials
	// its peers over TLS: every node of a cluster serves TLS, or none. Nil: plain HTTP.
	TLS *TLSConfig

	// MaxConnections caps the connections open at once on each of the node's listeners. At
	// the cap a new connection closes the one that has waited longest without a request in
	// progress (an idle keep-alive connection, or a new one silent for 250 ms), and waits only
	// when every connection is busy, so that a flood of idle sockets can neither exhaust the
	// process's file descriptors nor lock normal clients out. Connections hijacked by an
	// Upgrade (the peer wire) count but are never closed to make room. Zero: three quarters
	// of the process's open-file limit (RLIMIT_NOFILE) when NewNode runs, at most 65536,
	// leaving the rest to peers, gossip and loaders (4096 where that limit is unknown).
	// Negative: no cap.
	MaxConnections int

	// MaxIdleConnections bounds the keep-alive connections idle at once on each listener:
	// when one more goes idle, the one idle longest is closed. API.IdleTimeout bounds how
	// long each may wait. Zero: half of MaxConnections. Negative: only MaxConnections bounds
	// them.
	MaxIdleConnections int

	// API tunes the HTTP API and its server: key limits, timeouts, middleware. Its NodeName
	// is set from Name.
	API Config

	// Cluster tunes the node's membership and peer transport. NewNode sets its NodeName from
	// Name, its HTTPAddr to the address the node serves peers on (PeerAddr, else HTTPAddr;
	// as bound, so port 0 works; an unspecified host is advertised as described at
	// peers.Config.HTTPAddr), its Logger to Logger when it has none, and its MaxKeyBytes to
	// API.MaxKeyBytes when it has none (peers get the key limit clients get); the caller's
	// value is not modified. Nil: the node serves alone,
	// owns every key and has no peer endpoints.
	Cluster *peers.Config

	// ShutdownDelay is how long Stop keeps serving, /readyz answering 503, before it leaves
	// the cluster and stops accepting connections, so that load balancers take the node out
	// of rotation first. It counts against StopTimeout, so it must be shorter; and it must be
	// under MaxShutdownDelay (5 s), or half of StopTimeout when that is longer. Zero: no delay.
	ShutdownDelay time.Duration

	// LeaveTimeout bounds the leave step of Stop (announcing the departure, so that peers stop
	// routing keys here), so that the drain keeps its share of StopTimeout when peers do not
	// answer; a peer that misses the departure detects it by probing. Cluster.LeaveTimeout
	// applies too: the shorter wins. Zero: only Cluster.LeaveTimeout.
	LeaveTimeout time.Duration

	// HandOffBytes bounds what Stop hands over before it leaves the cluster: the values this
	// node owns, the ones its eviction policy ranks highest first, up to this many bytes of
	// keys and values (all groups together), each pushed to the member that owns it once
	// this node is gone, so that a rolling restart does not send every key back to the
	// origin (handoff.go; the receivers keep a value only where they hold none). Zero or
	// negative: no hand-off. DefaultNodeConfig: 64 MiB.
	HandOffBytes int64

	// HandOffTimeout bounds the hand-off step of Stop; it counts against StopTimeout, so it
	// must be shorter; and it must be under MaxHandOffTimeout (5 s), or half of StopTimeout
	// when that is longer. Zero: 2 s.
	HandOffTimeout time.Duration

	// StopTimeout bounds a whole Stop: delay, hand-off, leave, drain and close. Requests still in flight
	// when it ends are cut off. Stop's context may end it sooner. Zero: only that context.
	StopTimeout time.Duration

	// Logger receives the node's start and stop, failed requests, handler panics and, when
	// Cluster.Logger is nil, membership events. Nil: slog.Default().
	Logger *slog.Logger

	// History sets how much of its recent past the node keeps for the status page's charts
	// (GET /), and how finely. Zero: 10 minutes in 5-second samples.
	History HistoryConfig
}

// DefaultNodeConfig returns production values: listen on every interface at port 8080,
// DefaultConfig's API, peers.DefaultConfig's LAN membership, 1 s of shutdown delay, 3 s for
// the leave, and 9 s for the whole stop (inside the 10 s a container orchestrator usually
// grants after SIGTERM). Name is empty: set it.
func DefaultNodeConfig() NodeConfig {
	pc := peers.DefaultConfig()
	return NodeConfig{
		HTTPAddr:      ":8080",
		API:           DefaultConfig(),
		Cluster:       &pc,
		ShutdownDelay: time.Second,
		LeaveTimeout:  3 * time.Second,
		StopTimeout:   9 * time.Second,
		HandOffBytes:  DefaultHandOffBytes,
	}
}

// LocalNodeConfig returns DefaultNodeConfig for nodes on one machine (tests, a laptop): named
// "local", on 127.0.0.1 ports picked by the kernel (HTTP and gossip), LocalConfig's short
// HTTP timeouts, peers.LocalConfig's fast membership, and no shutdown delay.
func LocalNodeConfig() NodeConfig {
	c := DefaultNodeConfig()
	pc := peers.LocalConfig()
	c.Name = "local"
	c.HTTPAddr = "127.0.0.1:0"
	c.API = LocalConfig()
	c.Cluster = &pc
	c.ShutdownDelay = 0
	return c
}

// Validate reports every field that is missing or out of range, the API's and the cluster's
// included, each as a *group.FieldError, joined. A fault of a nested configuration names its
// path from NodeConfig ("API.MaxKeyBytes", "Cluster.Seeds[1]"); a fault between two fields
// names the first ("ShutdownDelay" when it is not shorter than StopTimeout).
func (c NodeConfig) Validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, group.FieldErrorf(field, format, args...))
	}
	host, _, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		fail("HTTPAddr", "%q: want host:port, e.g. 127.0.0.1:8080", c.HTTPAddr)
	}
	if limit := c.maxStep(MaxShutdownDelay); c.ShutdownDelay < 0 || c.ShutdownDelay >= limit {
		fail("ShutdownDelay", "must be at least 0s and under %v, got %v", limit, c.ShutdownDelay)
	}
	if limit := c.maxStep(MaxHandOffTimeout); c.HandOffTimeout < 0 || c.HandOffTimeout >= limit {
		fail("HandOffTimeout", "must be at least 0s (0s: %v) and under %v, got %v", defaultHandOffTimeout, limit, c.HandOffTimeout)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"LeaveTimeout", c.LeaveTimeout},
		{"StopTimeout", c.StopTimeout},
	} {
		if d.v < 0 {
			fail(d.name, "must be >= 0, got %v", d.v)
		}
	}
	if c.StopTimeout > 0 && c.ShutdownDelay >= c.StopTimeout {
		fail("ShutdownDelay", "%v must be shorter than StopTimeout (%v), which it counts against", c.ShutdownDelay, c.StopTimeout)
	}
	if c.StopTimeout > 0 && c.HandOffBytes > 0 && c.handOffTimeout() >= c.StopTimeout {
		fail("HandOffTimeout", "%v must be shorter than StopTimeout (%v), which it counts against", c.handOffTimeout(), c.StopTimeout)
	}
	if c.PeerAddr != "" {
		if _, _, err := net.SplitHostPort(c.PeerAddr); err != nil {
			fail("PeerAddr", "%q: want host:port, e.g. 10.0.0.1:8081", c.PeerAddr)
		}
		if c.Cluster == nil {
			fail("PeerAddr", "needs a Cluster: a node alone has no peer endpoints")
		}
	}
	if c.TLS != nil {
		errs = append(errs, nestedFaults("TLS", c.TLS.Validate())...)
	}
	errs = append(errs, nestedFaults("API", c.API.Validate())...)
	errs = append(errs, nestedFaults("History", c.History.Validate())...)
	if c.Cluster != nil {
		// The listener's port is known only once bound: any port stands for it here. The
		// name is checked here, where its error names the field to set.
		pc := c.clusterConfig(net.JoinHostPort(host, "1"))
		if c.Name == "" {
			fail("Name", "required with a Cluster: the ring is built from names")
			pc.NodeName = "unnamed"
		}
		errs = append(errs, nestedFaults("Cluster", pc.Validate())...)
	}
	return errors.Join(errs...)
}

// nestedFaults returns the faults of the configuration in NodeConfig's field named field, as
// FieldErrors whose Field is their path from NodeConfig ("API.MaxKeyBytes"); a fault that is
// not a FieldError is blamed on field itself.
func nestedFaults(field string, err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, nestedFaults(field, e)...)
		}
		return out
	}
	if fe, ok := err.(*group.FieldError); ok {
		return []error{&group.FieldError{Field: field + "." + fe.Field, Err: fe.Err}}
	}
	return []error{&group.FieldError{Field: field, Err: err}}
}

// connLimits returns the caps on open and idle connections per listener; zero means none.
func (c NodeConfig) connLimits() (maxConns, maxIdle int) {
	switch {
	case c.MaxConnections < 0:
		return 0, 0
	case c.MaxConnections > 0:
		maxConns = c.MaxConnections
	default:
		maxConns = defaultMaxConnections()
	}
	switch {
	case c.MaxIdleConnections > 0:
		maxIdle = c.MaxIdleConnections
	case c.MaxIdleConnections == 0:
		maxIdle = max(maxConns/2, 1)
	}
	return maxConns, maxIdle
}

// defaultMaxConnections is MaxConnections' zero value: three quarters of the open-file limit,
// at most 65536, or 4096 when the limit is unknown.
func defaultMaxConnections() int {
	limit, ok := openFileLimit()
	if !ok || limit == 0 {
		return 4096
	}
	return int(max(min(limit/4*3, 65536), 16))
}

// apiConfig is API with the node's name.
func (c NodeConfig) apiConfig() Config {
	ac := c.API
	ac.NodeName = c.Name
	return ac
}

// clusterConfig is a copy of Cluster with the node's name, the address it serves peers on,
// and its logger. Cluster must not be nil.
func (c NodeConfig) clusterConfig(httpAddr string) peers.Config {
	pc := *c.Cluster
	pc.NodeName = c.Name
	pc.HTTPAddr = httpAddr
	if pc.Logger == nil {
		pc.Logger = c.Logger
	}
	if pc.MaxKeyBytes == 0 {
		pc.MaxKeyBytes = c.API.MaxKeyBytes
		if pc.MaxKeyBytes == 0 {
			pc.MaxKeyBytes = DefaultMaxKeyBytes
		}
	}
	return pc
}

// maxStep is the bound of one step of Stop (the delay, the hand-off): bound, or half of
// StopTimeout when that is longer, so that a node given a long stop may use it.
func (c NodeConfig) maxStep(bound time.Duration) time.Duration { return max(bound, c.StopTimeout/2) }
