package group

import "time"

// HandOffEntry is one entry of the main cache as Hottest returns it: the key and its value
// with its remaining TTL (zero: never expires) and metadata. Value.Bytes is shared with the
// cache: it must not be modified.
type HandOffEntry struct {
	Key   string
	Value Value
}

// Hottest returns the main cache's values (no remembered ErrNotFound, nothing expired) in the
// eviction policy's order, the entries it would keep longest first, until their keys and
// values add up to maxBytes (the entry that crosses it is not included). A node that leaves
// hands these to their next owners (see Push). The policy's lock is held only while the list
// is copied out: nothing is sent under it.
func (g *Group) Hottest(maxBytes int64) []HandOffEntry {
	var out []HandOffEntry
	var total int64
	now := g.clock.now()
	for ent := range g.main.c.Hottest() {
		e := ent.Value
		if e.negative || (e.expires != 0 && e.expires <= now) {
			continue
		}
		size := int64(len(ent.Key) + len(e.value))
		if total+size > maxBytes {
			break
		}
		total += size
		v := Value{Bytes: e.value}
		if e.expires != 0 {
			v.TTL = time.Duration(e.expires - now)
		}
		if e.meta != nil {
			v.ContentType, v.LastModified = e.meta.contentType, e.meta.lastModified
		}
		out = append(out, HandOffEntry{Key: ent.Key, Value: v})
	}
	return out
}
