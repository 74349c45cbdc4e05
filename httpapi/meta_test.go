package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/loader"
)

// TestOriginMetadataThroughTheCluster: an http origin's Content-Type and Last-Modified reach
// a client of every node, the owner's and the others' (over the peer wire), and
// If-Modified-Since with that date is answered 304 everywhere; the origin is asked once.
func TestOriginMetadataThroughTheCluster(t *testing.T) {
	modified := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	l, err := loader.NewHTTP(loader.HTTPConfig{URL: srv.URL + "/items/{key}"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a := startClusterNodeGroup(t, "node-a", l, nil, testGroupConfig())
	b := startClusterNodeGroup(t, "node-b", l, nil, testGroupConfig(), a.Cluster().GossipAddr())
	c := startClusterNodeGroup(t, "node-c", l, nil, testGroupConfig(), a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b, c}
	waitMembers(t, nodes...)

	key := "doc"
	// Non-owners first: the value reaches them over the wire, then the owner serves its own.
	for _, first := range []bool{false, true} {
		for _, n := range nodes {
			if (n.Cluster().Owner(key) == n.Name()) != first {
				continue
			}
			resp, body := n.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
				t.Fatalf("GET on %s: %d %q", n.Name(), resp.StatusCode, body)
			}
			if ct, lm := resp.Header.Get("Content-Type"), resp.Header.Get("Last-Modified"); ct != "application/json" || lm != modified.Format(http.TimeFormat) {
				t.Errorf("GET on %s (%s): Content-Type %q, Last-Modified %q; want the origin's", n.Name(), resp.Header.Get("X-Groupcached-Source"), ct, lm)
			}
			req, _ := http.NewRequest(http.MethodGet, n.url+keyPath("g", key), nil)
			req.Header.Set("If-Modified-Since", modified.Format(http.TimeFormat))
			resp, err := n.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-Modified-Since on %s: %d, want 304", n.Name(), resp.StatusCode)
			}
		}
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("the origin was asked %d times, want 1", got)
	}

	// A PUT's Content-Type, on a non-owner, is what every node serves.
	var writer *clusterNode
	for _, n := range nodes {
		if n.Cluster().Owner(key) != n.Name() {
			writer = n
			break
		}
	}
	req, _ := http.NewRequest(http.MethodPut, writer.url+keyPath("g", key), nil)
	req.Body = http.NoBody
	req.Header.Set("Content-Type", "text/html; charset=utf-8")
	resp, err := writer.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	for _, n := range nodes {
		resp, _ := n.get(t, http.MethodGet, keyPath("g", key))
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/html; charset=utf-8" {
			t.Errorf("GET after the PUT on %s: %d, Content-Type %q; want the PUT's", n.Name(), resp.StatusCode, ct)
		}
	}
}

// TestFileLoaderContentType: hello.txt is served as text/plain; charset=utf-8 with its mtime.
func TestFileLoaderContentType(t *testing.T) {
	root := t.TempDir()
	mtime := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	path := filepath.Join(root, "hello.txt")
	if err := os.WriteFile(path, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	l, err := loader.NewFile(loader.FileConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n := startClusterNodeGroup(t, "node-a", l, nil, testGroupConfig())
	resp, body := n.get(t, http.MethodGet, keyPath("g", "hello.txt"))
	if resp.StatusCode != http.StatusOK || string(body) != "hello\n" {
		t.Fatalf("GET hello.txt: %d %q", resp.StatusCode, body)
	}
	if ct, lm := resp.Header.Get("Content-Type"), resp.Header.Get("Last-Modified"); ct != "text/plain; charset=utf-8" || lm != mtime.Format(http.TimeFormat) {
		t.Errorf("GET hello.txt: Content-Type %q, Last-Modified %q; want text/plain; charset=utf-8 and %s", ct, lm, mtime.Format(http.TimeFormat))
	}
}
