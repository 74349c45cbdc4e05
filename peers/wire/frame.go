package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// A frame is a fixed 10-byte header, a payload of the length the header declares, and, on an
// authenticated connection, a 16-byte tag (see auth.go):
//
//	0       4      5       6          10
//	| length | type | flags | request id | payload (length bytes) | [tag, 16 bytes]
//
// length, id: big-endian uint32. A request's id is chosen by the client and echoed by every
// reply to it; id 0 is the connection's own (liveness pings, GoAway).
const headerLen = 10

// msgType is a frame's type. Requests go from client to server; the reply to a request type t
// has type t|replyBit.
type msgType uint8

const (
	typeFetch  msgType = 0x01 // [u8 glen][group][key]          → fetchReply: result
	typeBatch  msgType = 0x02 // [u8 glen][group][u16 n]{u32 klen, key}×n → batchItem×n
	typeRemove msgType = 0x03 // [u8 glen][group][key]          → removeReply: ack
	typePurge  msgType = 0x04 // [u8 glen][group]               → purgeReply: ack
	typePeek   msgType = 0x05 // [u8 glen][group][key]          → peekReply: result (memory only: warm.go)
	typePush   msgType = 0x06 // as set                          → pushAck: ack (stored only where absent: warm.go)
	typeSet    msgType = 0x07 // [u8 glen][group][u32 klen][key][u64 ttl][meta][value] → setAck: ack
	// 0x08–0x3f: reserved requests. A server answers an unknown request type with
	// CodeBadRequest, so a newer client learns the feature is missing without a hang.
	maxRequestType msgType = 0x3f

	typePing   msgType = 0x40 // empty; answered by typePong with the same id
	typeGoAway msgType = 0x41 // server → client, id 0: [u8 code][message]; no new requests

	replyBit       = 0x80
	typeFetchReply = typeFetch | replyBit  // result
	typeBatchItem  = typeBatch | replyBit  // [u32 index] result; index allItems: the whole batch
	typeRemoveAck  = typeRemove | replyBit // result without TTL and value
	typePurgeAck   = typePurge | replyBit  // result without TTL and value
	typeSetAck     = typeSet | replyBit    // result without TTL and value
	typePeekReply  = typePeek | replyBit   // result, as a fetch's
	typePushAck    = typePush | replyBit   // result without TTL and value
	typePong       = typePing | replyBit   // empty
)

// flagError marks a result frame whose payload is [u8 code][message] instead of a success.
// flagMeta marks a success result whose TTL is followed by the value's metadata:
// [u64 ttl][meta][value] instead of [u64 ttl][value], so a value without metadata costs no
// byte more. meta is [u8 ctlen][content type][i64 last modified, Unix seconds; 0: unknown].
// flagStale (version 2) marks a success result whose value is stale: its TTL (always 1 ns) is
// followed by [u64 age, nanoseconds since it expired], then the metadata if flagMeta is set.
// A frame with another bit set, or flagError with another, is a protocol error.
const (
	flagError = 0x01
	flagMeta  = 0x02
	flagStale = 0x04
)

// allItems, as a batchItem's index, is a verdict on the whole batch (bad_request: too many
// keys); it completes every key not answered yet.
const allItems = math.MaxUint32

// Bounds of the request encoding.
const (
	MaxGroupBytes = 255 // a group name's length travels in one byte
	ttlLen        = 8
	ageLen        = 8
	indexLen      = 4

	// MaxContentTypeBytes bounds a value's Content-Type on the wire (its length travels in
	// one byte); a longer one is not sent.
	MaxContentTypeBytes = 255
	maxMetaLen          = 1 + MaxContentTypeBytes + 8
)

// header is a decoded frame header.
type header struct {
	length uint32
	typ    msgType
	flags  uint8
	id     uint32
}

func (h header) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:4], h.length)
	b[4] = byte(h.typ)
	b[5] = h.flags
	binary.BigEndian.PutUint32(b[6:10], h.id)
}

