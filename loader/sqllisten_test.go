package loader

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
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
	s := newSQLLoader(t, SQLConfig{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "w.db"), Query: "SELECT ?"})
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
