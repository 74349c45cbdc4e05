package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Bounds of the sink's work off the watcher's goroutine.
const (
	// maxPendingForwards is how many owned keys may wait to be forwarded to the peers; past
	// it, a burst is forwarded as one purge of the group, which costs one request per peer
	// instead of one per key.
	maxPendingForwards = 4096
	// forwardParallel is how many keys are forwarded at once.
	forwardParallel = 8
	// repeatLogEvery spaces the log lines about bad payloads, and those about failed forwards.
	repeatLogEvery = 5 * time.Second
	// watchStartWait bounds how long Start waits for the feeds' first word.
	watchStartWait = 5 * time.Second
)

// relay is what a sink needs of the cluster: who owns a key, and the peer wire.
// *peers.Cluster implements it.
type relay interface {
	group.PeerPicker
	group.Invalidator
}

// watches is how a Node runs the group.Watcher of each group whose loader is one (Group.Loader), from Start
// to Stop, and gives it a watchSink: the node's side of origin-driven invalidation. The sink
//   - drops each changed key from this node's caches at once (Group.RemoveLocal: main, hot,
//     and a fill under way will not cache what it read), after checking it is a key this node
//     would accept (non-empty, at most the API's MaxKeyBytes);
//   - forwards the removal to the peers when this node owns the key, after its own removal,
//     so that a peer that re-fetched the key from this node before it heard the change drops
//     the old copy it got (every node hears the origin itself; this closes the race between
//     the listeners). Forwards are batched off the watcher's goroutine, and more than
//     maxPendingForwards of them waiting become one purge of the group on the peers;
//   - on Resync, purges the group here and on the peers before it returns, unless the group
//     has served nothing yet (the first start of a node that took no traffic);
//   - counts changes, bad payloads and gaps for /metrics, and logs each gap, each loss of the
//     feed and, at most once per repeatLogEvery, bad payloads.
//
// loader/sqllisten.go argues the design (every node listens; LISTEN, then purge).
//
// watches holds the node's sinks and the goroutines that run them.
type watches struct {
	sinks  []*watchSink
	cancel context.CancelFunc // nil unless started
	wg     sync.WaitGroup
}

// newWatches prepares a sink for each group whose loader is a group.Watcher. rl may be nil
// (a node alone).
func newWatches(groups []*group.Group, rl relay, maxKeyBytes int, logger *slog.Logger) *watches {
	w := &watches{}
	for _, g := range groups {
		watcher, ok := g.Loader().(group.Watcher)
		if !ok {
			continue
		}
		w.sinks = append(w.sinks, &watchSink{
			g: g, watcher: watcher, relay: rl, maxKeyBytes: maxKeyBytes,
			log:      logger.With("group", g.Name()),
			pending:  map[string]struct{}{},
			reported: make(chan struct{}),
			wake:     make(chan struct{}, 1),
		})
	}
	return w
}

