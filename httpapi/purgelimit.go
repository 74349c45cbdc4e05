package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// tokenBucket admits events at rate per second on average, with bursts of up to burst. It is
// safe for concurrent use.
type tokenBucket struct {
	rate  float64 // tokens added per second
	burst float64 // the bucket's size
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time // when tokens was computed
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), now: now, tokens: float64(burst), last: now()}
}

// take spends a token and reports true, or reports false and how long until one is there.
func (b *tokenBucket) take() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// limitPurges is the middleware of the purge route (DELETE /groups/{group}): past
// Config.PurgeRate, with bursts of PurgeBurst, a purge is answered 429 "rate_limited" with
// Retry-After in whole seconds, and reaches neither the group nor the peers. One bucket
// serves the whole node, every group and client together: a purge empties a group on every
// node and sends every following read to the origin, so the bound protects the origin as
// much as the cache. It runs after requireAdmin, so requests without the token spend nothing.
func (a *API) limitPurges(next http.Handler) http.Handler {
	if a.cfg.PurgeRate == 0 {
		return next
	}
	burst := max(a.cfg.PurgeBurst, 1)
	bucket := newTokenBucket(a.cfg.PurgeRate, burst, time.Now)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := bucket.take()
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		secs := max(int64(math.Ceil(wait.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		a.fail(w, r, &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited,
			msg: "too many purges on this node: retry after " + strconv.FormatInt(secs, 10) + "s"})
	})
}
