package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNodeConfig is a one-node Config on loopback ports picked by the kernel, serving the
// directory dir.
func testNodeConfig(t *testing.T, dir, httpAddr string) Config {
	t.Helper()
	path := writeConfig(t, "node:\n  preset: local\n  shutdown_delay: 0s\ngroups:\n  - name: files\n    loader: {type: file, root: "+dir+"}\n")
	cfg, err := loadConfig(mustFlags(t, "-config", path, "-name", "solo", "-http", httpAddr, "-gossip", "127.0.0.1:0"), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNodeLifecycle(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := newNode(testNodeConfig(t, dir, "127.0.0.1:0"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr := n.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/readyz", http.StatusOK, ""},
		{"/healthz", http.StatusOK, ""},
		{"/groups/files/keys/hello.txt", http.StatusOK, "hello"},
		{"/groups/files/keys/missing.txt", http.StatusNotFound, ""},
		{"/groups/nope/keys/x", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := testClient.Get("http://" + addr + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.body != "" && string(b) != tt.body) {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, resp.StatusCode, b, tt.status, tt.body)
			}
		})
	}

	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the node still accepts connections after stop")
	}
}

func TestNodeBuildFailureReleasesItsPort(t *testing.T) {
	// Reserve a port, free it, and build a node on it whose loader cannot start.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cfg := testNodeConfig(t, filepath.Join(t.TempDir(), "does-not-exist"), addr)
	_, err = newNode(cfg, quietLogger())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Path != "groups[0].loader" || ce.Line != 6 {
		t.Fatalf("newNode = %v, want a *ConfigError at groups[0].loader, line 6", err)
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the failed node kept its HTTP port: %v", err)
	}
	l.Close()
}

func TestNodeStartFailureReleasesItsPort(t *testing.T) {
	// A gossip port that is taken makes start fail; the HTTP port must be free again.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testNodeConfig(t, t.TempDir(), "127.0.0.1:0")
	cfg.Node.GossipAddr = taken.Addr().String()
	n, err := newNode(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addr := n.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err == nil {
		t.Fatal("start succeeded on a gossip port that is taken")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the failed node kept its HTTP port: %v", err)
	}
	l.Close()
}

func TestRunExitStatus(t *testing.T) {
	bad := writeConfig(t, "groups:\n  - name: g\n    ttl: forever\n    loader: {type: file, root: .}\n")
	noRoot := writeConfig(t, "groups:\n  - name: g\n    loader:\n      type: file\n      root: "+filepath.Join(t.TempDir(), "gone")+"\n")
	tests := []struct {
		name   string
		args   []string
		status int
		output string
	}{
		{"help", []string{"-h"}, 0, "Usage: groupcached"},
		{"unknown flag", []string{"-port", "1"}, 2, "flag provided but not defined: -port"},
		{"bad value in the file", []string{"-config", bad}, 2, bad + `:3: groups[0].ttl: invalid duration "forever"`},
		{"loader that cannot start", []string{"-config", noRoot, "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}, 2, noRoot + ":4: groups[0].loader: "},
		{"missing config file", []string{"-config", filepath.Join(t.TempDir(), "none.yaml")}, 2, "flag -config: reading the config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			status := run(context.Background(), tt.args, envMap{}.lookup, &out, &out)
			if status != tt.status || !strings.Contains(out.String(), tt.output) {
				t.Errorf("run(%q) = %d, output:\n%s\nwant %d and output containing %q", tt.args, status, out.String(), tt.status, tt.output)
			}
		})
	}
}
