package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/groupcached/groupcached/group"
)

var (
	_ group.PeerPicker  = (*Cluster)(nil)
	_ group.Invalidator = (*Cluster)(nil)
	_ group.Peer        = (*httpPeer)(nil)
)

// departedRetention is how long a member that left or died stays listed by Members, so that an
// operator looking at /cluster sees what just happened.
const departedRetention = 5 * time.Minute

// Cluster is this node's membership in a groupcached cluster: it gossips with the other
// members, keeps the ring of the alive ones, picks the owner of a key for its Groups, serves
// the peer endpoints, and spreads Remove and Purge. Build it with New, Register the groups,
// serve Handler on the HTTP server at HTTPAddr, then Start. It is safe for concurrent use.
type Cluster struct {
	cfg Config
	log *slog.Logger

	// view is what PickPeer reads on every miss: the ring and the peer of each ring member.
	// The rebuild goroutine swaps in a new one; readers never lock.
	view atomic.Pointer[view]

	client    *http.Client
	transport *http.Transport

	groupsMu sync.RWMutex
	groups   map[string]*group.Group

	// meta is this node's memberlist metadata (the advertised HTTP address); memberlist asks
	// for it from its own goroutines.
	meta atomic.Pointer[[]byte]

	// Membership events are recorded by memberlist's callbacks, which run under memberlist's
	// locks and so only append here and signal; the rebuild goroutine applies them.
	evMu      sync.Mutex
	events    []nodeEvent
	lastEvent time.Time
	signal    chan struct{}

	// known is every member seen, alive or recently departed; only rebuild touches it,
	// under rebuildMu.
	rebuildMu sync.Mutex
	known     map[string]*Member
	departed  map[string]time.Time

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

	mu         sync.Mutex // guards the lifecycle below
	ml         *memberlist.Memberlist
	started    bool
	stopped    bool
	gossipAddr string

	rebuilds       atomic.Uint64
	lastRebuild    atomic.Int64 // unix nanoseconds
	rebuildLatency atomic.Int64
	fetchErrors    atomic.Uint64
	unreachable    atomic.Uint64
	invalidations  atomic.Uint64
}

// view is one immutable snapshot of the ring and the members.
type view struct {
	ring    *Ring
	peers   []*httpPeer // by ring index; nil for this node
	members []Member    // every known member, sorted by name, Share filled
}

// nodeEvent is a copy of what memberlist reported about a node.
type nodeEvent struct {
	left bool // NotifyLeave: the node left or died
	name string
	addr string
	meta []byte
}

// nodeMeta is the metadata every node gossips about itself.
type nodeMeta struct {
	HTTPAddr string `json:"http"`
	// Leaving is set by Leave before memberlist's leave message goes out: memberlist's
	// NotifyLeave does not say whether a node left or died (Node.State is not kept up to
	// date), and the members drop a leaving node from their rings a little sooner.
	Leaving bool `json:"leaving,omitempty"`
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
	transport := newTransport(cfg)
	c := &Cluster{
		cfg:       cfg,
		log:       cfg.Logger.With("node", cfg.NodeName),
		transport: transport,
		client:    &http.Client{Transport: transport},
		groups:    make(map[string]*group.Group),
		signal:    make(chan struct{}, 1),
		known:     make(map[string]*Member),
		departed:  make(map[string]time.Time),

		leaveQueued: make(chan struct{}),
	}
	c.life, c.stop = context.WithCancel(context.Background())
	c.setMeta(nodeMeta{HTTPAddr: cfg.HTTPAddr})
	c.known[cfg.NodeName] = &Member{Name: cfg.NodeName, HTTPAddr: cfg.HTTPAddr, State: "alive", Self: true}
	c.rebuild()
	return c, nil
}

func (c *Cluster) setMeta(m nodeMeta) {
	b, _ := json.Marshal(m)
	c.meta.Store(&b)
}

