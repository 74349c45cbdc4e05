package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzFrameServer feeds arbitrary bytes to a server connection as the frames after the
// upgrade: it must never panic, answer what it can, and never allocate more than its bound
// for a request.
func FuzzFrameServer(f *testing.F) {
	f.Add(rawFrame(typeFetch, 0, 1, appendKeyRequest(nil, "g", "k")))
	f.Add(rawFrame(typeBatch, 0, 2, appendBatchRequest(nil, "g", []string{"a", "missing", ""})))
	f.Add(append(rawFrame(typeRemove, 0, 3, appendKeyRequest(nil, "g", "k")), rawFrame(typePurge, 0, 4, []byte{1, 'g'})...))
	f.Add(rawFrame(typePing, 0, 5, nil))
	f.Add(rawFrame(typeSet, 0, 6, []byte("reserved")))
	f.Add(rawFrame(typeSet, 0, 8, append(appendSetRequest(nil, "g", "k", Value{TTL: time.Second, ContentType: "text/plain"}), "v"...)))
	f.Add(rawFrame(typeFetch, 0, 7, []byte{200, 'g'}))
	f.Add(rawFrame(typePeek, 0, 9, appendKeyRequest(nil, "g", "k")))
	f.Add(rawFrame(typePush, 0, 10, append(appendSetRequest(nil, "g", "k", Value{TTL: time.Second}), "v"...)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := testServerConfig()
		cfg.MaxStreams = 4
		cfg.MaxBatchKeys = 8
		cfg.MaxKeyBytes = 64
		cfg.MaxValueBytes = 1024
		cfg.Logger = slog.New(slog.DiscardHandler)
		s, err := NewServer(cfg, &fakeHandler{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		conn := fakeConn{bytes.NewReader(data)}
		sc := &serverConn{s: s, nc: conn, peer: "fuzz", slots: make(chan struct{}, cfg.MaxStreams),
			r: newReader(conn, nil, 4096)}
		sc.ctx, sc.cancel = context.WithCancel(s.life)
		sc.w = newWriter(conn, nil, cfg.WriteQueueBytes, func(error) {})
		_ = sc.serve()
		for range cap(sc.slots) { // every request served: all slots free
			sc.slots <- struct{}{}
		}
		sc.cancel()
		if max := max(int64(s.cfg.maxRequest()), s.cfg.maxSet()); int64(cap(sc.r.scratch)) > max {
			t.Fatalf("read buffer of %d bytes, bound %d", cap(sc.r.scratch), max)
		}
	})
}

// FuzzFrameClient feeds arbitrary bytes to a client connection as the server's frames, with
// one call of each kind in flight: it must never panic, complete every call exactly once
// (a second completion would close a closed channel), and never return a value over the
// limit.
func FuzzFrameClient(f *testing.F) {
	ok := append(appendTTL(nil, time.Minute), "value"...)
	f.Add(rawFrame(typeFetchReply, 0, 1, ok))
	f.Add(append(rawFrame(typeBatchItem, 0, 2, append([]byte{0, 0, 0, 1}, ok...)),
		rawFrame(typeBatchItem, flagError, 2, []byte{0xff, 0xff, 0xff, 0xff, byte(CodeBadRequest), 'x'})...))
	f.Add(append(rawFrame(typeRemoveAck, 0, 3, nil), rawFrame(typePurgeAck, flagError, 4, []byte{byte(CodeShuttingDown)})...))
	f.Add(append(rawFrame(typePong, 0, 5, nil), rawFrame(typeGoAway, 0, 0, []byte{7, 'b', 'y', 'e'})...))
	f.Add(rawFrame(typeFetchReply, 0, 6, ok))
	meta, _ := appendSuccess(nil, Value{TTL: time.Minute, ContentType: "application/json", LastModified: time.Unix(1e9, 0)})
	f.Add(rawFrame(typeFetchReply, flagMeta, 1, append(meta, "{}"...)))
	f.Add(rawFrame(typeBatchItem, flagMeta, 2, append([]byte{0, 0, 0, 0}, meta...)))
	f.Add(append(rawFrame(typePeekReply, flagMeta, 7, append(meta, "{}"...)), rawFrame(typePushAck, 0, 8, nil)...))
	f.Add(rawFrame(typePeekReply, flagError, 7, []byte{byte(CodeNotFound), 'n'}))
	stale, flags := appendResult(nil, Value{ContentType: "text/plain", Stale: true, Age: time.Minute}, true)
	f.Add(rawFrame(typeFetchReply, flags, 1, append(stale, "old"...)))
	f.Add(rawFrame(typeBatchItem, flagStale, 2, append([]byte{0, 0, 0, 2}, append(appendTTL(nil, 1), appendTTL(nil, time.Second)...)...)))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxValue = 1024
		cfg := testClientConfig("127.0.0.1:1")
		cfg.MaxValueBytes = maxValue
		c, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conn := fakeConn{bytes.NewReader(data)}
		cc := newClientConn(c, &session{nc: conn, br: bufio.NewReader(conn), streams: 8})
		asyncDone := 0
		calls := []*call{
			{typ: typeFetch}, {typ: typeBatch, results: make([]Result, 3)}, {typ: typeRemove},
			{typ: typePurge}, {typ: typePing}, {typ: typeFetch, fn: func(Value, error) { asyncDone++ }},
			{typ: typePeek}, {typ: typePush},
		}
		for i, cl := range calls {
			if cl.fn == nil {
				cl.done = make(chan struct{})
			}
			for j := range cl.results {
				cl.results[j].Err = errPending
			}
			cl.id = uint32(i + 1)
			cl.deadline = time.Now().Add(time.Hour).UnixNano()
			cc.pending[cl.id] = cl
		}
		cc.inflight.Store(int32(len(calls)))
		cc.readLoop()
		for _, cl := range calls {
			if cl.done != nil {
				select {
				case <-cl.done:
				default:
					t.Fatalf("call %d (type %#x) never completed", cl.id, cl.typ)
				}
			}
			if len(cl.val.Bytes) > maxValue {
				t.Fatalf("value of %d bytes, limit %d", len(cl.val.Bytes), maxValue)
			}
			for _, r := range cl.results {
				if r.Err == errPending || len(r.Bytes) > maxValue {
					t.Fatalf("batch result %+v", r)
				}
			}
		}
		if asyncDone != 1 {
			t.Fatalf("async call completed %d times", asyncDone)
		}
	})
}

