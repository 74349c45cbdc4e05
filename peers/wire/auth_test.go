package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func authServer(t *testing.T) *testServer {
	scfg := testServerConfig()
	scfg.Secret = testSecret
	scfg.IsMember = func(name, _ string) bool { return name == "asker" || name == "other" }
	return startServer(t, scfg, &fakeHandler{}, serverOptions{})
}

func authClientConfig(addr string) ClientConfig {
	cfg := testClientConfig(addr)
	cfg.Secret = testSecret
	return cfg
}

func TestUpgradeAuthentication(t *testing.T) {
	ts := authServer(t)
	cfg := authClientConfig(ts.addr).withDefaults()
	key := authKey(testSecret)
	now := time.Now()
	signed := func(edit func(*upgradeClaim)) upgradeClaim {
		c := newClaim(&cfg, now)
		c.nonce = newNonce()
		if edit != nil {
			edit(&c)
		}
		return c
	}
	replayed := signed(nil)
	for _, tt := range []struct {
		name   string
		key    []byte
		claim  upgradeClaim
		status int
	}{
		{"authenticated", key, signed(nil), http.StatusSwitchingProtocols},
		{"unauthenticated", nil, signed(nil), http.StatusUnauthorized},
		{"wrong secret", authKey([]byte("another secret of 32 bytes......")), signed(nil), http.StatusForbidden},
		{"gossip secret used directly", testSecret, signed(nil), http.StatusForbidden},
		{"signed for another path", key, signed(func(c *upgradeClaim) { c.target = "/_peer/v1/fetch" }), http.StatusForbidden},
		{"addressed to another node", key, signed(func(c *upgradeClaim) { c.receiver = "other" }), http.StatusForbidden},
		{"stale timestamp", key, signed(func(c *upgradeClaim) { c.unix -= 35 }), http.StatusForbidden},
		{"future timestamp", key, signed(func(c *upgradeClaim) { c.unix += 35 }), http.StatusForbidden},
		{"inside the window", key, signed(func(c *upgradeClaim) { c.unix -= 25 }), http.StatusSwitchingProtocols},
		{"not a member", key, signed(func(c *upgradeClaim) { c.sender = "mallory" }), http.StatusForbidden},
		{"first use of a nonce", key, replayed, http.StatusSwitchingProtocols},
		{"replayed nonce", key, replayed, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.Self, c.Peer = tt.claim.sender, tt.claim.receiver
			_, _, resp := rawUpgrade(t, c, tt.key, tt.claim)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != http.StatusSwitchingProtocols && resp.Header.Get(hdrError) != "unauthorized" {
				t.Errorf("%s = %q, want unauthorized", hdrError, resp.Header.Get(hdrError))
			}
		})
	}
}

func TestClientsWithoutTheSecretAreRefused(t *testing.T) {
	ts := authServer(t)
	for _, tt := range []struct {
		name string
		edit func(*ClientConfig)
	}{
		{"no secret", func(c *ClientConfig) { c.Secret = nil }},
		{"wrong secret", func(c *ClientConfig) { c.Secret = []byte("wrong") }},
		{"not a member", func(c *ClientConfig) { c.Self = "mallory" }},
		{"expects another node", func(c *ClientConfig) { c.Peer = "other" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := authClientConfig(ts.addr)
			tt.edit(&cfg)
			_, err := newClient(t, cfg).Fetch(context.Background(), "g", "k")
			mustUnavailable(t, err, ErrAuth)
		})
	}
	if _, err := newClient(t, authClientConfig(ts.addr)).Fetch(context.Background(), "g", "k"); err != nil {
		t.Fatalf("the member with the secret: %v", err)
	}
}

