package peers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

var (
	_ group.PeerPicker  = (*Cluster)(nil)
	_ group.Invalidator = (*Cluster)(nil)
	_ group.AsyncPeer   = (*wirePeer)(nil)
	_ wire.Handler      = wireHandler{}
)

// Cluster is this node's membership in a groupcached cluster: it gossips with the other
// members, keeps the ring of the alive ones, picks the owner of a key for its Groups, serves
// the peer endpoints, and spreads Remove and Purge. Build it with New, Register the groups,
// serve Handler on the HTTP server at HTTPAddr, then Start. It is safe for concurrent use.
//
// Its jobs live in one file each: membership.go starts and stops memberlist, seeds.go joins
// the seeds, view.go turns membership events into the ring, transport.go asks peers over the
// peer wire (peers/wire), serve.go answers them and checks who may connect, readiness.go says
// whether the node should get traffic, identity.go tells which process holds a name.
type Cluster struct {
	cfg Config
	log *slog.Logger

	// view is what PickPeer reads on every miss: the ring, the peer of each ring member and
	// the member table. rebuild swaps in a new one; readers never lock.
	view atomic.Pointer[view]

	// events carries memberlist's node events to rebuild.
	events *eventQueue

	// tombs are the removals members did not confirm, sent again when they are back
	// (tombstone.go).
	tombs *tombstones

	// server answers the peer wire's connections (serve.go); Handler mounts it.
	server *wire.Server

	// groups is read on every fetch and every request served, without a lock: Register
	// replaces the whole map (under groupsMu, which orders Register calls).
	groupsMu sync.Mutex
	groups   atomic.Pointer[map[string]*servedGroup]

	// refusals rate-limits the log lines of refused peer connections, each kind on its own
	// (a clock skew is not drowned by a flood of unauthenticated attempts).
	refusals refusalLogs

	// meta is this node's memberlist metadata (nodeMeta as JSON); memberlist asks for it from
	// its own goroutines, under its own lock.
	meta atomic.Pointer[[]byte]

	// life ends at Leave or Shutdown: it stops the goroutines and the peer requests being
	// served, which then answer "shutting down".
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// leaveQueued is closed when memberlist reports this node's own departure, which it does
	// once Leave has queued the leave message: from then on Shutdown may run while
	// memberlist's Leave is still waiting (it panics when called after Shutdown).
	leaveQueued     chan struct{}
	leaveQueuedOnce sync.Once

	// mu guards the lifecycle below: Start and Shutdown each run whole under it, so a node is
	// never started and stopped at once, and Leave and GossipAddr read a consistent state;
	// startLeave holds it until memberlist's Leave is past its panic on a shut-down
	// memberlist. (The seed joins read gossipAddr without it: Start writes it once, before
	// it launches the goroutine that reads it.)
	mu         sync.Mutex
	ml         *memberlist.Memberlist
	started    bool
	stopped    bool
	gossipAddr string

	// ready is what Ready reports (readiness.go); ident is this process's boot identifier and
	// gossip address, read by the memberlist callbacks that tell which process holds a name
	// (identity.go).
	ready readiness
	ident *identity

	// memberlistHook, when set, adjusts memberlist's configuration before Start creates it.
	// Only tests set it (to cut the network between nodes); nil in production.
	memberlistHook func(*memberlist.Config)

	rebuilds       atomic.Uint64
	lastRebuild    atomic.Int64 // unix nanoseconds
	rebuildLatency atomic.Int64
	fetchErrors    atomic.Uint64
	unreachable    atomic.Uint64
	invalidations  atomic.Uint64
	authRefused    atomic.Uint64
	skewRefused    atomic.Uint64
	ejections      atomic.Uint64

	// handOffs counts the hand-offs this node made as it stopped, and what they sent
	// (handoff.go).
	handOffs, handOffEntries, handOffBytes atomic.Uint64
}

