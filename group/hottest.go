package group

// Hottest returns the keys of the main cache's values (no remembered ErrNotFound, nothing
// expired) in the eviction policy's order, the entries it would keep longest first, until
// their keys and values add up to maxBytes (the entry that crosses it is left out); total is
// what they add up to. A node
// that leaves hands these to their next owners (see Push), reading each with HandOffValue
// just before it sends it. The policy's lock is held only while the keys are copied out.
func (g *Group) Hottest(maxBytes int64) (keys []string, total int64) {
	now := g.clock.now()
	for key, e := range g.main.s.hottest() {
		if e.negative || (e.expires != 0 && e.expires <= now) {
			continue
		}
		size := int64(len(key) + len(e.value))
		if total+size > maxBytes {
			break
		}
		total += size
		keys = append(keys, key)
	}
	return keys, total
}

// HandOffValue returns key's value in the main cache with its remaining TTL (zero: never
// expires) and metadata, as a node that leaves hands it over; ok is false when the main cache
// holds no value for key (it was removed, evicted or expired since Hottest). Value.Bytes is
// shared with the cache: it must not be modified.
func (g *Group) HandOffValue(key string) (Value, bool) {
	var e entry
	ttl, hit := g.main.get(key, &e)
	if !hit || e.negative {
		return Value{}, false
	}
	v := Value{Bytes: e.value, TTL: ttl}
	if e.meta != nil {
		v.ContentType, v.LastModified = e.meta.contentType, e.meta.lastModified
	}
	return v, true
}