func (c *Cluster) currentMeta() nodeMeta {
	var m nodeMeta
	_ = json.Unmarshal(*c.meta.Load(), &m)
	return m
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
// g.SetInvalidator(c). Every member must register the same groups. Registering a second,
// different Group under a name already registered is a wiring mistake and panics.
func (c *Cluster) Register(g *group.Group) {
	c.groupsMu.Lock()
	if old, ok := c.groups[g.Name()]; ok && old != g {
		c.groupsMu.Unlock()
		panic(fmt.Sprintf("peers: two groups named %q registered on node %s", g.Name(), c.cfg.NodeName))
	}
	c.groups[g.Name()] = g
	c.groupsMu.Unlock()
	g.SetPeers(c)
	g.SetInvalidator(c)
}

func (c *Cluster) group(name string) *group.Group {
	c.groupsMu.RLock()
	defer c.groupsMu.RUnlock()
	return c.groups[name]
}

// Handler returns the peer endpoints. It serves full request paths under PathPrefix, so mount
// it there without stripping the prefix.
func (c *Cluster) Handler() http.Handler { return handler{c} }

// PickPeer returns the owner of key, or ok == false when this node owns it. It never blocks
// and does not allocate.
func (c *Cluster) PickPeer(key string) (group.Peer, bool) {
	v := c.view.Load()
	i := v.ring.Owner(key)
	if i < 0 || v.peers[i] == nil {
		return nil, false
	}
	return v.peers[i], true
}

// InvalidateKey asks every other member to drop key from group's caches, in parallel, each
// call bounded by FetchTimeout, and reports how many confirmed.
func (c *Cluster) InvalidateKey(ctx context.Context, groupName, key string) (int, error) {
	return c.invalidateAll(ctx, pathRemove, groupName, key)
}

// InvalidateGroup asks every other member to purge group, like InvalidateKey.
func (c *Cluster) InvalidateGroup(ctx context.Context, groupName string) (int, error) {
	return c.invalidateAll(ctx, pathPurge, groupName, "")
}

// Members returns every member this node knows, sorted by name: the alive ones with their
// share of the ring, and those that left or died in the last five minutes. memberlist does
// not report suspicion through its events, so State is "alive", "left" or "dead".
func (c *Cluster) Members() []Member { return slices.Clone(c.view.Load().members) }

// Owner returns the name of the member that owns key in this node's current ring.
func (c *Cluster) Owner(key string) string { return c.view.Load().ring.OwnerName(key) }

// RingMembers returns the names in this node's current ring, sorted. Two nodes with the same
// RingMembers agree on the owner of every key.
func (c *Cluster) RingMembers() []string { return slices.Clone(c.view.Load().ring.Names()) }

// Stats returns a snapshot of the cluster's counters.
func (c *Cluster) Stats() Stats {
	st := Stats{
		Members:        c.view.Load().ring.Len(),
		RingRebuilds:   c.rebuilds.Load(),
		FetchErrors:    c.fetchErrors.Load(),
		Unreachable:    c.unreachable.Load(),
		Invalidations:  c.invalidations.Load(),
		RebuildLatency: time.Duration(c.rebuildLatency.Load()),
	}
	if ns := c.lastRebuild.Load(); ns != 0 {
		st.LastRebuild = time.Unix(0, ns)
	}
	return st
}

// Start binds memberlist at GossipAddr, joins the seeds and starts the goroutines that rebuild
// the ring and rejoin the seeds. Seeds that cannot be reached do not fail Start: until one
// answers (the nodes of a cluster starting together, a seed starting a moment later) the join
// is retried after 100 ms, then after twice as long each time, up to RejoinInterval; after
// that, the seeds are joined again every RejoinInterval. ctx bounds the seed lookups of the
// first join; the goroutines run until Leave or Shutdown.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return errors.New("peers: Start after Leave or Shutdown")
	case c.started:
		return errors.New("peers: Start called twice")
	}
	mlc, err := c.memberlistConfig()
	if err != nil {
		return err
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		return fmt.Errorf("peers: starting memberlist on %s: %w", c.cfg.GossipAddr, err)
	}
	c.ml, c.started = ml, true
	self := ml.LocalNode()
	c.gossipAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))

	if host, port, _ := splitHostPort(c.cfg.HTTPAddr); host == "" || net.ParseIP(host).IsUnspecified() {
		// Advertise an address peers can dial: the one memberlist advertises.
		c.setMeta(nodeMeta{HTTPAddr: net.JoinHostPort(self.Addr.String(), strconv.Itoa(port))})
		if err := ml.UpdateNode(c.cfg.TCPTimeout); err != nil {
			c.log.Warn("advertising the HTTP address", "err", err)
		}
	}
	c.log.Info("cluster started", "gossip", c.gossipAddr, "http", c.currentMeta().HTTPAddr)

	joined := c.join(ctx, ml, true)
	c.rebuild()
	c.wg.Go(c.rebuildLoop)
	if !joined || c.cfg.RejoinInterval > 0 && len(c.cfg.Seeds) > 0 {
		c.wg.Go(func() { c.rejoinLoop(ml, joined) })
	}
	return nil
}

