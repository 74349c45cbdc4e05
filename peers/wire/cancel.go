package wire

import (
	"errors"
	"slices"
)

// ErrAborted is the cause of the failures Abort gives the calls in flight.
var ErrAborted = errors.New("requests to the peer aborted by the caller")

// Abort fails every request in flight to the peer with an error wrapping ErrUnavailable (and
// cause, or ErrAborted when cause is nil) and closes the open connections, so that their
// callers stop waiting at once: the peers package calls it when it stops routing to a peer it
// holds unreachable. Unlike Close, the Client stays usable: the next request dials again
// (after the backoff of a failed dial, if one is running).
func (c *Client) Abort(cause error) {
	if cause == nil {
		cause = ErrAborted
	}
	c.mu.Lock()
	conns := slices.Clone(c.conns)
	c.mu.Unlock()
	for _, cc := range conns {
		cc.fail(unavailable(c.cfg.Addr, cause))
	}
}
