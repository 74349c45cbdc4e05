package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newTokenBucket(2, 3, func() time.Time { return now }) // 2 per second, bursts of 3
	for i := range 3 {
		if ok, _ := b.take(); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	ok, wait := b.take()
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: take() = %v, %v; want false, 500ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, wait := b.take(); ok || wait != 250*time.Millisecond {
		t.Fatalf("half a token later: take() = %v, %v; want false, 250ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, _ := b.take(); !ok {
		t.Fatal("a whole token later: refused")
	}
	now = now.Add(time.Hour) // a long quiet spell refills the burst, no more
	for i := range 3 {
		if ok, _ := b.take(); !ok {
			t.Fatalf("after a quiet hour, take %d refused", i+1)
		}
	}
	if ok, _ := b.take(); ok {
		t.Fatal("a quiet hour filled more than the burst")
	}
}

// TestPurgeStormCannotExceedTheRate sends purges from 8 clients as fast as they go for a
// second and a half: the group sees at most the burst plus the rate over the elapsed time, the
// rest are answered 429 rate_limited with a Retry-After, and requests without the admin token
// spend no purge.
func TestPurgeStormCannotExceedTheRate(t *testing.T) {
	const (
		rate  = 4.0
		burst = 2
		storm = 1500 * time.Millisecond
	)
	cfg := LocalConfig()
	cfg.AdminToken = testAdminToken
	cfg.PurgeRate = rate
	cfg.PurgeBurst = burst
	n := startNode(t, cfg, nil)
	inv := &fakeInvalidator{}
	n.group.SetInvalidator(inv)

	// A flood without the token first: all 401, and the bucket stays full.
	for range 20 {
		resp, body := n.do(t, http.MethodDelete, "/groups/g")
		wantError(t, resp, body, http.StatusUnauthorized, CodeUnauthorized)
	}

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		badRetry []string
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < storm {
				resp, body := n.do(t, http.MethodDelete, "/groups/g", "Authorization", "Bearer "+testAdminToken)
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					e := decodeJSON[errorBody](t, body)
					secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
					if e.Code != CodeRateLimited || err != nil || secs < 1 {
						badRetry = append(badRetry, resp.Header.Get("Retry-After")+" "+string(body))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	allowed := burst + int(rate*elapsed.Seconds()) + 1
	purges, _ := inv.counts()
	t.Logf("%v of storm: %v; %d purges reached the group, at most %d allowed", elapsed, statuses, purges, allowed)
	if purges != statuses[http.StatusOK] {
		t.Errorf("%d purges answered 200, %d reached the group", statuses[http.StatusOK], purges)
	}
	if purges > allowed {
		t.Errorf("%d purges in %v, over the bound of %d (burst %d + %v/s)", purges, elapsed, allowed, burst, rate)
	}
	if purges < burst {
		t.Errorf("only %d purges passed; the burst of %d must (the bucket was drained by unauthenticated ones?)", purges, burst)
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Error("no purge was refused: the storm did not reach the limit, the test proves nothing")
	}
	if len(statuses) != 2 {
		t.Errorf("statuses %v: want only 200 and 429", statuses)
	}
	if len(badRetry) > 0 {
		t.Errorf("429 answers without code rate_limited or a Retry-After of at least 1: %q", badRetry[:min(3, len(badRetry))])
	}
	// Key removes are not purges: the limit does not apply to them.
	for range 5 {
		if resp, body := n.do(t, http.MethodDelete, keyPath("g", "k"), "Authorization", "Bearer "+testAdminToken); resp.StatusCode != http.StatusOK {
			t.Fatalf("a key remove after the storm: %d %s", resp.StatusCode, body)
		}
	}
}

func TestPurgeRateValidation(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{-1, 0}, {1, -1}} {
		cfg := LocalConfig()
		cfg.PurgeRate, cfg.PurgeBurst = tc.rate, tc.burst
		if _, err := New(cfg, nil, nil, discardLogger()); err == nil {
			t.Errorf("PurgeRate %v, PurgeBurst %d accepted", tc.rate, tc.burst)
		}
	}
}
