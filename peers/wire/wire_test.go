package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRoundTripEveryMessage(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			h := &fakeHandler{}
			scfg := testServerConfig()
			ccfg := testClientConfig("")
			if auth {
				scfg.Secret, ccfg.Secret = testSecret, testSecret
			}
			ts := startServer(t, scfg, h, serverOptions{})
			ccfg.Addr = ts.addr
			c := newClient(t, ccfg)
			ctx := context.Background()

			v, err := c.Fetch(ctx, "things", "k1")
			if err != nil || string(v.Bytes) != "value of k1" || v.TTL != time.Hour {
				t.Fatalf("Fetch = %q, %v, %v; want the value with TTL 1h", v.Bytes, v.TTL, err)
			}
			typed := func(what, key string, v Value, err error) {
				t.Helper()
				if err != nil || string(v.Bytes) != `{"key":"`+key+`"}` || v.ContentType != "application/json" || !v.LastModified.Equal(typedModified) {
					t.Errorf("%s(%s) = %+v, %v; want its value with its Content-Type and Last-Modified", what, key, v, err)
				}
			}
			// The first value is checked after the second arrived: each is the caller's own
			// memory, not the reader's buffer.
			va, erra := c.Fetch(ctx, "things", "typed-a")
			vb, errb := c.Fetch(ctx, "things", "typed-b")
			typed("Fetch", "typed-a", va, erra)
			typed("Fetch", "typed-b", vb, errb)
			if res, err := c.FetchBatch(ctx, "things", []string{"k1", "typed-c", "typed-d"}); err == nil {
				typed("FetchBatch", "typed-c", res[1].Value, res[1].Err)
				typed("FetchBatch", "typed-d", res[2].Value, res[2].Err)
				if res[0].ContentType != "" || !res[0].LastModified.IsZero() {
					t.Errorf("FetchBatch(k1) = %+v: metadata it never had", res[0].Value)
				}
			} else {
				t.Errorf("FetchBatch: %v", err)
			}
			if _, err := c.Fetch(ctx, "things", "missing"); CodeOf(err) != CodeNotFound || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Fetch(missing) err = %v, want the not_found verdict", err)
			}
			if err := c.Remove(ctx, "things", "k1"); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if err := c.Purge(ctx, "things"); err != nil {
				t.Fatalf("Purge: %v", err)
			}
			if got, want := h.calls(), []string{"remove things/k1", "purge things"}; !slices.Equal(got, want) {
				t.Errorf("handler saw %q, want %q", got, want)
			}
			if rtt, err := c.Ping(ctx); err != nil || rtt <= 0 {
				t.Fatalf("Ping = %v, %v", rtt, err)
			}
			keys := []string{"a", "missing", "b", "a"}
			res, err := c.FetchBatch(ctx, "things", keys)
			if err != nil || len(res) != len(keys) {
				t.Fatalf("FetchBatch = %d results, %v", len(res), err)
			}
			for i, k := range keys {
				if k == "missing" {
					if CodeOf(res[i].Err) != CodeNotFound {
						t.Errorf("batch[%d] err = %v, want not_found", i, res[i].Err)
					}
					continue
				}
				if res[i].Err != nil || string(res[i].Bytes) != "value of "+k || res[i].TTL != time.Hour {
					t.Errorf("batch[%d] = %q, %v, %v", i, res[i].Bytes, res[i].TTL, res[i].Err)
				}
			}
			got := make(chan Value, 1)
			c.FetchFunc("things", "async", time.Now().Add(time.Second), func(v Value, err error) {
				if err != nil {
					t.Errorf("FetchFunc: %v", err)
				}
				got <- v
			})
			if v := <-got; string(v.Bytes) != "value of async" {
				t.Errorf("FetchFunc value = %q", v.Bytes)
			}
			gotBatch := make(chan []Result, 1)
			c.FetchBatchFunc("things", []string{"x", "y"}, time.Now().Add(time.Second), func(r []Result, err error) {
				if err != nil {
					t.Errorf("FetchBatchFunc: %v", err)
				}
				gotBatch <- r
			})
			if r := <-gotBatch; len(r) != 2 || string(r[1].Bytes) != "value of y" {
				t.Errorf("FetchBatchFunc = %v", r)
			}
			if n := ts.conns.Load(); n != 1 {
				t.Errorf("%d TCP connections for serial calls, want 1", n)
			}
		})
	}
}

