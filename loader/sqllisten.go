package loader

// Invalidation from PostgreSQL: SQL.Watch, turned on by SQLConfig.ListenChannel.
//
// The design, and why:
//
// Every node listens. Each node that serves the group keeps one connection of its own that
// LISTENs on the channel, hears every committed change from PostgreSQL directly, and drops the
// key from its own caches at once (main and hot, and a fill under way will not cache what it
// read). The alternative, only the key's owner acting and removing cluster-wide through the
// peer wire, saves no connection (every node owns a share of the keys, so every node must
// listen anyway) and makes each non-owner's freshness hang on an HTTP broadcast that a busy
// or partitioned peer may miss, with nothing to notice the loss, and on the nodes agreeing on
// the owner, which they may not while membership changes. A single elected listener would
// save connections (one per cluster instead of one per node per group) at the price of an
// election and of turning each of its outages into a blind spot for the whole cluster. The
// cost of listening everywhere: N nodes hold N idle connections per watched group, and
// PostgreSQL hands every notification to each of them.
//
// Hearing directly is not enough on its own, because of hot copies, and the node (httpapi's
// ChangeSink) closes that hole: the listeners are separate backends that wake independently,
// so a non-owner may drop its hot copy and fetch the key again from an owner that has not
// heard the notification yet, and keep the owner's old value until its TTL. (Measured: the
// 3-node test of examples/sidecar-postgres served such a copy in 5 runs out of 5 without the
// fix.) The owner, once it has dropped the key itself, therefore forwards the removal to its
// peers: a copy fetched before that is dropped, a fetch under way is marked stale. That is
// the one thing the peer wire carries, and losing a forward costs less than losing an
// owner-only broadcast: a peer keeps a stale copy only if it fetched the key in the moment
// before the owner heard. For the same reason a gap purges the peers too: while this node was
// deaf, its main cache may have handed them values that changed since.
//
// No silent gaps. PostgreSQL keeps nothing for a session that is not listening: whatever was
// committed while the connection was down is never delivered. So after each (re)connect the
// order is LISTEN, then Resync (the sink purges the group, here and on the peers), then the
// notifications. An update committed before the LISTEN took effect is in the database before
// the purge, so every fill after the purge reads it, and a fill under way during the purge is
// marked stale; an update committed after the LISTEN is delivered on this connection, after
// the Resync. Nothing falls between the two. (Purging first and listening second would leave
// a window: a row changed and read into the cache between the two is never heard of.) The
// first connection is a Resync too, with a nil cause: the node may have served, and cached,
// before its listener was up; the sink purges only if the group has served anything (a Node
// waits for its feeds' first word before it serves, so normally it has not).
//
// While the connection is down the node keeps serving what it has cached, which may be stale
// by up to the outage plus the backoff: that is the price of answering at all while the
// database is unreachable, and the TTL still bounds it. Reconnections back off from
// listenBackoffMin, doubling to listenBackoffMax, jittered; the backoff is reset only by a
// connection that stayed up listenStableAfter, so a server that accepts and drops at once
// costs a purge at most every listenBackoffMax. A connection that dies without an error (a
// half-open TCP connection after a network failure) would be a silent gap: after
// listenPingEvery without a notification the listener pings the server, and a ping that fails
// within listenPingTimeout is a loss like any other.
//
// A burst (a bulk UPDATE of 100,000 rows) is 100,000 notifications, each a few map removals
// on this node: the listener reads them in a loop on its own connection, never holds a lock
// that readers wait on, and never waits on the network per key (the owner's forwarding is
// batched by the sink), so it keeps PostgreSQL's notification queue drained and reads keep
// answering.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/groupcached/groupcached/group"
)

// The listener's timings. See the design above.
const (
	listenBackoffMin   = 100 * time.Millisecond
	listenBackoffMax   = 5 * time.Second
	listenStableAfter  = 30 * time.Second
	listenPingEvery    = 15 * time.Second
	listenPingTimeout  = 5 * time.Second
	listenDialTimeout  = 10 * time.Second
	listenCloseTimeout = time.Second
)

// ListenApplicationName is the application_name of the listening connection, followed by a
// space and the channel, unless the DSN sets one: it is how pg_stat_activity shows the
// listener.
const ListenApplicationName = "groupcached listen"

