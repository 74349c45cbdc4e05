package wire

import (
	"context"
	"time"
)

// Value is a value, its remaining lifetime at the owner (zero: it never expires) and its
// metadata. Its fields are those of group.Value, so the peers package converts one to the
// other with group.Value(v). A Value a Client returns is the caller's: nothing else refers to
// its bytes.
//
// ContentType travels when it is at most MaxContentTypeBytes long (a longer one is dropped,
// never cut into another type); LastModified travels with a second's precision, HTTP's.
//
// Stale says the owner answered a value that expired Age ago, under its group's serve-stale
// settings; it travels (flagStale) to a client that speaks Version 2, and the TTL of a stale
// value always travels as 1 ns, so that a version-1 client, which cannot be told, keeps no
// copy of it. A Set or a Push carries no staleness.
type Value struct {
	Bytes        []byte
	TTL          time.Duration
	ContentType  string
	LastModified time.Time
	Stale        bool
	Age          time.Duration
}

// Result is one key's answer in a batch: a Value, or Err (an *Error verdict, or an error
// wrapping ErrUnavailable when the connection failed before the key was answered).
type Result struct {
	Value
	Err error
}

// Handler serves the requests that arrive on a Server's connections. The peers package
// implements it with the groups' GetLocal, RemoveLocal and PurgeLocal: a request that came
// over the peer wire is answered from this node and never forwarded (the hop guard is the
// wire itself: it carries nothing else).
//
// Methods are called concurrently, each on its own goroutine, and may block; ctx ends when the
// connection closes or the Server is closed. An *Error chooses the code of a failure; any
// other error travels as CodeLoadFailed with its text (cut to MaxMessageBytes). Fetch's
// Value.Bytes is only read, and may be written from its own memory while other requests use
// it; it must not change afterwards.
type Handler interface {
	Fetch(ctx context.Context, group, key string) (Value, error)
	Remove(ctx context.Context, group, key string) error
	Purge(ctx context.Context, group string) error
}

// SetHandler is a Handler that also stores values sent with Client.Set: the peers package
// implements it with the group's SetLocal, which never forwards. Set owns v.Bytes (a copy
// made for it). A Handler without it answers a set with CodeBadRequest.
type SetHandler interface {
	Set(ctx context.Context, group, key string, v Value) error
}
