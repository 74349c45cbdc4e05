package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// countingOrigin is an HTTP origin that counts the requests it receives per key, so tests can
// prove that the cluster asked it exactly once. GET /items/{key} answers "value of {key}";
// keys starting with "missing" are 404. A held key's request waits until it is released.
type countingOrigin struct {
	srv *httptest.Server

	mu      sync.Mutex
	counts  map[string]int
	held    map[string]chan struct{} // closed to release
	arrived chan string              // held keys, as their requests arrive
}

func newCountingOrigin(t *testing.T) *countingOrigin {
	t.Helper()
	o := &countingOrigin{counts: map[string]int{}, held: map[string]chan struct{}{}, arrived: make(chan string, 16)}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *countingOrigin) serve(w http.ResponseWriter, r *http.Request) {
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/items/"))
	if err != nil || !strings.HasPrefix(r.URL.EscapedPath(), "/items/") {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.counts[key]++
	release := o.held[key]
	o.mu.Unlock()
	if release != nil {
		o.arrived <- key
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	if strings.HasPrefix(key, "missing") {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(originValue(key)))
}

func originValue(key string) string { return "value of " + key }

// loaderURL is the http loader's URL template for this origin.
func (o *countingOrigin) loaderURL() string { return o.srv.URL + "/items/{key}" }

// hold makes requests for key wait; the returned func lets them answer.
func (o *countingOrigin) hold(key string) (release func()) {
	ch := make(chan struct{})
	o.mu.Lock()
	o.held[key] = ch
	o.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// count returns how many requests key received.
func (o *countingOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[key]
}

// total returns how many requests the origin received, and for how many keys.
func (o *countingOrigin) total() (requests, keys int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range o.counts {
		requests += n
	}
	return requests, len(o.counts)
}
