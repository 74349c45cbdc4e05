package wire

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Peer authentication, used when a cluster secret is configured (see the package doc for the
// argument against mutual TLS). All keys come from the secret through HKDF-SHA256 with a
// label of their own, so the secret used for gossip encryption never keys a MAC directly:
//
//	authKey  = HKDF(secret, info "groupcached peer auth v1")
//	upgrade  = HMAC(authKey, "gcp upgrade", method, request-target, sender, receiver, time, nonceC, version)
//	accept   = HMAC(authKey, "gcp accept", receiver, sender, nonceC, nonceS, version, streams)
//	keyC2S   = HMAC(authKey, "gcp c2s", nonceC, nonceS, sender, receiver)
//	keyS2C   = HMAC(authKey, "gcp s2c", nonceC, nonceS, sender, receiver)
//	tag      = HMAC(keyDir, seq, header, payload)[:16]   seq: frames sent so far in that direction
//
// Every variable-length field is length-prefixed, so no two field lists hash alike. The
// server checks the upgrade MAC, a time within Window of its clock, a nonce it has not seen
// inside the window, and membership, before hijacking; the client checks the accept MAC before
// sending a frame. The implicit sequence number makes an injected, replayed, dropped or
// reordered frame fail its tag, and the fresh nonces make every connection's keys new.
const (
	authLabel = "groupcached peer auth v1"
	nonceLen  = 16
	macLen    = sha256.Size
	tagLen    = 16
)

// authKey derives the key every handshake and session key is computed from.
func authKey(secret []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, authLabel, sha256.Size)
	if err != nil {
		panic("wire: HKDF-SHA256 of 32 bytes failed: " + err.Error()) // cannot happen
	}
	return k
}

// macWriter accumulates length-prefixed fields into an HMAC.
type macWriter struct{ h hash.Hash }

func newMAC(key []byte, label string) macWriter {
	m := macWriter{hmac.New(sha256.New, key)}
	m.bytes([]byte(label))
	return m
}

func (m macWriter) bytes(b []byte) macWriter {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	m.h.Write(n[:])
	m.h.Write(b)
	return m
}

func (m macWriter) str(s string) macWriter { return m.bytes([]byte(s)) }

func (m macWriter) u64(v uint64) macWriter {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	m.h.Write(b[:])
	return m
}

func (m macWriter) sum() []byte { return m.h.Sum(nil) }

// upgradeClaim is what the client's upgrade request asserts and signs.
type upgradeClaim struct {
	method, target   string // "GET", the request-target as sent ("/_peer/v2/conn")
	sender, receiver string // node names
	unix             int64  // the sender's clock, seconds
	nonce            []byte // nonceLen random bytes
	version          int
}

func (c upgradeClaim) mac(key []byte) []byte {
	return newMAC(key, "gcp upgrade").str(c.method).str(c.target).str(c.sender).str(c.receiver).
		u64(uint64(c.unix)).bytes(c.nonce).u64(uint64(c.version)).sum()
}

// acceptMAC is the server's proof that it holds the secret, bound to both nonces.
func acceptMAC(key []byte, c upgradeClaim, serverNonce []byte, version, streams int) []byte {
	return newMAC(key, "gcp accept").str(c.receiver).str(c.sender).bytes(c.nonce).
		bytes(serverNonce).u64(uint64(version)).u64(uint64(streams)).sum()
}

// sessionKeys returns the frame keys of one connection, client to server and back.
func sessionKeys(key []byte, c upgradeClaim, serverNonce []byte) (c2s, s2c []byte) {
	c2s = newMAC(key, "gcp c2s").bytes(c.nonce).bytes(serverNonce).str(c.sender).str(c.receiver).sum()
	s2c = newMAC(key, "gcp s2c").bytes(c.nonce).bytes(serverNonce).str(c.sender).str(c.receiver).sum()
	return c2s, s2c
}

func newNonce() []byte {
	b := make([]byte, nonceLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics on a broken kernel)
	return b
}

// frameMAC tags the frames of one direction of one connection. It is used under the lock of
// its writer or by its reader goroutine only.
type frameMAC struct {
	h      hash.Hash
	seq    uint64
	seqBuf [8]byte // here, not on the stack: passed to an interface, it would escape
	sum    [sha256.Size]byte
}

func newFrameMAC(key []byte) *frameMAC { return &frameMAC{h: hmac.New(sha256.New, key)} }

// tag computes the next frame's tag over its header and payload (which may come in two
// pieces) and advances the sequence number.
func (m *frameMAC) tag(hdr, p1, p2 []byte) []byte {
	binary.BigEndian.PutUint64(m.seqBuf[:], m.seq)
	m.seq++
	m.h.Reset()
	m.h.Write(m.seqBuf[:])
	m.h.Write(hdr)
	m.h.Write(p1)
	m.h.Write(p2)
	return m.h.Sum(m.sum[:0])[:tagLen]
}

// nonceCache remembers the nonces of accepted upgrades until their time leaves the window,
// so that a captured upgrade cannot be replayed. It holds at most max nonces: when it is full
// of live ones, upgrades are refused (503) rather than letting an old nonce go. Only upgrades
// whose MAC verified reach it, so only a member can fill it.
type nonceCache struct {
	mu    sync.Mutex
	max   int
	seen  map[[nonceLen]byte]int64 // nonce → unix second after which it cannot be replayed anyway
	order [][nonceLen]byte         // insertion order, for expiry from the front
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, seen: make(map[[nonceLen]byte]int64)}
}

// add records nonce until expires; it reports false for a replay, and full when the cache
// holds max nonces that have not expired yet.
func (c *nonceCache) add(nonce []byte, expires int64, now time.Time) (fresh, full bool) {
	var k [nonceLen]byte
	copy(k[:], nonce)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now.Unix())
	if _, ok := c.seen[k]; ok {
		return false, false
	}
	if len(c.seen) >= c.max {
		return false, true
	}
	c.seen[k] = expires
	c.order = append(c.order, k)
	return true, false
}

// expire drops nonces from the front of the order while they have expired. Expiry times are
// claimed time + window, not monotonic in insertion order, so one long-lived nonce may keep a
// few expired ones behind it for at most two windows: the bound on the cache still holds.
func (c *nonceCache) expire(now int64) {
	i := 0
	for ; i < len(c.order); i++ {
		exp := c.seen[c.order[i]]
		if exp >= now {
			break
		}
		delete(c.seen, c.order[i])
	}
	if i > 0 {
		c.order = append(c.order[:0], c.order[i:]...)
	}
}