// listener is what Watch needs: the parsed DSN of the dedicated connection, the channel, and
// the liveness timings (listenPingEvery, listenPingTimeout; tests shorten them).
type listener struct {
	conn                   *pgx.ConnConfig
	channel                string
	pingEvery, pingTimeout time.Duration
}

// newListener parses dsn for the listening connection. The channel was validated with the
// config.
func newListener(dsn, channel string) (*listener, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, password and all: say only where to look.
		return nil, errors.New("sql loader: listen_channel: pgx cannot parse the DSN for the listening connection")
	}
	if _, set := cc.RuntimeParams["application_name"]; !set {
		cc.RuntimeParams["application_name"] = ListenApplicationName + " " + channel
	}
	return &listener{conn: cc, channel: channel, pingEvery: listenPingEvery, pingTimeout: listenPingTimeout}, nil
}

// Watch listens on the configured channel until ctx ends, reporting each notification's
// payload to sink.Changed as a key, and returns nil; without a ListenChannel it returns nil
// at once. It holds one connection of its own, outside the pool, and reconnects by itself:
// after each (re)connection it calls sink.Resync before reporting any change, and each loss
// or failed attempt goes to sink.Lost before the backoff. See the design at the top of
// sqllisten.go. It is safe to call concurrently: each call holds its own connection.
func (s *SQL) Watch(ctx context.Context, sink group.ChangeSink) error {
	l := s.listen
	if l == nil {
		return nil
	}
	var cause error // why the last live connection ended; nil until one did
	failures := 0
	for {
		conn, err := l.connect(ctx)
		if err == nil {
			sink.Resync(cause)
			up := time.Now()
			err = l.serve(ctx, conn, sink)
			l.close(conn)
			if ctx.Err() != nil {
				return nil
			}
			cause = err
			if time.Since(up) >= listenStableAfter {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		delay := backoff(failures)
		failures++
		sink.Lost(fmt.Errorf("sql loader: listening on %q: %w (retrying in %v)", l.channel, err, delay.Round(time.Millisecond)))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connect opens the dedicated connection and LISTENs on the channel.
func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, listenDialTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.conn.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		l.close(conn)
		return nil, fmt.Errorf("LISTEN: %w", err)
	}
	return conn, nil
}

// serve hands each notification's payload to sink until the connection fails or ctx ends,
// pinging the server when it has been quiet for pingEvery.
//
// It waits with context.Background and a read deadline on the socket rather than a context
// per wait: pgx then sets up no context watch per notification, which is a third of the
// listener's cost in a burst. ctx still ends the wait at once, by moving the deadline to the
// past.
func (l *listener) serve(ctx context.Context, conn *pgx.Conn, sink group.ChangeSink) error {
	netConn := conn.PgConn().Conn()
	stop := context.AfterFunc(ctx, func() { _ = netConn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		// Set the deadline, then look at ctx: a cancellation after the look moves the
		// deadline back to the past after this line has run.
		if err := netConn.SetReadDeadline(time.Now().Add(l.pingEvery)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, err := conn.WaitForNotification(context.Background())
		if n != nil && n.Channel == l.channel {
			// An invalid key is the sink's to count and log; the feed goes on.
			_ = sink.Changed(n.Payload)
		}
		var netErr net.Error
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &netErr) && netErr.Timeout() && !conn.IsClosed():
			if err := netConn.SetReadDeadline(time.Time{}); err != nil {
				return err
			}
			pingCtx, cancel := context.WithTimeout(ctx, l.pingTimeout)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("the connection was quiet for %v and did not answer a ping: %w", l.pingEvery, err)
			}
		default:
			return err
		}
	}
}

// close ends the connection politely, within listenCloseTimeout.
func (l *listener) close(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), listenCloseTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// backoff is the wait before reconnection attempt failures+1: listenBackoffMin doubled per
// failure up to listenBackoffMax, then jittered into [d/2, d] so that the nodes of a cluster
// do not reconnect, and purge, in step.
func backoff(failures int) time.Duration {
	d := listenBackoffMax
	if failures < 16 {
		d = min(listenBackoffMax, listenBackoffMin<<failures)
	}
	return d/2 + rand.N(d/2+1)
}
