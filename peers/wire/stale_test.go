package wire

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// staleHandler answers keys starting with "old" as stale values that expired 90 s ago ("old-typed"
// with metadata), and the others as fakeHandler does.
func staleHandler() *fakeHandler {
	h := &fakeHandler{}
	h.fetch = func(_ context.Context, _, key string) (Value, error) {
		switch key {
		case "old":
			return Value{Bytes: []byte("old value"), Stale: true, Age: 90 * time.Second}, nil
		case "old-typed":
			return Value{Bytes: []byte("{}"), ContentType: "application/json", LastModified: typedModified,
				Stale: true, Age: 90 * time.Second}, nil
		}
		return Value{Bytes: []byte("value of " + key), TTL: time.Hour}, nil
	}
	return h
}

// checkStale checks that v is key's answer from staleHandler, as received.
func checkStale(t *testing.T, how, key string, v Value, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s %q: %v", how, key, err)
	}
	switch key {
	case "old", "old-typed":
		if !v.Stale || v.Age != 90*time.Second || v.TTL != time.Nanosecond {
			t.Errorf("%s %q = stale %v, age %v, TTL %v; want stale, 1m30s, 1ns", how, key, v.Stale, v.Age, v.TTL)
		}
		if key == "old-typed" && (string(v.Bytes) != "{}" || v.ContentType != "application/json" || !v.LastModified.Equal(typedModified)) {
			t.Errorf("%s %q lost its metadata: %+v", how, key, v)
		}
	default:
		if v.Stale || v.Age != 0 || v.TTL != time.Hour || string(v.Bytes) != "value of "+key {
			t.Errorf("%s %q = %+v, want a fresh value", how, key, v)
		}
	}
}

// TestStaleValueRoundTrip: a value the owner answers stale reaches the asking client marked
// stale with its age, through a fetch and through a batch, its metadata kept.
func TestStaleValueRoundTrip(t *testing.T) {
	ts := startServer(t, testServerConfig(), staleHandler(), serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	ctx := context.Background()
	keys := []string{"old", "fresh", "old-typed"}
	for _, key := range keys {
		v, err := c.Fetch(ctx, "g", key)
		checkStale(t, "Fetch", key, v, err)
	}
	res, err := c.FetchBatch(ctx, "g", keys)
	if err != nil || len(res) != len(keys) {
		t.Fatalf("FetchBatch: %d results, %v", len(res), err)
	}
	for i, key := range keys {
		checkStale(t, "FetchBatch", key, res[i].Value, res[i].Err)
	}
}

// TestStaleValueToVersion1: a client that speaks version 1 cannot be told a value is stale:
// it gets no flag it does not know, and a TTL of 1 ns, so that it keeps no copy.
func TestStaleValueToVersion1(t *testing.T) {
	ts := startServer(t, testServerConfig(), staleHandler(), serverOptions{})
	claim := newClaim(&ClientConfig{Path: DefaultPath, Self: "raw"}, time.Now())
	claim.version = 1
	nc, br, resp := rawUpgrade(t, testClientConfig(ts.addr), nil, claim)
	if resp.StatusCode != 101 || resp.Header.Get(hdrWire) != "1" {
		t.Fatalf("upgrade: %s, version %q", resp.Status, resp.Header.Get(hdrWire))
	}
	if _, err := nc.Write(rawFrame(typeFetch, 0, 1, appendKeyRequest(nil, "g", "old"))); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	h := parseHeader(hdr)
	p := make([]byte, h.length)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	if h.typ != typeFetchReply || h.flags != 0 {
		t.Fatalf("answer type %#x flags %#x, want a fetch reply without flags", h.typ, h.flags)
	}
	v, err := parseResult(h.flags, p, true)
	if err != nil || string(v.Bytes) != "old value" || v.TTL != time.Nanosecond || v.Stale {
		t.Fatalf("version-1 answer = %+v, %v; want the value with a TTL of 1ns", v, err)
	}
}

// TestStaleResultCodec: the stale flag's encoding, and what a client refuses (the headers'
// bounds: TestHeaderChecks).
func TestStaleResultCodec(t *testing.T) {
	in := Value{Bytes: []byte("x"), TTL: time.Hour, ContentType: "text/plain", Stale: true, Age: 3 * time.Second}
	p, flags := appendResult(nil, in, true)
	if flags != flagMeta|flagStale {
		t.Fatalf("flags %#x, want meta|stale", flags)
	}
	got, err := parseResult(flags, append(p, in.Bytes...), true)
	if err != nil || !got.Stale || got.Age != in.Age || got.TTL != time.Nanosecond || got.ContentType != "text/plain" || string(got.Bytes) != "x" {
		t.Errorf("round trip of %+v = %+v, %v", in, got, err)
	}
	if _, flags := appendResult(nil, Value{TTL: time.Hour}, true); flags != 0 {
		t.Errorf("a fresh value travels with flags %#x", flags)
	}
	for _, tt := range []struct {
		name string
		p    []byte
	}{
		{"no age", appendTTL(nil, 1)},
		{"short age", append(appendTTL(nil, 1), 0, 0, 1)},
		{"negative age", append(appendTTL(nil, 1), 0x80, 0, 0, 0, 0, 0, 0, 0)},
	} {
		if _, err := parseResult(flagStale, tt.p, true); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", tt.name, err)
		}
	}
	if err := (header{typ: typeBatchItem, flags: flagStale | flagMeta, length: indexLen + ttlLen + ageLen + maxMetaLen + 10}).checkReply(10); err != nil {
		t.Errorf("a batch item of a stale value with metadata at the bound: %v", err)
	}
}
