package httpapi

import (
	"testing"
	"time"
)

// The error log's bucket lets a burst through, then errLogRate lines a second, and reports
// how many it held back on the next line it lets through.
func TestLogLimiter(t *testing.T) {
	var l logLimiter
	now := time.Unix(1000, 0)
	for i := range errLogBurst {
		if ok, held := l.allow(now); !ok || held != 0 {
			t.Fatalf("line %d of the burst: ok=%v held=%d", i, ok, held)
		}
	}
	for range 5 {
		if ok, _ := l.allow(now); ok {
			t.Fatal("a line past the burst was let through at once")
		}
	}
	ok, held := l.allow(now.Add(time.Second / errLogRate))
	if !ok || held != 5 {
		t.Fatalf("after one token's time: ok=%v held=%d, want true and 5", ok, held)
	}
	if ok, _ := l.allow(now.Add(time.Second / errLogRate)); ok {
		t.Fatal("the refilled token was spent twice")
	}
}
