package peers

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Config tunes one node's membership and peer transport. NodeName and HTTPAddr are required;
// every duration whose zero value is not described otherwise takes DefaultConfig's value.
// Start from DefaultConfig (production LAN) or LocalConfig (loopback tests).
type Config struct {
	// NodeName names this node in the cluster; it must be unique, because the ring is built
	// from names, and 1 to 255 bytes of printable ASCII without spaces, because the peer wire
	// carries it in its upgrade. Required.
	NodeName string

	// GossipAddr is the host:port memberlist binds (TCP and UDP on the same port) and
	// advertises. Port 0 picks a free port (read it back with Cluster.GossipAddr). A host of
	// 0.0.0.0 binds every interface and advertises the first private address. Zero: ":7946".
	GossipAddr string

	// HTTPAddr is the host:port of this node's HTTP server, where peers reach Handler. It is
	// advertised in the node's metadata. An unspecified host (":8080", "0.0.0.0:8080") is
	// replaced by the address memberlist advertises. Required.
	HTTPAddr string

	// Seeds are the members to join at Start and to stay in a cluster with: host:port, or a
	// DNS name with a port, which may resolve to several addresses (all are tried). Seeds
	// that cannot be reached do not fail Start, but the node is not Ready until one answers;
	// a seed that is not an alive member, at Start or later, is tried again after 100 ms,
	// doubling up to SeedRetryInterval, so nodes that start together, or before their seed,
	// merge within a moment of the seed's start, and a seed that restarted alone is merged
	// back as soon. Zero: start a new cluster alone (ready at once) and wait for others to
	// join it.
	Seeds []string

	// SecretKey, when set, encrypts and authenticates gossip with AES-GCM, and authenticates
	// the peer wire: every peer connection starts with an HMAC-signed upgrade from a current
	// member, the owner proves it holds the key too, and every frame carries a MAC (keyed
	// by HKDF-SHA256 of this key under a label of its own, so the gossip key never keys a MAC
	// directly). It must be 16, 24 or 32 bytes (AES-128/192/256), and the same on every
	// member. Zero: gossip in clear, and anyone who reaches the HTTP port may use the peer
	// wire (loopback, or a network trusted as a whole).
	SecretKey []byte

	// TLS, when set, is the client side of TLS for the peer wire: every connection to a peer
	// is dialled over TLS with it (the peers serve their HTTP port over TLS), verifying the
	// peer's certificate as it says; its ServerName defaults to the peer's host. Nil: plain
	// TCP.
	TLS *tls.Config

	// Label is memberlist's cluster label: packets from a cluster with another label are
	// dropped, so two clusters on one network cannot merge by mistake. Zero: no label.
	Label string

	// RejoinInterval is how often the node joins one of its Seeds picked at random, alive or
	// not: a full state exchange (one TCP push/pull) that merges two partitions whatever the
	// faster retries of missing seeds missed. Above 32 members it is spaced like memberlist's
	// own push/pull (one more interval per doubling). Shorter heals such partitions sooner.
	// Negative disables every join once the node is ready: no rejoin, no retry of missing
	// seeds, no join of a member that restarted alone (the first join is still retried).
	RejoinInterval time.Duration

	// RebuildQuiet is how long membership must stay still before the ring is rebuilt: a burst
	// of joins (a rolling deploy) then costs one rebuild and one reshuffle of ownership, not
	// one per event. A rebuild is never delayed by more than 10x RebuildQuiet. Longer batches
	// more; shorter converges sooner. Negative rebuilds at once.
	RebuildQuiet time.Duration

	// FetchTimeout bounds one peer call: a fetch, a remove or a purge. A fetch that
	// times out before the owner answers counts as "owner unreachable", after which the
	// asking Group loads the key itself: so that a slow origin is not asked twice, keep it
	// at or above the groups' LoadTimeout (the Group's own deadline then ends the wait first
	// and reports ErrLoadTimeout). Connecting is bounded separately by min(FetchTimeout, 2 s),
	// and a connection with calls in flight that stops answering pings for 1.5 s is closed,
	// so a peer that is gone or frozen is detected quickly whatever this value.
	FetchTimeout time.Duration

	// PeerEjectAfter is how many fetches in a row must find a peer unreachable (refused,
	// reset, a dial timeout, no pong) before this node ejects it from its routing: its keys
	// are then loaded here, with no wait, until a ping after PeerEjectFor finds it back
	// (outlier.go). Lower routes around a dead or hung peer sooner, and ejects a peer over a
	// brief network blip; an owner's verdict or a slow answer never counts. Negative: never
	// eject. Zero: 3.
	PeerEjectAfter int

	// PeerEjectFor is how long an ejected peer stays out of this node's routing before the
	// first ping asks whether it is back; each failed ping doubles the wait, up to 10x. Longer
	// costs the origin more duplicate loads after a short outage; shorter pings a dead peer
	// more often (a ping costs one dial). Zero: 5 s.
	PeerEjectFor time.Duration

	// LeaveTimeout bounds how long Leave waits for its departure to be gossiped; the
	// caller's context may end the wait sooner. Leave usually returns well before: once the
	// departure has gone out, or no other member is alive to hear it.
	LeaveTimeout time.Duration

	// MaxConnsPerPeer bounds the peer wire's TCP connections from this node to each peer,
	// whatever the number of concurrent fetches: they are multiplexed (up to 256 in flight
	// per connection, then callers wait for a slot within their deadline). More spreads the
	// work over more reader goroutines; fewer coalesce more requests per write. Default 2.
	MaxConnsPerPeer int

	// MaxKeyBytes is the longest key this node serves to its peers; longer ones are answered
	// invalid_key. Set it to the node's client limit (httpapi's MaxKeyBytes; a Node does).
	// At most 1 MiB. Zero: 1 KiB, httpapi's default.
	MaxKeyBytes int

	// MaxValueBytes is the largest value a peer may send or be sent, for every group. A
	// reply declaring more is refused before anything is allocated for it (the connection
	// closes, the fetch counts as unreachable and the asking node loads the key itself);
	// the owner answers a fetch of a larger value load_failed. At most 2 GiB. Zero: per
	// group, its CacheBytes (no larger value can be cached), and for the connections the
	// largest of the groups registered when a peer is first seen (so Register before Start).
	MaxValueBytes int64

	// ProbeInterval is memberlist's failure-detection period: every interval one random
	// member is probed. Shorter detects a crashed node sooner and costs more packets.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a probe waits for an ack before asking other members to
	// probe indirectly. It should exceed the 99th percentile round trip of the network.
	ProbeTimeout time.Duration

	// GossipInterval is how often gossip messages are sent to GossipNodes random members.
	// Shorter spreads news faster at the cost of more packets.
	GossipInterval time.Duration

	// PushPullInterval is how often a full state exchange with one random member runs; it
	// repairs what gossip missed.
	PushPullInterval time.Duration

	// SuspicionMult scales how long a member stays suspect before it is declared dead:
	// SuspicionMult * max(1, log10(members)) * ProbeInterval. Lower detects crashes sooner
	// and raises the risk of declaring a slow node dead.
	SuspicionMult int

	// SuspicionMaxTimeoutMult caps the suspicion timeout, as a multiple of the one above,
	// when few members confirm the suspicion (memberlist starts at the cap and shrinks it as
	// confirmations arrive, so with few members this is the timeout that applies).
	SuspicionMaxTimeoutMult int

	// TCPTimeout bounds memberlist's TCP operations: joins, push/pull, TCP fallback probes.
	TCPTimeout time.Duration

	// GossipToTheDeadTime is how long a dead member keeps receiving gossip, so it learns it
	// was declared dead and refutes it if it is in fact alive.
	GossipToTheDeadTime time.Duration

	// DeadNodeReclaimTime is how long after a member dies its name may come back from another
	// address (a restarted pod with a new IP). Zero: never, as in memberlist, and a node
	// restarted at a new address under its old name then stays not ready until restarted at
	// the old one. DefaultConfig: 30s, longer than the lan preset takes to declare a member
	// dead and spread it, so a live member's name is never taken over.
	DeadNodeReclaimTime time.Duration

	// Logger receives membership events and transport failures; memberlist's own log lines
	// are passed to it at their level ([DEBUG] at Debug, and so on). Zero: slog.Default().
	Logger *slog.Logger

	// SeedRetryInterval caps the wait between two tries of a seed that is not an alive
	// member: at Start until a seed answers, and afterwards whenever a seed left, died, is
	// cut off, or restarted alone. Tries start 100 ms after the seed goes missing and the
	// wait doubles up to this, jittered by ±50 %; above 8 alive members the cap grows in
	// proportion (× members/8), so that a whole cluster tries a missing seed about 8 times
	// per interval whatever its size. It bounds how long a seed that comes back alone waits
	// to be merged; shorter merges sooner and sends more connection attempts to a seed that
	// is down for good. Values under 100 ms count as 100 ms. Zero: DefaultConfig's.
	SeedRetryInterval time.Duration

	// TombstoneTTL is how long this node remembers a Remove or Purge that a member did not
	// confirm (it was dead, cut off, or did not answer): the removal is sent again when the
	// member is back, before it re-enters this node's ring, and retried with a backoff
	// (100 ms doubling to 5 s) until it confirms or this time has passed. Longer covers
	// longer partitions; a member cut off for more than this may serve a removed value
	// after the heal, until its TTL. At most 1024 key removals (1 MiB of keys) are kept per
	// member, more collapse into a purge of their group. Negative keeps none. Zero:
	// DefaultConfig's, 10 minutes.
	TombstoneTTL time.Duration

	// WarmTime is how long after a change of the ring (a member joined, left or restarted)
	// a local load of a key whose owner changed first asks the key's previous owner for the
	// value it holds in memory (the peer wire's peek: never its loader), so that the origin
	// is not asked again for a value the cluster still has (warm.go). Longer keeps asking
	// for longer, at up to PeekTimeout per miss. Negative: no peeks. Zero: DefaultConfig's,
	// one minute.
	WarmTime time.Duration

	// PeekTimeout bounds one peek: a previous owner that does not answer within it costs
	// the load that follows no more. A peek is a lookup in memory, answered in well under a
	// millisecond on a LAN. Zero: DefaultConfig's, 100 ms.
	PeekTimeout time.Duration
}

