package loader

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// watchEvent is one call a Watcher made on its sink.
type watchEvent struct {
	kind string // "changed", "resync" or "lost"
	key  string
	err  error // Resync's cause or Lost's error
}

// recordingSink records the calls of a Watcher, in order. Like the node's, it refuses an
// empty key, after which the watcher must carry on.
type recordingSink struct{ events chan watchEvent }

var _ group.ChangeSink = (*recordingSink)(nil)

func newRecordingSink() *recordingSink { return &recordingSink{events: make(chan watchEvent, 1000)} }

func (s *recordingSink) Changed(key string) error {
	s.events <- watchEvent{kind: "changed", key: key}
	if key == "" {
		return fmt.Errorf("%w: empty", group.ErrInvalidKey)
	}
	return nil
}
func (s *recordingSink) Resync(cause error) { s.events <- watchEvent{kind: "resync", err: cause} }
func (s *recordingSink) Lost(err error)     { s.events <- watchEvent{kind: "lost", err: err} }

// next returns the next event, failing the test after 10 s without one.
func (s *recordingSink) next(t *testing.T) watchEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher reported nothing for 10s")
		return watchEvent{}
	}
}

// expect fails unless the next event is of kind (and, for "changed", of key).
func (s *recordingSink) expect(t *testing.T, kind, key string) watchEvent {
	t.Helper()
	ev := s.next(t)
	if ev.kind != kind || ev.key != key {
		t.Fatalf("the watcher reported %s(%q, %v), want %s(%q)", ev.kind, ev.key, ev.err, kind, key)
	}
	return ev
}

// uniqueChannel is a channel name no other test uses, in mixed case to prove it is quoted.
func uniqueChannel() string {
	return fmt.Sprintf("GcListen_%d_%d", time.Now().UnixNano()%1e12, rand.IntN(1e6))
}

// listeners counts the server's sessions that listen on channel for us.
func listeners(t *testing.T, b backend, channel string) int {
	t.Helper()
	var n int
	err := b.admin.QueryRowContext(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", ListenApplicationName+" "+channel).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func notify(t *testing.T, b backend, channel, payload string) {
	t.Helper()
	if _, err := b.admin.ExecContext(context.Background(), "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		t.Fatal(err)
	}
}

// TestSQLWatch runs the listener against the real PostgreSQL: the first connection is a
// Resync with no cause, committed notifications arrive in order as keys (bad ones too: the
// sink judges them), rolled-back ones never, a connection killed by the server is reported
// lost and comes back with a Resync carrying the cause, and cancelling ends Watch and closes
// its connection.
func TestSQLWatch(t *testing.T) {
	b := postgresBackend(t)
	channel := uniqueChannel()
	s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: "SELECT $1::text", ListenChannel: channel})
	sink := newRecordingSink()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, sink) }()

	if ev := sink.expect(t, "resync", ""); ev.err != nil {
		t.Fatalf("the first Resync has cause %v, want nil", ev.err)
	}
	if n := listeners(t, b, channel); n != 1 {
		t.Fatalf("%d sessions listen on %s, want 1", n, channel)
	}

	notify(t, b, channel, "k1")
	notify(t, b, strings.ToLower(channel), "other channel") // quoted: case matters
	tx, err := b.admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, 'rolled back')", channel); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	notify(t, b, channel, "")
	notify(t, b, channel, "ключ ✓")
	for _, key := range []string{"k1", "", "ключ ✓"} {
		sink.expect(t, "changed", key)
	}

	// The server ends the session: the loss is reported, and the next connection is a
	// Resync that says why it is one, before any change heard on it.
	var killed int
	if err := b.admin.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		ListenApplicationName+" "+channel).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listening sessions, %v; want 1", killed, err)
	}
	if ev := sink.expect(t, "lost", ""); ev.err == nil || !strings.Contains(ev.err.Error(), "retrying in") {
		t.Fatalf("Lost(%v): want an error that says when the listener retries", ev.err)
	}
	if ev := sink.expect(t, "resync", ""); ev.err == nil {
		t.Fatal("the Resync after a loss has no cause")
	}
	notify(t, b, channel, "k2")
	sink.expect(t, "changed", "k2")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch returned %v after its context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return within 5s of its context ending")
	}
	deadline := time.Now().Add(5 * time.Second)
	for listeners(t, b, channel) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the listening session outlived Watch by 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case ev := <-sink.events:
		t.Fatalf("the watcher reported %s(%q, %v) after its context ended", ev.kind, ev.key, ev.err)
	default:
	}
}

