package peers

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// The events memberlist's callbacks would copy; "self" is the node whose view is built.
const (
	selfName = "self"
	selfHTTP = "127.0.0.1:8000"
)

func metaJSON(m nodeMeta) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// joined is a NotifyJoin or a NotifyUpdate: both carry the node's current metadata.
func joined(name, gossip, http string) nodeEvent {
	return nodeEvent{name: name, addr: gossip, meta: metaJSON(nodeMeta{HTTPAddr: http})}
}

// leaving is the NotifyUpdate of a node whose Leave has announced its departure.
func leaving(name, gossip, http string) nodeEvent {
	return nodeEvent{name: name, addr: gossip, meta: metaJSON(nodeMeta{HTTPAddr: http, Leaving: true})}
}

// gone is a NotifyLeave: the node left or died, memberlist does not say which.
func gone(name, gossip, http string) nodeEvent {
	ev := joined(name, gossip, http)
	ev.left = true
	return ev
}

func withMeta(name, gossip, meta string) nodeEvent {
	return nodeEvent{name: name, addr: gossip, meta: []byte(meta)}
}

// viewRun applies batches of events to a new node's view, one second apart, as rebuild would.
type viewRun struct {
	v        *view
	now      time.Time
	changed  bool // by the last batch
	rejected int
	built    int // peers built since the first ring
}