// A server that cannot prove it holds the secret is not talked to.
func TestClientRefusesAnImpostor(t *testing.T) {
	for _, tt := range []struct {
		name string
		scfg func(*ServerConfig)
	}{
		{"no secret", func(c *ServerConfig) {}},
		{"another name", func(c *ServerConfig) { c.Secret = testSecret; c.Name = "impostor" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			scfg := testServerConfig()
			tt.scfg(&scfg)
			h := &fakeHandler{}
			ts := startServer(t, scfg, h, serverOptions{})
			_, err := newClient(t, authClientConfig(ts.addr)).Fetch(context.Background(), "g", "k")
			mustUnavailable(t, err, ErrAuth)
			if h.fetches.Load() != 0 {
				t.Errorf("the impostor received %d fetches", h.fetches.Load())
			}
		})
	}
	t.Run("a proof replayed from another connection", func(t *testing.T) {
		cfg := authClientConfig("127.0.0.1:1").withDefaults()
		key := authKey(testSecret)
		old := newClaim(&cfg, time.Now())
		old.nonce = newNonce()
		serverNonce := newNonce()
		resp := fmt.Sprintf("HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n%s: 1\r\n%s: 256\r\n%s: owner\r\n%s: %s\r\n%s: %s\r\n\r\n",
			UpgradeToken, hdrWire, hdrStreams, hdrPeer, hdrNonce, b64.EncodeToString(serverNonce),
			hdrAuth, b64.EncodeToString(acceptMAC(key, old, serverNonce, 1, 256)))
		if _, err := readAccept(bufio.NewReader(strings.NewReader(resp)), &cfg, key, old); err != nil {
			t.Fatalf("the genuine answer is refused: %v", err)
		}
		fresh := old
		fresh.nonce = newNonce()
		if _, err := readAccept(bufio.NewReader(strings.NewReader(resp)), &cfg, key, fresh); !errors.Is(err, ErrAuth) {
			t.Fatalf("replayed answer: err = %v, want ErrAuth", err)
		}
	})
}

// On an authenticated connection every frame is tagged: an altered, injected, replayed or
// dropped frame breaks the connection, in either direction.
func TestTamperedFramesCloseTheConnection(t *testing.T) {
	flip := func(f []byte) []byte {
		f = append([]byte(nil), f...)
		f[len(f)-tagLen-1] ^= 1 // the payload's last byte (or the header's, for an empty payload)
		return f
	}
	pong := rawFrame(typePong, 0, 0, nil)
	pong = append(pong, make([]byte, tagLen)...)
	for _, tt := range []struct {
		name     string
		toClient bool
		edit     func(f []byte) [][]byte
	}{
		{"reply altered", true, func(f []byte) [][]byte { return [][]byte{flip(f)} }},
		{"frame injected", true, func(f []byte) [][]byte { return [][]byte{pong, f} }},
		{"reply replayed", true, func(f []byte) [][]byte { return [][]byte{f, f} }},
		{"request altered", false, func(f []byte) [][]byte { return [][]byte{flip(f)} }},
		{"request replayed", false, func(f []byte) [][]byte { return [][]byte{f, f} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := authServer(t)
			p := startProxy(t, ts.addr, true)
			p.edit = func(toClient bool, n int, f []byte) [][]byte {
				if toClient == tt.toClient && n == 1 { // frame 0 is the first call's: it passes
					return tt.edit(f)
				}
				return [][]byte{f}
			}
			c := newClient(t, authClientConfig(p.addr()))
			if _, err := c.Fetch(context.Background(), "g", "first"); err != nil {
				t.Fatalf("first fetch: %v", err)
			}
			_, err := c.Fetch(context.Background(), "g", "second")
			if strings.HasSuffix(tt.name, "replayed") {
				// The genuine frame is read first and may be answered; its copy then breaks
				// the connection.
				waitFor(t, 5*time.Second, "the connection closed", func() bool { return c.Stats().Conns == 0 && ts.served() == 0 })
				return
			}
			mustUnavailable(t, err)
			if tt.toClient && !errors.Is(err, ErrProtocol) {
				t.Errorf("err = %v, want ErrProtocol", err)
			}
			waitFor(t, 5*time.Second, "the server's side closed", func() bool { return ts.served() == 0 })
		})
	}
	t.Run("without a secret the same edit goes unnoticed", func(t *testing.T) {
		ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
		p := startProxy(t, ts.addr, false)
		p.edit = func(toClient bool, n int, f []byte) [][]byte {
			if toClient && n == 1 {
				f = append([]byte(nil), f...)
				f[len(f)-1] ^= 1
			}
			return [][]byte{f}
		}
		c := newClient(t, testClientConfig(p.addr()))
		c.Fetch(context.Background(), "g", "first")
		if v, err := c.Fetch(context.Background(), "g", "second"); err != nil || string(v.Bytes) == "value of second" {
			t.Errorf("Fetch = %q, %v; want the altered value: this is what the tags prevent", v.Bytes, err)
		}
	})
}

