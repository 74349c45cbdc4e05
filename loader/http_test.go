package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// origin is a real HTTP origin on loopback that serves a few keys with special behaviour and
// records what it was asked.
type origin struct {
	srv       *httptest.Server
	requests  atomic.Int64
	newConns  atomic.Int64
	started   chan string // keys whose slow request reached the handler
	cancelled chan string // keys whose request context ended while the handler waited

	mu   sync.Mutex
	uris []string
}

func newOrigin(t *testing.T, other string) *origin {
	t.Helper()
	o := &origin{started: make(chan string, 16), cancelled: make(chan string, 16)}
	o.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		o.uris = append(o.uris, r.RequestURI)
		o.mu.Unlock()
		key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/items/"))
		if err != nil {
			http.Error(w, "bad escape", http.StatusBadRequest)
			return
		}
		switch key {
		case "missing":
			http.NotFound(w, r)
		case "gone":
			w.WriteHeader(http.StatusGone)
		case "boom":
			http.Error(w, "origin exploded", http.StatusInternalServerError)
		case "busy":
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case "teapot":
			w.WriteHeader(http.StatusTeapot)
		case "empty":
			w.WriteHeader(http.StatusNoContent)
		case "slow":
			select {
			case o.started <- key:
			default:
			}
			select {
			case <-r.Context().Done():
				select {
				case o.cancelled <- key:
				default:
				}
			case <-time.After(30 * time.Second): // bounds the handler if the client never gives up
			}
		case "big":
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		case "big-chunked":
			for range 10 {
				_, _ = w.Write([]byte(strings.Repeat("y", 10)))
				w.(http.Flusher).Flush()
			}
		case "exact":
			_, _ = w.Write([]byte(strings.Repeat("z", 64)))
		case "typed":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Last-Modified", "Mon, 30 Nov 2026 08:00:00 GMT")
			_, _ = w.Write([]byte(`{"typed":true}`))
		case "ttl":
			w.Header().Set("Cache-Control", "public, max-age=60")
			_, _ = w.Write([]byte("fresh for a minute"))
		case "redirect-same":
			http.Redirect(w, r, "/items/hello", http.StatusFound)
		case "redirect-other":
			http.Redirect(w, r, other+"/items/hello", http.StatusFound)
		case "redirect-loop":
			http.Redirect(w, r, "/items/redirect-loop", http.StatusFound)
		case "headers":
			fmt.Fprintf(w, "%s|%s|%s", r.Header.Get("Authorization"), r.Header.Get("X-Origin-Token"), r.Header.Get("User-Agent"))
		case "hello":
			_, _ = w.Write([]byte("world"))
		default:
			fmt.Fprintf(w, "value of %s", key)
		}
	}))
	o.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.newConns.Add(1)
		}
	}
	o.srv.Start()
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) lastURI() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.uris) == 0 {
		return ""
	}
	return o.uris[len(o.uris)-1]
}

