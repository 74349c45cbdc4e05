package peers

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Membership lifecycle: Start creates memberlist and the goroutines, Leave announces the
// departure and waits (a bounded time) for it to be gossiped, Shutdown stops everything.

// Start binds memberlist at GossipAddr, joins the seeds and starts the goroutines that rebuild
// the ring and keep the node in a cluster with its seeds (seeds.go). Seeds that cannot be
// reached do not fail Start: the node is not Ready until one answers (the nodes of a cluster
// starting together, a seed starting a moment later), and the join is retried after 100 ms,
// then after twice as long each time, up to SeedRetryInterval. ctx bounds the seed lookups of
// the first join; the goroutines run until Leave or Shutdown.
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
		_ = mlc.Transport.Shutdown() // memberlist leaves a transport it was given open
		return fmt.Errorf("peers: starting memberlist on %s: %w", c.cfg.GossipAddr, err)
	}
	c.ml, c.started = ml, true
	self := ml.LocalNode()
	c.gossipAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))
	addr := c.gossipAddr
	c.ident.addr.Store(&addr)

	if host, port, _ := splitHostPort(c.cfg.HTTPAddr); host == "" || net.ParseIP(host).IsUnspecified() {
		// Advertise an address peers can dial: the one memberlist advertises.
		c.setMeta(nodeMeta{HTTPAddr: net.JoinHostPort(self.Addr.String(), strconv.Itoa(port))})
		if err := ml.UpdateNode(c.cfg.TCPTimeout); err != nil {
			c.log.Warn("advertising the HTTP address", "err", err)
		}
	}
	c.log.Info("cluster started", "gossip", c.gossipAddr, "http", c.currentMeta().HTTPAddr)

	c.ready.advance(phaseJoining)
	answered := make(map[string]time.Time) // seeds that let this node join: seeds.go
	c.firstJoin(ctx, ml, answered)
	c.rebuild()
	c.wg.Go(c.rebuildLoop)
	c.wg.Go(func() { c.seedLoop(ml, answered) })
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
	mlc.Ping = pingDelegate{c}
	mlc.Merge = mergeDelegate{c}
	mlc.Conflict = conflictDelegate{c}
	mlc.LogOutput = nil
	mlc.Logger = log.New(memberlistLog{
		log:      c.log.With("component", "memberlist"),
		stopping: func() bool { return c.life.Err() != nil },
	}, "", 0)
	if c.memberlistHook != nil {
		c.memberlistHook(mlc)
	}
	if mlc.Transport == nil {
		t, err := newGossipTransport(c.life, mlc)
		if err != nil {
			return nil, fmt.Errorf("peers: binding %s: %w", c.cfg.GossipAddr, err)
		}
		mlc.Transport = t
	}
	return mlc, nil
}

// gossipTransport is memberlist's own UDP and TCP transport, except that the connections it
// dials end with the node's life. memberlist's Join dials each seed and waits for its answer
// up to TCPTimeout each: a seed whose host is down (no refusal, no answer) or that accepts
// and hangs would hold the seed loop, and so Shutdown, for that long. Shutdown cancels the
// dial and closes the connection instead.
type gossipTransport struct {
	*memberlist.NetTransport
	life context.Context
}

// newGossipTransport binds mlc's address as memberlist would: with port 0, the kernel picks
// the TCP port and UDP must get the same one, so a busy UDP port is retried a few times.
func newGossipTransport(life context.Context, mlc *memberlist.Config) (*gossipTransport, error) {
	tries := 1
	if mlc.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mlc.BindAddr},
			BindPort:  mlc.BindPort,
			Logger:    mlc.Logger,
		})
		if err == nil {
			if mlc.BindPort == 0 {
				mlc.BindPort = nt.GetAutoBindPort()
				mlc.AdvertisePort = mlc.BindPort
			}
			return &gossipTransport{NetTransport: nt, life: life}, nil
		}
	}
	return nil, err
}

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.life, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	return &lifeConn{Conn: conn, stop: context.AfterFunc(t.life, func() { _ = conn.Close() })}, nil
}

// lifeConn is a connection that Shutdown closes, through stop's AfterFunc, if memberlist has
// not closed it before.
type lifeConn struct {
	net.Conn
	stop func() bool
}

func (c *lifeConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// leavePoll is how often Leave looks whether any other member is still alive to hear it.
const leavePoll = 10 * time.Millisecond

// Leave announces this node's departure, waits until it has been gossiped, then shuts down
// like Shutdown. The wait ends as soon as the announcement has gone out, or no other member
// is alive to hear it (the others left or died meanwhile, as when a whole cluster stops at
// once), and at the latest after LeaveTimeout, or when ctx ends. Until then the node keeps
// serving its peers, who may still route keys to it; afterwards peer requests are answered
// "shutting down", and the askers load for themselves. A Shutdown from another goroutine
// meanwhile stops the node at once; Leave then reports an error if the leave message had
// not been sent yet.
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
		// Members lists every node memberlist has not declared dead or left, the suspected
		// ones included.
		for _, n := range ml.Members() {
			if n.Name != c.cfg.NodeName {
				return false
			}
		}
		return true
	}

	c.ready.advance(phaseLeaving)
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

	left, err := c.startLeave(ml, remaining())
	if err == nil {
		err = awaitBroadcast(ctx, left, alone)
	}
	if err != nil {
		return fmt.Errorf("peers: leaving: %w", err)
	}
	return nil
}

// startLeave runs memberlist's Leave on a goroutine and returns once it is past the point
// where it panics if memberlist has been shut down; the goroutine's result arrives on left.
// It holds mu that long, so a Shutdown from another goroutine either comes first, and the
// leave message is not sent, or waits: memberlist reports this node gone (leaveQueued) right
// after that point, before Leave starts waiting for the broadcast.
func (c *Cluster) startLeave(ml *memberlist.Memberlist, timeout time.Duration) (left chan error, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("shut down before the leave message was sent")
	}
	left = make(chan error, 1)
	go func() { left <- ml.Leave(timeout) }()
	select {
	case <-c.leaveQueued:
		return left, nil
	case err := <-left:
		// Leave returned before reporting this node gone (memberlist did not list it); the
		// channel must still answer awaitBroadcast.
		left <- err
		return left, nil
	}
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
	c.ready.advance(phaseStopped)
	c.stop()
	c.wg.Wait()
	var err error
	if c.ml != nil {
		if err = c.ml.Shutdown(); err != nil {
			err = fmt.Errorf("peers: stopping memberlist: %w", err)
		}
	}
	_ = c.server.Close()
	c.closePeers()
	return err
}
