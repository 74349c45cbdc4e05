package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := header{length: 0xdeadbeef, typ: typeBatchItem, flags: flagError, id: 0x01020304}
	b := make([]byte, headerLen)
	h.put(b)
	if got := parseHeader(b); got != h {
		t.Fatalf("parseHeader(put(%+v)) = %+v", h, got)
	}
}

func TestHeaderChecks(t *testing.T) {
	const maxKey, maxBatch, maxValue = 100, 1000, 5000
	for _, tt := range []struct {
		name    string
		h       header
		request bool
		err     error // nil: accepted
	}{
		{"fetch at its bound", header{typ: typeFetch, length: 1 + 255 + maxKey}, true, nil},
		{"fetch over", header{typ: typeFetch, length: 1 + 255 + maxKey + 1}, true, ErrTooLarge},
		{"purge over", header{typ: typePurge, length: 257}, true, ErrTooLarge},
		{"ping with payload", header{typ: typePing, length: 1}, true, ErrTooLarge},
		{"batch at its bound", header{typ: typeBatch, length: maxBatch}, true, nil},
		{"reserved request", header{typ: typeSet, length: 10}, true, nil},
		{"peek at its bound", header{typ: typePeek, length: 1 + 255 + maxKey}, true, nil},
		{"peek over", header{typ: typePeek, length: 1 + 255 + maxKey + 1}, true, ErrTooLarge},
		{"peek reply with metadata", header{typ: typePeekReply, flags: flagMeta, length: ttlLen + maxMetaLen + maxValue}, false, nil},
		{"peek reply over", header{typ: typePeekReply, length: ttlLen + maxValue + 1}, false, ErrTooLarge},
		{"push ack with payload", header{typ: typePushAck, length: 1}, false, ErrTooLarge},
		{"request with flags", header{typ: typeFetch, flags: 1}, true, ErrProtocol},
		{"reply as request", header{typ: typeFetchReply}, true, ErrProtocol},
		{"type zero", header{}, true, ErrProtocol},
		{"declares 4 GiB", header{typ: typeBatch, length: math.MaxUint32}, true, ErrTooLarge},
		{"value at the limit", header{typ: typeFetchReply, length: ttlLen + maxValue}, false, nil},
		{"value one over", header{typ: typeFetchReply, length: ttlLen + maxValue + 1}, false, ErrTooLarge},
		{"batch item at the limit", header{typ: typeBatchItem, length: indexLen + ttlLen + maxValue}, false, nil},
		{"error result over", header{typ: typeFetchReply, flags: flagError, length: 2 + MaxMessageBytes}, false, ErrTooLarge},
		{"ack with payload", header{typ: typeRemoveAck, length: 1}, false, ErrTooLarge},
		{"unknown flag", header{typ: typeFetchReply, flags: 8}, false, ErrProtocol},
		{"stale value with metadata at the limit", header{typ: typeFetchReply, flags: flagStale | flagMeta, length: ttlLen + ageLen + maxMetaLen + maxValue}, false, nil},
		{"stale value one over", header{typ: typeFetchReply, flags: flagStale, length: ttlLen + ageLen + maxValue + 1}, false, ErrTooLarge},
		{"error and stale", header{typ: typeFetchReply, flags: flagError | flagStale}, false, ErrProtocol},
		{"ack marked stale", header{typ: typeRemoveAck, flags: flagStale}, false, ErrProtocol},
		{"value with metadata at the limit", header{typ: typeFetchReply, flags: flagMeta, length: ttlLen + maxMetaLen + maxValue}, false, nil},
		{"value with metadata one over", header{typ: typeFetchReply, flags: flagMeta, length: ttlLen + maxMetaLen + maxValue + 1}, false, ErrTooLarge},
		{"batch item with metadata", header{typ: typeBatchItem, flags: flagMeta, length: indexLen + ttlLen + maxMetaLen + maxValue}, false, nil},
		{"error and metadata", header{typ: typeFetchReply, flags: flagError | flagMeta}, false, ErrProtocol},
		{"ack with metadata", header{typ: typeSetAck, flags: flagMeta}, false, ErrProtocol},
		{"goaway with id", header{typ: typeGoAway, id: 1}, false, ErrProtocol},
		{"request as reply", header{typ: typeFetch}, false, ErrProtocol},
		{"reply declares 4 GiB", header{typ: typeFetchReply, length: math.MaxUint32}, false, ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.request {
				err = tt.h.checkRequest(maxKey, maxBatch)
			} else {
				err = tt.h.checkReply(maxValue)
			}
			if (tt.err == nil) != (err == nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

// endless is a reader of zeros without end that counts what was read from it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.n += int64(len(p))
	return len(p), nil
}

// A frame that declares more than the limit is refused from its header: nothing is
// allocated for it and its payload is not read.
func TestReaderRefusesAnOversizedFrameBeforeAllocating(t *testing.T) {
	src := &endless{}
	hdr := make([]byte, headerLen)
	header{length: math.MaxUint32, typ: typeFetchReply, id: 1}.put(hdr)
	r := newReader(io.MultiReader(bytes.NewReader(hdr), src), nil, 4096)
	check := func(h header) error { return h.checkReply(1 << 20) }
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := r.next(check, func(header) bool { return true })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
		t.Errorf("%d bytes allocated for a refused frame", d)
	}
	if src.n > 4096 {
		t.Errorf("%d payload bytes read after the refused header", src.n)
	}
}

// The server refuses an oversized request from its header and closes the connection.
func TestServerRefusesAnOversizedRequest(t *testing.T) {
	h := &fakeHandler{}
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	nc, br, resp := rawUpgrade(t, testClientConfig(ts.addr), nil, newClaim(&ClientConfig{Path: DefaultPath, Self: "raw"}, time.Now()))
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	hdr := make([]byte, headerLen)
	header{length: 1 << 30, typ: typeFetch, id: 1}.put(hdr)
	nc.Write(hdr)
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server answered a 1 GiB request")
	}
	waitFor(t, 5*time.Second, "the connection closed", func() bool { return ts.served() == 0 })
	if h.fetches.Load() != 0 {
		t.Errorf("the handler saw %d fetches", h.fetches.Load())
	}
}

func TestBatchRequestCodec(t *testing.T) {
	keys := []string{"a", "", "\x00\xff", string(make([]byte, 70000))}
	p := appendBatchRequest(nil, "grp", keys)
	if len(p) != batchSize("grp", keys) {
		t.Errorf("batchSize = %d, encoded %d", batchSize("grp", keys), len(p))
	}
	g, got, err := parseBatchRequest(p, 10)
	if err != nil || g != "grp" || !slices.Equal(got, keys) {
		t.Fatalf("parseBatchRequest = %q, %d keys, %v", g, len(got), err)
	}
	if _, _, err := parseBatchRequest(p, 3); CodeOf(err) != CodeBadRequest {
		t.Errorf("4 keys, limit 3: err = %v, want bad_request", err)
	}
	for _, bad := range [][]byte{
		nil,
		{5, 'a'},
		{0},
		{0, 0, 1},
		{0, 0xff, 0xff},       // 65535 keys in no bytes: refused before allocating for them
		{0, 0, 1, 0, 0, 0, 9}, // a key longer than what follows
		append(appendBatchRequest(nil, "g", []string{"k"}), 'x'),
	} {
		if _, _, err := parseBatchRequest(bad, math.MaxUint16); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseBatchRequest(%q) err = %v, want ErrProtocol", bad, err)
		}
	}
}