// TestSQLWatchUnreachable: a listener that cannot connect reports each failed attempt and
// returns as soon as its context ends.
func TestSQLWatchUnreachable(t *testing.T) {
	b := postgresBackend(t)
	s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: "SELECT $1::text", ListenChannel: uniqueChannel()})
	s.listen.conn.Port = 1 // nothing listens there
	sink := newRecordingSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, sink) }()
	for range 2 {
		if ev := sink.expect(t, "lost", ""); !strings.Contains(ev.err.Error(), "connecting") {
			t.Fatalf("Lost(%v): want the connection error", ev.err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return within 5s of its context ending")
	}
}

func TestSQLWatchWithoutChannel(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "w.db")
	if err := os.WriteFile(dsn, nil, 0o600); err != nil { // an empty SQLite database
		t.Fatal(err)
	}
	s := newSQLLoader(t, SQLConfig{Driver: "sqlite", DSN: dsn, Query: "SELECT ?"})
	if err := s.Watch(t.Context(), newRecordingSink()); err != nil {
		t.Fatalf("Watch without a channel = %v, want nil at once", err)
	}
}

func TestNewListener(t *testing.T) {
	tests := []struct {
		dsn, wantApp string
	}{
		{"postgres://u@h:5432/db", ListenApplicationName + " ch"},
		{"postgres://u@h:5432/db?application_name=shop", "shop"},
		{"host=h user=u dbname=db", ListenApplicationName + " ch"},
	}
	for _, tt := range tests {
		l, err := newListener(tt.dsn, "ch")
		if err != nil {
			t.Fatalf("newListener(%q): %v", tt.dsn, err)
		}
		if got := l.conn.RuntimeParams["application_name"]; got != tt.wantApp {
			t.Errorf("newListener(%q): application_name %q, want %q", tt.dsn, got, tt.wantApp)
		}
	}
	_, err := newListener("postgres://u:secret@h:notaport/db", "ch")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("newListener with a bad DSN = %v; want an error that does not show the DSN", err)
	}
}

func TestListenBackoff(t *testing.T) {
	for failures := range 40 {
		d := listenBackoffMax
		if failures < 16 {
			d = min(listenBackoffMax, listenBackoffMin<<failures)
		}
		for range 20 {
			if got := backoff(failures); got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", failures, got, d/2, d)
			}
		}
	}
	if backoff(0) > listenBackoffMin || backoff(100) < listenBackoffMax/2 {
		t.Errorf("backoff does not run from %v to %v", listenBackoffMin, listenBackoffMax)
	}
}

// countingSink counts changes and signals when it has heard want of them.
type countingSink struct {
	want     int
	heard    atomic.Int64
	resynced chan struct{}
	done     chan struct{}
}

func (s *countingSink) Changed(string) error {
	if s.heard.Add(1) == int64(s.want) {
		close(s.done)
	}
	return nil
}
func (s *countingSink) Resync(error) {
	select {
	case <-s.resynced:
	default:
		close(s.resynced)
	}
}
func (s *countingSink) Lost(error) {}

