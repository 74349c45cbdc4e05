package loader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// postgresEnv names the variable that turns the PostgreSQL tests on.
const postgresEnv = "GROUPCACHED_TEST_POSTGRES_DSN"

// backend is one real database the SQL loader is tested against.
type backend struct {
	driver string // Config.Driver
	dsn    string
	admin  *sql.DB // for setting up and inspecting tables
	// param is the placeholder syntax; sleep is an expression that takes about 30 s unless
	// cancelled, with the key bound to it.
	param, sleep string
	bytesType    string
}

// sqliteBackend is a SQLite file in the test's temporary directory.
func sqliteBackend(t *testing.T) backend {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "loader.db")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil { // creates the file, which the loader never does
		t.Fatal(err)
	}
	return backend{
		driver: "sqlite", dsn: dsn, admin: db, param: "?", bytesType: "BLOB",
		// An endless recursive query: only the query timeout (sqlite3_interrupt) stops it.
		sleep: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT ? || count(*) FROM c",
	}
}

// postgresBackend is the PostgreSQL named by GROUPCACHED_TEST_POSTGRES_DSN. Without the
// variable the test skips; with it, an unreachable database fails the test.
func postgresBackend(t *testing.T) backend {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skipf("PostgreSQL tests are off: set %s to run them, e.g. %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./loader/",
			postgresEnv, postgresEnv)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%s is set but unusable: %v", postgresEnv, err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("%s is set but PostgreSQL cannot be reached: %v", postgresEnv, err)
	}
	return backend{
		driver: "postgres", dsn: dsn, admin: db, param: "$1", bytesType: "BYTEA",
		sleep: "SELECT $1::text || pg_sleep(30)::text",
	}
}

// backends returns SQLite always and PostgreSQL when configured, as subtest constructors.
func backends() map[string]func(*testing.T) backend {
	return map[string]func(*testing.T) backend{"sqlite": sqliteBackend, "postgres": postgresBackend}
}

// itemsTable creates a uniquely named table (tests of other packages may share the database)
// with a few rows, drops it at the end of the test, and returns its name.
func itemsTable(t *testing.T, b backend) string {
	t.Helper()
	name := fmt.Sprintf("loader_items_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stmts := []string{
		fmt.Sprintf("CREATE TABLE %s (k TEXT NOT NULL, v TEXT, n INTEGER, b %s)", name, b.bytesType),
		fmt.Sprintf("INSERT INTO %s (k, v, n) VALUES ('hello', 'world', 1), ('empty', '', 2), ('null', NULL, 3), ('dup', 'a', 4), ('dup', 'b', 5), ('ключ ✓', 'utf-8 ok', 6)", name),
	}
	for _, s := range stmts {
		if _, err := b.admin.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.admin.ExecContext(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

func newSQLLoader(t *testing.T, cfg SQLConfig) *SQL {
	t.Helper()
	s, err := NewSQL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLLoad(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			table := itemsTable(t, b)
			s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn,
				Query: fmt.Sprintf("SELECT v FROM %s WHERE k = %s", table, b.param)})

			injection := fmt.Sprintf("x'; DROP TABLE %s; --", table)
			tests := []struct {
				key     string
				want    string
				wantErr error
				anyErr  bool
			}{
				{key: "hello", want: "world"},
				{key: "empty", want: ""},
				{key: "ключ ✓", want: "utf-8 ok"},
				{key: "missing", wantErr: group.ErrNotFound},
				{key: "null", wantErr: group.ErrNotFound},
				{key: "' OR '1'='1", wantErr: group.ErrNotFound},
				{key: injection, wantErr: group.ErrNotFound},
				{key: "dup", anyErr: true},
			}
			for _, tt := range tests {
				t.Run(tt.key, func(t *testing.T) {
					v := checkLoad(t, s, tt.key, tt.want, tt.wantErr, tt.anyErr)
					if tt.wantErr == nil && !tt.anyErr && v.Bytes == nil {
						t.Fatalf("Load(%q) gave nil bytes; a value, even empty, must be non-nil", tt.key)
					}
				})
			}
			// The key was bound, not spliced: the table survived the injection attempt.
			checkLoad(t, s, "hello", "world", nil, false)
			if v := checkLoad(t, s, "hello", "world", nil, false); v.ContentType != "" {
				t.Errorf("Content-Type %q without content_type", v.ContentType)
			}
			typed := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, ContentType: "application/json",
				Query: fmt.Sprintf("SELECT v FROM %s WHERE k = %s", table, b.param)})
			if v := checkLoad(t, typed, "hello", "world", nil, false); v.ContentType != "application/json" {
				t.Errorf("Content-Type %q, want content_type's application/json", v.ContentType)
			}
		})
	}
}

