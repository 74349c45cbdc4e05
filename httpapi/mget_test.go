package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// mgetItemBody is an item as a client decodes it.
type mgetItemBody struct {
	Key         string `json:"key"`
	Status      int    `json:"status"`
	Code        string `json:"code"`
	Error       string `json:"error"`
	Value       []byte `json:"value"`
	TTLSeconds  *int64 `json:"ttl_seconds"`
	ContentType string `json:"content_type"`
}

// postMget sends body to baseURL's /groups/{group}/mget with the given Content-Type and
// header pairs, and returns the response (body closed) and its body.
func postMget(t *testing.T, client *http.Client, baseURL, groupName, contentType, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/groups/"+EscapeKey(groupName)+"/mget", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// mgetKeys asks for keys and decodes the items of a 200 answer.
func mgetKeys(t *testing.T, client *http.Client, baseURL string, keys []string, header ...string) []mgetItemBody {
	t.Helper()
	body, err := json.Marshal(map[string][]string{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	resp, b := postMget(t, client, baseURL, "g", "application/json", string(body), header...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mget: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	items := decodeJSON[struct{ Items []mgetItemBody }](t, b).Items
	if len(items) != len(keys) {
		t.Fatalf("%d items for %d keys: %s", len(items), len(keys), b)
	}
	for i, it := range items {
		if it.Key != keys[i] {
			t.Fatalf("item %d is %q, want %q: items out of order", i, it.Key, keys[i])
		}
	}
	return items
}

// checkMgetItem checks an item against what the test origin answers for its key.
func checkMgetItem(t *testing.T, where string, it mgetItemBody) {
	t.Helper()
	switch {
	case strings.HasPrefix(it.Key, "missing"):
		if it.Status != http.StatusNotFound || it.Code != CodeNotFound || it.Value != nil {
			t.Errorf("%s %q: %d %q %q, want 404 not_found", where, it.Key, it.Status, it.Code, it.Value)
		}
	case strings.HasPrefix(it.Key, "fail"):
		if it.Status != http.StatusBadGateway || it.Code != CodeLoadFailed || it.Error == "" || strings.Contains(it.Error, "origin is down") {
			t.Errorf("%s %q: %d %q %q, want 502 load_failed without the origin's own message", where, it.Key, it.Status, it.Code, it.Error)
		}
	default:
		if it.Status != http.StatusOK || it.Code != "" || string(it.Value) != "value of "+it.Key {
			t.Errorf("%s %q: %d %q %q", where, it.Key, it.Status, it.Code, it.Value)
		}
	}
}

// TestMgetCluster: an mget of 50 cold keys on one node of three loads each key once in the
// cluster (not-found and failing keys included), answers every key in order with its own
// status, and reaches each other owner in one peer request (a batch holding all its keys),
// counted on the owners' side.
func TestMgetCluster(t *testing.T) {
	o := &origin{}
	a := startClusterNode(t, "node-a", o)
	b := startClusterNode(t, "node-b", o, a.Cluster().GossipAddr())
	c := startClusterNode(t, "node-c", o, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b, c}
	waitMembers(t, nodes...)

	var keys []string
	for i := range 50 {
		switch {
		case i%10 == 3:
			keys = append(keys, fmt.Sprintf("missing-%d", i))
		case i == 7 || i == 28:
			keys = append(keys, fmt.Sprintf("fail-%d", i))
		default:
			keys = append(keys, fmt.Sprintf("key %d/of+50", i))
		}
	}
	owned := map[string]int{}
	for _, k := range keys {
		owned[a.Cluster().Owner(k)]++
	}
	if owned["node-b"] < 2 || owned["node-c"] < 2 {
		t.Fatalf("owners %v: the test needs a batch for each other node", owned)
	}

	items := mgetKeys(t, a.client, a.url, keys)
	for _, it := range items {
		checkMgetItem(t, "node-a", it)
	}
	total := 0
	for _, k := range keys {
		if n := o.count(k); n != 1 {
			t.Errorf("%q loaded %d times in the cluster, want 1", k, n)
		}
		total += o.count(k)
	}
	if total != 50 {
		t.Errorf("%d origin loads in all, want 50", total)
	}
	for _, n := range []*clusterNode{b, c} {
		st := n.Cluster().Stats()
		if st.BatchesServed != 1 || st.BatchKeysServed != uint64(owned[n.Name()]) {
			t.Errorf("%s served %d batches of %d keys, want 1 batch of its %d keys", n.Name(), st.BatchesServed, st.BatchKeysServed, owned[n.Name()])
		}
		if reqs := n.Groups()[0].Stats().ServerRequests; reqs != int64(owned[n.Name()]) {
			t.Errorf("%s served %d keys to peers, want %d: only the batch", n.Name(), reqs, owned[n.Name()])
		}
	}
	if st := a.Cluster().Stats(); st.BatchesServed != 0 {
		t.Errorf("node-a served %d batches, want none", st.BatchesServed)
	}

	// The same keys from another node: the values are where a GET would find them; nothing
	// is loaded again but what is not cached: not-found (NegativeTTL 0), and a failure only
	// once the group's ErrorTTL (1 s) since the first mget has passed.
	before := map[string]int{}
	for _, k := range keys {
		before[k] = o.count(k)
	}
	for _, it := range mgetKeys(t, b.client, b.url, keys) {
		checkMgetItem(t, "node-b", it)
		want := before[it.Key]
		if strings.HasPrefix(it.Key, "missing") {
			want++
		}
		n := o.count(it.Key)
		if strings.HasPrefix(it.Key, "fail") && n == want+1 {
			n-- // remembered failure expired already
		}
		if n != want {
			t.Errorf("second mget: %q loaded %d times, want %d", it.Key, n, want)
		}
	}

	_, body := a.get(t, http.MethodGet, "/metrics")
	if !strings.Contains(string(body), `groupcached_mget_keys_total{code="2xx",group="g"} 43`) ||
		!strings.Contains(string(body), `groupcached_http_requests_total{code="2xx",method="POST",route="/groups/{group}/mget"} 1`) {
		t.Errorf("metrics of node-a lack the mget's request and keys:\n%s", grepLines(string(body), "mget"))
	}
	_, body = b.get(t, http.MethodGet, "/metrics")
	if want := fmt.Sprintf("groupcached_peer_batch_keys_served_total %d", owned["node-b"]); !strings.Contains(string(body), "groupcached_peer_batches_served_total 1\n") ||
		!strings.Contains(string(body), want) {
		t.Errorf("metrics of node-b lack its one batch of %d keys:\n%s", owned["node-b"], grepLines(string(body), "batch"))
	}
}

// TestMgetItems: repeated keys are loaded once and answered each time; an empty and an
// over-long key are their own items' 400; values past the answer's budget are their items'
// 413; TTLs and content types come with the values; an empty list is an empty answer.
func TestMgetItems(t *testing.T) {
	cfg := LocalConfig()
	cfg.MaxKeyBytes = 16
	cfg.MaxBatchResponseBytes = 40 // "value of kN" is 10 bytes: four values fit
	n := startNode(t, cfg, nil)
	if _, err := n.group.SetValue(context.Background(), "typed", group.Value{Bytes: []byte(`{"a":1}`), TTL: time.Hour, ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}

	if items := mgetKeys(t, n.srv.Client(), n.srv.URL, []string{}); len(items) != 0 {
		t.Errorf("empty list: %v", items)
	}

	keys := []string{"k1", "k2", "k1", "", strings.Repeat("x", 17), "typed", "k3", "missing", "k4", "k1", "k5"}
	items := mgetKeys(t, n.srv.Client(), n.srv.URL, keys)
	for _, i := range []int{0, 1, 2} {
		checkMgetItem(t, "", items[i])
	}
	for _, i := range []int{3, 4} {
		if it := items[i]; it.Status != http.StatusBadRequest || it.Code != CodeBadKey {
			t.Errorf("item %d: %d %q, want 400 bad_key", i, it.Status, it.Code)
		}
	}
	typed := items[5]
	if typed.Status != http.StatusOK || string(typed.Value) != `{"a":1}` || typed.ContentType != "application/json" ||
		typed.TTLSeconds == nil || *typed.TTLSeconds < 3590 || *typed.TTLSeconds > 3600 {
		t.Errorf("typed: %+v", typed)
	}
	if items[0].TTLSeconds != nil {
		t.Errorf("a value that never expires has ttl_seconds %d", *items[0].TTLSeconds)
	}
	checkMgetItem(t, "", items[7])
	// Budget: k1 (10) + k2 (10) + k1 (10) + typed (7) = 37; k3 (10) no longer fits, nor
	// k4; k1 again does not either, and k5 not.
	for _, i := range []int{6, 8, 9, 10} {
		if it := items[i]; it.Status != http.StatusRequestEntityTooLarge || it.Code != CodeTooLarge || it.Value != nil {
			t.Errorf("item %d past the budget: %d %q %q, want 413 too_large", i, it.Status, it.Code, it.Value)
		}
	}
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5", "missing"} {
		if c := n.origin.count(k); c != 1 {
			t.Errorf("%q loaded %d times, want 1", k, c)
		}
	}
}

// TestMgetRefused: requests refused as a whole, each with its status and code.
func TestMgetRefused(t *testing.T) {
	cfg := LocalConfig()
	cfg.MaxBatchKeys = 5
	cfg.MaxBatchRequestBytes = 200
	n := startNode(t, cfg, nil)
	keysBody := func(count int) string {
		ks := make([]string, count)
		for i := range ks {
			ks[i] = fmt.Sprintf("k%d", i)
		}
		b, _ := json.Marshal(map[string][]string{"keys": ks})
		return string(b)
	}
	tests := []struct {
		name, group, contentType, body string
		status                         int
		code                           string
	}{
		{"unknown group", "nope", "application/json", keysBody(1), http.StatusNotFound, CodeUnknownGroup},
		{"over the key limit", "g", "application/json", keysBody(6), http.StatusRequestEntityTooLarge, CodeTooLarge},
		{"over the body limit", "g", "application/json", `{"keys":["` + strings.Repeat("k", 300) + `"]}`, http.StatusRequestEntityTooLarge, CodeTooLarge},
		{"no content type", "g", "", keysBody(1), http.StatusBadRequest, CodeBadRequest},
		{"form content type", "g", "application/x-www-form-urlencoded", keysBody(1), http.StatusBadRequest, CodeBadRequest},
		{"malformed JSON", "g", "application/json", `{"keys":["a",}`, http.StatusBadRequest, CodeBadRequest},
		{"empty body", "g", "application/json", ``, http.StatusBadRequest, CodeBadRequest},
		{"no keys", "g", "application/json", `{}`, http.StatusBadRequest, CodeBadRequest},
		{"keys not strings", "g", "application/json", `{"keys":[1,2]}`, http.StatusBadRequest, CodeBadRequest},
		{"invalid UTF-8", "g", "application/json", "{\"keys\":[\"a\xff\xfe\"]}", http.StatusBadRequest, CodeBadRequest},
		{"lone surrogate escape", "g", "application/json", `{"keys":["a\ud800"]}`, http.StatusBadRequest, CodeBadRequest},
		{"unknown field", "g", "application/json", `{"key":["a"]}`, http.StatusBadRequest, CodeBadRequest},
		{"two values", "g", "application/json", `{"keys":["a"]} {"keys":["b"]}`, http.StatusBadRequest, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postMget(t, n.srv.Client(), n.srv.URL, tt.group, tt.contentType, tt.body)
			wantError(t, resp, body, tt.status, tt.code)
		})
	}
	if got := n.origin.last(); got != "" {
		t.Errorf("a refused mget loaded %q", got)
	}
	// Exactly at the limits it is served; with a charset too.
	resp, body := postMget(t, n.srv.Client(), n.srv.URL, "g", "application/json; charset=utf-8", keysBody(5))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("5 keys: %d %s", resp.StatusCode, body)
	}
	resp, body = n.do(t, http.MethodGet, "/groups/g/mget")
	wantError(t, resp, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); allow != "POST" {
		t.Errorf("Allow: %q, want POST", allow)
	}
}

// TestMgetNeedsNoToken: with an admin token set, an mget is served without it (it is a read),
// while PUT, DELETE and other POSTs still need it.
func TestMgetNeedsNoToken(t *testing.T) {
	cfg := LocalConfig()
	cfg.AdminToken = testAdminToken
	n := startNode(t, cfg, nil)
	items := mgetKeys(t, n.srv.Client(), n.srv.URL, []string{"a", "missing-b"})
	checkMgetItem(t, "no token", items[0])
	checkMgetItem(t, "no token", items[1])
	// With the token it works the same.
	mgetKeys(t, n.srv.Client(), n.srv.URL, []string{"a"}, "Authorization", "Bearer "+testAdminToken)

	for _, tt := range []struct{ method, path string }{
		{http.MethodPut, keyPath("g", "a")},
		{http.MethodDelete, keyPath("g", "a")},
		{http.MethodDelete, "/groups/g"},
		{http.MethodPost, "/groups/g/mget/x"},
		{http.MethodPost, "/groups/g/keys/mget"},
		{http.MethodPut, "/groups/g/mget"},
		{http.MethodPost, "/groups/mget"},
	} {
		resp, body := n.do(t, tt.method, tt.path)
		wantError(t, resp, body, http.StatusUnauthorized, CodeUnauthorized)
	}
	if c := n.origin.count("a"); c != 1 {
		t.Errorf("a loaded %d times, want 1", c)
	}
	if _, err := n.group.Get(context.Background(), "a"); err != nil {
		t.Errorf("the refused DELETE removed nothing, the value is still served: %v", err)
	}
}

// TestMgetBoundedByLoadTimeout: an mget waits at most the group's load timeout, however many
// slow keys queue behind each other: the keys not filled by then are 504 timeout, and the keys
// that were still queued are not loaded at all.
func TestMgetBoundedByLoadTimeout(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("slow-%d", i)
	}
	for _, it := range mgetKeys(t, n.srv.Client(), n.srv.URL, keys) {
		if it.Status != http.StatusGatewayTimeout || it.Code != CodeTimeout {
			t.Errorf("%s: %d %q, want 504 timeout", it.Key, it.Status, it.Code)
		}
	}
	started := 0
	for _, k := range keys {
		started += n.origin.count(k)
	}
	// GetMany loads 16 keys at a time: the first 16 take the whole load timeout.
	if started >= len(keys) {
		t.Errorf("%d of %d slow keys were loaded: the mget waited for all of them", started, len(keys))
	}
}

// TestMgetStaleItem: an expired value served under the group's stale settings is marked so,
// with ttl_seconds 0 and its age, as a GET marks it with its headers.
func TestMgetStaleItem(t *testing.T) {
	cfg := testGroupConfig()
	cfg.StaleWhileRevalidate = time.Hour
	s := newTestGroup(t, "s", group.LoaderFunc(func(context.Context, string) (group.Value, error) {
		return group.Value{Bytes: []byte("v"), TTL: 20 * time.Millisecond}, nil
	}), cfg)
	n := startNode(t, LocalConfig(), nil, s)
	body := `{"keys":["k"]}`
	var b []byte
	poll(t, 10*time.Second, "an mget served the expired value stale", func() bool {
		var resp *http.Response
		resp, b = postMget(t, n.srv.Client(), n.srv.URL, "s", "application/json", body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("mget: %d %s", resp.StatusCode, b)
		}
		var raw struct{ Items []map[string]any }
		_ = json.Unmarshal(b, &raw)
		return raw.Items[0]["stale"] == true
	})
	it := decodeJSON[struct{ Items []mgetItemBody }](t, b).Items[0]
	var raw struct{ Items []map[string]any }
	_ = json.Unmarshal(b, &raw)
	if it.Status != http.StatusOK || string(it.Value) != "v" || it.TTLSeconds == nil || *it.TTLSeconds != 0 || raw.Items[0]["age_seconds"] == nil {
		t.Errorf("stale item: %s", b)
	}
}

func TestIsMgetPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/groups/g/mget":      true,
		"/groups/a%2Fb/mget":  true,
		"/groups//mget":       false,
		"/groups/mget":        false,
		"/groups/g/mget/":     false,
		"/groups/g/x/mget":    false,
		"/groups/g/keys/mget": false,
		"/mget":               false,
	} {
		if got := isMgetPath(path); got != want {
			t.Errorf("isMgetPath(%q) = %v, want %v", path, got, want)
		}
	}
}
