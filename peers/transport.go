package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// The asking side of the peer wire: one wire.Client per member, created when the member
// enters this node's view and closed when it leaves it (or moves to another address), and
// the mapping of the wire's answers onto the group's errors. serve.go is the answering side.

// ErrUnknownGroup is returned (wrapped) when a peer has no group of the requested name: the
// nodes of the cluster were configured with different groups.
var ErrUnknownGroup = errors.New("group not registered on the peer")

// RemoteError is a failure that a peer reported after it received the request: its load
// failed, panicked or timed out. It is not ErrPeerUnavailable, so the asking Group returns it
// instead of loading the key again. errors.Is sees through it to group.ErrLoaderPanic,
// group.ErrLoadTimeout, group.ErrNotFound, group.ErrInvalidKey or ErrUnknownGroup when the
// code says so.
type RemoteError struct {
	Peer    string // the peer's node name
	Code    string // the wire code, such as "load_failed" (wire.Code's String)
	Message string // the peer's error message
	kind    error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer %s: %s", e.Peer, e.Message)
}

// Unwrap returns the sentinel the code stands for, or nil for a plain load failure.
func (e *RemoteError) Unwrap() error { return e.kind }

// codeError returns the sentinel a wire code stands for, or nil.
func codeError(code wire.Code) error {
	switch code {
	case wire.CodeNotFound:
		return group.ErrNotFound
	case wire.CodeUnknownGroup:
		return ErrUnknownGroup
	case wire.CodeInvalidKey:
		return group.ErrInvalidKey
	case wire.CodeLoaderPanic:
		return group.ErrLoaderPanic
	case wire.CodeLoadTimeout:
		return group.ErrLoadTimeout
	case wire.CodeLoadOverloaded:
		return group.ErrOverloaded
	case wire.CodeValueTooLarge:
		return group.ErrValueTooLarge
	}
	return nil
}

// wirePeer is one member seen through the peer wire, at its HTTP address. It implements
// group.Peer (and group's asynchronous fetch, see FetchFunc).
type wirePeer struct {
	c      *Cluster
	name   string
	addr   string       // host:port
	client *wire.Client // nil when the member's name or address cannot be dialled (err says why)
	err    error

	out       outlier       // consecutive failures and ejection (outlier.go)
	done      chan struct{} // closed by close: ends the ejection's probe
	closeOnce sync.Once
}

// newWirePeer returns the peer of member name at addr. It dials nothing: the first fetch does.
func newWirePeer(c *Cluster, name, addr string) *wirePeer {
	p := &wirePeer{c: c, name: name, addr: addr, done: make(chan struct{})}
	cfg := wire.DefaultClientConfig()
	cfg.Addr, cfg.Self, cfg.Peer = addr, c.cfg.NodeName, name
	cfg.Secret, cfg.TLS = c.cfg.SecretKey, c.cfg.TLS
	cfg.MaxConns = c.cfg.MaxConnsPerPeer
	cfg.MaxValueBytes = c.maxValueBytes()
	cfg.MaxKeyBytes = c.maxKeyBytes()
	cfg.RequestTimeout = c.cfg.FetchTimeout
	cfg.DialTimeout = min(c.cfg.FetchTimeout, cfg.DialTimeout)
	p.client, p.err = wire.NewClient(cfg)
	if p.err != nil {
		c.log.Warn("member cannot be reached over the peer wire", "member", name, "addr", addr, "err", p.err)
	}
	return p
}

// close fails the fetches in flight to the peer as unavailable (their callers load the keys
// themselves) and closes its connections.
func (p *wirePeer) close() {
	p.closeOnce.Do(func() { close(p.done) })
	if p.client != nil {
		_ = p.client.Close()
	}
}

// conns returns the number of open connections to the peer.
func (p *wirePeer) conns() int {
	if p.client == nil {
		return 0
	}
	return p.client.Stats().Conns
}

// Fetch asks the peer for key: see group.Peer for how errors keep their meaning.
func (p *wirePeer) Fetch(ctx context.Context, groupName, key string) (group.Value, error) {
	if p.client == nil {
		return p.result(groupName, key, wire.Value{}, p.unusable(), false)
	}
	v, err := p.client.Fetch(ctx, groupName, key)
	expired := ctx.Err() != nil
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		expired = true // the wire's timer may fire a moment before the context's own
	}
	return p.result(groupName, key, v, err, expired)
}

