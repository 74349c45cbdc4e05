package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/groupcached/groupcached/group"
)

// readierLoader is a loader whose origin is not ready while notReady holds a reason.
type readierLoader struct {
	notReady atomic.Pointer[string]
}

func (l *readierLoader) Load(_ context.Context, key string) (group.Value, error) {
	return group.Value{Bytes: []byte("value of " + key)}, nil
}

func (l *readierLoader) Ready() error {
	if r := l.notReady.Load(); r != nil {
		return errors.New(*r)
	}
	return nil
}

// TestReadinessFollowsOrigins: a node that was made ready still answers 503 on /readyz, with
// the group and the loader's reason, while a group's loader says its origin cannot serve
// (group.Readier), and 200 again once it can. The status page says the same.
func TestReadinessFollowsOrigins(t *testing.T) {
	l := &readierLoader{}
	reason := "origin not ready: the database refuses connections"
	l.notReady.Store(&reason)
	n := startNode(t, LocalConfig(), nil, newTestGroup(t, "rows", l, testGroupConfig()))
	n.api.SetReady(true)
	resp, body := n.do(t, http.MethodGet, "/readyz")
	wantError(t, resp, body, http.StatusServiceUnavailable, CodeNotReady)
	if !strings.Contains(string(body), `group \"rows\": origin not ready: the database refuses connections`) {
		t.Errorf("/readyz body %s does not give the group and its loader's reason", body)
	}
	if ok, why := n.api.readiness(); ok || !strings.Contains(why, "refuses connections") {
		t.Errorf("status page readiness = %v %q, want not ready with the reason", ok, why)
	}
	// The node serves all the same: a load may succeed.
	if resp, body := n.do(t, http.MethodGet, keyPath("rows", "k")); resp.StatusCode != http.StatusOK || string(body) != "value of k" {
		t.Errorf("GET while the origin is not ready: %d %s, want 200", resp.StatusCode, body)
	}
	l.notReady.Store(nil)
	if resp, body := n.do(t, http.MethodGet, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz with the origin ready: %d %s, want 200", resp.StatusCode, body)
	}
}
