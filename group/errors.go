package group

import "errors"

// Sentinel errors are part of the API: callers test them with errors.Is, and the HTTP layer
// maps each to one status code in one place.
var (
	// ErrNotFound means the origin has no value for the key. It is distinct from a failure:
	// it may be cached for Config.NegativeTTL.
	ErrNotFound = errors.New("not found")

	// ErrInvalidKey means the key cannot be looked up at all (it is empty).
	ErrInvalidKey = errors.New("invalid key")

	// ErrLoaderPanic means the loader panicked, or (a bug) the group's own code filling the
	// key did. The panic is recovered; every waiter of that fill gets this error and nothing
	// is cached.
	ErrLoaderPanic = errors.New("loader panicked")

	// ErrLoadTimeout means the shared fill ran past Config.LoadTimeout.
	ErrLoadTimeout = errors.New("load timed out")

	// ErrPeerUnavailable is returned (wrapped) by a Peer that could not be reached. It is the
	// only peer error after which a Group loads the key itself.
	ErrPeerUnavailable = errors.New("peer unavailable")
)
