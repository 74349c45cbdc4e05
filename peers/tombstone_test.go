package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTombstonesRecord(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name string
		// each removal is "group/key", or "group/" for a purge
		removals []string
		want     []string // the member's pending removals, in order
		collapse uint64
	}{
		{"keys are kept", []string{"g/a", "g/b"}, []string{"g/a", "g/b"}, 0},
		{"a key removed twice is kept once", []string{"g/a", "g/a"}, []string{"g/a"}, 0},
		{"a purge replaces its group's keys", []string{"g/a", "h/a", "g/"}, []string{"h/a", "g/"}, 0},
		{"a key under a pending purge adds nothing", []string{"g/", "g/a"}, []string{"g/"}, 0},
		{"too many keys collapse into a purge", manyKeys("g", tombstonesPerMember+1), []string{"g/"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTombstones(time.Minute)
			for _, r := range c.removals {
				g, k, _ := strings.Cut(r, "/")
				ts.record("m", g, k, now)
			}
			var got []string
			for _, x := range ts.pending("m", now, false) {
				got = append(got, x.group+"/"+x.key)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("pending %v, want %v", got, c.want)
			}
			if st := ts.stats(); st.Collapsed != c.collapse || st.Recorded != uint64(len(c.removals)) {
				t.Errorf("stats %+v, want %d collapsed, %d recorded", st, c.collapse, len(c.removals))
			}
		})
	}
}

func manyKeys(g string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/k%d", g, i)
	}
	return keys
}

func TestTombstonesExpireAndSettle(t *testing.T) {
	now := time.Unix(1000, 0)
	ts := newTombstones(time.Minute)
	ts.record("m", "g", "a", now)
	ts.record("m", "g", "b", now.Add(30*time.Second))

	items := ts.pending("m", now.Add(61*time.Second), false)
	if len(items) != 1 || items[0].key != "b" || ts.stats().Expired != 1 {
		t.Fatalf("after a's TTL: pending %v, stats %+v; want b alone, 1 expired", items, ts.stats())
	}
	ts.settle("m", items, []bool{false}, now.Add(61*time.Second))
	if got := ts.pending("m", now.Add(61*time.Second), true); got != nil {
		t.Errorf("a failed member is due again at once: %v", got)
	}
	later := now.Add(63 * time.Second) // past the first backoff, jittered up to 150 ms
	items = ts.pending("m", later, true)
	if len(items) != 1 {
		t.Fatalf("not due again after the backoff: %v", items)
	}
	ts.settle("m", items, []bool{true}, later)
	if st := ts.stats(); st.Pending != 0 || st.Members != 0 || st.Resent != 1 {
		t.Errorf("after the confirmation: %+v, want none pending, 1 re-sent", st)
	}

	off := newTombstones(-1)
	off.record("m", "g", "a", now)
	if st := off.stats(); st.Pending != 0 {
		t.Errorf("TombstoneTTL < 0 keeps %d", st.Pending)
	}
}

// TestInvalidateCountsDeadMembers: a member the view holds dead is unconfirmed, and keeps a
// tombstone, though nothing was sent to it.
func TestInvalidateCountsDeadMembers(t *testing.T) {
	n := newNode(t, "self", newLoadLog(), nodeOptions{})
	c := n.c
	v := c.view.Load()
	dead := *v
	dead.members = append(slices.Clone(v.members), Member{Name: "gone", State: Dead})
	dead.members = append(dead.members, Member{Name: "left", State: Left})
	c.view.Store(&dead)

	confirmed, err := c.InvalidateKey(context.Background(), "g", "k")
	var ie *IncompleteError
	if !errors.As(err, &ie) || confirmed != 0 || !slices.Equal(ie.Unconfirmed, []string{"gone"}) || ie.Peers() != 1 {
		t.Fatalf("InvalidateKey = %d, %v; want 0 confirmed, IncompleteError naming gone (not left)", confirmed, err)
	}
	if st := c.Stats().Tombstones; st.Pending != 1 || st.Members != 1 {
		t.Errorf("tombstones %+v, want one for gone", st)
	}
}
