package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
)

var etagPattern = regexp.MustCompile(`^"[0-9a-f]{16}"$`)

func TestGetKeyRoundTripsAnyBytes(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	for _, key := range []string{
		"plain",
		"with space",
		"a+b",
		"+",
		"a/b",
		"/leading/and/trailing/",
		"100%",
		"%2F",
		"%zz",
		"a%20b",
		"line\nbreak",
		"tab\tand\r\nCRLF",
		"ünïcödé/日本語",
		"?query#fragment",
		";semi,comma=eq&amp",
		"..",
		".",
		"\x00\xff\xfe",
		strings.Repeat("k", DefaultMaxKeyBytes),
	} {
		t.Run(strconv.Quote(key), func(t *testing.T) {
			want := "value of " + key
			for i, src := range []string{"loader", "main"} {
				resp, body := n.do(t, http.MethodGet, keyPath("g", key))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET #%d: status %d, body %q", i+1, resp.StatusCode, body)
				}
				if string(body) != want {
					t.Errorf("GET #%d: body %q, want %q", i+1, body, want)
				}
				if got := resp.Header.Get("X-Groupcached-Source"); got != src {
					t.Errorf("GET #%d: source %q, want %q", i+1, got, src)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("Content-Type %q", got)
				}
				if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(want)) {
					t.Errorf("Content-Length %q, want %d", got, len(want))
				}
				if got := resp.Header.Get("Etag"); !etagPattern.MatchString(got) {
					t.Errorf("ETag %q is not a quoted 16-digit hex tag", got)
				}
			}
			if got := n.origin.last(); got != key {
				t.Errorf("loader saw key %q, want %q", got, key)
			}
			if c := n.origin.count(key); c != 1 {
				t.Errorf("loader called %d times for %q, want 1", c, key)
			}
		})
	}
}

