package peers

import (
	"bufio"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A fake owner: a raw listener that speaks the peer wire as peers/wire documents it (the
// upgrade, the frames and, with a secret, the handshake's MACs and the frame tags of
// auth.go), written here from the documentation and not from the package's code, so that a
// test can send what no wire.Server would: a frame declaring 2 GiB, a value cut off, an
// endless stream, a TTL of ten years, or nothing at all.

// Frame types and layout (peers/wire/frame.go's documentation).
const (
	fakeFetch      = 0x01
	fakePing       = 0x40
	fakeFetchReply = 0x81
	fakePong       = 0xc0
	fakeHeaderLen  = 10
	fakeTagLen     = 16
)

type fakeOptions struct {
	name   string // the node name the 101 announces; zero: "owner"
	secret []byte // the cluster secret; nil: no MACs
	// accept, when set, is called with the raw connection instead of answering the upgrade:
	// a fake that never answers.
	accept func(nc net.Conn)
	// serve runs on each upgraded connection.
	serve func(f *fakeConn)
}

// fakeConn is one upgraded connection of a fake owner.
type fakeConn struct {
	t         testing.TB
	nc        net.Conn
	br        *bufio.Reader
	send, rcv *fakeMAC // nil without a secret
	mu        sync.Mutex
}

// fakeOwner starts a fake owner on 127.0.0.1:0 and returns its address. Cleanup closes the
// listener and every connection.
func fakeOwner(t testing.TB, opt fakeOptions) string {
	t.Helper()
	if opt.name == "" {
		opt.name = "owner"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				if opt.accept != nil {
					opt.accept(nc)
					return
				}
				f, err := fakeUpgrade(t, nc, opt)
				if err != nil {
					return
				}
				if opt.serve != nil {
					opt.serve(f)
				}
			})
		}
	})
	return l.Addr().String()
}

// fakeUpgrade reads the client's upgrade and answers 101, with the server's proof and the
// session keys when there is a secret (auth.go: accept, keyC2S, keyS2C).
func fakeUpgrade(t testing.TB, nc net.Conn, opt fakeOptions) (*fakeConn, error) {
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: groupcached-peer/2\r\n" +
		"Groupcached-Wire: 1\r\nGroupcached-Wire-Streams: 256\r\nGroupcached-Peer: " + opt.name + "\r\n"
	f := &fakeConn{t: t, nc: nc, br: br}
	if opt.secret != nil {
		b64 := base64.RawURLEncoding
		key, err := hkdf.Key(sha256.New, opt.secret, nil, "groupcached peer auth v1", sha256.Size)
		if err != nil {
			return nil, err
		}
		sender, receiver := req.Header.Get("Groupcached-Peer"), req.Header.Get("Groupcached-Peer-To")
		clientNonce, err := b64.DecodeString(req.Header.Get("Groupcached-Peer-Nonce"))
		if err != nil {
			return nil, err
		}
		serverNonce := make([]byte, 16)
		_, _ = rand.Read(serverNonce)
		const version, streams = 1, 256
		proof := fakeFields(key, "gcp accept").str(receiver).str(sender).bytes(clientNonce).bytes(serverNonce).
			u64(version).u64(streams).sum()
		resp += "Groupcached-Peer-Nonce: " + b64.EncodeToString(serverNonce) + "\r\nGroupcached-Peer-Auth: " + b64.EncodeToString(proof) + "\r\n"
		c2s := fakeFields(key, "gcp c2s").bytes(clientNonce).bytes(serverNonce).str(sender).str(receiver).sum()
		s2c := fakeFields(key, "gcp s2c").bytes(clientNonce).bytes(serverNonce).str(sender).str(receiver).sum()
		f.send, f.rcv = &fakeMAC{h: hmac.New(sha256.New, s2c)}, &fakeMAC{h: hmac.New(sha256.New, c2s)}
	}
	if _, err := io.WriteString(nc, resp+"\r\n"); err != nil {
		return nil, err
	}
	return f, nil
}

