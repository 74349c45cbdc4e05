package group

import (
	"context"
	"time"
)

// Value is what a Loader or a Peer hands to a Group.
//
// Ownership of Bytes passes to the Group on return: the caller must not modify the slice
// afterwards, because the Group stores it and shares it with every reader.
type Value struct {
	// Bytes is the value itself. An empty, non-error Value is a valid, cached value.
	Bytes []byte

	// TTL is how long the value may be served.
	//
	// From a Loader: zero means "use the group's Config.TTL"; a positive TTL overrides it
	// (it may be longer or shorter than the group default).
	// From a Peer: the remaining lifetime at the owner; zero means the value never expires.
	TTL time.Duration

	// ContentType is the value's media type as its origin or writer gave it ("" when
	// unknown); the HTTP API serves it as Content-Type.
	ContentType string
	// LastModified is when the origin last changed the value (zero when unknown); the HTTP
	// API serves it as Last-Modified and answers If-Modified-Since with it.
	LastModified time.Time

	// Stale and Age are read from a Peer's value only (a Loader's, a Set's are ignored): the
	// owner answered a value that expired Age ago, under its serve-stale settings (stale.go).
	// The Group keeps no copy of it and answers it as a stale Result.
	Stale bool
	Age   time.Duration
}

// A Loader fetches the value of a key from the origin (a file, a database, a service) when no
// node of the cluster has it cached. The Group calls Load on the key's owner only, at most once
// at a time per key on a node, and caches what it returns.
//
// Load may block; it must honour ctx, which carries the first caller's values and the Group's
// load timeout, and none of the callers' cancellation. It runs on the goroutine of the caller
// that started the fill when that caller's context never ends (context.Background), as
// golang/groupcache runs every Load, and on a goroutine of its own otherwise. A Load that
// outlives the timeout is not waited for: the other callers get ErrLoadTimeout at the deadline
// and its answer is dropped; only the caller on whose goroutine it runs stays until it returns,
// then gets ErrLoadTimeout too. It is called concurrently for different keys. It returns
// ErrNotFound (possibly wrapped) when the origin has no such key; any other error is a load
// failure, never cached as a value (Config.ErrorTTL says how long it is remembered). A panic
// inside Load is recovered by the Group and reported to every waiter as ErrLoaderPanic.
type Loader interface {
	Load(ctx context.Context, key string) (Value, error)
}

// LoaderFunc adapts an ordinary function to the Loader interface.
type LoaderFunc func(ctx context.Context, key string) (Value, error)

// Load calls f(ctx, key).
func (f LoaderFunc) Load(ctx context.Context, key string) (Value, error) { return f(ctx, key) }
