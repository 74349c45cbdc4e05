package group

import "fmt"

// Readier is implemented by a Loader that knows whether its origin can be reached, such as
// one that connects in the background and keeps retrying while its database is down: the
// node starts anyway, and its /readyz answers 503 with the reason until the origin answers,
// so that a load balancer sends it no traffic meanwhile (a configuration mistake still stops
// the node at start; an origin that is down is not one).
//
// Ready must not block (/readyz calls it on every probe) and must be safe for concurrent
// use. It returns nil when the origin can serve, or why not, in words that may be shown to
// anyone who can reach /readyz: no credentials, no DSN.
type Readier interface {
	Ready() error
}

// Ready reports whether the Group's loader can reach its origin: nil, unless the loader is a
// Readier that says otherwise. Loads are attempted either way.
func (g *Group) Ready() error {
	if r, ok := g.loader.(Readier); ok {
		if err := r.Ready(); err != nil {
			return fmt.Errorf("group %q: %w", g.name, err)
		}
	}
	return nil
}