func (c *Cluster) memberlistConfig() (*memberlist.Config, error) {
	host, port, err := splitHostPort(c.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("peers: GossipAddr: %w", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mlc := memberlist.DefaultLANConfig()
	mlc.Name = c.cfg.NodeName
	mlc.BindAddr, mlc.BindPort, mlc.AdvertisePort = host, port, port
	mlc.SecretKey = c.cfg.SecretKey
	mlc.Label = c.cfg.Label
	mlc.ProbeInterval = c.cfg.ProbeInterval
	mlc.ProbeTimeout = c.cfg.ProbeTimeout
	mlc.GossipInterval = c.cfg.GossipInterval
	mlc.PushPullInterval = c.cfg.PushPullInterval
	mlc.SuspicionMult = c.cfg.SuspicionMult
	mlc.SuspicionMaxTimeoutMult = c.cfg.SuspicionMaxTimeoutMult
	mlc.TCPTimeout = c.cfg.TCPTimeout
	mlc.GossipToTheDeadTime = c.cfg.GossipToTheDeadTime
	mlc.DeadNodeReclaimTime = c.cfg.DeadNodeReclaimTime
	mlc.Delegate = delegate{c}
	mlc.Events = eventDelegate{c}
	mlc.LogOutput = nil
	mlc.Logger = log.New(memberlistLog{
		log:      c.log.With("component", "memberlist"),
		stopping: func() bool { return c.life.Err() != nil },
	}, "", 0)
	return mlc, nil
}

// leavePoll is how often Leave looks whether any other member is still alive to hear it.
const leavePoll = 10 * time.Millisecond

// Leave announces this node's departure, waits until it has been gossiped, then shuts down
// like Shutdown. The wait ends as soon as the announcement has gone out, or no other member
// is alive to hear it (the others left or died meanwhile, as when a whole cluster stops at
// once), and at the latest after LeaveTimeout, or when ctx ends. Until then the node keeps
// serving its peers, who may still route keys to it; afterwards peer requests are answered
// "shutting down", and the askers load for themselves.
func (c *Cluster) Leave(ctx context.Context) error {
	c.mu.Lock()
	ml, running := c.ml, c.started && !c.stopped
	c.mu.Unlock()
	var err error
	if running {
		err = c.announceLeave(ctx, ml)
	}
	return errors.Join(err, c.Shutdown())
}

// announceLeave first says "leaving" in this node's metadata, which tells the members that
// this is a departure and not a crash, then sends memberlist's leave message.
//
// memberlist's UpdateNode and Leave block until their message has been sent as many times as
// memberlist retransmits it, or their timeout. When the other members leave or die during
// that wait, nobody is left to send it to and they wait out the whole timeout: with every
// node of a cluster stopping together, the last ones to leave used to wait for their
// caller's whole deadline. So both run on goroutines that announceLeave stops waiting for
// once no other member is alive; an abandoned call ends by itself within LeaveTimeout.
func (c *Cluster) announceLeave(ctx context.Context, ml *memberlist.Memberlist) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LeaveTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	remaining := func() time.Duration {
		// memberlist waits forever on a timeout <= 0.
		return max(time.Until(deadline), time.Millisecond)
	}
	alone := func() bool {
		for _, n := range ml.Members() {
			if n.Name != c.cfg.NodeName {
				return false
			}
		}
		return true
	}

	// The metadata may take half of the time; the leave message gets the rest.
	m := c.currentMeta()
	m.Leaving = true
	c.setMeta(m)
	half := remaining() / 2
	updateCtx, cancelUpdate := context.WithTimeout(ctx, half)
	updated := make(chan error, 1)
	go func() { updated <- ml.UpdateNode(half) }()
	if err := awaitBroadcast(updateCtx, updated, alone); err != nil {
		c.log.Warn("announcing departure", "err", err)
	}
	cancelUpdate()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("peers: leaving: %w", err)
	}

	left := make(chan error, 1)
	go func() { left <- ml.Leave(remaining()) }()
	err := awaitBroadcast(ctx, left, alone)
	// memberlist panics on a Leave after Shutdown, which the caller runs next: make sure the
	// goroutine got past that point. It has once memberlist reports this node gone, or Leave
	// returned (it returns at its timeout at the latest).
	select {
	case <-c.leaveQueued:
	case lerr := <-left:
		if err == nil {
			err = lerr
		}
	}
	if err != nil {
		return fmt.Errorf("peers: leaving: %w", err)
	}
	return nil
}

