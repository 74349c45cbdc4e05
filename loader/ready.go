package loader

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/groupcached/groupcached/group"
)

// An origin that is down when the node starts is not a configuration mistake: the SQL loader
// is built anyway, reports group.Readier's Ready as "cannot reach the database" (so /readyz
// answers 503 with that reason) and keeps checking in the background, from checkRetryMin
// doubling to checkRetryMax with jitter, until the database answers and the query prepares.
// What is wrong whatever the database does still fails NewSQL: a DSN that does not parse,
// a missing SQLite file, and at start a query that does not prepare or has the wrong number
// of placeholders. Loads are attempted meanwhile, and succeed as soon as the database does.

const (
	checkRetryMin = 200 * time.Millisecond
	checkRetryMax = 5 * time.Second
)

var _ group.Readier = (*SQL)(nil)

// ErrNotReady is wrapped by Ready's error while the database cannot be reached or the query
// does not prepare.
var ErrNotReady = errors.New("origin not ready")

// readiness is the state of the background check: nil once the database has answered and
// the query prepared.
type readiness struct {
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
	done chan struct{}
}

// Ready reports whether the database has answered and the query prepared (group.Readier): nil
// once it has, otherwise why not, without the DSN or the user. It never blocks.
func (s *SQL) Ready() error {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	return s.ready.err
}

func (s *SQL) setReady(err error) {
	s.ready.mu.Lock()
	s.ready.err = err
	s.ready.mu.Unlock()
}

// retryCheck runs check with a backoff until it passes or ctx ends.
func (s *SQL) retryCheck(ctx context.Context, driverName string, timeout time.Duration) {
	defer close(s.ready.done)
	d := checkRetryMin
	for {
		t := time.NewTimer(d/2 + rand.N(d/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := s.check(cctx, driverName)
		cancel()
		if err == nil {
			s.setReady(nil)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.setReady(publicError(err))
		d = min(2*d, checkRetryMax)
	}
}

// stopRetry ends the background check, if one runs, and waits for it.
func (s *SQL) stopRetry() {
	if s.ready.stop != nil {
		s.ready.stop()
		<-s.ready.done
	}
}

// connectError marks a failure to connect to the database (as opposed to a query that does
// not prepare): the origin is down, which NewSQL does not count as a configuration mistake.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// placeholderError is a query with other than one placeholder: a configuration mistake at
// start, and a reason Ready may show as it is once the database came up late.
type placeholderError struct{ n int }

func (e *placeholderError) Error() string {
	return fmt.Sprintf("sql loader: the query has %d placeholders, want exactly 1 (the key)", e.n)
}

// publicError says why the database is not usable in words fit for /readyz, which anyone who
// reaches the node may read: pgx's connection errors name the host, the user and the
// database, so only the kind of failure (and a server's SQLSTATE) is kept.
func publicError(err error) error {
	var ce *connectError
	var phe *placeholderError
	if errors.As(err, &phe) {
		return fmt.Errorf("%w: the query has %d placeholders, want exactly 1 (the key)", ErrNotReady, phe.n)
	}
	if !errors.As(err, &ce) {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w: the query does not prepare (SQLSTATE %s)", ErrNotReady, pe.Code)
		}
		return fmt.Errorf("%w: the query does not prepare", ErrNotReady)
	}
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: the database refuses connections", ErrNotReady)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Errorf("%w: connecting to the database timed out", ErrNotReady)
	case errors.As(err, &pe):
		return fmt.Errorf("%w: the database refused the session (SQLSTATE %s)", ErrNotReady, pe.Code)
	default:
		return fmt.Errorf("%w: connecting to the database failed", ErrNotReady)
	}
}

// checkDSN reports the configuration mistakes a DSN can hold, before anything connects, and
// returns the DSN to open: a PostgreSQL DSN must parse; a SQLite DSN (a path, or a file: URI)
// must name an existing file, and is opened read-only (mode=ro), so that a typo in the path
// is an error instead of a new, empty database, and the loader never writes.
func checkDSN(driverName, dsn string) (string, error) {
	switch driverName {
	case "postgres":
		if _, err := pgx.ParseConfig(dsn); err != nil {
			// pgx's message quotes the DSN, password and all: say only where to look.
			return "", errors.New("sql loader: the DSN does not parse as a PostgreSQL connection string or URL")
		}
		return dsn, nil
	case "sqlite":
		return sqliteReadOnly(dsn)
	}
	return dsn, nil
}

// sqliteReadOnly turns a SQLite path or file: URI into a file: URI with mode=ro, after
// checking that the file exists. The driver's own parameters (_pragma and the like) are kept.
func sqliteReadOnly(dsn string) (string, error) {
	name, query, _ := strings.Cut(dsn, "?")
	if rest, ok := strings.CutPrefix(name, "file:"); ok {
		if p, err := url.PathUnescape(rest); err == nil {
			name = p
		} else {
			name = rest
		}
	}
	if name == "" || strings.HasPrefix(name, ":memory:") {
		return "", errors.New("sql loader: an in-memory SQLite database is always empty: name a database file")
	}
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return "", fmt.Errorf("sql loader: SQLite database %q: %w (the loader opens it read-only and never creates it)", name, errors.Unwrap(err))
	case fi.IsDir():
		return "", fmt.Errorf("sql loader: SQLite database %q is a directory", name)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sql loader: the SQLite DSN's parameters do not parse: %v", err)
	}
	params.Set("mode", "ro")
	return "file:" + (&url.URL{Path: name}).EscapedPath() + "?" + params.Encode(), nil
}
