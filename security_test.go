package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSecret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
	testToken  = "0123456789abcdef0123456789abcdef"
)

// lockedBuffer collects a running node's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// quietEnv is env with GOMEMLIMIT set, so that run does not change the test process's memory
// limit.
func quietEnv(env envMap) envMap {
	out := envMap{"GOMEMLIMIT": "off"}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// runningNode is run(...) in a goroutine of the test.
type runningNode struct {
	out    *lockedBuffer
	cancel context.CancelFunc
	status chan int
	addr   string // loopback address of the HTTP listener
}

// startRun runs the command with args and env until it logs that it is ready.
func startRun(t *testing.T, env envMap, args ...string) *runningNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runningNode{out: &lockedBuffer{}, cancel: cancel, status: make(chan int, 1)}
	go func() { rn.status <- run(ctx, args, quietEnv(env).lookup, io.Discard, rn.out) }()
	t.Cleanup(func() { rn.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyLine.FindStringSubmatch(rn.out.String()); m != nil {
			_, port, err := net.SplitHostPort(m[1])
			if err != nil {
				t.Fatalf("ready line with address %q: %v", m[1], err)
			}
			rn.addr = net.JoinHostPort("127.0.0.1", port)
			return rn
		}
		select {
		case status := <-rn.status:
			rn.status <- status
			t.Fatalf("run(%q) exited %d before it was ready:\n%s", args, status, rn.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run(%q) not ready after 30s:\n%s", args, rn.out)
		}
	}
}

// stop ends the run and checks that it exited 0.
func (rn *runningNode) stop(t *testing.T) {
	t.Helper()
	rn.cancel()
	select {
	case status := <-rn.status:
		if status != 0 {
			t.Errorf("run exited %d after its context ended, want 0:\n%s", status, rn.out)
		}
		rn.status <- status
	case <-time.After(15 * time.Second):
		t.Errorf("run still running 15s after its context ended:\n%s", rn.out)
	}
}

// testFiles is a config file serving a temporary directory, with extra node settings.
func testFiles(t *testing.T, node string) string {
	t.Helper()
	return writeConfig(t, "node:\n  preset: local\n  shutdown_delay: 0s\n"+node+"groups:\n  - name: files\n    loader: {type: file, root: "+t.TempDir()+"}\n")
}

// TestProtectedModeRefusesToStart: a node that other hosts could reach does not start without
// both the cluster secret and the admin token, and says which variables to set.
func TestProtectedModeRefusesToStart(t *testing.T) {
	loopGossip := []string{"-gossip", "127.0.0.1:0"}
	tests := []struct {
		name    string
		node    string // node settings in the file
		args    []string
		env     envMap
		want    []string
		notWant []string
	}{
		{"wildcard HTTP address", "", append([]string{"-http", "0.0.0.0:0"}, loopGossip...), nil,
			[]string{"flag -http: protected mode", "0.0.0.0:0", "GROUPCACHED_SECRET_KEY (", "GROUPCACHED_ADMIN_TOKEN (", "node.insecure: true"}, nil},
		{"empty host", "", append([]string{"-http", ":0"}, loopGossip...), nil,
			[]string{"protected mode", `listen on :0,`}, nil},
		{"IPv6 wildcard gossip address", "", []string{"-http", "127.0.0.1:0", "-gossip", "[::]:0"}, nil,
			[]string{"flag -gossip: protected mode", "[::]:0"}, nil},
		{"a host name", "  http_addr: cache.internal:0\n", loopGossip, nil,
			[]string{":4: node.http_addr: protected mode", "cache.internal:0"}, nil},
		{"wildcard peer address", "  peer_addr: 0.0.0.0:0\n", append([]string{"-http", "127.0.0.1:0"}, loopGossip...), nil,
			[]string{":4: node.peer_addr: protected mode"}, nil},
		{"secret without a token", "", append([]string{"-http", "0.0.0.0:0"}, loopGossip...), envMap{"GROUPCACHED_SECRET_KEY": testSecret},
			[]string{"protected mode", "GROUPCACHED_ADMIN_TOKEN ("}, []string{"GROUPCACHED_SECRET_KEY ("}},
		{"token without a secret", "", append([]string{"-http", "0.0.0.0:0"}, loopGossip...), envMap{"GROUPCACHED_ADMIN_TOKEN": testToken},
			[]string{"protected mode", "GROUPCACHED_SECRET_KEY ("}, []string{"GROUPCACHED_ADMIN_TOKEN ("}},
		{"variables named in the file", "  secret_key_env: MY_SECRET\n  admin_token_env: MY_TOKEN\n",
			append([]string{"-http", "0.0.0.0:0"}, loopGossip...), envMap{"GROUPCACHED_SECRET_KEY": testSecret, "GROUPCACHED_ADMIN_TOKEN": testToken},
			[]string{"MY_SECRET (", "MY_TOKEN ("}, nil},
		{"short admin token", "", []string{"-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}, envMap{"GROUPCACHED_ADMIN_TOKEN": "short"},
			[]string{"environment GROUPCACHED_ADMIN_TOKEN: the admin token must be at least 16 characters"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out lockedBuffer
			args := append([]string{"-config", testFiles(t, tt.node)}, tt.args...)
			status := run(context.Background(), args, quietEnv(tt.env).lookup, &out, &out)
			if status != 2 {
				t.Fatalf("run(%q) = %d, want 2; output:\n%s", args, status, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestProtectedModeStarts: the embedded configuration on loopback needs no secret; a wildcard
// address starts with both secrets, and the token then guards DELETE; insecure: true starts
// without them and says so at WARN.
func TestProtectedModeStarts(t *testing.T) {
	loopback := []string{"-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}
	t.Run("embedded config on loopback, no secrets", func(t *testing.T) {
		rn := startRun(t, nil, loopback...)
		if strings.Contains(rn.out.String(), "level=WARN") {
			t.Errorf("warnings on the default configuration:\n%s", rn.out)
		}
	})
	t.Run("wildcard address with the secret and the token", func(t *testing.T) {
		env := envMap{"GROUPCACHED_SECRET_KEY": testSecret, "GROUPCACHED_ADMIN_TOKEN": testToken}
		rn := startRun(t, env, "-config", testFiles(t, ""), "-http", "0.0.0.0:0", "-gossip", "127.0.0.1:0")
		for _, tc := range []struct {
			token  string
			status int
		}{{"", http.StatusUnauthorized}, {"wrong-token-wrong-token", http.StatusUnauthorized}, {testToken, http.StatusOK}} {
			req, _ := http.NewRequest(http.MethodDelete, "http://"+rn.addr+"/groups/files", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("DELETE with token %q: %d, want %d", tc.token, resp.StatusCode, tc.status)
			}
		}
	})
	t.Run("insecure: true", func(t *testing.T) {
		rn := startRun(t, nil, "-config", testFiles(t, "  insecure: true\n"), "-http", "0.0.0.0:0", "-gossip", "127.0.0.1:0")
		out := rn.out.String()
		if !strings.Contains(out, `level=WARN msg="protected mode is off (node.insecure: true)`) || !strings.Contains(out, "0.0.0.0:0") {
			t.Errorf("no warning naming the exposed address:\n%s", out)
		}
		resp, err := testClient.Get("http://" + rn.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz = %d", resp.StatusCode)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:80": true, "127.1.2.3:80": true, "[::1]:80": true, "localhost:80": true, "LOCALHOST:1": true,
		"0.0.0.0:80": false, "[::]:80": false, ":80": false, "10.0.0.1:80": false, "cache.internal:80": false,
		"[::ffff:127.0.0.1]:80": true, "nonsense": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRunServesTLS maps node.tls, max_connections and peer_addr onto the node and serves
// HTTPS with them.
func TestRunServesTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	node := "  tls: {cert_file: " + certFile + ", key_file: " + keyFile + "}\n  max_connections: 64\n  peer_addr: 127.0.0.1:0\n"
	rn := startRun(t, nil, "-config", testFiles(t, node), "-http", "127.0.0.1:0", "-gossip", "127.0.0.1:0")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + rn.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("GET /readyz over TLS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if out := rn.out.String(); !strings.Contains(out, "tls=true") || !strings.Contains(out, " peer=127.0.0.1:") {
		t.Errorf("the ready line shows no TLS or peer address:\n%s", out)
	}
}

func TestNodeSettingsSecurity(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	path := testFiles(t, "  tls: {cert_file: "+certFile+", key_file: "+keyFile+", client_ca_file: "+certFile+"}\n"+
		"  peer_addr: 127.0.0.1:9999\n  max_connections: 100\n  max_idle_connections: 10\n  purge_rate: 2.5\n  purge_burst: 7\n  admin_token_env: MY_TOKEN\n")
	cfg, err := loadConfig(mustFlags(t, "-config", path), envMap{"MY_TOKEN": testToken}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	nc := nodeSettings(cfg, quietLogger())
	if nc.TLS == nil || nc.TLS.CertFile != certFile || nc.TLS.KeyFile != keyFile || nc.TLS.ClientCAFile != certFile {
		t.Errorf("TLS = %+v", nc.TLS)
	}
	if nc.PeerAddr != "127.0.0.1:9999" || nc.MaxConnections != 100 || nc.MaxIdleConnections != 10 {
		t.Errorf("PeerAddr %q, MaxConnections %d, MaxIdleConnections %d", nc.PeerAddr, nc.MaxConnections, nc.MaxIdleConnections)
	}
	if nc.API.AdminToken != testToken || nc.API.PurgeRate != 2.5 || nc.API.PurgeBurst != 7 {
		t.Errorf("API: token %q, purge rate %v, burst %d", nc.API.AdminToken, nc.API.PurgeRate, nc.API.PurgeBurst)
	}
	if nc := nodeSettings(defaultsOnly(t), quietLogger()); nc.TLS != nil || nc.API.AdminToken != "" || nc.API.PurgeRate != defaultPurgeRate {
		t.Errorf("defaults: TLS %+v, token %q, purge rate %v", nc.TLS, nc.API.AdminToken, nc.API.PurgeRate)
	}
}

func defaultsOnly(t *testing.T) Config {
	t.Helper()
	cfg, err := loadConfig(mustFlags(t, "-config", testFiles(t, "")), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