func TestGetKeyErrors(t *testing.T) {
	cfg := LocalConfig()
	cfg.MaxKeyBytes = 16
	n := startNode(t, cfg, nil)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		status int
		code   string
	}{
		{"unknown group", http.MethodGet, keyPath("nope", "k"), http.StatusNotFound, CodeUnknownGroup},
		{"unknown group on delete", http.MethodDelete, "/groups/nope", http.StatusNotFound, CodeUnknownGroup},
		{"not found", http.MethodGet, keyPath("g", "missing-1"), http.StatusNotFound, CodeNotFound},
		{"empty key", http.MethodGet, "/groups/g/keys/", http.StatusBadRequest, CodeBadKey},
		{"empty key on delete", http.MethodDelete, "/groups/g/keys/", http.StatusBadRequest, CodeBadKey},
		{"key over the limit", http.MethodGet, keyPath("g", strings.Repeat("x", 17)), http.StatusBadRequest, CodeBadKey},
		{"escaped key over the limit", http.MethodGet, keyPath("g", strings.Repeat("/", 17)), http.StatusBadRequest, CodeBadKey},
		{"far over the limit", http.MethodGet, keyPath("g", strings.Repeat("é", 1000)), http.StatusBadRequest, CodeBadKey},
		{"unescaped slash", http.MethodGet, "/groups/g/keys/a/b", http.StatusBadRequest, CodeBadKey},
		{"unescaped slash on delete", http.MethodDelete, "/groups/g/keys/a/b", http.StatusBadRequest, CodeBadKey},
		{"loader failure", http.MethodGet, keyPath("g", "fail-1"), http.StatusBadGateway, CodeLoadFailed},
		{"loader timeout", http.MethodGet, keyPath("g", "slow-1"), http.StatusGatewayTimeout, CodeTimeout},
		{"loader panic", http.MethodGet, keyPath("g", "panic-1"), http.StatusInternalServerError, CodeLoaderPanic},
		{"unknown route", http.MethodGet, "/nope", http.StatusNotFound, CodeNoRoute},
		{"unknown route under groups", http.MethodGet, "/groups/g/values/k", http.StatusNotFound, CodeNoRoute},
		{"no peer endpoints on a single node", http.MethodGet, "/_peer/g/k", http.StatusNotFound, CodeNoRoute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := n.do(t, tc.method, tc.path)
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
	if got := n.origin.count(strings.Repeat("x", 17)); got != 0 {
		t.Errorf("an over-long key reached the loader %d times", got)
	}
}

func TestKeyAtTheLimitIsServed(t *testing.T) {
	cfg := LocalConfig()
	cfg.MaxKeyBytes = 16
	n := startNode(t, cfg, nil)
	for _, key := range []string{strings.Repeat("x", 16), strings.Repeat("/", 16), "ü" + strings.Repeat("x", 14)} {
		resp, body := n.do(t, http.MethodGet, keyPath("g", key))
		if resp.StatusCode != http.StatusOK || string(body) != "value of "+key {
			t.Errorf("key %q of %d bytes: status %d, body %q", key, len(key), resp.StatusCode, body)
		}
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	for _, tc := range []struct {
		method, path, allow string
	}{
		{http.MethodPost, keyPath("g", "k"), "GET, HEAD, PUT, DELETE"},
		{http.MethodPatch, keyPath("g", "a/b"), "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, "/groups/g", "GET, DELETE"},
		{http.MethodDelete, "/groups", "GET"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodPut, "/metrics", "GET"},
		{"PURGE", keyPath("g", "k"), "GET, HEAD, PUT, DELETE"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := n.do(t, tc.method, tc.path)
			wantError(t, resp, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestPanickingLoaderLeavesTheNodeServing(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	for round := range 3 {
		resp, body := n.do(t, http.MethodGet, keyPath("g", "panic-key"))
		wantError(t, resp, body, http.StatusInternalServerError, CodeLoaderPanic)
		key := fmt.Sprintf("after-panic-%d", round)
		resp, body = n.do(t, http.MethodGet, keyPath("g", key))
		if resp.StatusCode != http.StatusOK || string(body) != "value of "+key {
			t.Fatalf("round %d: GET after a loader panic: %d %q", round, resp.StatusCode, body)
		}
	}
	if c := n.origin.count("panic-key"); c != 3 {
		t.Errorf("panicking loader called %d times, want 3 (a panic must not be cached)", c)
	}
}

func TestHead(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	get, body := n.do(t, http.MethodGet, keyPath("g", "k"))
	head, headBody := n.do(t, http.MethodHead, keyPath("g", "k"))
	if head.StatusCode != http.StatusOK {
		t.Fatalf("HEAD status %d", head.StatusCode)
	}
	if len(headBody) != 0 {
		t.Errorf("HEAD body %q, want none", headBody)
	}
	if got, want := head.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
		t.Errorf("HEAD Content-Length %q, want %q", got, want)
	}
	for _, h := range []string{"Etag", "Content-Type", "Cache-Control"} {
		if head.Header.Get(h) != get.Header.Get(h) {
			t.Errorf("HEAD %s %q differs from GET's %q", h, head.Header.Get(h), get.Header.Get(h))
		}
	}
	if got := head.Header.Get("X-Groupcached-Source"); got != "main" {
		t.Errorf("HEAD source %q, want main", got)
	}
	resp, b := n.do(t, http.MethodHead, keyPath("g", "missing-head"))
	if resp.StatusCode != http.StatusNotFound || len(b) != 0 {
		t.Errorf("HEAD of a missing key: %d %q, want 404 without a body", resp.StatusCode, b)
	}
}

func TestConditionalGet(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	first, _ := n.do(t, http.MethodGet, keyPath("g", "cond"))
	etag := first.Header.Get("Etag")
	if !etagPattern.MatchString(etag) {
		t.Fatalf("ETag %q", etag)
	}
	other, _ := n.do(t, http.MethodGet, keyPath("g", "other"))
	if other.Header.Get("Etag") == etag {
		t.Fatalf("two values share the ETag %q", etag)
	}
	for _, tc := range []struct {
		name   string
		method string
		inm    []string
		status int
	}{
		{"same tag", http.MethodGet, []string{etag}, http.StatusNotModified},
		{"same tag on HEAD", http.MethodHead, []string{etag}, http.StatusNotModified},
		{"weak form of the tag", http.MethodGet, []string{"W/" + etag}, http.StatusNotModified},
		{"in a list", http.MethodGet, []string{`"0000000000000000", ` + etag + `, "x"`}, http.StatusNotModified},
		{"on a second field line", http.MethodGet, []string{`"nope"`, etag}, http.StatusNotModified},
		{"star", http.MethodGet, []string{"*"}, http.StatusNotModified},
		{"other tag", http.MethodGet, []string{other.Header.Get("Etag")}, http.StatusOK},
		{"unquoted tag", http.MethodGet, []string{strings.Trim(etag, `"`)}, http.StatusOK},
		{"garbage", http.MethodGet, []string{`W/, "unterminated`}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			for _, v := range tc.inm {
				hdr = append(hdr, "If-None-Match", v)
			}
			resp, body := n.do(t, tc.method, keyPath("g", "cond"), hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if resp.Header.Get("Etag") != etag {
				t.Errorf("ETag %q, want %q", resp.Header.Get("Etag"), etag)
			}
			if tc.status == http.StatusNotModified {
				if len(body) != 0 {
					t.Errorf("304 with body %q", body)
				}
				if resp.Header.Get("Cache-Control") == "" {
					t.Error("304 without Cache-Control")
				}
			}
		})
	}
	resp, body := n.do(t, http.MethodGet, keyPath("g", "missing-cond"), "If-None-Match", "*")
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
}

func TestNoneMatchHits(t *testing.T) {
	const tag = `"0123456789abcdef"`
	for _, tc := range []struct {
		fields []string
		want   bool
	}{
		{[]string{tag}, true},
		{[]string{"W/" + tag}, true},
		{[]string{" ,\t" + tag + " , "}, true},
		{[]string{`"a", "b"`, `W/"c",` + tag}, true},
		{[]string{"*"}, true},
		{[]string{`"a,b", ` + tag}, true},
		{[]string{`"0123456789abcdeF"`}, false},
		{[]string{`W/"0123456789abcde"`}, false},
		{[]string{`0123456789abcdef`}, false},
		{[]string{`"0123456789abcdef`}, false},
		{[]string{``}, false},
		{[]string{`W/`}, false},
		{[]string{`junk, ` + tag}, true},
		{nil, false},
	} {
		if got := noneMatchHits(tc.fields, tag); got != tc.want {
			t.Errorf("noneMatchHits(%q) = %v, want %v", tc.fields, got, tc.want)
		}
	}
}

func TestCacheControl(t *testing.T) {
	withTTL := testGroupConfig()
	withTTL.TTL = time.Hour
	for _, tc := range []struct {
		name      string
		group     group.Config
		noTTLAge  time.Duration
		wantMatch string
	}{
		{"no TTL: revalidate", testGroupConfig(), 0, `^no-cache$`},
		{"no TTL with NoTTLMaxAge", testGroupConfig(), 90 * time.Second, `^max-age=90$`},
		{"TTL of an hour", withTTL, 0, `^max-age=3(5[0-9][0-9]|600)$`},
		{"the group's own max-age", testGroupConfig(), 90 * time.Second, `^max-age=300$`},
		{"the group's own no-cache", testGroupConfig(), 90 * time.Second, `^no-cache$`},
		{"another group's max-age", testGroupConfig(), 90 * time.Second, `^max-age=90$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := LocalConfig()
			cfg.NoTTLMaxAge = tc.noTTLAge
			switch tc.name {
			case "the group's own max-age":
				cfg.GroupNoTTLMaxAge = map[string]time.Duration{"ttl": 5 * time.Minute}
			case "the group's own no-cache":
				cfg.GroupNoTTLMaxAge = map[string]time.Duration{"ttl": 0}
			case "another group's max-age":
				cfg.GroupNoTTLMaxAge = map[string]time.Duration{"other": 5 * time.Minute}
			}
			g := newTestGroup(t, "ttl", &origin{}, tc.group)
			n := startNode(t, cfg, nil, g)
			for i := range 2 {
				resp, _ := n.do(t, http.MethodGet, keyPath("ttl", "k"))
				if got := resp.Header.Get("Cache-Control"); !regexp.MustCompile(tc.wantMatch).MatchString(got) {
					t.Errorf("GET #%d: Cache-Control %q, want %s", i+1, got, tc.wantMatch)
				}
			}
		})
	}
}

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inv       *fakeInvalidator
		cluster   *fakeCluster
		status    int
		code      string
		confirmed int
		peers     int
	}{
		{name: "single node", status: http.StatusOK},
		{name: "all peers confirm", inv: &fakeInvalidator{confirmed: 2},
			cluster: &fakeCluster{stats: peerStats(3), handler: http.NotFoundHandler()},
			status:  http.StatusOK, confirmed: 2, peers: 2},
		{name: "a peer fails", inv: &fakeInvalidator{confirmed: 1, err: errors.New("node-3: connection refused")},
			cluster: &fakeCluster{stats: peerStats(3), handler: http.NotFoundHandler()},
			status:  http.StatusBadGateway, code: CodeInvalidation, confirmed: 1, peers: 2},
		{name: "peers time out", inv: &fakeInvalidator{err: fmt.Errorf("node-2: %w", context.DeadlineExceeded)},
			cluster: &fakeCluster{stats: peerStats(2), handler: http.NotFoundHandler()},
			status:  http.StatusGatewayTimeout, code: CodeTimeout, peers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cluster
			if tc.cluster != nil {
				c = tc.cluster
			}
			n := startNode(t, LocalConfig(), c)
			if tc.inv != nil {
				n.group.SetInvalidator(tc.inv)
			}
			key := "a key/with+bytes"
			check := func(method, path, wantKey string) {
				t.Helper()
				resp, body := n.do(t, method, path)
				if resp.StatusCode != tc.status {
					t.Errorf("%s %s: status %d, want %d (%s)", method, path, resp.StatusCode, tc.status, body)
				}
				inv := decodeJSON[invalidation](t, body)
				want := invalidation{Group: "g", Key: wantKey, PeersConfirmed: tc.confirmed, Peers: tc.peers, Code: tc.code}
				if inv.Error == "" && tc.code != "" {
					t.Errorf("%s %s: no error message in %s", method, path, body)
				}
				inv.Error = ""
				if inv != want {
					t.Errorf("%s %s: answer %+v, want %+v", method, path, inv, want)
				}
			}

			n.do(t, http.MethodGet, keyPath("g", key))
			check(http.MethodDelete, keyPath("g", key), key)
			n.do(t, http.MethodGet, keyPath("g", key))
			if c := n.origin.count(key); c != 2 {
				t.Errorf("after DELETE of the key the loader ran %d times in all, want 2", c)
			}

			n.do(t, http.MethodGet, keyPath("g", "other"))
			check(http.MethodDelete, "/groups/g", "")
			n.do(t, http.MethodGet, keyPath("g", key))
			n.do(t, http.MethodGet, keyPath("g", "other"))
			if c, o := n.origin.count(key), n.origin.count("other"); c != 3 || o != 2 {
				t.Errorf("after DELETE of the group the loader ran %d and %d times, want 3 and 2", c, o)
			}
			if tc.inv != nil && (len(tc.inv.keys) != 1 || tc.inv.keys[0] != key || tc.inv.purges != 1) {
				t.Errorf("invalidator saw keys %q and %d purges, want [%q] and 1", tc.inv.keys, tc.inv.purges, key)
			}
		})
	}
}

// TestServeHTTPDecodesRawPaths covers requests that net/http's server never produces (it
// rejects malformed escapes itself) but a handler chain might: the API must answer, not panic.
func TestServeHTTPDecodesRawPaths(t *testing.T) {
	o := &origin{}
	a, err := New(LocalConfig(), []*group.Group{newTestGroup(t, "g", o, testGroupConfig())}, nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		path, raw string
		status    int
		key       string
	}{
		{"bad escape in the key", "/groups/g/keys/a/zz", "/groups/g/keys/a%2F%zz", http.StatusBadRequest, ""},
		{"bad escape in the group", "/groups/g/x/keys/k", "/groups/g%2Fx%zz/keys/k", http.StatusNotFound, ""},
		{"escaped slash", "/groups/g/keys/a/b", "/groups/g/keys/a%2Fb", http.StatusOK, "a/b"},
		{"escaped plus", "/groups/g/keys/a+b", "/groups/%67/keys/a%2Bb", http.StatusOK, "a+b"},
		{"literal plus with raw path", "/groups/g/keys/a/+b", "/groups/g/keys/a%2F+b", http.StatusOK, "a/+b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.URL = &url.URL{Path: tc.path, RawPath: tc.raw}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if tc.key != "" && o.last() != tc.key {
				t.Errorf("loader saw %q, want %q", o.last(), tc.key)
			}
		})
	}
}

func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", "a+b", "a/b", "100%", "%2F", "%zz", "%", "line\nbreak", "ü日本", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Any escaped text: decoding must not panic, and what it decodes must escape back
		// to a segment that decodes to the same key.
		if key, err := decodeKey(s); err == nil {
			again, err := decodeKey(EscapeKey(key))
			if err != nil || again != key {
				t.Fatalf("decodeKey(EscapeKey(%q)) = %q, %v", key, again, err)
			}
		}
		// Any key: escaping yields one segment that decodes back exactly.
		esc := EscapeKey(s)
		if strings.ContainsAny(esc, "/?# ") {
			t.Fatalf("EscapeKey(%q) = %q is not one clean path segment", s, esc)
		}
		got, err := decodeKey(esc)
		if err != nil || got != s {
			t.Fatalf("decodeKey(EscapeKey(%q)) = %q, %v", s, got, err)
		}
		// And the same through a parsed request URL, the way the server sees it.
		u, err := url.Parse("http://127.0.0.1/groups/g/keys/" + esc)
		if err != nil {
			t.Fatalf("parsing the escaped path of %q: %v", s, err)
		}
		if u.RawPath == "" {
			if got := strings.TrimPrefix(u.Path, "/groups/g/keys/"); got != s {
				t.Fatalf("decoded path of %q gives %q", s, got)
			}
		} else if got, err := decodeKey(strings.TrimPrefix(u.RawPath, "/groups/g/keys/")); err != nil || got != s {
			t.Fatalf("raw path of %q decodes to %q, %v", s, got, err)
		}
	})
}

func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{group.ErrNotFound, 404, CodeNotFound},
		{fmt.Errorf("wrapped: %w", group.ErrNotFound), 404, CodeNotFound},
		{group.ErrInvalidKey, 400, CodeBadKey},
		{fmt.Errorf("x: %w", group.ErrLoaderPanic), 500, CodeLoaderPanic},
		{fmt.Errorf("x: %w after 1s: %w", group.ErrLoadTimeout, context.DeadlineExceeded), 504, CodeTimeout},
		{context.DeadlineExceeded, 504, CodeTimeout},
		{fmt.Errorf("client: %w", context.Canceled), statusClientClosedRequest, CodeCanceled},
		{fmt.Errorf("x: %w", group.ErrPeerUnavailable), 502, CodePeerUnavailable},
		{errors.New("origin exploded"), 502, CodeLoadFailed},
		{&apiError{status: 404, code: CodeUnknownGroup, msg: "no group"}, 404, CodeUnknownGroup},
		{&apiError{status: 502, code: CodeInvalidation, msg: "x", err: context.DeadlineExceeded}, 504, CodeTimeout},
		{&apiError{status: 502, code: CodeInvalidation, msg: "x", err: errors.New("refused")}, 502, CodeInvalidation},
	} {
		status, code := errorStatus(tc.err)
		if status != tc.status || code != tc.code {
			t.Errorf("errorStatus(%v) = %d %q, want %d %q", tc.err, status, code, tc.status, tc.code)
		}
	}
}

func TestCanceledRequestIsNotLoggedAsError(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	r := httptest.NewRequest(http.MethodGet, keyPath("g", "slow-canceled"), nil)
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	w := httptest.NewRecorder()
	n.api.ServeHTTP(w, r.WithContext(ctx))
	if w.Code != statusClientClosedRequest {
		t.Errorf("status %d, want %d", w.Code, statusClientClosedRequest)
	}
	if logs := n.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("a client that went away was logged as an error:\n%s", logs)
	}
	resp, body := n.do(t, http.MethodGet, keyPath("g", "fail-logged"))
	wantError(t, resp, body, http.StatusBadGateway, CodeLoadFailed)
	if logs := n.logs.String(); !strings.Contains(logs, "level=ERROR") {
		t.Errorf("a load failure was not logged as an error:\n%s", logs)
	}
}

func TestContentLengthForEverySize(t *testing.T) {
	sized := newTestGroup(t, "sized", group.LoaderFunc(func(_ context.Context, key string) (group.Value, error) {
		n, err := strconv.Atoi(key)
		if err != nil {
			return group.Value{}, group.ErrNotFound
		}
		return group.Value{Bytes: []byte(strings.Repeat("s", n))}, nil
	}), testGroupConfig())
	n := startNode(t, LocalConfig(), nil, sized)
	for _, size := range []int{0, 1, autoContentLength - 1, autoContentLength, autoContentLength + 1, 100 << 10} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(fmt.Sprintf("%s %d bytes", method, size), func(t *testing.T) {
				resp, body := n.do(t, method, keyPath("sized", strconv.Itoa(size)))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if resp.ContentLength != int64(size) || len(resp.TransferEncoding) != 0 {
					t.Errorf("Content-Length %d, Transfer-Encoding %q; want %d and none", resp.ContentLength, resp.TransferEncoding, size)
				}
				if method == http.MethodGet && len(body) != size {
					t.Errorf("body of %d bytes, want %d", len(body), size)
				}
			})
		}
	}
}

// TestHotPathMatchesTheChiRoute sends the same requests to ServeHTTP (whose hot path skips
// chi) and to the chi router alone, and expects the same answers.
func TestHotPathMatchesTheChiRoute(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	viaChi := startServer(t, n.api.router)
	first, _ := n.do(t, http.MethodGet, keyPath("g", "k"))
	etag := first.Header.Get("Etag")
	for _, tc := range []struct {
		method, path string
		header       []string
	}{
		{http.MethodGet, keyPath("g", "k"), nil},
		{http.MethodHead, keyPath("g", "k"), nil},
		{http.MethodGet, keyPath("g", "k"), []string{"If-None-Match", etag}},
		{http.MethodGet, keyPath("g", "a/b c+d%e\n"), nil},
		{http.MethodGet, "/groups/%67/keys/a%2Bb", nil},
		{http.MethodGet, keyPath("g", "missing-1"), nil},
		{http.MethodGet, keyPath("g", "fail-1"), nil},
		{http.MethodGet, keyPath("nope", "k"), nil},
		{http.MethodGet, keyPath("g", strings.Repeat("x", DefaultMaxKeyBytes+1)), nil},
		{http.MethodGet, "/groups/g/keys/", nil},
		{http.MethodGet, "/groups/g/keys/a/b", nil},
		{http.MethodGet, "/groups//keys/k", nil},
		{http.MethodGet, "/groups/g/keys", nil},
		{http.MethodPost, keyPath("g", "k"), nil},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			n.do(t, http.MethodGet, tc.path) // a first load answers "loader", later ones "main"
			hot, hotBody := n.do(t, tc.method, tc.path, tc.header...)
			chi, chiBody := request(t, viaChi.Client(), viaChi.URL, tc.method, tc.path, tc.header...)
			if hot.StatusCode != chi.StatusCode || string(hotBody) != string(chiBody) {
				t.Errorf("ServeHTTP: %d %q; chi: %d %q", hot.StatusCode, hotBody, chi.StatusCode, chiBody)
			}
			for _, h := range []string{"Etag", "Cache-Control", "Content-Type", "Content-Length", "X-Groupcached-Source", "Allow"} {
				if hot.Header.Get(h) != chi.Header.Get(h) {
					t.Errorf("%s: ServeHTTP %q, chi %q", h, hot.Header.Get(h), chi.Header.Get(h))
				}
			}
		})
	}
}

func TestSplitKeyPath(t *testing.T) {
	for _, tc := range []struct {
		path       string
		group, key string
		ok         bool
	}{
		{"/groups/g/keys/k", "g", "k", true},
		{"/groups/g%2Fx/keys/a%2Fb", "g%2Fx", "a%2Fb", true},
		{"/groups/g/keys/", "", "", false},
		{"/groups//keys/k", "", "", false},
		{"/groups/g/keys/a/b", "", "", false},
		{"/groups/g/keys", "", "", false},
		{"/groups/g/values/k", "", "", false},
		{"/groups/g", "", "", false},
		{"/group/g/keys/k", "", "", false},
		{"groups/g/keys/k", "", "", false},
		{"", "", "", false},
	} {
		g, k, ok := splitKeyPath(tc.path)
		if g != tc.group || k != tc.key || ok != tc.ok {
			t.Errorf("splitKeyPath(%q) = %q, %q, %v; want %q, %q, %v", tc.path, g, k, ok, tc.group, tc.key, tc.ok)
		}
	}
}

// FuzzSplitKeyPath checks that the hot path takes exactly the paths that chi would route to
// GET /groups/{group}/keys/{key} with both segments non-empty, and reads the same segments.
func FuzzSplitKeyPath(f *testing.F) {
	a, err := New(LocalConfig(), nil, nil, discardLogger())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/groups/g/keys/k", "/groups/g/keys/", "/groups//keys/k", "/groups/g/keys/a/b", "/groups/a%2Fb/keys/%20", "/groups/g", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		g, k, ok := splitKeyPath(path)
		rctx := chi.NewRouteContext()
		pattern := a.router.Find(rctx, http.MethodGet, path)
		chiOK := pattern == "/groups/{group}/keys/{key}" && rctx.URLParam("group") != "" && rctx.URLParam("key") != ""
		if ok != chiOK {
			t.Fatalf("path %q: hot path %v, chi pattern %q key %q", path, ok, pattern, rctx.URLParam("key"))
		}
		if ok && (g != rctx.URLParam("group") || k != rctx.URLParam("key")) {
			t.Fatalf("path %q: hot path %q %q, chi %q %q", path, g, k, rctx.URLParam("group"), rctx.URLParam("key"))
		}
	})
}

func TestETagIsTheValueHash(t *testing.T) {
	var tag [etagLen]byte
	putETag(&tag, 0x0123456789abcdef)
	if string(tag[:]) != `"0123456789abcdef"` {
		t.Errorf("putETag = %s", tag[:])
	}
	n := startNode(t, LocalConfig(), nil)
	resp, body := n.do(t, http.MethodGet, keyPath("g", "hashed"))
	if want := fmt.Sprintf(`"%016x"`, xxhash.Sum64(body)); resp.Header.Get("Etag") != want {
		t.Errorf("ETag %s, want the xxhash of the value, %s", resp.Header.Get("Etag"), want)
	}
}