// DefaultConfig returns production values for a LAN: memberlist's DefaultLANConfig timings
// (1 s probes, 200 ms gossip, 30 s push/pull), a ring rebuilt after 500 ms of quiet, missing
// seeds retried every second at most, a rejoin every 30 s, and peer calls bounded by 30 s
// (group.DefaultConfig's LoadTimeout).
func DefaultConfig() Config {
	return Config{
		GossipAddr:              ":7946",
		RejoinInterval:          30 * time.Second,
		RebuildQuiet:            500 * time.Millisecond,
		FetchTimeout:            30 * time.Second,
		LeaveTimeout:            5 * time.Second,
		MaxConnsPerPeer:         2,
		PeerEjectAfter:          3,
		PeerEjectFor:            5 * time.Second,
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		TCPTimeout:              10 * time.Second,
		GossipToTheDeadTime:     30 * time.Second,
		DeadNodeReclaimTime:     30 * time.Second,
		SeedRetryInterval:       time.Second,
		TombstoneTTL:            10 * time.Minute,
		WarmTime:                time.Minute,
		PeekTimeout:             100 * time.Millisecond,
	}
}

// LocalConfig returns a preset for clusters on one machine (tests, a laptop): it binds
// 127.0.0.1 on a free port and uses fast gossip and short suspicion so that a joining or
// leaving node is in every ring within a few hundred milliseconds and a crashed node leaves
// them within about three seconds (BENCHMARKS.md). memberlist's own DefaultLocalConfig keeps
// LAN suspicion timeouts and shows convergence tails near 20 s on loopback. Probes stay at
// 500 ms with a 250 ms timeout: faster ones made nodes of a test process starved by -race
// on two shared cores miss acks, and be declared dead while alive.
func LocalConfig() Config {
	c := DefaultConfig()
	c.GossipAddr = "127.0.0.1:0"
	c.RejoinInterval = time.Second
	c.RebuildQuiet = 50 * time.Millisecond
	c.FetchTimeout = 10 * time.Second
	c.LeaveTimeout = 2 * time.Second
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 2
	c.TCPTimeout = time.Second
	c.GossipToTheDeadTime = 2 * time.Second
	c.DeadNodeReclaimTime = time.Second
	c.SeedRetryInterval = 200 * time.Millisecond
	return c
}

