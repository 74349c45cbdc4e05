package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/peers"
)

func TestClassifyRoute(t *testing.T) {
	tests := []struct {
		path, pattern, group string
	}{
		{"/groups/g/keys/k", "/groups/{group}/keys/{key}", "g"},
		{"/groups/g/keys/dir%2Fkey%201", "/groups/{group}/keys/{key}", "g"},
		{"/groups/g/keys/a/b", "/groups/{group}/keys/*", "g"},
		{"/groups/g/keys/", "/groups/{group}/keys/*", "g"},
		{"/groups/g", "/groups/{group}", "g"},
		{"/groups/g/mget", "/groups/{group}/mget", "g"},
		{"/groups/g/mget/x", "unmatched", ""},
		{"/groups", "/groups", ""},
		{"/groups/", "unmatched", ""},
		{"/groups//keys/k", "unmatched", ""},
		{"/groups/g/other/k", "unmatched", ""},
		{"/cluster", "/cluster", ""},
		{"/healthz", "/healthz", ""},
		{"/readyz", "/readyz", ""},
		{"/metrics", "/metrics", ""},
		{"/", "/", ""},
		{"", "unmatched", ""},
		{"/favicon.ico", "unmatched", ""},
		{peers.PathPrefix + "/v2/conn", "/_peer/v2/conn", ""},
		{peers.PathPrefix + "/v1/fetch", "/_peer/*", ""},
		{peers.PathPrefix, "/_peer/*", ""},
		{peers.PathPrefix + "x/v1/fetch", "unmatched", ""},
	}
	for _, tt := range tests {
		rt, group := classifyRoute(tt.path)
		if rt.pattern() != tt.pattern || group != tt.group {
			t.Errorf("classifyRoute(%q) = %q, %q; want %q, %q", tt.path, rt.pattern(), group, tt.pattern, tt.group)
		}
	}
}

// TestEveryRouteIsClassified walks the API's router: a route added there without a name in
// classifyRoute would be counted as "unmatched".
func TestEveryRouteIsClassified(t *testing.T) {
	a, err := New(LocalConfig(), nil, nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = chi.Walk(a.router, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		seen++
		path := strings.NewReplacer("{group}", "g", "{key}", "k", "*", "a/b").Replace(pattern)
		if rt, _ := classifyRoute(path); rt.pattern() != pattern {
			t.Errorf("%s %s: a request for %q is classified as %q", method, pattern, path, rt.pattern())
		}
		return nil
	})
	if err != nil || seen < 10 {
		t.Fatalf("walked %d routes (err %v), want the API's routes", seen, err)
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	paths := []string{"/groups/g/keys/k", "/groups/g", "/_peer/v1/fetch", "/metrics", "/nothing"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			rt, _ := classifyRoute(p)
			_ = rt.pattern()
			_ = classifyMethod(http.MethodDelete).String()
			_ = classifyStatus(404).String()
		}
	})
	if allocs != 0 {
		t.Errorf("classifying a request allocates %v times", allocs)
	}
}

func TestClassifyStatus(t *testing.T) {
	for code, want := range map[int]string{100: "1xx", 101: "1xx", 200: "2xx", 304: "3xx", 404: "4xx", 499: "4xx", 500: "5xx", 504: "5xx", 999: "5xx"} {
		if got := classifyStatus(code).String(); got != want {
			t.Errorf("classifyStatus(%d) = %s, want %s", code, got, want)
		}
	}
	for m, want := range map[string]string{"GET": "GET", "DELETE": "DELETE", "BREW": "other", "get": "other"} {
		if got := classifyMethod(m).String(); got != want {
			t.Errorf("classifyMethod(%q) = %s, want %s", m, got, want)
		}
	}
}