// New validates cfg (zero fields take DefaultConfig's values) and returns a Cluster that knows
// only itself. It starts nothing: no socket is opened until Start.
func New(cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("peers: config: %w", err)
	}
	cfg.Seeds = slices.Clone(cfg.Seeds)
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	if len(cfg.SecretKey) == 0 {
		cfg.SecretKey = nil // the wire authenticates when its secret is not nil
	}
	c := &Cluster{
		cfg:    cfg,
		log:    cfg.Logger.With("node", cfg.NodeName),
		events: newEventQueue(),
		tombs:  newTombstones(cfg.TombstoneTTL),
		ident:  newIdentity(),

		leaveQueued: make(chan struct{}),
	}
	c.groups.Store(&map[string]*servedGroup{})
	server, err := c.newServer()
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	c.server = server
	c.life, c.stop = context.WithCancel(context.Background())
	c.setMeta(nodeMeta{HTTPAddr: cfg.HTTPAddr})
	c.view.Store(startView(Member{Name: cfg.NodeName, HTTPAddr: cfg.HTTPAddr}))
	c.rebuild() // the first ring: this node alone
	return c, nil
}

// Name returns this node's name.
func (c *Cluster) Name() string { return c.cfg.NodeName }

// GossipAddr returns the address memberlist advertises, with the port actually bound; before
// Start it returns the configured GossipAddr.
func (c *Cluster) GossipAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gossipAddr != "" {
		return c.gossipAddr
	}
	return c.cfg.GossipAddr
}

// Register serves g to the peers and links it to the cluster: g.SetPeers(c) and
// g.SetInvalidator(c). Every member must register the same groups, before Start: the largest
// value a peer may send is derived from the groups registered when it is first seen (see
// Config.MaxValueBytes). Registering a second, different Group under a name already
// registered is a wiring mistake and panics.
func (c *Cluster) Register(g *group.Group) {
	c.groupsMu.Lock()
	old := *c.groups.Load()
	if s, ok := old[g.Name()]; ok && s.g != g {
		c.groupsMu.Unlock()
		panic(fmt.Sprintf("peers: two groups named %q registered on node %s", g.Name(), c.cfg.NodeName))
	}
	groups := make(map[string]*servedGroup, len(old)+1)
	for name, s := range old {
		groups[name] = s
	}
	groups[g.Name()] = c.newServedGroup(g)
	c.groups.Store(&groups)
	c.groupsMu.Unlock()
	g.SetPeers(c)
	g.SetInvalidator(c)
}

// servedGroup is a registered group with the bounds the peer wire applies to it.
type servedGroup struct {
	g        *group.Group
	ttl      time.Duration // the group's TTL: a peer's TTL is capped at it (0: no cap)
	maxValue int64         // the largest value sent or accepted for it
}

func (c *Cluster) newServedGroup(g *group.Group) *servedGroup {
	gc := g.Config()
	maxValue := c.cfg.MaxValueBytes
	if maxValue == 0 {
		maxValue = min(gc.CacheBytes, maxWireValue)
	}
	return &servedGroup{g: g, ttl: gc.TTL, maxValue: maxValue}
}

// served returns the registered group of that name, or nil.
func (c *Cluster) served(name string) *servedGroup { return (*c.groups.Load())[name] }

// maxValueBytes is the bound of a new peer connection: the largest value of any group.
func (c *Cluster) maxValueBytes() int {
	maxValue := c.cfg.MaxValueBytes
	for _, s := range *c.groups.Load() {
		maxValue = max(maxValue, s.maxValue)
	}
	if maxValue == 0 {
		return 0 // no group yet: the wire's default
	}
	return int(maxValue)
}

// maxKeyBytes is the longest key served to peers, and sent to them.
func (c *Cluster) maxKeyBytes() int {
	if c.cfg.MaxKeyBytes > 0 {
		return c.cfg.MaxKeyBytes
	}
	return defaultMaxKeyBytes
}

