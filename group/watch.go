package group

import "context"

// A Watcher is a Loader whose origin announces its own changes: a database that notifies on
// commit (the sql loader's listen_channel on PostgreSQL), a message bus, a file-system watch.
// A Group never runs Watch by itself; whoever serves the group does, for as long as it serves
// it: httpapi.Node runs the Watch of every group whose Loader (Group.Loader) is a Watcher,
// from Start to Stop, with a ChangeSink of its own per group.
//
// Watch blocks, holding its feed open and reconnecting by itself (with a bounded backoff),
// until ctx ends; then it releases the feed and returns nil. It returns nil at once when the
// loader has nothing to watch (an sql loader without listen_channel), and an error only when
// it gives up for good, after which the group's origin is no longer heard. It reports to sink
// from one goroutine at a time, and must keep reading its feed promptly: a database holds its
// notification queue back for the slowest listener.
type Watcher interface {
	Watch(ctx context.Context, sink ChangeSink) error
}

// WatcherFunc adapts a function to Watcher, for example to give a LoaderFunc a feed:
// struct{ LoaderFunc; WatcherFunc }.
type WatcherFunc func(ctx context.Context, sink ChangeSink) error

// Watch calls f(ctx, sink).
func (f WatcherFunc) Watch(ctx context.Context, sink ChangeSink) error { return f(ctx, sink) }

// A ChangeSink receives what a Watcher hears. Each method returns quickly, without network
// round trips on the caller's time except in Resync, so that a burst of changes never stalls
// the feed; it is safe for concurrent use.
type ChangeSink interface {
	// Changed says that key changed or vanished at the origin. Before Changed returns, the
	// key is gone from this node's caches and a fill of it under way will not cache what it
	// read (RemoveLocal), so the next Get on this node reads the origin again. A key the
	// group cannot hold (empty, or longer than the node accepts) is an error matching
	// ErrInvalidKey; the sink has counted it, and the Watcher just carries on.
	Changed(key string) error

	// Resync says that the feed is listening again after a time in which changes may have
	// gone unheard: it was down (cause says why), or it was not listening yet (cause is nil
	// on the first start). The Watcher calls it once the feed is established and before it
	// reports any change heard on it, so that no change can fall between the two. Before
	// Resync returns, everything that may be stale has been dropped (the group is purged, on
	// this node and its peers) unless nothing can be: a group that has served nothing yet.
	Resync(cause error)

	// Lost says that the feed went down, or could not be established, with err; the
	// Watcher will try again after a backoff. Until the next Resync, changes at the origin
	// are not heard and cached values may be stale.
	Lost(err error)
}

// Loader returns the loader the group was built with, so that whoever serves the group can
// find out what else it offers (a Watcher, an io.Closer).
func (g *Group) Loader() Loader { return g.loader }