func newHTTPLoader(t *testing.T, cfg HTTPConfig) *HTTP {
	t.Helper()
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestHTTPLoad(t *testing.T) {
	other := newOrigin(t, "")
	o := newOrigin(t, other.srv.URL)
	h := newHTTPLoader(t, HTTPConfig{
		URL:          o.srv.URL + "/items/{key}",
		MaxBodyBytes: 64,
		Headers:      map[string]string{"Authorization": "Bearer t0ken", "X-Origin-Token": "abc"},
	})

	tests := []struct {
		key     string
		want    string
		wantURI string // what the origin must have been asked; "" skips the check
		wantErr error  // a sentinel the error must wrap
		anyErr  bool   // a failure that is neither not-found nor a sentinel
	}{
		{key: "hello", want: "world", wantURI: "/items/hello"},
		{key: "a b/c?d#e%f", want: "value of a b/c?d#e%f", wantURI: "/items/a%20b%2Fc%3Fd%23e%25f"},
		{key: "../../etc/passwd", wantErr: group.ErrInvalidKey},
		{key: "@evil.example:80", want: "value of @evil.example:80", wantURI: "/items/@evil.example:80"},
		{key: "//evil.example/x", want: "value of //evil.example/x", wantURI: "/items/%2F%2Fevil.example%2Fx"},
		{key: "http://evil.example/", want: "value of http://evil.example/", wantURI: "/items/http:%2F%2Fevil.example%2F"},
		{key: "ключ ✓", want: "value of ключ ✓", wantURI: "/items/%D0%BA%D0%BB%D1%8E%D1%87%20%E2%9C%93"},
		{key: "line\nbreak", want: "value of line\nbreak", wantURI: "/items/line%0Abreak"},
		{key: "empty", want: ""},
		{key: "exact", want: strings.Repeat("z", 64)},
		{key: "headers", want: "Bearer t0ken|abc|groupcached"},
		{key: "redirect-same", want: "world"},
		{key: "missing", wantErr: group.ErrNotFound},
		{key: "gone", wantErr: group.ErrNotFound},
		{key: "big", wantErr: ErrTooLarge},
		{key: "big-chunked", wantErr: ErrTooLarge},
		{key: "boom", anyErr: true},
		{key: "busy", anyErr: true},
		{key: "teapot", anyErr: true},
		{key: "redirect-other", anyErr: true},
		{key: "redirect-loop", anyErr: true},
		{key: "", wantErr: group.ErrInvalidKey},
		{key: ".", wantErr: group.ErrInvalidKey},
		{key: "..", wantErr: group.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			v := checkLoad(t, h, tt.key, tt.want, tt.wantErr, tt.anyErr)
			if v.TTL != 0 {
				t.Fatalf("Load(%q) has TTL %v; without use_origin_ttl it must be 0", tt.key, v.TTL)
			}
			if tt.wantURI != "" && o.lastURI() != tt.wantURI {
				t.Fatalf("origin was asked %q, want %q", o.lastURI(), tt.wantURI)
			}
		})
	}
	if n := other.requests.Load(); n != 0 {
		t.Fatalf("the other host received %d requests; redirects there must be refused", n)
	}
}