func TestNonceCacheIsBounded(t *testing.T) {
	c := newNonceCache(2)
	now := time.Unix(1000, 0)
	for i := range 2 {
		if fresh, full := c.add(newNonce(), now.Unix()+30, now); !fresh || full {
			t.Fatalf("nonce %d: fresh %v, full %v", i, fresh, full)
		}
	}
	n := newNonce()
	if fresh, full := c.add(n, now.Unix()+30, now); fresh || !full {
		t.Fatalf("third nonce in the window: fresh %v, full %v; want refused as full", fresh, full)
	}
	later := now.Add(31 * time.Second)
	if fresh, full := c.add(n, later.Unix()+30, later); !fresh || full {
		t.Fatalf("after the window: fresh %v, full %v", fresh, full)
	}
	if fresh, _ := c.add(n, later.Unix()+30, later); fresh {
		t.Fatal("replayed nonce accepted")
	}
	if len(c.seen) != 1 || len(c.order) != 1 {
		t.Errorf("cache holds %d/%d nonces, want 1", len(c.seen), len(c.order))
	}
}

// TestRefusalsSayWhy: each authentication refusal matches ErrAuth and its own cause, so that
// the node counts and logs them by kind (clock skew with the skew itself).
func TestRefusalsSayWhy(t *testing.T) {
	scfg := testServerConfig()
	scfg.Secret = testSecret
	var remote string
	scfg.IsMember = func(name, remoteAddr string) bool { remote = remoteAddr; return name == "asker" }
	s, err := NewServer(scfg, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := authClientConfig("127.0.0.1:1").withDefaults()
	key := authKey(testSecret)
	now := time.Unix(1_800_000_000, 0)
	request := func(key []byte, edit func(*upgradeClaim)) *http.Request {
		c := newClaim(&cfg, now)
		c.nonce = newNonce()
		if edit != nil {
			edit(&c)
		}
		sent := cfg
		sent.Self, sent.Peer = c.sender, c.receiver
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(upgradeRequest(&sent, key, c))))
		if err != nil {
			t.Fatal(err)
		}
		r.RemoteAddr = "192.0.2.1:4242"
		return r
	}
	replayed := request(key, nil)
	for _, tt := range []struct {
		name   string
		r      *http.Request
		cause  error
		status int
	}{
		{"unauthenticated", request(nil, nil), ErrUnauthenticated, http.StatusUnauthorized},
		{"wrong secret", request(authKey([]byte("another")), nil), ErrBadMAC, http.StatusForbidden},
		{"another receiver", request(key, func(c *upgradeClaim) { c.receiver = "other" }), ErrOtherReceiver, http.StatusForbidden},
		{"clock behind", request(key, func(c *upgradeClaim) { c.unix -= 45 }), ErrClockSkew, http.StatusForbidden},
		{"not a member", request(key, func(c *upgradeClaim) { c.sender = "mallory" }), ErrNotMember, http.StatusForbidden},
		{"first use", replayed, nil, 0},
		{"replay", replayed, ErrReplay, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, ref := s.checkUpgrade(tt.r, now)
			if tt.cause == nil {
				if ref != nil {
					t.Fatalf("refused: %v", ref)
				}
				return
			}
			if ref == nil {
				t.Fatal("accepted")
			}
			var err error = ref
			if !errors.Is(err, ErrAuth) || !errors.Is(err, tt.cause) || ref.Status != tt.status {
				t.Errorf("refusal %v (status %d): want ErrAuth, %v and %d", err, ref.Status, tt.cause, tt.status)
			}
			if tt.cause == ErrClockSkew && ref.Skew != -45*time.Second {
				t.Errorf("Skew = %v, want -45s", ref.Skew)
			}
		})
	}
	if remote != "192.0.2.1:4242" {
		t.Errorf("IsMember saw remote address %q", remote)
	}
	if err := error(refuse(http.StatusServiceUnavailable, CodeOverloaded, "full")); errors.Is(err, ErrAuth) {
		t.Error("an overload refusal matches ErrAuth")
	}
}