// BenchmarkSQLWatchBurst measures how fast one listener drains a burst: one transaction
// notifies 100,000 distinct keys, and the clock runs from its commit until the sink has heard
// the last one. The sink does nothing, so this is the feed's own cost (PostgreSQL's delivery
// and pgx's decoding), the floor under what a node adds.
//
//	GROUPCACHED_TEST_POSTGRES_DSN=... go test ./loader -run '^$' -bench SQLWatchBurst -benchtime 3x
func BenchmarkSQLWatchBurst(b *testing.B) {
	const burst = 100_000
	b.ReportAllocs()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		b.Skipf("set %s to run this benchmark against PostgreSQL", postgresEnv)
	}
	channel := uniqueChannel()
	s, err := NewSQL(SQLConfig{Driver: "postgres", DSN: dsn, Query: "SELECT $1::text", ListenChannel: channel})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	admin := s.db
	for b.Loop() {
		sink := &countingSink{want: burst, resynced: make(chan struct{}), done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = s.Watch(ctx, sink) }()
		<-sink.resynced
		b.StopTimer()
		if _, err := admin.ExecContext(ctx, "SELECT count(pg_notify($1, 'key-' || n)) FROM generate_series(1, $2::int) AS n", channel, burst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		select {
		case <-sink.done:
		case <-time.After(time.Minute):
			b.Fatalf("heard %d of %d notifications in a minute", sink.heard.Load(), burst)
		}
		cancel()
		<-stopped
	}
	b.ReportMetric(float64(burst*b.N)/b.Elapsed().Seconds(), "notifications/s")
}

// freezer is a TCP proxy to PostgreSQL that can stop passing bytes without closing anything,
// as a network that drops packets does: the connection through it goes silent, not down.
type freezer struct {
	ln     net.Listener
	target string
	gate   sync.RWMutex // write-locked while frozen
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *freezer) serve() {
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", f.target)
		if err != nil {
			in.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, in, out)
		f.mu.Unlock()
		go f.pipe(out, in)
		go f.pipe(in, out)
	}
}

// pipe copies src to dst, holding each chunk while the freezer is frozen.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		f.gate.RLock()
		_, err = dst.Write(buf[:n])
		f.gate.RUnlock()
		if err != nil {
			src.Close()
			return
		}
	}
}

// TestSQLWatchSilentConnection: a listening connection that goes silent (no error, no
// bytes: a half-open TCP connection) is found out by the ping, reported lost, and replaced;
// quiet periods with an answered ping do not disturb a healthy connection.
func TestSQLWatchSilentConnection(t *testing.T) {
	b := postgresBackend(t)
	channel := uniqueChannel()
	s := newSQLLoader(t, SQLConfig{Driver: b.driver, DSN: b.dsn, Query: "SELECT $1::text", ListenChannel: channel})
	fz := newFreezer(t, net.JoinHostPort(s.listen.conn.Host, strconv.Itoa(int(s.listen.conn.Port))))
	host, port, _ := net.SplitHostPort(fz.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	s.listen.conn.Host, s.listen.conn.Port, s.listen.conn.Fallbacks = host, uint16(p), nil
	s.listen.pingEvery, s.listen.pingTimeout = 100*time.Millisecond, 300*time.Millisecond

	sink := newRecordingSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, sink) }()
	defer func() {
		cancel()
		<-done
	}()
	sink.expect(t, "resync", "")

	// Quiet: the listener pings, the server answers, the connection stays.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var query string
		err := b.admin.QueryRowContext(ctx, "SELECT query FROM pg_stat_activity WHERE application_name = $1", ListenApplicationName+" "+channel).Scan(&query)
		if err == nil && strings.Contains(query, "ping") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quiet listener sent no ping in 10s (last query %q, %v)", query, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	notify(t, b, channel, "after a ping")
	sink.expect(t, "changed", "after a ping")

	// Silent: nothing passes, nothing closes. The ping goes unanswered.
	fz.gate.Lock()
	ev := sink.next(t)
	fz.gate.Unlock()
	if ev.kind != "lost" || !strings.Contains(ev.err.Error(), "did not answer a ping") {
		t.Fatalf("a silent connection was reported as %s(%v), want lost after an unanswered ping", ev.kind, ev.err)
	}
	if ev := sink.expect(t, "resync", ""); ev.err == nil {
		t.Fatal("the Resync after a silent connection has no cause")
	}
	notify(t, b, channel, "k2")
	sink.expect(t, "changed", "k2")
}
