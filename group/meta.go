package group

import "time"

// Metadata travels with a value through the caches and the peer wire, so that the HTTP API
// can serve a value with its origin's type and date. Most values have none: an entry holds a
// pointer that is nil then, so that a value without metadata costs one word more.

// meta is a value's metadata as an entry holds it.
type meta struct {
	contentType  string
	lastModified time.Time
}

// newMeta returns v's metadata, or nil when it has none.
func newMeta(v Value) *meta {
	if v.ContentType == "" && v.LastModified.IsZero() {
		return nil
	}
	return &meta{contentType: v.ContentType, lastModified: v.LastModified}
}
