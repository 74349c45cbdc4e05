// Package sidecar_test exercises the files of examples/sidecar-postgres against the real
// PostgreSQL named by GROUPCACHED_TEST_POSTGRES_DSN: schema.sql and seed.sql are applied in a
// schema of the test's own, the loader is built from config.yaml, and three nodes in one
// process protect the database, which counts its loads in load_log.
package sidecar_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
	"github.com/groupcached/groupcached/loader"
)

const (
	postgresEnv = "GROUPCACHED_TEST_POSTGRES_DSN"
	nodes       = 3
	clients     = 100
	coldKeys    = 50
)

// postgres returns the test database's DSN and an admin connection to it. Without the
// variable the test skips; with it, an unreachable database fails the test.
func postgres(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skipf("PostgreSQL tests are off: set %s to run them, e.g. %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./examples/sidecar-postgres/",
			postgresEnv, postgresEnv)
	}
	db := open(t, dsn)
	return dsn, db
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
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
	return db
}

// inSchema returns dsn with search_path set to schema, in URL or key=value form.
func inSchema(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// exampleDatabase creates a fresh schema holding schema.sql and seed.sql (each applied twice,
// to prove them idempotent), drops it at the end, and returns a DSN and a connection scoped to it.
func exampleDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn, admin := postgres(t)
	schema := fmt.Sprintf("sidecar_test_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	scoped := inSchema(t, dsn, schema)
	db := open(t, scoped)
	for _, file := range []string{"schema.sql", "seed.sql", "schema.sql", "seed.sql"} {
		script, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(script)); err != nil {
			t.Fatalf("applying %s: %v", file, err)
		}
	}
	var created int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'load_item' AND n.nspname = $1", schema).Scan(&created); err != nil || created != 1 {
		t.Fatalf("load_item in schema %s: %d, %v; want the scripts to create it there", schema, created, err)
	}
	return scoped, db
}