// FetchFunc is Fetch without a goroutine waiting for the answer (group.AsyncPeer, which the
// Group's fill uses): done receives it exactly once, on the wire connection's reader goroutine
// (or on the caller's, when the request cannot be sent), and must not block. The fetch ends
// at deadline (and at FetchTimeout); an answer that did not arrive by the caller's own
// deadline is reported as that deadline's end, not as an unreachable owner, as Fetch does for
// its context.
func (p *wirePeer) FetchFunc(groupName, key string, deadline time.Time, done func(group.Value, error)) {
	if p.client == nil {
		v, err := p.result(groupName, key, wire.Value{}, p.unusable(), false)
		done(v, err)
		return
	}
	wireDeadline := time.Now().Add(p.c.cfg.FetchTimeout)
	if !deadline.IsZero() && deadline.Before(wireDeadline) {
		wireDeadline = deadline
	}
	p.client.FetchFunc(groupName, key, wireDeadline, func(v wire.Value, err error) {
		expired := err != nil && !deadline.IsZero() && !time.Now().Before(deadline)
		gv, err := p.result(groupName, key, v, err, expired)
		done(gv, err)
	})
}

func (p *wirePeer) unusable() error {
	return fmt.Errorf("%w: %w", wire.ErrUnavailable, p.err)
}

// result turns the wire's answer into the group's: the value with its TTL capped at the
// group's, or an error that keeps its meaning (see fetchError). It counts the failures.
func (p *wirePeer) result(groupName, key string, v wire.Value, err error, expired bool) (group.Value, error) {
	gv, err, wireErr := p.resolve(groupName, key, v, err, expired)
	p.observe(err, wireErr)
	return gv, err
}

// resolve is result without the outlier count (observe): a batch counts once per message,
// not once per key (fetchChunk). It also returns the wire's own error, for observe.
func (p *wirePeer) resolve(groupName, key string, v wire.Value, err error, expired bool) (_ group.Value, _ error, wireErr error) {
	if err == nil {
		var gv group.Value
		if gv, err = p.c.received(groupName, v); err == nil {
			return gv, nil, nil
		}
	}
	wireErr = err
	err = p.fetchError(key, err, expired)
	if !errors.Is(err, group.ErrNotFound) {
		p.c.fetchErrors.Add(1)
		if errors.Is(err, group.ErrPeerUnavailable) {
			p.c.unreachable.Add(1)
		}
	}
	return group.Value{}, err, wireErr
}

// received applies the asking group's bounds to a value a peer sent: a TTL beyond the
// group's TTL (none counts as beyond) is cut to it, and a value above the group's limit,
// which an owner under the same configuration never sends, is refused as if the owner had
// not answered.
func (c *Cluster) received(groupName string, v wire.Value) (group.Value, error) {
	s := c.served(groupName)
	if s == nil {
		return group.Value(v), nil
	}
	if int64(len(v.Bytes)) > s.maxValue {
		return group.Value{}, fmt.Errorf("%w: a value of %d bytes, above group %q's limit of %d",
			wire.ErrUnavailable, len(v.Bytes), groupName, s.maxValue)
	}
	if s.ttl > 0 && (v.TTL == 0 || v.TTL > s.ttl) {
		v.TTL = s.ttl
	}
	return group.Value(v), nil
}

// fetchError classifies a failed fetch. The peer's verdict (a wire code) becomes a
// *RemoteError; a peer that did not answer becomes group.ErrPeerUnavailable, unless the
// caller's own deadline ended first (expired), which is the caller's timeout and not the
// peer's fault; a caller that left gets its context's error.
func (p *wirePeer) fetchError(key string, err error, expired bool) error {
	switch {
	case errors.Is(err, wire.ErrUnavailable): // first: shutting_down also carries a code
		if expired {
			return fmt.Errorf("fetching %q from peer %s: no answer: %w", key, p.name, context.DeadlineExceeded)
		}
		if errors.Is(err, wire.ErrAuth) {
			p.c.refusals.logRefusedByPeer(p.c.log, p.name, p.addr, err)
		}
		return fmt.Errorf("fetching %q from peer %s at %s: %w: %w", key, p.name, p.addr, group.ErrPeerUnavailable, err)
	case wire.CodeOf(err) != 0:
		return p.remoteError(err)
	default:
		return fmt.Errorf("fetching %q from peer %s: %w", key, p.name, err)
	}
}