func TestKeysAndValuesOfAnyBytes(t *testing.T) {
	values := map[string][]byte{
		"empty":                   {},
		"\x00\xff binary":         {0, 1, 2, 255},
		"line\r\nbreak":           []byte("\r\n\r\nHTTP/1.1 200 OK"),
		"naïve 日本語 🙂":             []byte("ü"),
		strings.Repeat("k", 1024): bytes.Repeat([]byte("v"), 100<<10),
	}
	h := &fakeHandler{fetch: func(_ context.Context, _, key string) (Value, error) {
		return Value{Bytes: values[key]}, nil
	}}
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	for key, want := range values {
		v, err := c.Fetch(context.Background(), "g\x00\xff", key)
		if err != nil || !bytes.Equal(v.Bytes, want) || v.TTL != 0 {
			t.Errorf("Fetch(%.20q) = %d bytes, %v, %v; want %d bytes, no TTL", key, len(v.Bytes), v.TTL, err, len(want))
		}
	}
	res, err := c.FetchBatch(context.Background(), "g", slices.Collect(mapKeys(values)))
	if err != nil {
		t.Fatalf("FetchBatch: %v", err)
	}
	for i, k := range slices.Collect(mapKeys(values)) {
		if !bytes.Equal(res[i].Bytes, values[k]) {
			t.Errorf("batch value of %.20q = %d bytes, want %d", k, len(res[i].Bytes), len(values[k]))
		}
	}
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Values(keys)
}

func TestRequestBounds(t *testing.T) {
	const limit = 64 << 10
	h := &fakeHandler{fetch: func(_ context.Context, _, key string) (Value, error) {
		var n int
		fmt.Sscan(key, &n)
		return Value{Bytes: bytes.Repeat([]byte{'x'}, n)}, nil
	}}
	scfg := testServerConfig()
	scfg.MaxKeyBytes = 16
	scfg.MaxBatchKeys = 4
	scfg.MaxValueBytes = limit + 1 // one more than the client takes: the client's bound is tested
	ts := startServer(t, scfg, h, serverOptions{})
	ccfg := testClientConfig(ts.addr)
	ccfg.MaxValueBytes = limit
	c := newClient(t, ccfg)
	ctx := context.Background()

	if _, err := c.Fetch(ctx, "g", ""); CodeOf(err) != CodeInvalidKey || h.fetches.Load() != 0 {
		t.Errorf("empty key: err = %v, %d fetches; want invalid_key before sending", err, h.fetches.Load())
	}
	if _, err := c.Fetch(ctx, strings.Repeat("g", 256), "k"); CodeOf(err) != CodeBadRequest {
		t.Errorf("256-byte group: err = %v, want bad_request", err)
	}
	if _, err := c.Fetch(ctx, "g", "12345678901234567"); CodeOf(err) != CodeInvalidKey {
		t.Errorf("17-byte key against MaxKeyBytes 16: err = %v, want invalid_key from the peer", err)
	}
	if _, err := c.FetchBatch(ctx, "g", make([]string, 257)); CodeOf(err) != CodeBadRequest {
		t.Errorf("batch of 257: err = %v, want bad_request before sending", err)
	}
	res, err := c.FetchBatch(ctx, "g", []string{"1", "2", "3", "4", "5"})
	if CodeOf(err) != CodeBadRequest || len(res) != 5 || CodeOf(res[4].Err) != CodeBadRequest {
		t.Errorf("batch of 5 against MaxBatchKeys 4: err = %v, results %v; want bad_request on all", err, res)
	}
	v, err := c.Fetch(ctx, "g", fmt.Sprint(limit))
	if err != nil || len(v.Bytes) != limit {
		t.Fatalf("value at the limit: %d bytes, %v", len(v.Bytes), err)
	}
	conns := ts.conns.Load()
	_, err = c.Fetch(ctx, "g", fmt.Sprint(limit+1))
	mustUnavailable(t, err, ErrTooLarge)
	if _, err := c.Fetch(ctx, "g", "3"); err != nil {
		t.Errorf("fetch after the broken connection: %v", err)
	}
	if ts.conns.Load() != conns+1 {
		t.Errorf("connections %d → %d, want one redial after the oversized frame", conns, ts.conns.Load())
	}

	scfg.MaxValueBytes = limit
	ts2 := startServer(t, scfg, h, serverOptions{})
	c2 := newClient(t, testClientConfig(ts2.addr))
	if _, err := c2.Fetch(ctx, "g", fmt.Sprint(limit+1)); CodeOf(err) != CodeLoadFailed {
		t.Errorf("value over the server's limit: err = %v, want load_failed", err)
	}
}

