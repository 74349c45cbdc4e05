package group

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"
)

// The deadline timer hands a timeout to every slow call past its deadline, and only to those,
// then waits for the next deadline.
func TestDeadlineTimer(t *testing.T) {
	tests := []struct {
		name      string
		deadlines []time.Duration // from now, in the order the calls started
		ended     []int           // calls whose outcome was taken before the timer fired
		wantTimed []bool
	}{
		{"only the expired calls time out", []time.Duration{-2 * time.Second, -time.Millisecond, time.Hour}, nil, []bool{true, true, false}},
		{"a call that ended is left alone", []time.Duration{-2 * time.Second, -time.Second, -time.Millisecond}, []int{1}, []bool{true, false, true}},
		{"the first call ended", []time.Duration{-time.Second, -time.Millisecond, time.Hour}, []int{0}, []bool{false, true, false}},
		{"none expired", []time.Duration{time.Hour, 2 * time.Hour}, nil, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flights{timeout: time.Hour}
			now := time.Now()
			calls := make([]*call, len(tt.deadlines))
			// Under the lock the timer, armed for a deadline already past, cannot fire before
			// the calls that ended are untracked.
			f.mu.Lock()
			for i, d := range tt.deadlines {
				calls[i] = &call{answered: make(chan struct{}, 1)}
				calls[i].ctx.deadline = now.Add(d)
				f.track(calls[i])
			}
			for _, i := range tt.ended {
				f.untrack(calls[i])
			}
			f.mu.Unlock()
			t.Cleanup(func() { f.deadlines.timer.Stop() })

			eventually(t, 10*time.Second, "the expired calls got their timeout", func() bool {
				for i, c := range calls {
					if tt.wantTimed[i] && !c.delivered.Load() {
						return false
					}
				}
				return true
			})
			f.mu.Lock()
			defer f.mu.Unlock()
			var waiting []*call // neither ended nor timed out
			for i, c := range calls {
				if got := c.delivered.Load(); got != tt.wantTimed[i] {
					t.Fatalf("call %d timed out = %v, want %v", i, got, tt.wantTimed[i])
				}
				if tt.wantTimed[i] && !errors.Is(c.outcome.err, context.DeadlineExceeded) {
					t.Fatalf("call %d got %v, want a deadline error", i, c.outcome.err)
				}
				if !tt.wantTimed[i] && !slices.Contains(tt.ended, i) {
					waiting = append(waiting, c)
				}
			}
			var listed []*call
			for c := f.deadlines.head; c != nil; c = c.next {
				listed = append(listed, c)
			}
			var tail *call
			if len(waiting) > 0 {
				tail = waiting[len(waiting)-1]
			}
			if !slices.Equal(listed, waiting) || f.deadlines.tail != tail {
				t.Fatalf("%d calls tracked, want the %d still waiting, in order", len(listed), len(waiting))
			}
			if f.deadlines.armed != (len(waiting) > 0) {
				t.Fatalf("timer armed = %v with %d calls waiting", f.deadlines.armed, len(waiting))
			}
		})
	}
}

type ctxKey struct{}

// A slow call's context keeps the first caller's values, not its cancellation, and ends at the
// deadline, whether or not anyone asked for Done before.
func TestFillContext(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration
		askDone  bool // call Done before the deadline
	}{
		{"Done asked for before the deadline", 30 * time.Millisecond, true},
		{"Done never asked for", 30 * time.Millisecond, false},
		{"deadline already past", -time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, cancelCaller := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
			deadline := time.Now().Add(tt.deadline)
			ctx := &fillContext{values: context.WithoutCancel(caller), deadline: deadline}
			defer ctx.release()
			cancelCaller()

			if got, ok := ctx.Deadline(); !ok || !got.Equal(deadline) {
				t.Fatalf("Deadline = %v %v, want %v", got, ok, deadline)
			}
			if ctx.Value(ctxKey{}) != "v" {
				t.Fatal("the caller's value is lost")
			}
			if tt.deadline > 0 {
				if err := ctx.Err(); err != nil {
					t.Fatalf("Err before the deadline = %v (the caller's cancellation reached it?)", err)
				}
			}
			if tt.askDone {
				derived, cancel := context.WithCancel(ctx)
				defer cancel()
				select {
				case <-derived.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("a context derived from it did not end at the deadline")
				}
				if !errors.Is(derived.Err(), context.DeadlineExceeded) || time.Now().Before(deadline) {
					t.Fatalf("derived context ended with %v, %v before the deadline", derived.Err(), time.Until(deadline))
				}
				if ctx.Value(ctxKey{}) != "v" {
					t.Fatal("the caller's value is lost once Done was asked for")
				}
			} else {
				eventually(t, 10*time.Second, "Err reports the deadline", func() bool { return ctx.Err() != nil })
			}
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().Before(deadline) {
				t.Fatalf("Err = %v, %v before the deadline", ctx.Err(), time.Until(deadline))
			}
			select {
			case <-ctx.Done():
			default:
				t.Fatal("Done is open after the deadline")
			}
		})
	}
}

// A group nobody uses any more is collected even though its deadline timer is still armed.
func TestUnusedGroupIsCollected(t *testing.T) {
	collected := make(chan struct{})
	func() {
		cfg := testConfig()
		cfg.LoadTimeout = time.Hour
		g := newTestGroup(t, &countingLoader{}, cfg)
		if _, err := g.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		g.flights.mu.Lock()
		armed := g.flights.deadlines.armed
		g.flights.mu.Unlock()
		if !armed {
			t.Fatal("the deadline timer is not armed after a fill")
		}
		runtime.AddCleanup(g, func(ch chan struct{}) { close(ch) }, collected)
	}()
	eventually(t, 10*time.Second, "the group is collected", func() bool {
		runtime.GC()
		select {
		case <-collected:
			return true
		default:
			return false
		}
	})
}

// A fill context holds the first caller's own context (context.WithoutCancel is made only when
// asked): the caller's cancellation must still not show through Err, context.Cause, or a
// context derived from it.
func TestFillContextHidesCallersCancellation(t *testing.T) {
	caller, cancelCaller := context.WithCancelCause(context.WithValue(context.Background(), ctxKey{}, "v"))
	cancelCaller(errors.New("the caller left"))
	ctx := &fillContext{values: caller, deadline: time.Now().Add(time.Hour)}
	defer ctx.release()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err = %v, want nil: the caller's cancellation reached the fill", err)
	}
	if cause := context.Cause(ctx); cause != nil {
		t.Fatalf("context.Cause = %v, want nil", cause)
	}
	if ctx.Value(ctxKey{}) != "v" {
		t.Fatal("the caller's value is lost")
	}
	// Past its deadline, before anyone asked for Done: the cause is the deadline, not the
	// caller's reason for leaving (context.Cause looks for a cancelCtx through Value).
	past := &fillContext{values: caller, deadline: time.Now().Add(-time.Millisecond)}
	if cause := context.Cause(past); cause != context.DeadlineExceeded {
		t.Fatalf("context.Cause past the deadline = %v, want %v", cause, context.DeadlineExceeded)
	}
	derived, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case <-derived.Done():
		t.Fatalf("a context derived from the fill's ended with %v", context.Cause(derived))
	default:
	}
	if cause := context.Cause(derived); cause != nil {
		t.Fatalf("context.Cause of a derived context = %v, want nil", cause)
	}
}