func TestSQLQueryShapes(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			table := itemsTable(t, b)
			ctx := context.Background()
			if _, err := b.admin.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET b = %s WHERE k = 'hello'", table, map[string]string{
				"sqlite": "x'00ff10'", "postgres": `'\x00ff10'::bytea`}[b.driver])); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name, query, key string
				want             string
				wantErr          string
			}{
				{name: "bytes column", query: "SELECT b FROM %s WHERE k = %s", key: "hello", want: "\x00\xff\x10"},
				{name: "expression", query: "SELECT upper(v) FROM %s WHERE k = %s", key: "hello", want: "WORLD"},
				{name: "two columns", query: "SELECT k, v FROM %s WHERE k = %s", key: "hello", wantErr: "returns 2 columns, want 1"},
				{name: "integer column", query: "SELECT n FROM %s WHERE k = %s", key: "hello", wantErr: "want text or bytes"},
				{name: "many rows", query: "SELECT v FROM %s WHERE k <> %s", key: "hello", wantErr: "more than one row"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: fmt.Sprintf(tt.query, table, b.param)})
					v, err := s.Load(ctx, tt.key)
					if tt.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, group.ErrNotFound) {
							t.Fatalf("Load = %q, %v; want a failure containing %q", v.Bytes, err, tt.wantErr)
						}
						return
					}
					if err != nil || string(v.Bytes) != tt.want {
						t.Fatalf("Load = %q, %v; want %q", v.Bytes, err, tt.want)
					}
				})
			}
		})
	}
}

func TestNewSQLChecks(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			table := itemsTable(t, b)
			second := map[string]string{"sqlite": "?", "postgres": "$2"}[b.driver]
			// An unreachable PostgreSQL is not a configuration mistake (TestSQLOriginDownAtStart);
			// a missing SQLite file is.
			missing := map[string]string{
				"sqlite":   filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"),
				"postgres": "postgres://postgres@127.0.0.1:5432/test?sslmode=bogus",
			}[b.driver]
			missingErr := map[string]string{"sqlite": "never creates it", "postgres": "does not parse"}[b.driver]
			tests := []struct {
				name    string
				cfg     SQLConfig
				wantErr string
			}{
				{"no placeholder", SQLConfig{DSN: b.dsn, Query: fmt.Sprintf("SELECT v FROM %s WHERE k = 'hello'", table)}, "0 placeholders"},
				{"two placeholders", SQLConfig{DSN: b.dsn, Query: fmt.Sprintf("SELECT v FROM %s WHERE k = %s OR k = %s", table, b.param, second)}, "2 placeholders"},
				{"syntax error", SQLConfig{DSN: b.dsn, Query: "SELEC v FROM " + table}, "preparing the query"},
				{"missing table", SQLConfig{DSN: b.dsn, Query: "SELECT v FROM no_such_table_here WHERE k = " + b.param}, "preparing the query"},
				{"missing file or bad DSN", SQLConfig{DSN: missing, Query: "SELECT " + b.param}, missingErr},
				{"invalid config", SQLConfig{DSN: b.dsn, Query: "SELECT " + b.param, MaxOpenConns: -1}, "MaxOpenConns: must be >= 0"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.cfg.Driver = b.driver
					s, err := NewSQL(tt.cfg)
					if err == nil {
						s.Close()
						t.Fatalf("NewSQL succeeded, want an error containing %q", tt.wantErr)
					}
					if !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("NewSQL: %v, want it to contain %q", err, tt.wantErr)
					}
					if strings.Contains(err.Error(), b.dsn) && b.driver == "postgres" {
						t.Fatalf("the error reveals the DSN: %v", err)
					}
				})
			}
		})
	}
}