// readRequest reads frames until a fetch arrives and returns its request id and key; pings
// are read and not answered (a fake owner that only serves fetches looks frozen to the
// liveness check). It returns id 0 once the connection is closed.
func (f *fakeConn) readRequest() (id uint32, key string) {
	for {
		var hdr [fakeHeaderLen]byte
		if _, err := io.ReadFull(f.br, hdr[:]); err != nil {
			return 0, ""
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		payload := make([]byte, n)
		if _, err := io.ReadFull(f.br, payload); err != nil {
			return 0, ""
		}
		if f.rcv != nil {
			var tag [fakeTagLen]byte
			if _, err := io.ReadFull(f.br, tag[:]); err != nil {
				return 0, ""
			}
			if !hmac.Equal(tag[:], f.rcv.tag(hdr[:], payload)) {
				f.t.Errorf("fake owner: the client's frame tag does not verify")
				return 0, ""
			}
		}
		if hdr[4] == fakeFetch && len(payload) > 0 && len(payload) >= 1+int(payload[0]) {
			// [u8 group length][group][key]
			return binary.BigEndian.Uint32(hdr[6:10]), string(payload[1+int(payload[0]):])
		}
	}
}

// writeFrame writes a complete frame (and its tag).
func (f *fakeConn) writeFrame(typ, flags byte, id uint32, payload []byte) error {
	return f.writeRaw(typ, flags, id, uint32(len(payload)), payload)
}

// writeRaw writes a header declaring length bytes, then payload, whatever its length; the
// tag follows when payload is complete.
func (f *fakeConn) writeRaw(typ, flags byte, id, length uint32, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	hdr := make([]byte, fakeHeaderLen, fakeHeaderLen+len(payload)+fakeTagLen)
	binary.BigEndian.PutUint32(hdr[0:4], length)
	hdr[4], hdr[5] = typ, flags
	binary.BigEndian.PutUint32(hdr[6:10], id)
	frame := append(hdr, payload...)
	if f.send != nil && int(length) == len(payload) {
		frame = append(frame, f.send.tag(hdr[:fakeHeaderLen], payload)...)
	}
	_, err := f.nc.Write(frame)
	return err
}

// value is the payload of a successful fetch reply: the TTL in nanoseconds, then the value.
func fakeValue(ttl time.Duration, value []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(ttl)), value...)
}

// hang blocks until the connection is closed (by the client, or by the test's cleanup).
func (f *fakeConn) hang() { _, _ = io.Copy(io.Discard, f.nc) }

// fakeFields accumulates length-prefixed fields into an HMAC, as auth.go's macWriter.
type fakeFieldMAC struct{ h hash.Hash }

func fakeFields(key []byte, label string) fakeFieldMAC {
	m := fakeFieldMAC{hmac.New(sha256.New, key)}
	return m.str(label)
}

func (m fakeFieldMAC) bytes(b []byte) fakeFieldMAC {
	m.h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	m.h.Write(b)
	return m
}

func (m fakeFieldMAC) str(s string) fakeFieldMAC { return m.bytes([]byte(s)) }

func (m fakeFieldMAC) u64(v uint64) fakeFieldMAC {
	m.h.Write(binary.BigEndian.AppendUint64(nil, v))
	return m
}

func (m fakeFieldMAC) sum() []byte { return m.h.Sum(nil) }

// fakeMAC tags the frames of one direction: HMAC(key, seq, header, payload)[:16].
type fakeMAC struct {
	h   hash.Hash
	seq uint64
}

func (m *fakeMAC) tag(hdr, payload []byte) []byte {
	m.h.Reset()
	m.h.Write(binary.BigEndian.AppendUint64(nil, m.seq))
	m.seq++
	m.h.Write(hdr)
	m.h.Write(payload)
	return m.h.Sum(nil)[:fakeTagLen]
}

// signedUpgrade is the text of an upgrade request from sender to receiver at unix time,
// signed with secret (nil: unsigned), as auth.go documents the MAC.
func signedUpgrade(secret []byte, sender, receiver string, unix int64) string {
	req := "GET /_peer/v2/conn HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: groupcached-peer/2\r\n" +
		"Groupcached-Wire: 1\r\nGroupcached-Peer: " + sender + "\r\n"
	if secret != nil {
		key, _ := hkdf.Key(sha256.New, secret, nil, "groupcached peer auth v1", sha256.Size)
		nonce := make([]byte, 16)
		_, _ = rand.Read(nonce)
		mac := fakeFields(key, "gcp upgrade").str("GET").str("/_peer/v2/conn").str(sender).str(receiver).
			u64(uint64(unix)).bytes(nonce).u64(1).sum()
		b64 := base64.RawURLEncoding
		req += "Groupcached-Peer-To: " + receiver + "\r\nGroupcached-Peer-Time: " + strconv.FormatInt(unix, 10) +
			"\r\nGroupcached-Peer-Nonce: " + b64.EncodeToString(nonce) + "\r\nGroupcached-Peer-Auth: " + b64.EncodeToString(mac) + "\r\n"
	}
	return req + "\r\n"
}

// upgradeStatus sends a raw upgrade request to addr and returns the answer's status.
func upgradeStatus(t testing.TB, addr, request string) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the upgrade's answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