// buildWatches prepares the node's change feeds and exports their counts at /metrics.
func (n *Node) buildWatches() error {
	var rl relay // a nil *peers.Cluster must stay a nil interface
	if n.cluster != nil {
		rl = n.cluster
	}
	n.watches = newWatches(n.groups, rl, n.api.maxKeyBytes, n.log)
	if err := n.api.Registry().Register(newWatchCollector(n.watches.sinks)); err != nil {
		return fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	return nil
}

// start runs every watcher and its forwarder until stop, and returns once each watcher has
// reported its first Resync or Lost (or returned), or after watchStartWait, or when ctx ends,
// whichever comes first. The node serves nothing meanwhile, so a feed that is live by then
// needs no purge; one that is not is purged when it is.
func (w *watches) start(ctx context.Context) {
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for _, s := range w.sinks {
		s.ctx = runCtx
		w.wg.Go(func() { s.watch(runCtx) })
		if s.relay != nil {
			w.wg.Go(func() { s.forwardLoop(runCtx) })
		}
	}
	t := time.NewTimer(watchStartWait)
	defer t.Stop()
	for _, s := range w.sinks {
		select {
		case <-s.reported:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// stop cancels the watchers and waits until they have released their feeds. It does nothing
// if start was not called, or a second time.
func (w *watches) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.wg.Wait()
	w.cancel = nil
}

// watchSink is one group's group.ChangeSink.
type watchSink struct {
	g           *group.Group
	watcher     group.Watcher
	relay       relay // nil: no peers to tell
	maxKeyBytes int
	log         *slog.Logger
	ctx         context.Context // the watch's, set by start: bounds the sink's peer calls

	// active is set once the watcher reports anything, so that a loader with nothing to
	// watch (an sql loader without listen_channel) shows no series; up says the feed is live.
	active, up               atomic.Bool
	reported                 chan struct{} // closed at the watcher's first word, or when Watch returns
	reportOnce               sync.Once
	changes, badKeys, gaps   atomic.Int64
	badKeyLog, forwardErrLog logEvery

	// mu guards the keys waiting to be forwarded; purgeAll replaces them after an overflow.
	mu       sync.Mutex
	pending  map[string]struct{}
	purgeAll bool
	wake     chan struct{} // capacity 1: the forwarder has work
}

var _ group.ChangeSink = (*watchSink)(nil)

// watch runs the watcher until ctx ends.
func (s *watchSink) watch(ctx context.Context) {
	err := s.watcher.Watch(ctx, s)
	s.report()
	s.up.Store(false)
	if err != nil && ctx.Err() == nil {
		s.log.Error("the origin's change feed stopped for good: changes are no longer heard, values are served until their TTL", "err", err)
	}
}

// Changed implements group.ChangeSink.
func (s *watchSink) Changed(key string) error {
	s.active.Store(true)
	s.changes.Add(1)
	if key == "" || len(key) > s.maxKeyBytes {
		s.badKeys.Add(1)
		if ok, held := s.badKeyLog.allow(); ok {
			s.log.Warn("the origin's change feed sent a payload that is not a key: ignored",
				"payload", truncate(key, 64), "bytes", len(key), "max_key_bytes", s.maxKeyBytes, "similar_not_logged", held)
		}
		return fmt.Errorf("%w: a change feed payload of %d bytes (want 1 to %d)", group.ErrInvalidKey, len(key), s.maxKeyBytes)
	}
	s.g.RemoveLocal(key)
	if s.relay != nil {
		if _, remote := s.relay.PickPeer(key); !remote {
			s.forward(key)
		}
	}
	return nil
}

// Resync implements group.ChangeSink.
func (s *watchSink) Resync(cause error) {
	defer s.report()
	s.active.Store(true)
	if cause == nil {
		if st := s.g.Stats(); st.Gets+st.ServerRequests == 0 {
			// Nothing was asked of the group, so nothing was loaded before the feed was
			// live: every fill from now on reads the origin after it.
			s.up.Store(true)
			s.log.Info("listening to the origin's change feed")
			return
		}
	}
	s.g.PurgeLocal()
	confirmed, err := 0, error(nil)
	if s.relay != nil {
		confirmed, err = s.relay.InvalidateGroup(s.ctx, s.g.Name())
	}
	s.gaps.Add(1)
	s.up.Store(true)
	attrs := []any{"peers_confirmed", confirmed}
	if cause != nil {
		attrs = append(attrs, "cause", cause)
	} else {
		attrs = append(attrs, "cause", "the group served before the feed was first live")
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.log.Warn("the origin's change feed is back after a gap in which changes may have gone unheard: purged the group here and on the peers", attrs...)
}

// Lost implements group.ChangeSink.
func (s *watchSink) Lost(err error) {
	defer s.report()
	s.active.Store(true)
	if s.up.Swap(false) {
		s.log.Warn("lost the origin's change feed: changes are not heard, and cached values may go stale, until it is back (the group is purged then)", "err", err)
		return
	}
	s.log.Warn("the origin's change feed is still down", "err", err)
}

// report marks the watcher's first word.
func (s *watchSink) report() { s.reportOnce.Do(func() { close(s.reported) }) }

// forward queues key for the peers, or turns the queue into one purge when it is full.
func (s *watchSink) forward(key string) {
	s.mu.Lock()
	switch {
	case s.purgeAll:
	case len(s.pending) >= maxPendingForwards:
		s.purgeAll = true
		clear(s.pending)
	default:
		s.pending[key] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forwardLoop sends the queued removals to the peers until ctx ends.
func (s *watchSink) forwardLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		keys, all := s.pending, s.purgeAll
		s.pending, s.purgeAll = make(map[string]struct{}, min(len(keys), maxPendingForwards)), false
		s.mu.Unlock()
		if all {
			s.reportForward(s.relay.InvalidateGroup(ctx, s.g.Name()))
			continue
		}
		sem := make(chan struct{}, forwardParallel)
		var wg sync.WaitGroup
		for key := range keys {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.reportForward(s.relay.InvalidateKey(ctx, s.g.Name(), key))
			})
		}
		wg.Wait()
	}
}

// reportForward logs a forward that some peers did not confirm, at most once per
// repeatLogEvery: such a peer keeps a copy it fetched in the race the forward closes.
func (s *watchSink) reportForward(_ int, err error) {
	if err == nil || s.ctx.Err() != nil {
		return
	}
	if ok, held := s.forwardErrLog.allow(); ok {
		s.log.Warn("forwarding a changed key to the peers failed: a peer that re-fetched it from this node in the moment before may keep the old copy until its TTL",
			"err", err, "similar_not_logged", held)
	}
}

// logEvery lets one log line through per repeatLogEvery and counts those it holds back.
type logEvery struct {
	mu   sync.Mutex
	next time.Time
	held int
}

// allow reports whether a line may be logged now and, if so, how many were held back since
// the last one.
func (l *logEvery) allow() (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Before(l.next) {
		l.held++
		return false, 0
	}
	held, l.held, l.next = l.held, 0, now.Add(repeatLogEvery)
	return true, held
}

// truncate returns at most n bytes of s, marked when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