// FuzzUpgradeRequest feeds arbitrary bytes to the server as an upgrade request: the checks
// must never panic, and accept only what carries a valid MAC.
func FuzzUpgradeRequest(f *testing.F) {
	key := authKey(testSecret)
	cfg := authClientConfig("127.0.0.1:1").withDefaults()
	now := time.Unix(1_800_000_000, 0)
	claim := newClaim(&cfg, now)
	claim.nonce = bytes.Repeat([]byte{7}, nonceLen)
	f.Add([]byte(upgradeRequest(&cfg, key, claim)))
	f.Add([]byte(upgradeRequest(&cfg, nil, claim)))
	f.Add([]byte("GET / HTTP/1.1\r\nConnection: upgrade, keep-alive\r\nUpgrade: a, groupcached-peer/2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		scfg := testServerConfig()
		scfg.Secret = testSecret
		s, err := NewServer(scfg, &fakeHandler{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, _, ref := s.checkUpgrade(r, now)
		if ref != nil {
			if ref.Status < 400 || ref.Code == 0 {
				t.Fatalf("refusal %+v", ref)
			}
			return
		}
		sum, _ := b64.DecodeString(r.Header.Get(hdrAuth))
		if !hmac.Equal(sum, got.mac(key)) {
			t.Fatalf("accepted an upgrade without a valid MAC: %q", data)
		}
	})
}

// FuzzAcceptResponse feeds arbitrary bytes to the client as the answer to its upgrade: it
// must never panic, read no more than the handshake bound, and accept only a valid proof.
func FuzzAcceptResponse(f *testing.F) {
	key := authKey(testSecret)
	cfg := authClientConfig("127.0.0.1:1").withDefaults()
	claim := newClaim(&cfg, time.Unix(1_800_000_000, 0))
	claim.nonce = bytes.Repeat([]byte{7}, nonceLen)
	serverNonce := bytes.Repeat([]byte{9}, nonceLen)
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + UpgradeToken + "\r\nConnection: Upgrade\r\n" +
		hdrWire + ": 1\r\n" + hdrStreams + ": 256\r\n" + hdrPeer + ": owner\r\n" + hdrNonce + ": " +
		b64.EncodeToString(serverNonce) + "\r\n" + hdrAuth + ": " +
		b64.EncodeToString(acceptMAC(key, claim, serverNonce, 1, 256)) + "\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\nGroupcached-Error: unauthorized\r\nContent-Length: 5\r\n\r\nnope\n"))
	f.Add([]byte("HTTP/1.1 101 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 100)+"\r\n", 200) + "\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		hr := &handshakeReader{r: src, n: maxHandshakeBytes}
		s, err := readAccept(bufio.NewReaderSize(hr, 4096), &cfg, key, claim)
		if read := int64(len(data)) - int64(src.Len()); read > maxHandshakeBytes {
			t.Fatalf("read %d bytes of the answer, bound %d", read, maxHandshakeBytes)
		}
		if err != nil {
			return
		}
		if s.send == nil || s.rcv == nil || s.streams < 1 {
			t.Fatalf("accepted without session keys: %+v", s)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			t.Fatalf("accepted an answer net/http cannot parse: %v", err)
		}
		nonce, _ := b64.DecodeString(resp.Header.Get(hdrNonce))
		sum, _ := b64.DecodeString(resp.Header.Get(hdrAuth))
		if !hmac.Equal(sum, acceptMAC(key, claim, nonce, 1, s.streams)) {
			t.Fatalf("accepted an answer without a valid proof: %q", data)
		}
	})
}
