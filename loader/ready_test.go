package loader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/internal/downproxy"
)

// TestSQLiteReadOnly: a SQLite DSN opens its file read-only and never creates one.
func TestSQLiteReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "items.db")
	admin, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE TABLE items (k TEXT PRIMARY KEY, v TEXT); INSERT INTO items VALUES ('a', 'value of a')"); err != nil {
		t.Fatal(err)
	}

	for _, dsn := range []string{path, "file:" + path, "file:" + path + "?mode=rwc", path + "?_pragma=busy_timeout(1000)"} {
		t.Run(dsn, func(t *testing.T) {
			s, err := NewSQL(SQLConfig{Driver: "sqlite", DSN: dsn, Query: "SELECT v FROM items WHERE k = ?"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Ready(); err != nil {
				t.Errorf("Ready = %v, want nil", err)
			}
			if v, err := s.Load(context.Background(), "a"); err != nil || string(v.Bytes) != "value of a" {
				t.Errorf("Load = %q, %v", v.Bytes, err)
			}
		})
	}

	t.Run("a query that writes fails", func(t *testing.T) {
		s, err := NewSQL(SQLConfig{Driver: "sqlite", DSN: path, Query: "INSERT INTO items VALUES (?, 'written') RETURNING v"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v, err := s.Load(context.Background(), "w"); err == nil {
			t.Fatalf("a writing query succeeded through the loader: %q", v.Bytes)
		}
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM items WHERE k = 'w'").Scan(&n); err != nil || n != 0 {
			t.Errorf("rows written through the loader: %d, %v; want 0", n, err)
		}
	})

	for _, tt := range []struct{ name, dsn, want string }{
		{"missing file", filepath.Join(dir, "typo.db"), "never creates it"},
		{"missing file as URI", "file:" + filepath.Join(dir, "typo2.db") + "?mode=rwc", "never creates it"},
		{"in memory", ":memory:", "in-memory"},
		{"in memory URI", "file::memory:?cache=shared", "in-memory"},
		{"a directory", dir, "is a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSQL(SQLConfig{Driver: "sqlite", DSN: tt.dsn, Query: "SELECT v FROM items WHERE k = ?"})
			if err == nil {
				s.Close()
				t.Fatalf("NewSQL(%q) succeeded, want an error containing %q", tt.dsn, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSQL(%q) = %v, want it to contain %q", tt.dsn, err, tt.want)
			}
		})
	}
	for _, name := range []string{"typo.db", "typo2.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; the loader must not create a missing database", name, err)
		}
	}
}

// TestSQLOriginDownAtStart: a PostgreSQL that refuses connections when the loader is built is
// not a configuration mistake. NewSQL succeeds, Ready says why the loader is not ready (and
// never the DSN), and once the database is up (a TCP proxy in front of the real PostgreSQL
// starts listening on the port the DSN names) the loader becomes ready by itself and loads.
func TestSQLOriginDownAtStart(t *testing.T) {
	b := postgresBackend(t)
	u, err := url.Parse(b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := downproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	dsn := u.String()

	s, err := NewSQL(SQLConfig{Driver: "postgres", DSN: dsn, Query: "SELECT 'value of ' || $1::text"})
	if err != nil {
		t.Fatalf("NewSQL with the database down: %v; want a loader that is not ready", err)
	}
	defer s.Close()
	err = s.Ready()
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "refuses connections") {
		t.Fatalf("Ready with the database down = %v, want ErrNotReady: refuses connections", err)
	}
	if strings.Contains(err.Error(), proxy.Addr()) || strings.Contains(err.Error(), "postgres@") {
		t.Errorf("Ready's reason reveals the DSN: %v", err)
	}
	if _, err := s.Load(context.Background(), "k"); err == nil || errors.Is(err, group.ErrNotFound) {
		t.Errorf("Load with the database down = %v, want a load failure", err)
	}

	proxy.Up(t)
	up := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for s.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still not ready 20 s after the database came up: %v", s.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready %v after the database came up", time.Since(up).Round(time.Millisecond))
	if v, err := s.Load(context.Background(), "k"); err != nil || string(v.Bytes) != "value of k" {
		t.Errorf("Load once ready = %q, %v", v.Bytes, err)
	}
}

// TestPublicError: Ready's reasons keep the kind of failure and drop what pgx's messages
// carry (host, user, database).
func TestPublicError(t *testing.T) {
	secret := "failed to connect to `user=admin database=prod`: 10.0.0.7:5432"
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", &connectError{fmt.Errorf("%s: %w", secret, syscall.ECONNREFUSED)}, "the database refuses connections"},
		{"timeout", &connectError{fmt.Errorf("%s: %w", secret, context.DeadlineExceeded)}, "connecting to the database timed out"},
		{"server refuses the session", &connectError{fmt.Errorf("%s: %w", secret, &pgconn.PgError{Code: "28P01", Message: "password authentication failed for user admin"})}, "the database refused the session (SQLSTATE 28P01)"},
		{"other connect failure", &connectError{errors.New(secret)}, "connecting to the database failed"},
		{"query does not prepare", fmt.Errorf("preparing: %w", &pgconn.PgError{Code: "42P01", Message: `relation "secret_table" does not exist`}), "the query does not prepare (SQLSTATE 42P01)"},
		{"placeholders", &placeholderError{2}, "the query has 2 placeholders"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := publicError(tt.err)
			if !errors.Is(got, ErrNotReady) || !strings.Contains(got.Error(), tt.want) {
				t.Errorf("publicError = %v, want ErrNotReady: %s", got, tt.want)
			}
			for _, leak := range []string{"admin", "prod", "10.0.0.7", "secret_table"} {
				if strings.Contains(got.Error(), leak) {
					t.Errorf("publicError = %v: reveals %q", got, leak)
				}
			}
		})
	}
}