func parseHeader(b []byte) header {
	return header{
		length: binary.BigEndian.Uint32(b[0:4]),
		typ:    msgType(b[4]),
		flags:  b[5],
		id:     binary.BigEndian.Uint32(b[6:10]),
	}
}

// checkRequest validates a header a server read, before anything is allocated for the
// payload: a fetch or remove is bounded by maxKey, a batch by maxBatch, a purge by the group
// name, a ping is empty. Reserved and unknown request types are bounded by maxBatch and
// answered CodeBadRequest.
func (h header) checkRequest(maxKey, maxBatch int) error {
	if h.flags != 0 {
		return protocolError("request type %#x with flags %#x", h.typ, h.flags)
	}
	var max int
	switch {
	case h.typ == typeFetch || h.typ == typeRemove || h.typ == typePeek:
		max = 1 + MaxGroupBytes + maxKey
	case h.typ == typePurge:
		max = 1 + MaxGroupBytes
	case h.typ == typePing:
		max = 0
	case h.typ != 0 && h.typ <= maxRequestType:
		max = maxBatch
	default:
		return protocolError("type %#x is not a request", h.typ)
	}
	if int64(h.length) > int64(max) {
		return fmt.Errorf("%w: request type %#x of %d bytes, limit %d", ErrTooLarge, h.typ, h.length, max)
	}
	return nil
}

// checkReply validates a header a client read, before anything is allocated for the payload:
// maxValue bounds a value, and every other payload is bounded by its shape.
func (h header) checkReply(maxValue int) error {
	var max int64
	switch h.typ {
	case typeFetchReply, typePeekReply:
		max = ttlLen + int64(maxValue)
	case typeBatchItem:
		max = indexLen + ttlLen + int64(maxValue)
	case typeRemoveAck, typePurgeAck, typeSetAck, typePushAck:
		max = 0
	case typePong:
		max = 0
		if h.flags != 0 {
			return protocolError("pong with flags %#x", h.flags)
		}
	case typeGoAway:
		if h.flags != 0 || h.id != 0 {
			return protocolError("goaway with flags %#x, id %d", h.flags, h.id)
		}
		max = 1 + MaxMessageBytes
	default:
		return protocolError("type %#x is not a reply", h.typ)
	}
	if h.flags&^(flagError|flagMeta|flagStale) != 0 || (h.flags&flagError != 0 && h.flags != flagError) {
		return protocolError("reply type %#x with flags %#x", h.typ, h.flags)
	}
	if h.flags&(flagMeta|flagStale) != 0 && h.typ != typeFetchReply && h.typ != typeBatchItem && h.typ != typePeekReply {
		return protocolError("reply type %#x with flags %#x", h.typ, h.flags)
	}
	if h.flags&flagMeta != 0 {
		max += maxMetaLen
	}
	if h.flags&flagStale != 0 {
		max += ageLen
	}
	if h.flags&flagError != 0 {
		max = 1 + MaxMessageBytes
		if h.typ == typeBatchItem {
			max += indexLen
		}
	}
	if int64(h.length) > max {
		return fmt.Errorf("%w: reply type %#x of %d bytes, limit %d", ErrTooLarge, h.typ, h.length, max)
	}
	return nil
}

// appendKeyRequest appends the payload of a fetch, peek or remove (key != "") or a purge.
func appendKeyRequest(b []byte, group, key string) []byte {
	b = append(b, byte(len(group)))
	b = append(b, group...)
	return append(b, key...)
}

// parseKeyRequest splits a fetch, remove or purge payload. The key may be empty here: the
// server answers that with CodeInvalidKey, not a broken connection.
func parseKeyRequest(p []byte) (group, key []byte, err error) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return nil, nil, protocolError("request of %d bytes too short for its group name", len(p))
	}
	n := 1 + int(p[0])
	return p[1:n], p[n:], nil
}

