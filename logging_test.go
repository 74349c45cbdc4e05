package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRunVersion(t *testing.T) {
	var stdout, stderr strings.Builder
	if status := run(context.Background(), []string{"-version"}, envMap{}.lookup, &stdout, &stderr); status != 0 {
		t.Fatalf("-version exited %d: %s", status, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "groupcached ") || !strings.Contains(out, " revision ") || !strings.HasSuffix(out, runtime.Version()+"\n") {
		t.Errorf("-version printed %q, want groupcached <version> revision <rev> %s", out, runtime.Version())
	}
	if stderr.Len() != 0 {
		t.Errorf("-version wrote to stderr: %q", stderr.String())
	}
}

// TestRunJSONLogsAndAccessLog runs the command with log_format: json and access_log: true:
// every line it writes is one JSON object, and a request is logged without its key.
func TestRunJSONLogsAndAccessLog(t *testing.T) {
	path := testFiles(t, "  log_format: json\n  access_log: true\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	status := make(chan int, 1)
	go func() {
		status <- run(ctx, []string{"-config", path, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}, quietEnv(nil).lookup, io.Discard, out)
	}()

	// waitLine polls the output for a JSON line whose msg is msg, and returns it.
	waitLine := func(msg string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				var line map[string]any
				if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
					return line
				}
			}
			select {
			case s := <-status:
				t.Fatalf("run exited %d before logging %q:\n%s", s, msg, out)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q line after 30s:\n%s", msg, out)
			}
		}
	}
	ready := waitLine("groupcached ready")
	_, port, err := net.SplitHostPort(ready["http"].(string))
	if err != nil {
		t.Fatalf("ready line %v: %v", ready, err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/groups/files/keys/private-name.txt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	access := waitLine("http request")
	if access["route"] != "/groups/{group}/keys/{key}" || access["key_bytes"] != float64(len("private-name.txt")) || access["status"] != float64(http.StatusNotFound) {
		t.Errorf("access log line %v", access)
	}

	cancel()
	select {
	case s := <-status:
		if s != 0 {
			t.Errorf("run exited %d, want 0", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run still running 15s after its context ended")
	}
	if strings.Contains(out.String(), "private-name") {
		t.Errorf("the key reached the logs:\n%s", out)
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("a log line is not JSON: %q", sc.Text())
		}
	}
}