// awaitBroadcast waits for a memberlist call that blocks until its broadcast has gone out
// (done), until alone reports that no other member is alive to hear it, or until ctx ends.
func awaitBroadcast(ctx context.Context, done <-chan error, alone func() bool) error {
	tick := time.NewTicker(leavePoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the broadcast: %w", ctx.Err())
		case <-tick.C:
			if alone() {
				return nil
			}
		}
	}
}

// Shutdown stops the node without announcing it, as a crash would: the others notice through
// failure detection. It is safe to call more than once, and after Leave.
func (c *Cluster) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	c.stop()
	c.wg.Wait()
	var err error
	if c.ml != nil {
		if err = c.ml.Shutdown(); err != nil {
			err = fmt.Errorf("peers: stopping memberlist: %w", err)
		}
	}
	c.transport.CloseIdleConnections()
	return err
}

// join resolves the seeds and joins those that are not this node or already alive members.
// It reports false when there were seeds to join and none answered.
func (c *Cluster) join(ctx context.Context, ml *memberlist.Memberlist, initial bool) bool {
	if len(c.cfg.Seeds) == 0 {
		return true
	}
	skip := map[string]bool{c.gossipAddr: true}
	for _, m := range c.view.Load().members {
		if m.State == "alive" && m.GossipAddr != "" {
			skip[m.GossipAddr] = true
		}
	}
	var addrs []string
	unresolved := false
	for _, seed := range c.cfg.Seeds {
		resolved, err := c.resolve(ctx, seed)
		if err != nil {
			c.log.Warn("resolving seed", "seed", seed, "err", err)
			unresolved = true
			continue
		}
		for _, a := range resolved {
			if !skip[a] {
				skip[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		// Every seed is this node or an alive member, unless a name did not resolve (yet).
		return !unresolved || len(c.view.Load().members) > 1
	}
	n, err := ml.Join(addrs)
	switch {
	case n == 0 && initial:
		c.log.Warn("no seed reachable; retrying", "seeds", addrs, "err", err)
	case n == 0:
		c.log.Debug("rejoin: no seed reachable", "seeds", addrs, "err", err)
	default:
		c.log.Info("joined seeds", "contacted", n, "seeds", addrs)
	}
	return n > 0
}

// resolve turns a seed into ip:port addresses; a DNS name may give several.
func (c *Cluster) resolve(ctx context.Context, seed string) ([]string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.TCPTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, port))
	}
	slices.Sort(out)
	return out, nil
}

// firstJoinBackoff is the wait before the first retry of a first join that reached no seed;
// it doubles on every retry, up to RejoinInterval.
const firstJoinBackoff = 100 * time.Millisecond

// rejoinLoop joins the seeds again until Leave or Shutdown. Until a seed has answered
// (joined is false) it retries after firstJoinBackoff, doubling up to RejoinInterval (or
// DefaultConfig's when rejoining is disabled); then it rejoins every RejoinInterval, or stops
// when that is negative.
func (c *Cluster) rejoinLoop(ml *memberlist.Memberlist, joined bool) {
	ceiling := c.cfg.RejoinInterval
	if ceiling <= 0 {
		ceiling = DefaultConfig().RejoinInterval
	}
	wait := min(firstJoinBackoff, ceiling)
	if joined {
		wait = c.cfg.RejoinInterval
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-t.C:
		}
		ok := c.join(c.life, ml, false)
		switch {
		case !joined && ok:
			joined = true
			c.log.Info("first join done; rejoining the seeds every RejoinInterval", "interval", c.cfg.RejoinInterval)
			wait = c.cfg.RejoinInterval
		case !joined:
			wait = min(2*wait, ceiling)
		}
		if joined && c.cfg.RejoinInterval <= 0 {
			return
		}
		t.Reset(wait)
	}
}