func TestVerdictsKeepTheirCodes(t *testing.T) {
	h := &fakeHandler{fetch: func(_ context.Context, _, key string) (Value, error) {
		switch key {
		case "plain":
			return Value{}, errors.New(strings.Repeat("long message ", 100))
		case "overloaded":
			return Value{}, &Error{Code: CodeOverloaded}
		case "panic":
			panic("loader exploded")
		}
		var code int
		fmt.Sscan(key, &code)
		return Value{}, &Error{Code: Code(code), Message: "because"}
	}, remove: func(context.Context, string, string) error { panic("remove exploded") }}
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	ctx := context.Background()
	for code := CodeNotFound; code <= CodeOverloaded; code++ {
		_, err := c.Fetch(ctx, "g", fmt.Sprint(int(code)))
		if CodeOf(err) != code {
			t.Errorf("code %v: err = %v", code, err)
		}
		if unavailable := errors.Is(err, ErrUnavailable); unavailable != (code == CodeShuttingDown || code == CodeOverloaded) {
			t.Errorf("code %v: ErrUnavailable = %v", code, unavailable)
		}
	}
	_, err := c.Fetch(ctx, "g", "plain")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeLoadFailed || len(e.Message) != MaxMessageBytes {
		t.Errorf("plain error: %v; want load_failed with the message cut to %d bytes", err, MaxMessageBytes)
	}

	// A panicking handler costs its key a load_failed, not the connection.
	if _, err := c.Fetch(ctx, "g", "panic"); CodeOf(err) != CodeLoadFailed {
		t.Errorf("panicking Fetch: err = %v, want load_failed", err)
	}
	res, err := c.FetchBatch(ctx, "g", []string{"1", "panic", "2"})
	if err != nil || CodeOf(res[0].Err) != CodeNotFound || CodeOf(res[1].Err) != CodeLoadFailed || CodeOf(res[2].Err) != CodeUnknownGroup {
		t.Errorf("batch with a panicking key = %v, %v", res, err)
	}
	if err := c.Remove(ctx, "g", "k"); CodeOf(err) != CodeLoadFailed {
		t.Errorf("panicking Remove: err = %v, want load_failed", err)
	}
	if n := ts.conns.Load(); n != 1 {
		t.Errorf("%d connections, want the first one throughout", n)
	}
}

// The upgrade passes the node's middleware, which may wrap the ResponseWriter: Hijack goes
// through Unwrap. Over TLS too.
func TestUpgradeThroughMiddlewareAndTLS(t *testing.T) {
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&wrappedWriter{ResponseWriter: w}, r)
		})
	}
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{tls: useTLS, wrap: wrap})
			cfg := testClientConfig(ts.addr)
			if useTLS {
				cfg.TLS = ts.tlsConfig()
			}
			c := newClient(t, cfg)
			if v, err := c.Fetch(context.Background(), "g", "k"); err != nil || string(v.Bytes) != "value of k" {
				t.Fatalf("Fetch = %q, %v", v.Bytes, err)
			}
			if n := ts.requests.Load(); n != 1 {
				t.Errorf("middleware saw %d requests, want the one upgrade", n)
			}
		})
	}
	t.Run("plain client to TLS server", func(t *testing.T) {
		ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{tls: true})
		_, err := newClient(t, testClientConfig(ts.addr)).Fetch(context.Background(), "g", "k")
		mustUnavailable(t, err)
	})
}

type wrappedWriter struct{ http.ResponseWriter }

func (w *wrappedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestUpgradeRefusals(t *testing.T) {
	ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
	for _, tt := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no upgrade", map[string]string{}, http.StatusUpgradeRequired},
		{"other protocol", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", hdrWire: "1", hdrPeer: "a"}, http.StatusUpgradeRequired},
		{"no version", map[string]string{"Connection": "Upgrade", "Upgrade": UpgradeToken, hdrPeer: "a"}, http.StatusBadRequest},
		{"no sender", map[string]string{"Connection": "Upgrade", "Upgrade": UpgradeToken, hdrWire: "1"}, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+ts.addr+DefaultPath, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := (&http.Client{}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get(hdrError) != CodeBadRequest.String() {
				t.Errorf("status %d %q, want %d bad_request", resp.StatusCode, resp.Header.Get(hdrError), tt.status)
			}
		})
	}
}