// exampleLoaderConfig reads the `items` group's loader block from config.yaml.
func exampleLoaderConfig(t *testing.T) loader.SQLConfig {
	t.Helper()
	data, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name   string `yaml:"name"`
			Loader struct {
				Type             string `yaml:"type"`
				loader.SQLConfig `yaml:",inline"`
			} `yaml:"loader"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if len(file.Groups) != 1 || file.Groups[0].Name != "items" {
		t.Fatalf("config.yaml: want one group named items, got %+v", file.Groups)
	}
	typ, cfg := file.Groups[0].Loader.Type, file.Groups[0].Loader.SQLConfig
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if typ != "sql" || cfg.Driver != "postgres" || cfg.DSNEnv != "GROUPCACHED_PG_DSN" || cfg.DSN != "" {
		t.Fatalf("config.yaml's loader is %+v; want sql on postgres with the DSN from GROUPCACHED_PG_DSN only", cfg)
	}
	if cfg.ListenChannel != exampleChannel {
		t.Fatalf("config.yaml listens on %q; want %q, the channel schema.sql's trigger notifies", cfg.ListenChannel, exampleChannel)
	}
	return cfg
}

// exampleChannel is the channel of config.yaml and of schema.sql's trigger.
const exampleChannel = "items_changed"

// ownChannel points the trigger of the test's schema at a channel of the test's own, and cfg
// at it too: channels are database-wide, and a test must hear neither another test's changes
// (another run of this one included) nor a user's.
func ownChannel(t *testing.T, db *sql.DB, cfg loader.SQLConfig) loader.SQLConfig {
	t.Helper()
	cfg.ListenChannel = fmt.Sprintf("sidecar_test_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
	pointTrigger(t, db, exampleChannel, cfg.ListenChannel)
	return cfg
}

// pointTrigger makes schema.sql's trigger, which notifies channel from, notify channel to.
func pointTrigger(t *testing.T, db *sql.DB, from, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var def string
	if err := db.QueryRowContext(ctx, "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'items_notify' AND tgrelid = 'items'::regclass").Scan(&def); err != nil {
		t.Fatalf("schema.sql's trigger items_notify: %v", err)
	}
	if !strings.Contains(def, "notify_item_change('"+from+"')") {
		t.Fatalf("schema.sql's trigger is %s; want it to notify %s", def, from)
	}
	def = strings.Replace(def, "CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1)
	def = strings.Replace(def, "'"+from+"'", "'"+to+"'", 1)
	if _, err := db.ExecContext(ctx, def); err != nil {
		t.Fatalf("%s: %v", def, err)
	}
}

type node struct {
	*httpapi.Node
	group *group.Group
}

// startCluster starts n nodes on loopback, each with its own loader (its own pool and
// listening connection, as separate processes would have), with the group's configuration
// changed by tune, and waits until every ring holds every node. The nodes stop, and close
// their loaders, at the end of the test.
func startCluster(t *testing.T, n int, newLoader func() group.Loader, tune ...func(*group.Config)) []*node {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var all []*node
	for i := range n {
		l := newLoader()
		cfg := group.DefaultConfig()
		cfg.LoadTimeout = 20 * time.Second
		cfg.NegativeTTL = time.Minute // the test counts the one load of a missing key
		for _, f := range tune {
			f(&cfg)
		}
		g, err := group.New("items", l, cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		ncfg := httpapi.LocalNodeConfig()
		ncfg.Name = fmt.Sprintf("sidecar-%d", i+1)
		ncfg.Logger = logger
		if i > 0 {
			ncfg.Cluster.Seeds = []string{all[0].Cluster().GossipAddr()}
		}
		var closers []io.Closer
		if c, ok := l.(io.Closer); ok {
			closers = append(closers, c)
		}
		nd, err := httpapi.NewNode(ncfg, []*group.Group{g}, closers...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := nd.Stop(context.Background()); err != nil {
				t.Errorf("stopping %s: %v", nd.Name(), err)
			}
		})
		if err := nd.Start(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, &node{Node: nd, group: g})
	}
	for _, nd := range all {
		if err := nd.WaitMembers(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

// TestSidecarProtectsPostgres: 100 concurrent clients spread over 3 nodes ask for 50 cold keys;
// the database logs exactly 50 loads, and a second round none.
func TestSidecarProtectsPostgres(t *testing.T) {
	dsn, db := exampleDatabase(t)
	cfg := ownChannel(t, db, exampleLoaderConfig(t))
	t.Setenv(cfg.DSNEnv, dsn)
	cluster := startCluster(t, nodes, func() group.Loader {
		l, err := loader.NewSQL(cfg)
		if err != nil {
			t.Fatalf("building the loader from config.yaml: %v", err)
		}
		return l
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := map[string]string{}
	rows, err := db.QueryContext(ctx, "SELECT k, v FROM items WHERE k LIKE 'item-%' ORDER BY k LIMIT $1", coldKeys)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if err := rows.Close(); err != nil || len(want) != coldKeys {
		t.Fatalf("seed.sql gave %d items, %v; want at least %d", len(want), err, coldKeys)
	}
	keys := make([]string, 0, coldKeys)
	for k := range want {
		keys = append(keys, k)
	}

	loads := func() (total, distinct int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT k) FROM load_log").Scan(&total, &distinct); err != nil {
			t.Fatal(err)
		}
		return total, distinct
	}
	storm := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			nd := cluster[c%len(cluster)]
			order := rand.Perm(len(keys))
			wg.Go(func() {
				for _, i := range order {
					k := keys[i]
					res, err := nd.group.Get(ctx, k)
					if err != nil || string(res.Bytes) != want[k] {
						errs <- fmt.Errorf("client %d: Get(%q) on %s = %q, %v; want %q", c, k, nd.Name(), res.Bytes, err, want[k])
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}

	if total, _ := loads(); total != 0 {
		t.Fatalf("load_log has %d rows before any request", total)
	}
	storm()
	total, distinct := loads()
	if total != coldKeys || distinct != coldKeys {
		t.Fatalf("%d clients on %d nodes asked for %d cold keys: the database logged %d loads of %d keys, want exactly one per key",
			clients, nodes, coldKeys, total, distinct)
	}
	storm()
	if again, _ := loads(); again != total {
		t.Fatalf("a second round of the same requests reached the database %d more times, want 0", again-total)
	}

	t.Run("missing item", func(t *testing.T) {
		for _, nd := range cluster {
			if _, err := nd.group.Get(ctx, "no-such-item"); !errors.Is(err, group.ErrNotFound) {
				t.Fatalf("Get(no-such-item) on %s = %v, want ErrNotFound", nd.Name(), err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM load_log WHERE k = 'no-such-item' AND NOT found").Scan(&n); err != nil || n != 1 {
			t.Fatalf("load_log has %d not-found loads of no-such-item, %v; want 1 (negative caching)", n, err)
		}
	})
}