// TestHTTPKeyStaysUnderThePrefix serves /public/* and /private/secret.txt from an origin that
// decodes %2F before it normalises the path (as some servers and proxies do): no key may reach
// /private, and keys that merely hold dots or slashes still load.
func TestHTTPKeyStaysUnderThePrefix(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		decoded, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil {
			http.Error(w, "bad escape", http.StatusBadRequest)
			return
		}
		switch p := path.Clean(strings.ReplaceAll(decoded, "\\", "/")); {
		case p == "/private/secret.txt":
			_, _ = io.WriteString(w, "SECRET")
		case strings.HasPrefix(p, "/public/"):
			_, _ = io.WriteString(w, "public "+strings.TrimPrefix(p, "/public/"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	h := newHTTPLoader(t, HTTPConfig{URL: srv.URL + "/public/{key}"})

	// The origin itself is the weakness this guards against: a raw request proves it.
	resp, err := srv.Client().Get(srv.URL + "/public/..%2Fprivate%2Fsecret.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "SECRET" {
		t.Fatalf("the test origin does not decode %%2F before normalising (got %q): the test proves nothing", body)
	}
	before := requests.Load()

	for _, key := range []string{
		"../private/secret.txt",
		"a/../../private/secret.txt",
		"./../private/secret.txt",
		"..\\private\\secret.txt",
		"%2e%2e/private/secret.txt",
		"%2E%2E%2Fprivate%2Fsecret.txt",
		"x/.",
		"..",
	} {
		t.Run(key, func(t *testing.T) {
			v, err := h.Load(context.Background(), key)
			if !errors.Is(err, group.ErrInvalidKey) {
				t.Fatalf("Load(%q) = %q, %v; want group.ErrInvalidKey", key, v.Bytes, err)
			}
		})
	}
	if n := requests.Load() - before; n != 0 {
		t.Fatalf("refused keys reached the origin %d times", n)
	}
	for key, want := range map[string]string{
		"dir/file.txt": "public dir/file.txt",
		"...":          "public ...",
		"a..b/.c":      "public a..b/.c",
		"%41":          "public %41",
	} {
		t.Run(key, func(t *testing.T) {
			v, err := h.Load(context.Background(), key)
			if err != nil || string(v.Bytes) != want {
				t.Fatalf("Load(%q) = %q, %v; want %q", key, v.Bytes, err, want)
			}
		})
	}
}

// TestHTTPPooling checks that sequential loads, failed ones included, share one connection.
func TestHTTPPooling(t *testing.T) {
	o := newOrigin(t, "")
	h := newHTTPLoader(t, HTTPConfig{URL: o.srv.URL + "/items/{key}"})
	keys := []string{"hello", "missing", "boom", "empty", "redirect-same"}
	for i := range 20 {
		_, _ = h.Load(context.Background(), keys[i%len(keys)])
	}
	if got := o.requests.Load(); got != 24 { // four of the loads follow a redirect
		t.Fatalf("origin saw %d requests, want 24", got)
	}
	if n := o.newConns.Load(); n != 1 {
		t.Fatalf("the origin saw %d connections for 20 sequential loads, want 1", n)
	}
}

func TestHTTPOriginTTL(t *testing.T) {
	o := newOrigin(t, "")
	tests := []struct {
		use  bool
		want time.Duration
	}{{true, time.Minute}, {false, 0}}
	for _, tt := range tests {
		t.Run(fmt.Sprint("use_origin_ttl=", tt.use), func(t *testing.T) {
			h := newHTTPLoader(t, HTTPConfig{URL: o.srv.URL + "/items/{key}", UseOriginTTL: tt.use})
			v, err := h.Load(context.Background(), "ttl")
			if err != nil || v.TTL != tt.want {
				t.Fatalf("Load(ttl) = TTL %v, %v; want %v", v.TTL, err, tt.want)
			}
		})
	}
}

// The origin's Content-Type and Last-Modified become the value's; an unparsable date is none.
func TestHTTPMetadata(t *testing.T) {
	o := newOrigin(t, "")
	h := newHTTPLoader(t, HTTPConfig{URL: o.srv.URL + "/items/{key}"})
	v, err := h.Load(context.Background(), "typed")
	want := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	if err != nil || v.ContentType != "application/json" || !v.LastModified.Equal(want) {
		t.Fatalf("Load(typed) = %q, %v, %v; want application/json, %v", v.ContentType, v.LastModified, err, want)
	}
	if v, err := h.Load(context.Background(), "ttl"); err != nil || !v.LastModified.IsZero() {
		t.Fatalf("Load(ttl) = Last-Modified %v, %v; want none", v.LastModified, err)
	}
}

func TestOriginTTL(t *testing.T) {
	tests := []struct {
		cacheControl []string
		age          string
		want         time.Duration
	}{
		{nil, "", 0},
		{[]string{"public"}, "", 0},
		{[]string{"max-age=60"}, "", time.Minute},
		{[]string{"public, max-age=60"}, "", time.Minute},
		{[]string{`max-age="30"`}, "", 30 * time.Second},
		{[]string{"MAX-AGE=10"}, "", 10 * time.Second},
		{[]string{"max-age=60, s-maxage=5"}, "", 5 * time.Second},
		{[]string{"max-age=60"}, "20", 40 * time.Second},
		{[]string{"max-age=60"}, "90", time.Nanosecond},
		{[]string{"max-age=0"}, "", time.Nanosecond},
		{[]string{"no-store"}, "", time.Nanosecond},
		{[]string{"max-age=60", "no-cache"}, "", time.Nanosecond},
		{[]string{"private, max-age=60"}, "", time.Nanosecond},
		{[]string{"max-age=soon"}, "", 0},
		{[]string{"max-age=-5"}, "", 0},
		{[]string{"max-age=+5"}, "", 0},
		{[]string{"max-age=99999999999999999999999"}, "", (1 << 31) * time.Second},
		{[]string{"max-age=9999999999999"}, "", (1 << 31) * time.Second},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cacheControl, "|")+" age "+tt.age, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.cacheControl {
				h.Add("Cache-Control", v)
			}
			if tt.age != "" {
				h.Set("Age", tt.age)
			}
			if got := originTTL(h); got != tt.want {
				t.Fatalf("originTTL = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHTTPTimeouts(t *testing.T) {
	o := newOrigin(t, "")
	tests := []struct {
		name        string
		timeout     time.Duration // the loader's own Config.Timeout
		callerLimit time.Duration // the caller's deadline; 0 means none
	}{
		{"caller deadline", time.Minute, 200 * time.Millisecond},
		{"loader timeout", 200 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHTTPLoader(t, HTTPConfig{URL: o.srv.URL + "/items/{key}", Timeout: tt.timeout})
			ctx := context.Background()
			if tt.callerLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.callerLimit)
				defer cancel()
			}
			_, err := h.Load(ctx, "slow")
			if !errors.Is(err, group.ErrLoadTimeout) {
				t.Fatalf("Load(slow) = %v, want ErrLoadTimeout", err)
			}
			// The origin sees the request end: the deadline reached it.
			select {
			case <-o.cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the origin's request context was not cancelled")
			}
		})
	}

	t.Run("caller cancels", func(t *testing.T) {
		h := newHTTPLoader(t, HTTPConfig{URL: o.srv.URL + "/items/{key}"})
		for len(o.started) > 0 {
			<-o.started
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // cancel once the origin holds the request
			select {
			case <-o.started:
			case <-time.After(10 * time.Second):
			}
			cancel()
		}()
		_, err := h.Load(ctx, "slow")
		if !errors.Is(err, context.Canceled) || errors.Is(err, group.ErrLoadTimeout) {
			t.Fatalf("Load(slow) after cancel = %v, want context.Canceled, not a timeout", err)
		}
	})

	t.Run("origin down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		h := newHTTPLoader(t, HTTPConfig{URL: "http://" + addr + "/items/{key}"})
		if _, err := h.Load(context.Background(), "k"); err == nil || errors.Is(err, group.ErrNotFound) {
			t.Fatalf("Load from a closed port = %v, want a load failure", err)
		}
	})
}

func TestNewHTTPErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  HTTPConfig
	}{
		{"no url", HTTPConfig{}},
		{"key in host", HTTPConfig{URL: "http://{key}/"}},
		{"negative timeout", HTTPConfig{URL: "http://o/{key}", Timeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := NewHTTP(tt.cfg); err == nil {
				h.Close()
				t.Fatal("NewHTTP succeeded")
			}
		})
	}
}

