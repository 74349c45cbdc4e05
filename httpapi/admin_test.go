package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/groupcached/groupcached/peers"
)

const testAdminToken = "s3cret-admin-token-of-some-length"

// TestAdminTokenGuardsMutatingRoutes runs a node with an admin token on a real socket: key
// and group deletes answer 401 without the token, with another one or another scheme, and
// succeed with it; reads and the peer endpoints never ask for it.
func TestAdminTokenGuardsMutatingRoutes(t *testing.T) {
	var peerCalls atomic.Int64
	peerHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peerCalls.Add(1)
		_, _ = io.WriteString(w, "peer")
	})
	cfg := LocalConfig()
	cfg.AdminToken = testAdminToken
	n := startNode(t, cfg, &fakeCluster{members: threeMembers(), stats: peerStats(1), handler: peerHandler})
	inv := &fakeInvalidator{}
	n.group.SetInvalidator(inv)

	good := []string{"Authorization", "Bearer " + testAdminToken}
	tests := []struct {
		name, method, path string
		header             []string
		status             int
		challenge          string // the WWW-Authenticate a 401 carries
	}{
		{"delete key, no token", http.MethodDelete, keyPath("g", "k"), nil, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"purge, no token", http.MethodDelete, "/groups/g", nil, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"delete key, wrong token", http.MethodDelete, keyPath("g", "k"), []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized, `Bearer realm="groupcached", error="invalid_token"`},
		{"purge, the token's prefix", http.MethodDelete, "/groups/g", []string{"Authorization", "Bearer " + testAdminToken[:10]}, http.StatusUnauthorized, `Bearer realm="groupcached", error="invalid_token"`},
		{"purge, the token with more", http.MethodDelete, "/groups/g", []string{"Authorization", "Bearer " + testAdminToken + "x"}, http.StatusUnauthorized, `Bearer realm="groupcached", error="invalid_token"`},
		{"purge, basic scheme", http.MethodDelete, "/groups/g", []string{"Authorization", "Basic " + testAdminToken}, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"purge, bare token", http.MethodDelete, "/groups/g", []string{"Authorization", testAdminToken}, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"a write route that does not exist yet", http.MethodPut, keyPath("g", "k"), nil, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"POST anywhere", http.MethodPost, "/anything", nil, http.StatusUnauthorized, `Bearer realm="groupcached"`},
		{"delete key with the token", http.MethodDelete, keyPath("g", "k"), good, http.StatusOK, ""},
		{"purge with the token", http.MethodDelete, "/groups/g", good, http.StatusOK, ""},
		{"scheme in lower case", http.MethodDelete, "/groups/g", []string{"Authorization", "bearer " + testAdminToken}, http.StatusOK, ""},
		{"read the key without a token", http.MethodGet, keyPath("g", "k"), nil, http.StatusOK, ""},
		{"HEAD without a token", http.MethodHead, keyPath("g", "k"), nil, http.StatusOK, ""},
		{"groups without a token", http.MethodGet, "/groups", nil, http.StatusOK, ""},
		{"peer endpoint without the admin token", http.MethodPost, peers.PathPrefix + "/v1/purge", nil, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			purges, keys := inv.counts()
			resp, body := n.do(t, tt.method, tt.path, tt.header...)
			if tt.status == http.StatusUnauthorized {
				wantError(t, resp, body, http.StatusUnauthorized, CodeUnauthorized)
				if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
				}
				if strings.Contains(string(body), testAdminToken) {
					t.Errorf("the answer %s echoes the token", body)
				}
				if p, k := inv.counts(); p != purges || k != keys {
					t.Error("a refused request reached the group")
				}
				return
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
		})
	}
	if p, k := inv.counts(); p != 2 || k != 1 {
		t.Errorf("the group saw %d purges and %d removes, want 2 and 1", p, k)
	}
	if peerCalls.Load() != 1 {
		t.Errorf("the peer handler was called %d times, want 1", peerCalls.Load())
	}
}

func TestNoAdminTokenLeavesMutatingRoutesOpen(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	resp, body := n.do(t, http.MethodDelete, "/groups/g")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("purge without a configured token: %d %s", resp.StatusCode, body)
	}
}

func TestMutates(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		want         bool
	}{
		{http.MethodGet, "/groups/g/keys/k", false},
		{http.MethodHead, "/groups/g", false},
		{http.MethodOptions, "/groups", false},
		{http.MethodDelete, "/groups/g", true},
		{http.MethodPost, "/groups/g/keys/k", true},
		{http.MethodPut, "/x", true},
		{http.MethodPatch, "/groups", true},
		{"PURGE", "/groups/g", true},
		{http.MethodPost, peers.PathPrefix + "/v1/remove", false},
		{http.MethodPost, peers.PathPrefix + "x/v1/remove", true},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := mutates(r); got != tt.want {
			t.Errorf("mutates(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestAdminTokenValidation(t *testing.T) {
	for _, tok := range []string{"has space", "tab\there", "nl\n"} {
		cfg := LocalConfig()
		cfg.AdminToken = tok
		if _, err := New(cfg, nil, nil, discardLogger()); err == nil || !strings.Contains(err.Error(), "AdminToken") {
			t.Errorf("AdminToken %q: New = %v, want an AdminToken error", tok, err)
		}
	}
}
