package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/groupcached/groupcached/group"
)

// A stale answer (group's Config.StaleWhileRevalidate and StaleIfError) says so in three
// ways: X-Groupcached-Source is "stale" (in place of the cache that held it),
// Warning: 110 - "Response is Stale" (RFC 7234), and Cache-Control: max-age=0 with an Age of
// the whole seconds since the value expired, so that an HTTP cache in front computes the same
// staleness (age minus max-age) and keeps no fresh copy.
var (
	sourceStale       = []string{"stale"}
	warningStale      = []string{`110 - "Response is Stale"`}
	cacheControlStale = []string{"max-age=0"}
)

// markStale sets the headers of a stale answer over those of a fresh one.
func markStale(h http.Header, res group.Result) {
	h["X-Groupcached-Source"] = sourceStale
	h["Warning"] = warningStale
	h["Cache-Control"] = cacheControlStale
	h["Age"] = []string{strconv.FormatInt(int64(res.Age/time.Second), 10)}
}
