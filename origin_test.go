package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/groupcached/groupcached/httpapi"
)

// The origin-protection tests run three nodes in this test process (real HTTP and gossip
// sockets on loopback, built by the same newNode the binary uses) and check, at the origin
// itself, that a storm of concurrent requests for cold keys reaches it once per key.

const (
	protectClients = 100 // concurrent clients, spread round-robin over the nodes
	protectKeys    = 50  // cold keys, every client asks for every one
)

// startInProcessCluster starts n nodes from the YAML groups section and waits until every
// node sees all n members in its ring.
//
// The nodes use the "lan" preset: the storms below load both cores (more so under -race),
// and the "local" preset's 100ms probe timeout then lets a busy member be declared dead and
// come back, reshuffling ownership mid-storm, which is a second load by design. Joining is as
// fast with either preset; only failure detection is slower, and these tests kill no node.
func startInProcessCluster(t testing.TB, n int, groupsYAML string) []*httpapi.Node {
	t.Helper()
	path := writeConfig(t, "node:\n  preset: lan\n  shutdown_delay: 0s\n"+groupsYAML)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var nodes []*httpapi.Node
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		args := []string{"-config", path, "-name", name, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}
		if i > 0 {
			args = append(args, "-join", nodes[0].Cluster().GossipAddr())
		}
		cfg, err := loadConfig(mustFlags(t, args...), envMap{}.lookup)
		if err != nil {
			t.Fatal(err)
		}
		nd, err := newNode(cfg, logger.With("node", name))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = nd.Start(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := nd.Stop(context.Background()); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
		})
		nodes = append(nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.WaitMembers(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// storm has protectClients clients, spread over the nodes, each GET every key in its own
// random order, and fails the test on any answer but 200 with the origin's value.
func storm(t *testing.T, nodes []*httpapi.Node, groupName string, keys []string, value func(string) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, protectClients)
	start := make(chan struct{})
	for c := range protectClients {
		addr := nodes[c%len(nodes)].Addr()
		order := slices.Clone(keys)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		wg.Go(func() {
			<-start
			for _, k := range order {
				status, body, _, err := get(addr, groupName, k)
				if err != nil || status != http.StatusOK || body != value(k) {
					errs <- fmt.Errorf("client %d, GET %q on %s = %d %q, %v", c, k, addr, status, body, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func coldKeys(prefix string) []string {
	keys := make([]string, protectKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return keys
}

func TestOriginProtectionHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster; skipped with -short")
	}
	t.Parallel()
	origin := newCountingOrigin(t)
	nodes := startInProcessCluster(t, 3, fmt.Sprintf(`groups:
  - name: items
    load_timeout: 20s
    loader: {type: http, url: %q}
`, origin.loaderURL()))
	keys := coldKeys("item")

	storm(t, nodes, "items", keys, originValue)
	requests, distinct := origin.total()
	if requests != protectKeys || distinct != protectKeys {
		t.Errorf("after %d clients asked for %d cold keys: the origin saw %d requests for %d keys, want exactly one per key",
			protectClients, protectKeys, requests, distinct)
	}
	for _, k := range keys {
		if n := origin.count(k); n != 1 {
			t.Errorf("key %q reached the origin %d times, want 1 (owner in each node's ring: %s)", k, n, owners(nodes, k))
		}
	}
	if t.Failed() {
		logClusterState(t, nodes)
	}

	storm(t, nodes, "items", keys, originValue)
	if again, _ := origin.total(); again != requests {
		t.Errorf("repeating every request reached the origin %d more times, want 0", again-requests)
	}
}

// TestOriginProtectionPostgres is the same storm with PostgreSQL as the origin, counted by the
// database itself: examples/sidecar-postgres/schema.sql's load_item(k) logs every call in
// load_log. Each run gets a schema of its own.
func TestOriginProtectionPostgres(t *testing.T) {
	dsn := os.Getenv("GROUPCACHED_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("set GROUPCACHED_TEST_POSTGRES_DSN to run this test against PostgreSQL, e.g. " +
			"GROUPCACHED_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test -run Postgres .")
	}
	if testing.Short() {
		t.Skip("starts a 3-node cluster; skipped with -short")
	}
	t.Parallel()
	schemaSQL, err := os.ReadFile("examples/sidecar-postgres/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	admin := openPostgres(t, dsn)
	schema := fmt.Sprintf("groupcached_test_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})

	scoped := withSearchPath(dsn, schema)
	db := openPostgres(t, scoped)
	if _, err := db.ExecContext(ctx, string(schemaSQL)); err != nil {
		t.Fatalf("applying examples/sidecar-postgres/schema.sql: %v", err)
	}
	// Keys of any bytes travel as bound parameters: spaces, '/', '+', '%' and UTF-8 included.
	keys := coldKeys("row/ü+%")
	values := map[string]string{}
	for _, k := range keys {
		values[k] = "stored value of " + k
		if _, err := db.ExecContext(ctx, "INSERT INTO items (k, v) VALUES ($1, $2)", k, values[k]); err != nil {
			t.Fatalf("inserting item %q: %v", k, err)
		}
	}
	var logged int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM load_log").Scan(&logged); err != nil || logged != 0 {
		t.Fatalf("load_log of a fresh schema holds %d rows (%v), want 0", logged, err)
	}

	nodes := startInProcessCluster(t, 3, fmt.Sprintf(`groups:
  - name: rows
    load_timeout: 20s
    loader:
      type: sql
      driver: postgres
      dsn: %q
      query: SELECT load_item($1)
`, scoped))
	loads := func() (total, distinct int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT k) FROM load_log").Scan(&total, &distinct); err != nil {
			t.Fatalf("counting load_log: %v", err)
		}
		return total, distinct
	}

	value := func(k string) string { return values[k] }
	storm(t, nodes, "rows", keys, value)
	total, distinct := loads()
	if total != protectKeys || distinct != protectKeys {
		t.Errorf("after %d clients asked for %d cold keys: the database logged %d loads of %d keys, want exactly one per key",
			protectClients, protectKeys, total, distinct)
		logClusterState(t, nodes)
	}
	storm(t, nodes, "rows", keys, value)
	if again, _ := loads(); again != total {
		t.Errorf("repeating every request reached the database %d more times, want 0", again-total)
	}
}

// owners lists the owner of key in each node's current ring.
func owners(nodes []*httpapi.Node, key string) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s→%s ", n.Name(), n.Cluster().Owner(key))
	}
	return b.String()
}

// logClusterState explains a failed count: how each node's ring changed and how its loads
// were made.
func logClusterState(t *testing.T, nodes []*httpapi.Node) {
	t.Helper()
	for _, n := range nodes {
		cs := n.Cluster().Stats()
		t.Logf("%s: ring %v, %d rebuilds, last %v ago; fetch errors %d, unreachable %d",
			n.Name(), n.Cluster().RingMembers(), cs.RingRebuilds, time.Since(cs.LastRebuild).Round(time.Millisecond),
			cs.FetchErrors, cs.Unreachable)
		for _, g := range n.Groups() {
			st := g.Stats()
			t.Logf("  group %s: local loads %d, peer loads %d, fallback loads %d, peer errors %d, served to peers %d",
				g.Name(), st.LocalLoads, st.PeerLoads, st.FallbackLoads, st.PeerErrors, st.ServerRequests)
		}
	}
}

// openPostgres opens and pings dsn; a database that is configured but unreachable fails the
// test rather than skipping it.
func openPostgres(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("GROUPCACHED_TEST_POSTGRES_DSN is set but unusable: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("GROUPCACHED_TEST_POSTGRES_DSN is set but PostgreSQL cannot be reached: %v", err)
	}
	return db
}

// withSearchPath adds search_path=schema to a URL or key=value DSN, so that every connection
// of the pool works in that schema.
func withSearchPath(dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "search_path=" + schema
	}
	return dsn + " search_path=" + schema
}