func TestResultCodec(t *testing.T) {
	p := appendTTL(nil, 90*time.Second)
	p = append(p, "value"...)
	v, err := parseResult(0, p, true)
	if err != nil || string(v.Bytes) != "value" || v.TTL != 90*time.Second {
		t.Fatalf("parseResult = %q, %v, %v", v.Bytes, v.TTL, err)
	}
	lm := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, in := range []Value{
		{Bytes: []byte("{}"), TTL: time.Minute, ContentType: "application/json", LastModified: lm},
		{Bytes: []byte("x"), ContentType: "text/plain; charset=utf-8"},
		{Bytes: nil, TTL: 1, LastModified: lm.Add(999 * time.Millisecond)},
	} {
		p, flags := appendSuccess(nil, in)
		p = append(p, in.Bytes...)
		got, err := parseResult(flags, p, true)
		if err != nil || flags != flagMeta || string(got.Bytes) != string(in.Bytes) || got.TTL != in.TTL ||
			got.ContentType != in.ContentType || !got.LastModified.Equal(in.LastModified.Truncate(time.Second)) {
			t.Errorf("round trip of %+v = %+v, flags %#x, %v", in, got, flags, err)
		}
	}
	if _, flags := appendSuccess(nil, Value{ContentType: strings.Repeat("x", MaxContentTypeBytes+1)}); flags != 0 {
		t.Errorf("a Content-Type over the bound travels (flags %#x); it must be left out", flags)
	}
	if _, err := parseResult(flagMeta, append(appendTTL(nil, 1), 9, 'a'), true); !errors.Is(err, ErrProtocol) {
		t.Errorf("metadata shorter than declared: err = %v, want ErrProtocol", err)
	}
	set := appendSetRequest(nil, "g", "k", Value{TTL: time.Second, ContentType: "text/html", LastModified: lm})
	g, k, v, err := parseSetRequest(append(set, "body"...))
	if err != nil || string(g) != "g" || string(k) != "k" || string(v.Bytes) != "body" || v.TTL != time.Second ||
		v.ContentType != "text/html" || !v.LastModified.Equal(lm) {
		t.Errorf("set round trip = %q %q %+v, %v", g, k, v, err)
	}
	neg := binary.BigEndian.AppendUint64(nil, 1<<63)
	for _, tt := range []struct {
		name      string
		flags     uint8
		p         []byte
		withValue bool
	}{
		{"negative TTL", 0, neg, true},
		{"no TTL", 0, []byte{1, 2}, true},
		{"error without code", flagError, nil, true},
		{"error code zero", flagError, []byte{0, 'x'}, true},
		{"ack with payload", 0, []byte{1}, false},
	} {
		if _, err := parseResult(tt.flags, tt.p, tt.withValue); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", tt.name, err)
		}
	}
	if v, _ := parseResult(0, appendTTL(nil, -time.Second), true); v.TTL != 1 {
		t.Errorf("a lifetime already over travels as %v, want 1ns (zero would mean for ever)", v.TTL)
	}
	if _, _, err := parseBatchRequest(appendBatchRequest(nil, "g", nil), 10); CodeOf(err) != CodeBadRequest {
		t.Errorf("empty batch: err = %v, want bad_request", err)
	}
}

