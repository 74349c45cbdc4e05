package httpapi

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

func TestHistoryRates(t *testing.T) {
	g := newTestGroup(t, "g", &origin{}, testGroupConfig())
	idle := newTestGroup(t, "idle", &origin{}, testGroupConfig())
	h := newHistory(HistoryConfig{Interval: 5 * time.Second, Samples: 4}, []*group.Group{g, idle})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	if r := h.rates(); len(r) != 2 || len(r[0].at) != 0 {
		t.Fatalf("rates with no sample: %+v", r)
	}
	h.record(t0)
	for i := range 10 {
		if _, err := g.Get(ctx, fmt.Sprintf("k%d", i%2)); err != nil {
			t.Fatal(err)
		}
	}
	h.record(t0.Add(5 * time.Second))  // 10 requests: 2 loads, 8 hits
	h.record(t0.Add(10 * time.Second)) // nothing

	r := h.rates()
	got := r[0]
	if len(got.at) != 2 {
		t.Fatalf("%d intervals, want 2", len(got.at))
	}
	if got.requests[0] != 2 || got.hitRatio[0] != 0.8 || got.origin[0] != 0.4 {
		t.Errorf("first interval: %v requests/s, hit ratio %v, %v loads/s; want 2, 0.8, 0.4", got.requests[0], got.hitRatio[0], got.origin[0])
	}
	if got.requests[1] != 0 || !math.IsNaN(got.hitRatio[1]) || got.origin[1] != 0 {
		t.Errorf("idle interval: %v requests/s, hit ratio %v, %v loads/s; want 0, NaN, 0", got.requests[1], got.hitRatio[1], got.origin[1])
	}
	if !got.at[1].Equal(t0.Add(10 * time.Second)) {
		t.Errorf("second interval at %v, want the later sample's time", got.at[1])
	}
	if len(r[1].requests) != 2 || r[1].requests[0] != 0 {
		t.Errorf("idle group: %+v", r[1])
	}
	if w := h.window(); w != 15*time.Second {
		t.Errorf("window %v, want 3 intervals of 5s", w)
	}

	// The ring keeps the last 4 samples: 3 intervals, the newest last.
	for i := 3; i < 10; i++ {
		h.record(t0.Add(time.Duration(i) * 5 * time.Second))
	}
	got = h.rates()[0]
	if len(got.at) != 3 || !got.at[2].Equal(t0.Add(45*time.Second)) || !got.at[0].Equal(t0.Add(35*time.Second)) {
		t.Errorf("after 10 samples in a ring of 4: intervals at %v", got.at)
	}
}

func TestHistoryConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  HistoryConfig
		want string
	}{
		{HistoryConfig{}, ""},
		{HistoryConfig{Interval: time.Second, Samples: 2}, ""},
		{HistoryConfig{Interval: -time.Second}, "Interval: must be >= 0s"},
		{HistoryConfig{Samples: 1}, "Samples: must be 0 (121) or between 2 and 100000, got 1"},
		{HistoryConfig{Samples: 100_001}, "Samples: must be 0"},
	} {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	cfg := LocalNodeConfig()
	cfg.History.Samples = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "History.Samples: ") {
		t.Errorf("NodeConfig with a bad history: %v", err)
	}
}

// TestNodeSamplesHistory runs a node with a fast sampler: samples arrive while it runs, and
// Stop ends the sampler (it waits for the goroutine).
func TestNodeSamplesHistory(t *testing.T) {
	cfg := LocalNodeConfig()
	cfg.Cluster = nil
	cfg.Logger = discardLogger()
	cfg.History = HistoryConfig{Interval: 5 * time.Millisecond, Samples: 8}
	n, err := NewNode(cfg, []*group.Group{newTestGroup(t, "g", &origin{}, testGroupConfig())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	samples := func() int {
		n.api.history.mu.Lock()
		defer n.api.history.mu.Unlock()
		return n.api.history.n
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for samples() < 8 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d samples after 10s, want the ring full (8)", samples())
		case <-tick.C:
		}
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n.stopHistory == nil {
		t.Fatal("no sampler to stop")
	}
	n.stopHistory() // a second call returns at once: the goroutine has ended
}