// defaultMaxKeyBytes is MaxKeyBytes' zero value: httpapi's default limit.
const defaultMaxKeyBytes = 1 << 10

// Handler returns the peer endpoints: the peer wire's upgrade at wire.DefaultPath
// (PathPrefix + "/v2/conn"), and 404 below PathPrefix otherwise (without the wire's error
// code, so that a node still on the v1 HTTP wire counts the owner unreachable and loads the
// key itself). It serves full request paths, so mount it at PathPrefix without stripping
// the prefix, behind the node's middleware chain: the upgrade passes it like any request.
func (c *Cluster) Handler() http.Handler { return peerHandler{c} }

// PickPeer returns the owner of key, or ok == false when this node owns it or the owner is
// ejected (outlier.go: it failed PeerEjectAfter fetches in a row). It never blocks and does
// not allocate.
func (c *Cluster) PickPeer(key string) (group.Peer, bool) {
	v := c.view.Load()
	i := v.ring.Owner(key)
	if i < 0 || v.peers[i] == nil || v.peers[i].isEjected() {
		return nil, false
	}
	return v.peers[i], true
}

// InvalidateKey asks every other member to drop key from group's caches, in parallel, each
// call bounded by FetchTimeout, and reports how many confirmed. When some did not, or the
// view holds some as dead, the error is an *IncompleteError naming them, and the removal is
// sent to them again when they are back (Config.TombstoneTTL).
func (c *Cluster) InvalidateKey(ctx context.Context, groupName, key string) (int, error) {
	return c.invalidateAll(ctx, false, groupName, key)
}

// InvalidateGroup asks every other member to purge group, like InvalidateKey.
func (c *Cluster) InvalidateGroup(ctx context.Context, groupName string) (int, error) {
	return c.invalidateAll(ctx, true, groupName, "")
}

// Members returns every member this node knows, sorted by name: the Alive ones with their
// share of the ring, and those that left or died in the last five minutes (MemberState says
// what each state means, and why none is "suspect").
func (c *Cluster) Members() []Member {
	v := c.view.Load()
	ms := slices.Clone(v.members)
	for i := range ms {
		if p := v.peer(ms[i].Name); p != nil && ms[i].State == Alive {
			if until := p.ejectedUntil(); !until.IsZero() {
				ms[i].Ejected, ms[i].EjectedUntil = true, &until
			}
		}
	}
	return ms
}

// Owner returns the name of the member that owns key in this node's current ring.
func (c *Cluster) Owner(key string) string { return c.view.Load().ring.OwnerName(key) }

// RingMembers returns the names in this node's current ring, sorted. Two nodes with the same
// RingMembers agree on the owner of every key.
func (c *Cluster) RingMembers() []string { return slices.Clone(c.view.Load().ring.Names()) }

// Stats returns a snapshot of the cluster's counters.
func (c *Cluster) Stats() Stats {
	v := c.view.Load()
	st := Stats{
		Members:        v.ring.Len(),
		RingRebuilds:   c.rebuilds.Load(),
		FetchErrors:    c.fetchErrors.Load(),
		Unreachable:    c.unreachable.Load(),
		Invalidations:  c.invalidations.Load(),
		RebuildLatency: time.Duration(c.rebuildLatency.Load()),
	}
	// The kind before the total: a snapshot never shows more clock skews than refusals.
	st.ClockSkewRefused = c.skewRefused.Load()
	st.AuthRefused = c.authRefused.Load()
	st.Tombstones = c.tombs.stats()
	st.Ejections = c.ejections.Load()
	st.BatchesServed, st.BatchKeysServed = c.server.BatchesServed()
	for _, p := range v.peers {
		if p != nil {
			st.PeerConns += p.conns()
			if p.isEjected() {
				st.Ejected++
			}
		}
	}
	if ns := c.lastRebuild.Load(); ns != 0 {
		st.LastRebuild = time.Unix(0, ns)
	}
	return st
}