// TestSQLDSNFromEnv uses t.Setenv, so it cannot run in parallel with other tests.
func TestSQLDSNFromEnv(t *testing.T) {
	b := sqliteBackend(t)
	table := itemsTable(t, b)
	query := fmt.Sprintf("SELECT v FROM %s WHERE k = ?", table)
	const variable = "GROUPCACHED_LOADER_TEST_DSN"
	tests := []struct {
		name   string
		env    string // "" leaves the variable unset
		dsn    string
		wantOK bool
	}{
		{"env wins over dsn", b.dsn, filepath.Join(t.TempDir(), "no", "dir", "x.db"), true},
		{"env alone", b.dsn, "", true},
		{"unset env falls back to dsn", "", b.dsn, true},
		{"unset env and no dsn", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(variable, tt.env)
			} else {
				t.Setenv(variable, "")
				os.Unsetenv(variable)
			}
			s, err := NewSQL(SQLConfig{Driver: "sqlite", DSN: tt.dsn, DSNEnv: variable, Query: query})
			if !tt.wantOK {
				if err == nil {
					s.Close()
					t.Fatal("NewSQL succeeded without a DSN")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkLoad(t, s, "hello", "world", nil, false)
		})
	}
}

func TestSQLTimeoutAndPool(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			t.Run("query timeout", func(t *testing.T) {
				s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: b.sleep, QueryTimeout: 200 * time.Millisecond})
				if _, err := s.Load(context.Background(), "k"); !errors.Is(err, group.ErrLoadTimeout) {
					t.Fatalf("a query past its timeout: %v, want ErrLoadTimeout", err)
				}
			})
			t.Run("caller deadline", func(t *testing.T) {
				s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: b.sleep, QueryTimeout: time.Minute})
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if _, err := s.Load(ctx, "k"); !errors.Is(err, group.ErrLoadTimeout) {
					t.Fatalf("a query past the caller's deadline: %v, want ErrLoadTimeout", err)
				}
			})
			t.Run("pool limit", func(t *testing.T) {
				table := itemsTable(t, b)
				s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, MaxOpenConns: 2, MaxIdleConns: 1,
					Query: fmt.Sprintf("SELECT v FROM %s WHERE k = %s", table, b.param)})
				var wg sync.WaitGroup
				errs := make(chan error, 40)
				for range 40 {
					wg.Go(func() {
						if v, err := s.Load(context.Background(), "hello"); err != nil || string(v.Bytes) != "world" {
							errs <- fmt.Errorf("Load(hello) = %q, %v", v.Bytes, err)
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				st := s.db.Stats()
				if st.MaxOpenConnections != 2 || st.OpenConnections > 2 || st.Idle > 1 {
					t.Fatalf("pool stats %+v: want at most 2 open and 1 idle", st)
				}
			})
		})
	}
}

func TestCountPlaceholders(t *testing.T) {
	tests := []struct {
		driver, query string
		want          int
	}{
		{"sqlite", "SELECT v FROM t WHERE k = ?", 1},
		{"sqlite", "SELECT v FROM t WHERE k = ? OR k = ?", 2},
		{"sqlite", "SELECT v FROM t WHERE k = ?1 OR j = ?1", 1},
		{"sqlite", "SELECT v FROM t WHERE k = :key OR j = :key", 1},
		{"sqlite", "SELECT v FROM t WHERE k = @k AND j = $k", 2},
		{"sqlite", "SELECT '?' || v FROM t WHERE k = ?", 1},
		{"sqlite", `SELECT "a?" FROM [b?] WHERE k = ? -- ?`, 1},
		{"sqlite", "SELECT v /* ? ? */ FROM t WHERE k = 'it''s ?' AND j = ?", 1},
		{"sqlite", "SELECT 1", 0},
		{"postgres", "SELECT load_item($1)", 1},
		{"postgres", "SELECT v FROM t WHERE k = $1 OR j = $1", 1},
		{"postgres", "SELECT v FROM t WHERE k = $1 OR j = $2", 2},
		{"postgres", "SELECT v::text FROM t WHERE k = $1", 1},
		{"postgres", "SELECT '$2' FROM t WHERE k = $1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.driver+" "+tt.query, func(t *testing.T) {
			if got := countPlaceholders(tt.query, tt.driver); got != tt.want {
				t.Fatalf("countPlaceholders = %d, want %d", got, tt.want)
			}
		})
	}
}

func BenchmarkSQLiteLoad(b *testing.B) {
	dsn := filepath.Join(b.TempDir(), "bench.db")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE items (k TEXT PRIMARY KEY, v TEXT); INSERT INTO items VALUES ('k', 'value')"); err != nil {
		b.Fatal(err)
	}
	s, err := NewSQL(SQLConfig{Driver: "sqlite", DSN: dsn, Query: "SELECT v FROM items WHERE k = ?"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPostgresLoad(b *testing.B) {
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		b.Skipf("set %s to run this benchmark", postgresEnv)
	}
	s, err := NewSQL(SQLConfig{Driver: "postgres", DSN: dsn, Query: "SELECT 'value of ' || $1::text"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
}
