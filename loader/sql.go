package loader

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", no cgo
)

// SQL loads keys with one query on PostgreSQL (through github.com/jackc/pgx/v5/stdlib) or
// SQLite (through modernc.org/sqlite). The key is bound to the query's only placeholder as a
// parameter, never spliced into the text. The query must return one row with one column of
// text or bytes: that column is the value. No row, or a NULL, is group.ErrNotFound; a second
// row, a second column or another column type is a load failure.
//
// The pool is bounded (SQLConfig.MaxOpenConns, MaxIdleConns), so a burst of misses cannot
// take every connection of the database, and each query has its own timeout
// (SQLConfig.QueryTimeout) besides the caller's deadline; a timeout is group.ErrLoadTimeout
// (wrapped).
//
// With SQLConfig.ListenChannel set, SQL is also a group.Watcher: its Watch listens for the
// keys that change (see sqllisten.go).
//
// A database that cannot be reached at start does not stop the node: SQL is a group.Readier
// that reports it, and retries in the background (ready.go). SQLite files are opened
// read-only and never created.
//
// SQL is safe for concurrent use. Close closes the pool.
type SQL struct {
	db          *sql.DB
	query       string
	timeout     time.Duration
	contentType string // every value's Content-Type (SQLConfig.ContentType)

	// listen holds what Watch needs; nil without a ListenChannel.
	listen *listener

	// ready is what Ready reports while the database could not be reached at start, and the
	// background check that retries (ready.go).
	ready readiness
}

var (
	_ group.Loader  = (*SQL)(nil)
	_ group.Watcher = (*SQL)(nil)
	_ io.Closer     = (*SQL)(nil)
)

// driverNames maps SQLConfig.Driver to the database/sql driver name.
var driverNames = map[string]string{"postgres": "pgx", "sqlite": "sqlite"}