// withDefaults fills zero durations and counts from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.GossipAddr == "" {
		c.GossipAddr = d.GossipAddr
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.RejoinInterval, &d.RejoinInterval},
		{&c.RebuildQuiet, &d.RebuildQuiet},
		{&c.FetchTimeout, &d.FetchTimeout},
		{&c.LeaveTimeout, &d.LeaveTimeout},
		{&c.ProbeInterval, &d.ProbeInterval},
		{&c.ProbeTimeout, &d.ProbeTimeout},
		{&c.GossipInterval, &d.GossipInterval},
		{&c.PushPullInterval, &d.PushPullInterval},
		{&c.TCPTimeout, &d.TCPTimeout},
		{&c.GossipToTheDeadTime, &d.GossipToTheDeadTime},
		{&c.SeedRetryInterval, &d.SeedRetryInterval},
		{&c.TombstoneTTL, &d.TombstoneTTL},
		{&c.WarmTime, &d.WarmTime},
		{&c.PeekTimeout, &d.PeekTimeout},
		{&c.PeerEjectFor, &d.PeerEjectFor},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *int }{
		{&c.MaxConnsPerPeer, &d.MaxConnsPerPeer},
		{&c.PeerEjectAfter, &d.PeerEjectAfter},
		{&c.SuspicionMult, &d.SuspicionMult},
		{&c.SuspicionMaxTimeoutMult, &d.SuspicionMaxTimeoutMult},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every field that is missing or out of range, after zero fields have taken
// their defaults (as New does): each is a *group.FieldError naming the field, joined.
func (c Config) Validate() error { return c.withDefaults().validate() }

func (c Config) validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, group.FieldErrorf(field, format, args...))
	}
	if c.NodeName == "" {
		fail("NodeName", "required")
	} else if err := checkNodeName(c.NodeName); err != nil {
		fail("NodeName", "%q: %w", c.NodeName, err)
	}
	if _, _, err := splitHostPort(c.GossipAddr); err != nil {
		fail("GossipAddr", "%w", err)
	}
	if c.HTTPAddr == "" {
		fail("HTTPAddr", "required")
	} else if _, port, err := splitHostPort(c.HTTPAddr); err != nil {
		fail("HTTPAddr", "%w", err)
	} else if port == 0 {
		fail("HTTPAddr", "%q: port 0 cannot be advertised; pass the listener's address", c.HTTPAddr)
	}
	for i, s := range c.Seeds {
		if _, port, err := splitHostPort(s); err != nil || port == 0 {
			fail(fmt.Sprintf("Seeds[%d]", i), "seed %q: want host:port, where host is an address or a DNS name and port is not 0", s)
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		fail("SecretKey", "must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256), got %d", len(c.SecretKey))
	}
	if len(c.Label) > 255 {
		fail("Label", "must be at most 255 bytes, got %d", len(c.Label))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"FetchTimeout", c.FetchTimeout}, {"LeaveTimeout", c.LeaveTimeout},
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval},
		{"TCPTimeout", c.TCPTimeout}, {"GossipToTheDeadTime", c.GossipToTheDeadTime},
		{"PeekTimeout", c.PeekTimeout},
		{"PeerEjectFor", c.PeerEjectFor},
	} {
		if f.v <= 0 {
			fail(f.name, "must be > 0s, got %v", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxConnsPerPeer", c.MaxConnsPerPeer},
		{"SuspicionMult", c.SuspicionMult},
		{"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult},
	} {
		if f.v <= 0 {
			fail(f.name, "must be > 0, got %d", f.v)
		}
	}
	if c.MaxKeyBytes < 0 || c.MaxKeyBytes > 1<<20 {
		fail("MaxKeyBytes", "must be between 0 (1 KiB) and 1 MiB, got %d", c.MaxKeyBytes)
	}
	if c.MaxValueBytes < 0 || c.MaxValueBytes > maxWireValue {
		fail("MaxValueBytes", "must be between 0 (each group's CacheBytes) and 2 GiB, got %d", c.MaxValueBytes)
	}
	if c.DeadNodeReclaimTime < 0 {
		fail("DeadNodeReclaimTime", "must be >= 0s, got %v", c.DeadNodeReclaimTime)
	}
	if c.ProbeTimeout > c.ProbeInterval {
		fail("ProbeTimeout", "must not exceed ProbeInterval (%v), got %v", c.ProbeInterval, c.ProbeTimeout)
	}
	return errors.Join(errs...)
}

// maxWireValue is the largest value the peer wire carries.
const maxWireValue = 1 << 31

// checkNodeName accepts what the peer wire can carry in a header: 1 to 255 bytes of printable
// ASCII without spaces.
func checkNodeName(name string) error {
	if len(name) > 255 {
		return errors.New("longer than 255 bytes")
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return errors.New("only printable ASCII without spaces (the peer wire carries it in a header)")
		}
	}
	return nil
}

// splitHostPort parses host:port with a numeric port (the host may be empty). Its errors
// quote addr and say what a valid one looks like.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: want host:port, e.g. 127.0.0.1:7946", addr)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("invalid port in %q: want a number from 0 to 65535", addr)
	}
	return host, int(port), nil
}
