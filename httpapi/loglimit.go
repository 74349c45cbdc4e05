package httpapi

import (
	"sync"
	"time"
)

// An origin outage or an overload fails every request at once; logging each of them at
// Error would flood the log with one line per request. The node's server-side failures are
// logged through a token bucket instead: a burst of errLogBurst lines, then errLogRate a
// second, and the next line written says how many were held back (their count is also in
// groupcached_http_errors_total, which counts every error answer).
const (
	errLogBurst = 20
	errLogRate  = 10 // lines per second once the burst is spent
)

// logLimiter is that token bucket. Its zero value is ready to use.
type logLimiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	held   int64
}

// allow takes a token at now. It reports whether a line may be written, and how many lines
// were held back since the last one written.
func (l *logLimiter) allow(now time.Time) (ok bool, held int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = errLogBurst
	} else {
		l.tokens = min(errLogBurst, l.tokens+now.Sub(l.last).Seconds()*errLogRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.held++
		return false, 0
	}
	l.tokens--
	held, l.held = l.held, 0
	return true, held
}
