package group

import "context"

// PeerPicker chooses the node that owns a key. The peers package implements it over a
// consistent-hash ring of the cluster's members; a Group without one owns every key.
//
// PickPeer must be safe for concurrent use and must not block: it runs on every miss.
type PeerPicker interface {
	// PickPeer returns the peer that owns key, and ok == false when this node owns key (or
	// knows no peers), in which case the Group loads the key itself.
	PickPeer(key string) (peer Peer, ok bool)
}

// PeerPickerFunc adapts an ordinary function to the PeerPicker interface.
type PeerPickerFunc func(key string) (Peer, bool)

// PickPeer calls f(key).
func (f PeerPickerFunc) PickPeer(key string) (Peer, bool) { return f(key) }

// Peer is another node of the cluster, seen from this one.
type Peer interface {
	// Fetch asks the peer for key in the named group. The peer answers from its caches or
	// loads the key itself, and never forwards the request again.
	//
	// The returned Value.TTL is the remaining lifetime at the owner (zero: never expires), so
	// no clock synchronisation is needed. Value.Stale says the owner answered its expired
	// value under its serve-stale settings, Age ago: the Group keeps no copy of it and answers
	// it stale. Errors keep their meaning across the wire:
	//   - ErrNotFound: the owner's origin has no such key;
	//   - ErrPeerUnavailable (wrapped): the peer could not be reached or did not answer in
	//     time; only then does the asking Group load the key locally;
	//   - anything else (ErrLoaderPanic, ErrLoadTimeout, a loader failure): the owner's load
	//     failed, and the asking Group returns that error without loading again.
	Fetch(ctx context.Context, group, key string) (Value, error)
}

// PeerFunc adapts an ordinary function to the Peer interface.
type PeerFunc func(ctx context.Context, group, key string) (Value, error)

// Fetch calls f(ctx, group, key).
func (f PeerFunc) Fetch(ctx context.Context, group, key string) (Value, error) {
	return f(ctx, group, key)
}

// Invalidator spreads a Remove or a Purge to the other nodes of the cluster. The peers
// package implements it; a Group without one removes only from its own caches.
//
// Both methods block until every reachable peer has dropped its copies (main and hot caches),
// or ctx ends, and report how many peers confirmed. They must not call back into the Group's
// Remove or Purge (the receiving node calls RemoveLocal or PurgeLocal).
type Invalidator interface {
	InvalidateKey(ctx context.Context, group, key string) (confirmed int, err error)
	InvalidateGroup(ctx context.Context, group string) (confirmed int, err error)
}