// appendSetRequest appends the payload of a set (or a push, which has the same layout) up to its value, metadata included (always:
// a set is rare, and one layout is simpler). The caller has checked the bounds.
func appendSetRequest(b []byte, group, key string, v Value) []byte {
	b = append(b, byte(len(group)))
	b = append(b, group...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = appendTTL(b, v.TTL)
	return appendMeta(b, v)
}

// parseSetRequest splits a set payload; value aliases p.
func parseSetRequest(p []byte) (group, key []byte, v Value, err error) {
	if len(p) < 1 || len(p) < 1+int(p[0])+4 {
		return nil, nil, Value{}, protocolError("set of %d bytes too short for its group and key length", len(p))
	}
	n := 1 + int(p[0])
	group = p[1:n]
	klen := int64(binary.BigEndian.Uint32(p[n:]))
	n += 4
	if int64(len(p)-n) < klen+ttlLen {
		return nil, nil, Value{}, protocolError("set of %d bytes too short for a %d-byte key and a TTL", len(p), klen)
	}
	key = p[n : n+int(klen)]
	n += int(klen)
	ttl := time.Duration(binary.BigEndian.Uint64(p[n:]))
	if ttl < 0 {
		return nil, nil, Value{}, protocolError("set with a negative TTL")
	}
	v, err = parseMeta(p[n+ttlLen:])
	if err != nil {
		return nil, nil, Value{}, err
	}
	v.TTL = ttl
	return group, key, v, nil
}

// hasMeta reports whether v has metadata that travels.
func hasMeta(v Value) bool {
	return (v.ContentType != "" && len(v.ContentType) <= MaxContentTypeBytes) || !v.LastModified.IsZero()
}

// appendMeta appends v's metadata: a Content-Type over the bound is left out.
func appendMeta(b []byte, v Value) []byte {
	ct := v.ContentType
	if len(ct) > MaxContentTypeBytes {
		ct = ""
	}
	b = append(b, byte(len(ct)))
	b = append(b, ct...)
	var lm int64
	if !v.LastModified.IsZero() {
		lm = v.LastModified.Unix()
	}
	return binary.BigEndian.AppendUint64(b, uint64(lm))
}

// parseMeta decodes the metadata at the start of p and returns it in a Value whose Bytes are
// the rest of p (aliasing it).
func parseMeta(p []byte) (Value, error) {
	if len(p) < 1 || len(p) < 1+int(p[0])+8 {
		return Value{}, protocolError("metadata of %d bytes too short", len(p))
	}
	n := 1 + int(p[0])
	v := Value{ContentType: string(p[1:n])}
	if lm := int64(binary.BigEndian.Uint64(p[n:])); lm != 0 {
		v.LastModified = time.Unix(lm, 0).UTC()
	}
	rest := p[n+8:]
	v.Bytes = rest[:len(rest):len(rest)]
	return v, nil
}

// appendSuccess appends a success result's part before its value and returns the frame's
// flags: flagMeta when v has metadata. A stale v goes out unmarked (see appendResult).
func appendSuccess(b []byte, v Value) ([]byte, uint8) { return appendResult(b, v, false) }

// appendResult is appendSuccess that also marks a stale v with flagStale and its age when
// the connection speaks version 2 (withStale). A stale value's TTL goes out as 1 ns either
// way: zero would read "never expires", and a client that cannot be told it is stale keeps
// no copy of it.
func appendResult(b []byte, v Value, withStale bool) ([]byte, uint8) {
	var flags uint8
	if v.Stale {
		b = appendTTL(b, time.Nanosecond)
		if withStale {
			flags |= flagStale
			b = appendTTL(b, v.Age) // a negative age, which no group produces, goes as 1 ns
		}
	} else {
		b = appendTTL(b, v.TTL)
	}
	if !hasMeta(v) {
		return b, flags
	}
	return appendMeta(b, v), flags | flagMeta
}

// appendBatchRequest appends the payload of a batch fetch. The caller has checked the bounds.
func appendBatchRequest(b []byte, group string, keys []string) []byte {
	b = append(b, byte(len(group)))
	b = append(b, group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
	}
	return b
}

// batchSize is the payload length of a batch fetch.
func batchSize(group string, keys []string) int {
	n := 1 + len(group) + 2
	for _, k := range keys {
		n += 4 + len(k)
	}
	return n
}

// parseBatchRequest splits a batch payload; keys are returned as strings since the handler
// needs them so. It refuses more than maxKeys keys before allocating for them.
func parseBatchRequest(p []byte, maxKeys int) (group string, keys []string, err error) {
	g, rest, err := parseKeyRequest(p)
	if err != nil {
		return "", nil, err
	}
	if len(rest) < 2 {
		return "", nil, protocolError("batch without a key count")
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if n == 0 || n > maxKeys {
		return string(g), nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("batch of %d keys: must be 1 to %d", n, maxKeys)}
	}
	if n*4 > len(rest) {
		return "", nil, protocolError("batch declares %d keys in %d bytes", n, len(rest))
	}
	keys = make([]string, n)
	for i := range keys {
		if len(rest) < 4 {
			return "", nil, protocolError("batch key %d: no length", i)
		}
		kl := int64(binary.BigEndian.Uint32(rest))
		if int64(len(rest)-4) < kl {
			return "", nil, protocolError("batch key %d: %d bytes declared, %d left", i, kl, len(rest)-4)
		}
		keys[i] = string(rest[4 : 4+kl])
		rest = rest[4+kl:]
	}
	if len(rest) != 0 {
		return "", nil, protocolError("%d bytes after the last batch key", len(rest))
	}
	return string(g), keys, nil
}

// appendTTL appends a success result's fixed part; the value follows it. Zero means "never
// expires", so a lifetime already over travels as 1 ns, not as zero.
func appendTTL(b []byte, ttl time.Duration) []byte {
	if ttl < 0 {
		ttl = 1
	}
	return binary.BigEndian.AppendUint64(b, uint64(ttl))
}

// appendErrorResult appends an error result's payload, cutting the message to the bound.
func appendErrorResult(b []byte, code Code, msg string) []byte {
	if len(msg) > MaxMessageBytes {
		msg = msg[:MaxMessageBytes]
	}
	b = append(b, byte(code))
	return append(b, msg...)
}

// parseResult decodes a result payload. A value aliases p, which the caller then owns.
// withValue is false for acks (remove, purge), whose success payload is empty.
func parseResult(flags uint8, p []byte, withValue bool) (v Value, err error) {
	if flags&flagError != 0 {
		if len(p) < 1 || p[0] == 0 {
			return Value{}, protocolError("error result without a code")
		}
		return Value{}, &Error{Code: Code(p[0]), Message: string(p[1:])}
	}
	if !withValue {
		if len(p) != 0 {
			return Value{}, protocolError("ack with a %d-byte payload", len(p))
		}
		return Value{}, nil
	}
	if len(p) < ttlLen {
		return Value{}, protocolError("result of %d bytes has no TTL", len(p))
	}
	ttl := binary.BigEndian.Uint64(p)
	if ttl > math.MaxInt64 {
		return Value{}, protocolError("negative TTL")
	}
	p = p[ttlLen:]
	var age uint64
	if flags&flagStale != 0 {
		if len(p) < ageLen {
			return Value{}, protocolError("stale result of %d bytes has no age", len(p)+ttlLen)
		}
		if age = binary.BigEndian.Uint64(p); age > math.MaxInt64 {
			return Value{}, protocolError("negative age")
		}
		p = p[ageLen:]
	}
	if flags&flagMeta == 0 {
		v.Bytes = p[:len(p):len(p)]
	} else if v, err = parseMeta(p); err != nil {
		return Value{}, err
	}
	v.TTL = time.Duration(ttl)
	v.Stale, v.Age = flags&flagStale != 0, time.Duration(age)
	return v, nil
}