func (p *wirePeer) remoteError(err error) *RemoteError {
	var we *wire.Error
	errors.As(err, &we)
	return &RemoteError{Peer: p.name, Code: we.Code.String(), Message: we.Message, kind: codeError(we.Code)}
}

var _ group.SetPeer = (*wirePeer)(nil)

// Set sends the value to the peer, the key's owner, with the wire's set message, and waits
// for its acknowledgement within FetchTimeout. Errors keep their meaning as for a fetch.
func (p *wirePeer) Set(ctx context.Context, groupName, key string, v group.Value) error {
	if p.client == nil {
		return fmt.Errorf("setting %q on peer %s: %w: %w", key, p.name, group.ErrPeerUnavailable, p.unusable())
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.cfg.FetchTimeout)
	defer cancel()
	err := p.client.Set(ctx, groupName, key, wire.Value(v))
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, wire.ErrUnavailable) && wire.CodeOf(err) != 0:
		return p.remoteError(err)
	default:
		return fmt.Errorf("setting %q on peer %s at %s: %w: %w", key, p.name, p.addr, group.ErrPeerUnavailable, err)
	}
}

// invalidate sends one remove (or a purge, when purge is set) to the peer and waits for its
// confirmation, within FetchTimeout.
func (p *wirePeer) invalidate(ctx context.Context, purge bool, groupName, key string) error {
	if p.client == nil {
		return fmt.Errorf("peer %s at %s: %w", p.name, p.addr, p.unusable())
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.cfg.FetchTimeout)
	defer cancel()
	var err error
	if purge {
		err = p.client.Purge(ctx, groupName)
	} else {
		err = p.client.Remove(ctx, groupName, key)
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, wire.ErrUnavailable) && wire.CodeOf(err) != 0:
		return p.remoteError(err)
	default:
		return fmt.Errorf("peer %s at %s: %w", p.name, p.addr, err)
	}
}

// invalidateAll sends a remove (or a purge) to every other alive member in parallel and
// reports how many confirmed. The members the view holds as dead (cut off or crashed, still
// listed) count as unconfirmed, as do the alive ones whose call fails: the error is then an
// *IncompleteError, and each of them gets a tombstone, sent again when it is back.
func (c *Cluster) invalidateAll(ctx context.Context, purge bool, groupName, key string) (int, error) {
	c.invalidations.Add(1)
	v := c.view.Load()
	var (
		mu          sync.Mutex
		confirmed   int
		errs        []error
		unconfirmed []string
		wg          sync.WaitGroup
	)
	for _, m := range v.members {
		if m.State == Dead && !m.Self {
			unconfirmed = append(unconfirmed, m.Name)
		}
	}
	for _, p := range v.peers {
		if p == nil {
			continue // this node
		}
		wg.Go(func() {
			err := p.invalidate(ctx, purge, groupName, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				unconfirmed = append(unconfirmed, p.name)
				return
			}
			confirmed++
		})
	}
	wg.Wait()
	if len(unconfirmed) == 0 {
		return confirmed, nil
	}
	if purge {
		key = ""
	}
	now := time.Now()
	for _, name := range unconfirmed {
		c.tombs.record(name, groupName, key, now)
	}
	c.tombs.signal()
	slices.Sort(unconfirmed)
	return confirmed, &IncompleteError{Confirmed: confirmed, Unconfirmed: unconfirmed, Err: errors.Join(errs...)}
}

// retire closes the peers of prev that next no longer holds (their member left or died, or
// moves to another address): fetches in flight to them fail as unavailable. The hot copies
// taken from them go too: every group drops its hot cache, since an entry does not record
// which member it came from (see doc.go for why that is the trade chosen). It runs before
// next is swapped in, so that no Get that sees the member gone finds one of its copies.
func (c *Cluster) retire(prev, next *view) {
	var gone []string
	for _, p := range prev.peers {
		if p != nil && next.peer(p.name) != p {
			p.close()
			gone = append(gone, p.name)
		}
	}
	if len(gone) == 0 {
		return
	}
	for _, s := range *c.groups.Load() {
		s.g.PurgeHot()
	}
	c.log.Info("peers retired; hot copies dropped", "members", gone)
}

// closePeers closes every peer of the current view, at Shutdown.
func (c *Cluster) closePeers() {
	for _, p := range c.view.Load().peers {
		if p != nil {
			p.close()
		}
	}
}
