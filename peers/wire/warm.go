package wire

import (
	"context"
	"fmt"
)

// The warm hand-off's two messages, which keep a key's value in memory when its owner
// changes (a join, a leave, a restart), so that the origin is not asked again:
//
//   - peek (0x05), laid out as a fetch: the new owner of a key asks the member that owned it
//     before the change for the value it holds in memory. The answer is a fetch's result;
//     the Handler never loads (a miss is CodeNotFound), so a peek costs the asker one round
//     trip at most, bounded by its deadline.
//   - push (0x06), laid out as a set: a member that leaves hands a value to the key's next
//     owner. The receiver stores it only where it holds nothing for the key (see
//     WarmHandler); the ack says the message was handled, not that the value was kept.
//
// Both travel on the same connections as every other request: with a cluster secret they
// are authenticated by the handshake and every frame's MAC.

// WarmHandler is a Handler that also answers peeks and pushes: the peers package implements
// it with the group's Peek and Push, which never load and never forward. A Handler without
// it answers both with CodeBadRequest, so a newer node learns the feature is missing.
//
// Peek returns the value in memory, or an *Error with CodeNotFound when there is none; it
// must not block on an origin. Push owns v.Bytes (a copy made for it) and may drop the value.
type WarmHandler interface {
	Peek(ctx context.Context, group, key string) (Value, error)
	Push(ctx context.Context, group, key string, v Value) error
}

// Peek asks the peer for the value of key it holds in memory, and waits for the answer, ctx's
// end, or the request's deadline (ctx's, or RequestTimeout). The peer never loads it: a
// value it does not hold is an *Error with CodeNotFound. Errors are as Fetch's.
func (c *Client) Peek(ctx context.Context, group, key string) (Value, error) {
	if err := c.checkRequest(group, key, true); err != nil {
		return Value{}, err
	}
	cl := &call{typ: typePeek, done: make(chan struct{})}
	if err := c.do(ctx, cl, group, key, nil); err != nil {
		return Value{}, err
	}
	return cl.val, cl.err
}

// Push hands v to the peer as key's value (the push message) and waits for its
// acknowledgement. The peer keeps it only where it holds no value for key. v.Bytes is only
// read, and must not change until Push returns. Errors are as Set's.
func (c *Client) Push(ctx context.Context, group, key string, v Value) error {
	if err := c.checkRequest(group, key, true); err != nil {
		return err
	}
	if len(v.Bytes) > c.cfg.MaxValueBytes {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("value of %d bytes, limit %d, refused before sending", len(v.Bytes), c.cfg.MaxValueBytes)}
	}
	cl := &call{typ: typePush, done: make(chan struct{}), val: v}
	if err := c.do(ctx, cl, group, key, nil); err != nil {
		return err
	}
	return cl.err
}

// runWarm serves a peek or a push and answers it.
func (sc *serverConn) runWarm(typ msgType, id uint32, group, key string, val Value) {
	wh, ok := sc.s.h.(WarmHandler)
	err := sc.checkKey(key)
	if err == nil && !ok {
		err = &Error{Code: CodeBadRequest, Message: fmt.Sprintf("request type %#x not served by this node", typ)}
	}
	if typ == typePush {
		if err == nil {
			err = wh.Push(sc.ctx, group, key, val)
		}
		_ = sc.ack(typePushAck, id, err)
		return
	}
	var v Value
	if err == nil {
		v, err = wh.Peek(sc.ctx, group, key)
	}
	if err == nil && len(v.Bytes) > sc.s.cfg.MaxValueBytes {
		err = &Error{Code: CodeNotFound, Message: fmt.Sprintf("value of %d bytes exceeds the wire's limit of %d", len(v.Bytes), sc.s.cfg.MaxValueBytes)}
	}
	if err != nil {
		_ = sc.replyError(typePeekReply, id, err)
		return
	}
	b, flags := appendSuccess(sc.w.begin(), v)
	_ = sc.w.finish(b, typePeekReply, flags, id, v.Bytes)
}
