package wire

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestClientAbort: Abort fails the fetches in flight at once (synchronous and asynchronous),
// with ErrUnavailable and the cause given, closes the connections, and leaves the Client
// usable: the next fetch dials again and is answered.
func TestClientAbort(t *testing.T) {
	release := make(chan struct{})
	h := blockingHandler(release)
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	errc := make(chan error, 1)
	go func() { _, err := c.Fetch(context.Background(), "g", "k"); errc <- err }()
	asyncErr := make(chan error, 1)
	waitFor(t, 5*time.Second, "the first fetch at the handler", func() bool { return h.fetches.Load() == 1 })
	c.FetchFunc("g", "k2", time.Now().Add(5*time.Second), func(_ Value, err error) { asyncErr <- err })
	waitFor(t, 5*time.Second, "both fetches at the handler", func() bool { return h.fetches.Load() == 2 })

	cause := errors.New("ejected")
	c.Abort(cause)
	mustUnavailable(t, <-errc, cause)
	mustUnavailable(t, <-asyncErr, cause)
	if st := c.Stats(); st.Conns != 0 || st.InFlight != 0 {
		t.Errorf("after Abort: %+v, want no connection and nothing in flight", st)
	}

	close(release) // the handler answers from now on
	v, err := c.Fetch(context.Background(), "g", "k3")
	if err != nil || string(v.Bytes) != "late k3" {
		t.Fatalf("Fetch after Abort = %q, %v; want the answer over a new connection", v.Bytes, err)
	}
	if d := c.Stats().Dials; d != 2 {
		t.Errorf("%d dials, want 2 (the first connection, and one after Abort)", d)
	}
	c.Abort(nil) // nothing in flight: only closes
	if _, err := c.Fetch(context.Background(), "g", "k4"); err != nil {
		t.Errorf("Fetch after an idle Abort: %v", err)
	}
}