// NewSQL builds a SQL loader after checking cfg (SQLConfig.Validate) and the DSN (it must
// parse; a SQLite file must exist, and is opened read-only), and checks it against the
// database before returning: it connects, prepares the query (so a syntax error or a missing
// table fails now, not on the first miss) and checks that the query has exactly one
// placeholder. A database that cannot be reached is not an error: the loader is returned not
// ready (Ready says why) and checks again in the background until it can (ready.go). The DSN
// comes from the environment variable named by DSNEnv when that is set, else from DSN. Errors
// never include the DSN, which may hold a password.
func NewSQL(cfg SQLConfig) (*SQL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sql loader: %w", err)
	}
	cfg = cfg.withDefaults()
	dsn, err := resolveDSN(cfg)
	if err != nil {
		return nil, err
	}
	if dsn, err = checkDSN(cfg.Driver, dsn); err != nil {
		return nil, err
	}
	db, err := sql.Open(driverNames[cfg.Driver], dsn)
	if err != nil {
		return nil, fmt.Errorf("sql loader: opening %s: %w", cfg.Driver, err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &SQL{db: db, query: cfg.Query, timeout: cfg.QueryTimeout, contentType: cfg.ContentType}

	checkTimeout := max(cfg.QueryTimeout, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	err = s.check(ctx, cfg.Driver)
	cancel()
	var ce *connectError
	switch {
	case errors.As(err, &ce): // the database is down: not ready, retried in the background
		s.ready.err = publicError(err)
		var rctx context.Context
		rctx, s.ready.stop = context.WithCancel(context.Background())
		s.ready.done = make(chan struct{})
		go s.retryCheck(rctx, cfg.Driver, checkTimeout)
	case err != nil:
		db.Close()
		return nil, err
	}
	if cfg.ListenChannel != "" {
		if s.listen, err = newListener(dsn, cfg.ListenChannel); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// resolveDSN picks the DSN: the environment variable named by DSNEnv, else DSN.
func resolveDSN(cfg SQLConfig) (string, error) {
	if cfg.DSNEnv != "" {
		if v := os.Getenv(cfg.DSNEnv); v != "" {
			return v, nil
		}
		if cfg.DSN == "" {
			return "", fmt.Errorf("sql loader: environment variable %s (dsn_env) is not set and no dsn is configured", cfg.DSNEnv)
		}
	}
	return cfg.DSN, nil
}

// check connects and prepares the query on one connection of the pool.
func (s *SQL) check(ctx context.Context, driverName string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return &connectError{fmt.Errorf("sql loader: connecting to %s: %w", driverName, err)}
	}
	defer conn.Close()
	if err := conn.PingContext(ctx); err != nil {
		return &connectError{fmt.Errorf("sql loader: connecting to %s: %w", driverName, err)}
	}
	params := -1
	err = conn.Raw(func(dc any) error {
		st, err := prepare(ctx, dc, s.query)
		if err != nil {
			return err
		}
		params = st.NumInput() // -1 when the driver cannot tell (modernc.org/sqlite)
		return st.Close()
	})
	if err != nil {
		return fmt.Errorf("sql loader: preparing the query: %w", err)
	}
	if params < 0 {
		params = countPlaceholders(s.query, driverName)
	}
	if params != 1 {
		return &placeholderError{params}
	}
	return nil
}

// prepare prepares query on a raw driver connection.
func prepare(ctx context.Context, dc any, query string) (driver.Stmt, error) {
	if p, ok := dc.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	if c, ok := dc.(driver.Conn); ok {
		return c.Prepare(query)
	}
	return nil, fmt.Errorf("driver connection %T cannot prepare statements", dc)
}

// Load runs the query with key bound to its placeholder.
func (s *SQL) Load(ctx context.Context, key string) (group.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, s.query, key)
	if err != nil {
		return group.Value{}, s.queryError(ctx, key, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return group.Value{}, s.queryError(ctx, key, err)
	}
	if len(cols) != 1 {
		return group.Value{}, fmt.Errorf("sql loader: %q: the query returns %d columns, want 1", key, len(cols))
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return group.Value{}, s.queryError(ctx, key, err)
		}
		return group.Value{}, fmt.Errorf("sql loader: %q: no row: %w", key, group.ErrNotFound)
	}
	var col any
	if err := rows.Scan(&col); err != nil {
		return group.Value{}, s.queryError(ctx, key, err)
	}
	if rows.Next() {
		return group.Value{}, fmt.Errorf("sql loader: %q: the query returned more than one row", key)
	}
	if err := rows.Err(); err != nil {
		return group.Value{}, s.queryError(ctx, key, err)
	}
	switch v := col.(type) {
	case nil:
		return group.Value{}, fmt.Errorf("sql loader: %q: NULL: %w", key, group.ErrNotFound)
	case []byte: // database/sql hands *any a copy, which the group may keep
		return group.Value{Bytes: v, ContentType: s.contentType}, nil
	case string:
		return group.Value{Bytes: []byte(v), ContentType: s.contentType}, nil
	default:
		return group.Value{}, fmt.Errorf("sql loader: %q: the column is %T, want text or bytes (cast it in the query)", key, col)
	}
}

// queryError wraps a failed query, marking timeouts as group.ErrLoadTimeout.
func (s *SQL) queryError(ctx context.Context, key string, err error) error {
	if ctx.Err() == context.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sql loader: %q: %w: %w", key, group.ErrLoadTimeout, err)
	}
	return fmt.Errorf("sql loader: %q: %w", key, err)
}

// Close stops the background check, if one runs, and closes the connection pool.
func (s *SQL) Close() error {
	s.stopRetry()
	return s.db.Close()
}

// countPlaceholders counts the distinct parameters of query, for drivers that cannot report
// them: ?, ?NNN, :name, @name and $name for sqlite, $N for postgres. String literals, quoted
// identifiers and comments are skipped.
func countPlaceholders(query, driverName string) int {
	seen := map[string]bool{}
	anonymous := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(query, i, c)
		case c == '[' && driverName == "sqlite":
			i = skipQuoted(query, i, ']')
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			if j := strings.IndexByte(query[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(query)
			}
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			if j := strings.Index(query[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(query)
			}
		case c == '?' && driverName == "sqlite":
			j := i + 1
			for j < len(query) && isDigit(query[j]) {
				j++
			}
			if j == i+1 {
				anonymous++
			} else {
				seen[query[i:j]] = true
			}
			i = j - 1
		case c == '$' || ((c == ':' || c == '@') && driverName == "sqlite"):
			j := i + 1
			for j < len(query) && (isDigit(query[j]) || (driverName == "sqlite" && isIdentByte(query[j]))) {
				j++
			}
			if j > i+1 && (c != ':' || query[i+1] != ':') {
				seen[query[i:j]] = true
			}
			i = j - 1
		}
	}
	return len(seen) + anonymous
}

// skipQuoted returns the index of the quote that closes the one at query[i]; a doubled closing
// quote is an escaped one.
func skipQuoted(query string, i int, closing byte) int {
	for j := i + 1; j < len(query); j++ {
		if query[j] == closing {
			if j+1 < len(query) && query[j+1] == closing && closing != ']' {
				j++
				continue
			}
			return j
		}
	}
	return len(query)
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func isIdentByte(b byte) bool {
	return isDigit(b) || b == '_' || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || b >= 0x80
}