// rebuildLoop rebuilds the ring once membership has been quiet for RebuildQuiet (at most
// 10x RebuildQuiet after the first event of a burst).
func (c *Cluster) rebuildLoop() {
	quiet := max(c.cfg.RebuildQuiet, 0)
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.signal:
		}
		deadline := time.Now().Add(10 * quiet)
		timer := time.NewTimer(quiet)
	wait:
		for {
			select {
			case <-c.life.Done():
				timer.Stop()
				return
			case <-c.signal:
				timer.Reset(max(0, min(quiet, time.Until(deadline))))
			case <-timer.C:
				break wait
			}
		}
		c.rebuild()
	}
}

// notify records a membership event. It runs inside memberlist's callbacks: it must not block
// or call memberlist.
func (c *Cluster) notify(ev nodeEvent) {
	c.evMu.Lock()
	c.events = append(c.events, ev)
	c.lastEvent = time.Now()
	c.evMu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// rebuild applies the recorded events and swaps in a new view.
func (c *Cluster) rebuild() {
	c.rebuildMu.Lock()
	defer c.rebuildMu.Unlock()
	c.evMu.Lock()
	events, last := c.events, c.lastEvent
	c.events, c.lastEvent = nil, time.Time{}
	c.evMu.Unlock()

	now := time.Now()
	for _, ev := range events {
		if ev.name == c.cfg.NodeName {
			// This node stays in its own ring until it stops; only its addresses change.
			self := c.known[ev.name]
			self.GossipAddr = ev.addr
			var meta nodeMeta
			if err := json.Unmarshal(ev.meta, &meta); err == nil && meta.HTTPAddr != "" {
				self.HTTPAddr = meta.HTTPAddr
			}
			continue
		}
		m := c.known[ev.name]
		if m == nil {
			m = &Member{Name: ev.name}
			c.known[ev.name] = m
		}
		m.GossipAddr = ev.addr
		if ev.left {
			if m.State != "left" {
				m.State = "dead"
			}
			c.departed[ev.name] = now
			continue
		}
		var meta nodeMeta
		if err := json.Unmarshal(ev.meta, &meta); err != nil || meta.HTTPAddr == "" {
			c.log.Warn("member without an HTTP address in its metadata; not in the ring", "member", ev.name, "err", err)
			m.State = "dead"
			c.departed[ev.name] = now
			continue
		}
		if meta.Leaving {
			m.State = "left"
			c.departed[ev.name] = now
			continue
		}
		m.HTTPAddr, m.State = meta.HTTPAddr, "alive"
		delete(c.departed, ev.name)
	}
	for name, at := range c.departed {
		if now.Sub(at) > departedRetention {
			delete(c.departed, name)
			delete(c.known, name)
		}
	}

	var alive []string
	for name, m := range c.known {
		if m.State == "alive" {
			alive = append(alive, name)
		}
	}
	ring := NewRing(alive)
	old := c.view.Load()
	v := &view{ring: ring, peers: make([]*httpPeer, ring.Len())}
	changed := old == nil || !old.ring.Equal(ring)
	for i, name := range ring.Names() {
		if name == c.cfg.NodeName {
			continue
		}
		addr := c.known[name].HTTPAddr
		if p := old.peer(name); p != nil && p.addr == addr {
			v.peers[i] = p
			continue
		}
		v.peers[i] = newHTTPPeer(c, name, addr)
		changed = true
	}
	for _, m := range c.known {
		mm := *m
		mm.Share = ring.Share(m.Name)
		v.members = append(v.members, mm)
	}
	slices.SortFunc(v.members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	c.view.Store(v)
	if !changed {
		return
	}
	c.rebuilds.Add(1)
	c.lastRebuild.Store(now.UnixNano())
	if !last.IsZero() {
		c.rebuildLatency.Store(int64(now.Sub(last)))
	}
	c.log.Info("ring rebuilt", "members", ring.Names())
}

// peer returns the view's peer of that name, or nil.
func (v *view) peer(name string) *httpPeer {
	if v == nil {
		return nil
	}
	if i, ok := slices.BinarySearch(v.ring.Names(), name); ok {
		return v.peers[i]
	}
	return nil
}