// FuzzHTTPURL checks that no key changes where the request goes: the scheme, host, port and
// query stay the template's, and the key takes exactly one path segment.
func FuzzHTTPURL(f *testing.F) {
	for _, seed := range []string{"k", "a/b", "../x", "?q=1", "#frag", "%2F", "@host", "//h", "http://h", "\\x", " ", "\x00", "ü"} {
		f.Add(seed)
	}
	h, err := NewHTTP(HTTPConfig{URL: "https://origin.example:8443/v1/items/{key}/raw?format=bin"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		u, err := h.URL(key)
		if err != nil {
			if !errors.Is(err, group.ErrInvalidKey) {
				t.Fatalf("URL(%q) = %v, want ErrInvalidKey", key, err)
			}
			return
		}
		if u.Scheme != "https" || u.Host != "origin.example:8443" || u.RawQuery != "format=bin" || u.Fragment != "" || u.User != nil {
			t.Fatalf("URL(%q) = %s: left the origin", key, u)
		}
		seg, ok := strings.CutPrefix(u.EscapedPath(), "/v1/items/")
		seg, ok2 := strings.CutSuffix(seg, "/raw")
		if !ok || !ok2 || strings.Contains(seg, "/") {
			t.Fatalf("URL(%q) = %s: the key is not one segment", key, u)
		}
		if got, err := url.PathUnescape(seg); err != nil || got != key {
			t.Fatalf("URL(%q): segment %q decodes to %q, %v", key, seg, got, err)
		}
	})
}

func BenchmarkHTTPLoad(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("v", 1024))
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPConfig{URL: srv.URL + "/items/{key}"})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Load(ctx, "key"); err != nil {
			b.Fatal(err)
		}
	}
}
