package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// Internals that an error body must never carry: a node's name, a member's address, a file
// path and a query, as loaders and peers put them in their errors.
const (
	secretNode = "node-secret-7"
	secretAddr = "10.9.8.7:7946"
	secretPath = "/srv/private/data.db"
	secretSQL  = "SELECT password FROM users"
)

// internals is an error text that holds every secret.
const internals = "peer " + secretNode + " at " + secretAddr + ": open " + secretPath + ": " + secretSQL

// TestErrorBodiesCarryNoInternals drives every kind of error to the client, each caused by an
// error (or a panic) whose text names a node, an address, a path and SQL, and checks that the
// body carries the code and a plain message but none of them, while the log has them.
func TestErrorBodiesCarryNoInternals(t *testing.T) {
	load := group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		switch key {
		case "fail":
			return group.Value{}, errors.New(internals)
		case "missing":
			return group.Value{}, fmt.Errorf("%s: %w", internals, group.ErrNotFound)
		case "invalid":
			return group.Value{}, fmt.Errorf("%s: %w", internals, group.ErrInvalidKey)
		case "panic":
			panic(internals)
		case "slow":
			<-ctx.Done()
			return group.Value{}, fmt.Errorf("%s: %w", internals, ctx.Err())
		}
		return group.Value{Bytes: []byte("v")}, nil
	})
	g := newTestGroup(t, "g", load, testGroupConfig())
	remote := func(code string) group.Peer {
		return group.PeerFunc(func(context.Context, string, string) (group.Value, error) {
			return group.Value{}, &peers.RemoteError{Peer: secretNode, Code: code, Message: internals}
		})
	}
	g.SetPeers(group.PeerPickerFunc(func(key string) (group.Peer, bool) {
		if code, ok := strings.CutPrefix(key, "peer-"); ok {
			return remote(code), true
		}
		return nil, false
	}))
	g.SetInvalidator(&fakeInvalidator{err: errors.New(internals)})

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(LocalConfig(), []*group.Group{g}, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", a)
	mux.Handle("/bug", a.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(internals) })))
	srv := startServer(t, mux)

	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"loader failure", http.MethodGet, keyPath("g", "fail"), http.StatusBadGateway, CodeLoadFailed},
		{"not found", http.MethodGet, keyPath("g", "missing"), http.StatusNotFound, CodeNotFound},
		{"key the loader refuses", http.MethodGet, keyPath("g", "invalid"), http.StatusBadRequest, CodeBadKey},
		{"loader panic", http.MethodGet, keyPath("g", "panic"), http.StatusInternalServerError, CodeLoaderPanic},
		{"load timeout", http.MethodGet, keyPath("g", "slow"), http.StatusGatewayTimeout, CodeTimeout},
		{"peer's load failure", http.MethodGet, keyPath("g", "peer-load_failed"), http.StatusBadGateway, CodeLoadFailed},
		{"peer's unknown code", http.MethodGet, keyPath("g", "peer-whatever"), http.StatusBadGateway, CodeLoadFailed},
		{"invalidation incomplete, key", http.MethodDelete, keyPath("g", "k"), http.StatusBadGateway, CodeInvalidation},
		{"invalidation incomplete, group", http.MethodDelete, "/groups/g", http.StatusBadGateway, CodeInvalidation},
		{"handler panic", http.MethodGet, "/bug", http.StatusInternalServerError, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := request(t, srv.Client(), srv.URL, tt.method, tt.path)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			e := decodeJSON[errorBody](t, body)
			if e.Code != tt.code || e.Error == "" {
				t.Errorf("body %s: want code %q and a message", body, tt.code)
			}
			for _, s := range []string{secretNode, secretAddr, secretPath, secretSQL, "10.9.8.7"} {
				if strings.Contains(string(body), s) {
					t.Errorf("body %s carries %q", body, s)
				}
			}
		})
	}
	if !strings.Contains(logs.String(), secretPath) || !strings.Contains(logs.String(), secretAddr) {
		t.Errorf("the log lost the causes:\n%s", logs)
	}
}

// TestPublicMessage pins the rule: an apiError's message (the request's own terms) reaches
// the client, its cause does not; any other error reads as its code's sentence.
func TestPublicMessage(t *testing.T) {
	cause := errors.New(internals)
	tests := []struct {
		err  error
		want string
	}{
		{&apiError{status: http.StatusBadRequest, code: CodeBadKey, msg: "badly escaped key", err: cause}, "badly escaped key"},
		{fmt.Errorf("wrapped: %w", &apiError{status: http.StatusBadGateway, code: CodeInvalidation, msg: "group \"g\": purging", err: context.DeadlineExceeded}), "group \"g\": purging"},
		{fmt.Errorf("%s: %w", internals, group.ErrLoadTimeout), "the load took longer than the group allows"},
		{cause, "loading the value from the origin failed"},
	}
	for _, tt := range tests {
		_, code := errorStatus(tt.err)
		if got := publicMessage(tt.err, code); got != tt.want {
			t.Errorf("publicMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