func newViewRun(t *testing.T) *viewRun {
	t.Helper()
	r := &viewRun{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.v = startView(Member{Name: selfName, HTTPAddr: selfHTTP})
	r.apply(t, 0, nil) // New's first rebuild
	r.built = 0
	return r
}

func (r *viewRun) apply(t *testing.T, after time.Duration, events []nodeEvent) {
	t.Helper()
	r.now = r.now.Add(after)
	before := slices.Clone(r.v.members)
	next, changed, rejected := r.v.next(events, r.now, func(name, addr string) *wirePeer {
		r.built++
		return &wirePeer{name: name, addr: addr}
	})
	if !slices.Equal(r.v.members, before) {
		t.Fatalf("next modified the view it started from: %+v, was %+v", r.v.members, before)
	}
	r.v, r.changed, r.rejected = next, changed, r.rejected+len(rejected)
	checkView(t, r.v)
}

// checkView checks what must hold in every view, whatever the events.
func checkView(t *testing.T, v *view) {
	t.Helper()
	var alive []string
	share := 0.0
	for _, m := range v.members {
		_, departed := v.departed[m.Name]
		switch {
		case m.State == Alive && departed, m.State != Alive && !departed:
			t.Errorf("member %s is %s, departed %v", m.Name, m.State, departed)
		case m.State == Alive:
			alive = append(alive, m.Name)
			share += m.Share
		case m.Share != 0:
			t.Errorf("member %s is %s with a share of %v", m.Name, m.State, m.Share)
		}
		if p := v.peer(m.Name); m.State == Alive && !m.Self && (p == nil || p.name != m.Name || p.addr != m.HTTPAddr) {
			t.Errorf("member %s at %s has peer %+v", m.Name, m.HTTPAddr, p)
		}
	}
	if !slices.Equal(alive, v.ring.Names()) || len(v.peers) != v.ring.Len() {
		t.Errorf("ring %v with %d peers, want the alive members %v", v.ring.Names(), len(v.peers), alive)
	}
	if share < 0.9999 || share > 1.0001 {
		t.Errorf("alive members' shares sum to %v, want 1", share)
	}
	if !slices.IsSortedFunc(v.members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("members not sorted by name: %+v", v.members)
	}
}

func TestViewNext(t *testing.T) {
	const (
		gossipB  = "127.0.0.1:7001"
		httpB    = "127.0.0.1:8001"
		gossipB2 = "127.0.0.2:7001" // node b restarted on another machine
		httpB2   = "127.0.0.2:8001"
	)
	tests := []struct {
		name    string
		batches [][]nodeEvent // one rebuild each
		states  map[string]MemberState
		addrs   map[string][2]string // name -> gossip, HTTP address (when checked)
		changed bool                 // by the last batch
		rej     int                  // members rejected over all batches
		built   int                  // peers built over all batches
	}{
		{
			name:    "a member joins",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			addrs:   map[string][2]string{"b": {gossipB, httpB}},
			changed: true, built: 1,
		},
		{
			name:    "an update with the same metadata changes nothing",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {joined("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			changed: false, built: 1,
		},
		{
			name:    "an update moves the HTTP address",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {joined("b", gossipB, httpB2)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			addrs:   map[string][2]string{"b": {gossipB, httpB2}},
			changed: true, built: 2,
		},
		{
			name:    "a graceful leave: announced, then gone",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {leaving("b", gossipB, httpB)}, {gone("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Left},
			changed: false, built: 1, // the ring changed at the announcement
		},
		{
			name:    "a graceful leave within one burst",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {leaving("b", gossipB, httpB), gone("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Left},
			changed: true, built: 1,
		},
		{
			name:    "a crash",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {gone("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Dead},
			changed: true, built: 1,
		},
		{
			// memberlist drops an announcement that arrives after the departure it precedes
			// (same incarnation); one that does come through must not revive the member.
			name:    "the leave announcement after the departure",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {gone("b", gossipB, httpB)}, {leaving("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Left},
			changed: false, built: 1,
		},
		{
			name:    "a member that died comes back from a new address",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {gone("b", gossipB, httpB)}, {joined("b", gossipB2, httpB2)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			addrs:   map[string][2]string{"b": {gossipB2, httpB2}},
			changed: true, built: 2,
		},
		{
			name: "a member that left comes back",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {leaving("b", gossipB, httpB), gone("b", gossipB, httpB)},
				{joined("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			addrs:   map[string][2]string{"b": {gossipB, httpB}},
			changed: true, built: 2,
		},
		{
			name:    "a restart within one burst keeps the ring and the peer",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {gone("b", gossipB, httpB), joined("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			changed: false, built: 1,
		},
		{
			name:    "a restart from a new address within one burst",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {gone("b", gossipB, httpB), joined("b", gossipB2, httpB2)}},
			states:  map[string]MemberState{selfName: Alive, "b": Alive},
			addrs:   map[string][2]string{"b": {gossipB2, httpB2}},
			changed: true, built: 2,
		},
		{
			name:    "a join and a crash within one burst never reach the ring",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB), gone("b", gossipB, httpB)}},
			states:  map[string]MemberState{selfName: Alive, "b": Dead},
			changed: false, built: 0,
		},
		{
			name:    "metadata without an HTTP address",
			batches: [][]nodeEvent{{withMeta("b", gossipB, `{}`)}},
			states:  map[string]MemberState{selfName: Alive, "b": Dead},
			changed: false, rej: 1,
		},
		{
			name:    "metadata that is not ours",
			batches: [][]nodeEvent{{withMeta("b", gossipB, `consul`)}},
			states:  map[string]MemberState{selfName: Alive, "b": Dead},
			changed: false, rej: 1,
		},
		{
			name:    "an alive member loses its HTTP address",
			batches: [][]nodeEvent{{joined("b", gossipB, httpB)}, {withMeta("b", gossipB, `{"http":""}`)}},
			states:  map[string]MemberState{selfName: Alive, "b": Dead},
			changed: true, rej: 1, built: 1,
		},
		{
			// This node learns its own addresses from memberlist, and its own Leave comes
			// back as events: it stays in its own ring until it stops.
			name: "events about this node change only its addresses",
			batches: [][]nodeEvent{{joined(selfName, "10.0.0.1:7946", "10.0.0.1:8000")},
				{leaving(selfName, "10.0.0.1:7946", "10.0.0.1:8000")}, {gone(selfName, "10.0.0.1:7946", "10.0.0.1:8000")}},
			states:  map[string]MemberState{selfName: Alive},
			addrs:   map[string][2]string{selfName: {"10.0.0.1:7946", "10.0.0.1:8000"}},
			changed: false,
		},
		{
			name: "several members, events interleaved",
			batches: [][]nodeEvent{
				{joined("b", gossipB, httpB), joined("c", "127.0.0.1:7002", "127.0.0.1:8002"), joined("d", "127.0.0.1:7003", "127.0.0.1:8003")},
				{gone("c", "127.0.0.1:7002", "127.0.0.1:8002"), leaving("d", "127.0.0.1:7003", "127.0.0.1:8003"), joined("e", "127.0.0.1:7004", "127.0.0.1:8004")},
			},
			states:  map[string]MemberState{selfName: Alive, "b": Alive, "c": Dead, "d": Left, "e": Alive},
			changed: true, built: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newViewRun(t)
			for _, batch := range tt.batches {
				r.apply(t, time.Second, batch)
			}
			states := make(map[string]MemberState)
			for _, m := range r.v.members {
				states[m.Name] = m.State
				if want, ok := tt.addrs[m.Name]; ok && (m.GossipAddr != want[0] || m.HTTPAddr != want[1]) {
					t.Errorf("%s at gossip %s, HTTP %s; want %s, %s", m.Name, m.GossipAddr, m.HTTPAddr, want[0], want[1])
				}
			}
			if !maps.Equal(states, tt.states) {
				t.Errorf("states %v, want %v", states, tt.states)
			}
			if r.changed != tt.changed {
				t.Errorf("last batch changed = %v, want %v", r.changed, tt.changed)
			}
			if r.rejected != tt.rej {
				t.Errorf("%d members rejected, want %d", r.rejected, tt.rej)
			}
			if r.built != tt.built {
				t.Errorf("%d peers built, want %d", r.built, tt.built)
			}
		})
	}
}

func TestViewForgetsTheDeparted(t *testing.T) {
	r := newViewRun(t)
	r.apply(t, 0, []nodeEvent{joined("b", "127.0.0.1:7001", "127.0.0.1:8001"), joined("c", "127.0.0.1:7002", "127.0.0.1:8002")})
	r.apply(t, time.Second, []nodeEvent{gone("b", "127.0.0.1:7001", "127.0.0.1:8001")})
	listed := func() []string {
		var out []string
		for _, m := range r.v.members {
			out = append(out, m.Name)
		}
		return out
	}
	// Only a rebuild forgets, and a rebuild follows an event: apply empty batches.
	r.apply(t, departedRetention, nil)
	if got := listed(); !slices.Equal(got, []string{"b", "c", selfName}) {
		t.Errorf("members at the end of the retention: %v, want b still listed", got)
	}
	r.apply(t, time.Nanosecond, nil)
	if got := listed(); !slices.Equal(got, []string{"c", selfName}) {
		t.Errorf("members after the retention: %v, want b forgotten", got)
	}
	if r.changed {
		t.Error("forgetting a departed member changed the ring")
	}
}

// TestMemberStateJSON pins the words /cluster has always shown.
func TestMemberStateJSON(t *testing.T) {
	for st, word := range map[MemberState]string{Alive: "alive", Left: "left", Dead: "dead"} {
		b, err := json.Marshal(Member{Name: "n", State: st})
		if err != nil {
			t.Fatal(err)
		}
		if want := `"state":"` + word + `"`; !strings.Contains(string(b), want) {
			t.Errorf("%s marshals as %s, want %s in it", word, b, want)
		}
	}
}

func TestViewTracksBoots(t *testing.T) {
	// The boot identifier each member gossips is what its acks are compared with: it follows
	// the member's latest metadata, survives its departure (a restarted seed still answers
	// probes as the old one would) and goes when the member is forgotten.
	booted := func(name, gossip, http, boot string) nodeEvent {
		return nodeEvent{name: name, addr: gossip, meta: metaJSON(nodeMeta{HTTPAddr: http, Boot: boot})}
	}
	r := newViewRun(t)
	steps := []struct {
		name   string
		after  time.Duration
		events []nodeEvent
		want   map[string]string
	}{
		{"joins", 0, []nodeEvent{booted("b", "127.0.0.1:7001", "127.0.0.1:8001", "b1"), booted("c", "127.0.0.1:7002", "127.0.0.1:8002", "c1")},
			map[string]string{"b": "b1", "c": "c1"}},
		{"a restart gossips a new boot", time.Second, []nodeEvent{booted("b", "127.0.0.1:7001", "127.0.0.1:8003", "b2")},
			map[string]string{"b": "b2", "c": "c1"}},
		{"bad metadata keeps the last boot", time.Second, []nodeEvent{withMeta("c", "127.0.0.1:7002", "{")},
			map[string]string{"b": "b2", "c": "c1"}},
		{"a departure keeps it", time.Second, []nodeEvent{gone("b", "127.0.0.1:7001", "127.0.0.1:8003")},
			map[string]string{"b": "b2", "c": "c1"}},
		{"forgotten after the retention", departedRetention + time.Second, nil,
			map[string]string{}},
	}
	for _, s := range steps {
		r.apply(t, s.after, s.events)
		if !maps.Equal(r.v.boots, s.want) {
			t.Errorf("%s: boots = %v, want %v", s.name, r.v.boots, s.want)
		}
	}
}
