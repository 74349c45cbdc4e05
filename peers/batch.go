package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// Batch fetches: a Group's GetMany sends the keys one owner must fill in one FetchBatch, which
// travels as the wire's batch message (up to maxBatchKeys keys each, the wire's default on
// both sides). The owner serves every key of it as a fetch (serverconn.go): a cache hit, or
// its own load, shared with its other readers.

var _ group.BatchPeer = (*wirePeer)(nil)

// maxBatchKeys is the most keys one batch message carries: the wire's default MaxBatchKeys,
// which this node's clients and servers both keep.
var maxBatchKeys = wire.DefaultClientConfig().MaxBatchKeys

// FetchBatch asks the peer for keys in one batch message (one per maxBatchKeys keys, sent at
// once) and returns one answer per key, in order; see group.BatchPeer for the contract. Each
// key's answer means what Fetch's would: a value, a *RemoteError (an empty or over-long key
// gets the invalid-key verdict without being sent), group.ErrPeerUnavailable (wrapped) for
// the keys the peer did not answer because it could not be reached, or the deadline's end.
func (p *wirePeer) FetchBatch(ctx context.Context, groupName string, keys []string) []group.BatchResult {
	out := make([]group.BatchResult, len(keys))
	if p.client == nil {
		for i, key := range keys {
			out[i].Value, out[i].Err = p.result(groupName, key, wire.Value{}, p.unusable(), false)
		}
		return out
	}
	valid, at := p.checkBatchKeys(groupName, keys, out)
	answers := out
	if len(valid) < len(keys) {
		answers = make([]group.BatchResult, len(valid))
	}
	if len(valid) <= maxBatchKeys {
		p.fetchChunk(ctx, groupName, valid, answers)
	} else {
		var wg sync.WaitGroup
		for start := 0; start < len(valid); start += maxBatchKeys {
			end := min(start+maxBatchKeys, len(valid))
			wg.Go(func() { p.fetchChunk(ctx, groupName, valid[start:end], answers[start:end]) })
		}
		wg.Wait()
	}
	if len(valid) < len(keys) {
		for j, i := range at {
			out[i] = answers[j]
		}
	}
	return out
}

// fetchChunk sends one batch message and maps its answers into out. A verdict on the whole
// batch, a request that could not be sent, or a caller that left, answers every key; a
// connection that failed part-way leaves the answered keys their answers.
func (p *wirePeer) fetchChunk(ctx context.Context, groupName string, keys []string, out []group.BatchResult) {
	if len(keys) == 0 {
		return
	}
	results, err := p.client.FetchBatch(ctx, groupName, keys)
	expired := ctx.Err() != nil
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		expired = true // the wire's timer may fire a moment before the context's own
	}
	whole := err != nil && (len(results) != len(keys) || !errors.Is(err, wire.ErrUnavailable))
	// The outlier count (observe) takes one outcome per message, as a fetch's: the peer
	// unreachable if any key found it so, else answered. Counted per key, one lost batch
	// would eject a peer.
	var seen, seenWire error
	for i, key := range keys {
		var v wire.Value
		keyErr := err
		if !whole {
			v, keyErr = results[i].Value, results[i].Err
		}
		var wireErr error
		out[i].Value, out[i].Err, wireErr = p.resolve(groupName, key, v, keyErr, keyErr != nil && expired)
		if seen == nil || !errors.Is(seen, group.ErrPeerUnavailable) {
			seen, seenWire = out[i].Err, wireErr
		}
	}
	p.observe(seen, seenWire)
}

// checkBatchKeys answers in out the keys the wire would refuse before sending (empty, or over
// MaxKeyBytes) with the invalid-key verdict, rather than failing their batch, and returns the
// others with their places in keys (all of keys, and no places, when none is refused).
func (p *wirePeer) checkBatchKeys(groupName string, keys []string, out []group.BatchResult) (valid []string, at []int) {
	maxKey := p.c.maxKeyBytes()
	bad := func(key string) bool { return key == "" || len(key) > maxKey }
	if !slices.ContainsFunc(keys, bad) {
		return keys, nil
	}
	for i, key := range keys {
		if bad(key) {
			err := &wire.Error{Code: wire.CodeInvalidKey, Message: fmt.Sprintf("key of %d bytes: must be 1 to %d", len(key), maxKey)}
			out[i].Value, out[i].Err = p.result(groupName, key, wire.Value{}, err, false)
			continue
		}
		valid = append(valid, key)
		at = append(at, i)
	}
	return valid, at
}