// A server answers a request type it does not know (reserved for later versions) with
// bad_request, and goes on serving.
func TestReservedRequestTypesAreAnswered(t *testing.T) {
	ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
	nc, br, resp := rawUpgrade(t, testClientConfig(ts.addr), nil, newClaim(&ClientConfig{Path: DefaultPath, Self: "raw"}, time.Now()))
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	const reserved msgType = 0x08 // the first type no version serves yet
	nc.Write(rawFrame(reserved, 0, 7, appendKeyRequest(nil, "g", "k")))
	nc.Write(rawFrame(typeFetch, 0, 8, appendKeyRequest(nil, "g", "k")))
	for _, want := range []struct {
		typ msgType
		id  uint32
	}{{reserved | replyBit, 7}, {typeFetchReply, 8}} {
		hdr := make([]byte, headerLen)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		h := parseHeader(hdr)
		p := make([]byte, h.length)
		io.ReadFull(br, p)
		if h.typ != want.typ || h.id != want.id {
			t.Fatalf("answer %#x id %d, want %#x id %d", h.typ, h.id, want.typ, want.id)
		}
		if h.typ != typeFetchReply {
			if _, err := parseResult(h.flags, p, true); CodeOf(err) != CodeBadRequest {
				t.Errorf("reserved type answered %v, want bad_request", err)
			}
		}
	}
}

// fakeConn is a net.Conn that reads from r and discards writes: the fuzz targets' peer.
type fakeConn struct{ r io.Reader }

func (c fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c fakeConn) Close() error                     { return nil }
func (c fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c fakeConn) SetDeadline(time.Time) error      { return nil }
func (c fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c fakeConn) SetWriteDeadline(time.Time) error { return nil }
