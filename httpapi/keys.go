package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// Header values that never change, shared by every response. net/http only reads them.
var (
	contentTypeOctet    = []string{"application/octet-stream"}
	contentTypeJSON     = []string{"application/json"}
	cacheControlNoStore = []string{"no-store"}
	cacheControlNoCache = []string{"no-cache"}
)

// sourceHeader holds the X-Groupcached-Source values, one per group.Source.
var sourceHeader = [...][]string{
	group.SourceMain:   {group.SourceMain.String()},
	group.SourceHot:    {group.SourceHot.String()},
	group.SourcePeer:   {group.SourcePeer.String()},
	group.SourceLoader: {group.SourceLoader.String()},
}

// getKey answers GET and HEAD /groups/{group}/keys/{key} for requests that reach the chi
// router; well-formed ones take the same path without it (see ServeHTTP).
func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	a.serveKey(w, r, chi.URLParam(r, "group"), chi.URLParam(r, "key"))
}

// serveKey answers a GET or HEAD of a key, given its group and key path segments as the
// router matched them: the value's bytes with their ETag, freshness and origin, or 304 when
// the client's If-None-Match already names this value.
//
// This is the hot path. Beyond what net/http allocates, it makes one allocation (a
// headerBlock), writes straight into the header map with canonical keys, and touches no
// metric: the group's own counters are read at scrape time.
func (a *API) serveKey(w http.ResponseWriter, r *http.Request, groupSeg, keySeg string) {
	g, key, err := a.target(r, groupSeg, keySeg)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := g.Get(r.Context(), key)
	if err != nil {
		a.fail(w, r, fmt.Errorf("group %q, key %q: %w", g.Name(), key, err))
		return
	}

	hb := newHeaderBlock(res)
	h := w.Header()
	h["Etag"] = hb.vals[0:1:1]
	if res.TTL > 0 {
		h["Cache-Control"] = hb.vals[2:3:3]
	} else {
		h["Cache-Control"] = a.noTTL(g)
	}
	h["X-Groupcached-Source"] = sourceHeader[res.Source]
	if res.Stale {
		markStale(h, res) // stale.go
	}

	if !res.LastModified.IsZero() {
		h["Last-Modified"] = []string{res.LastModified.UTC().Format(http.TimeFormat)}
	}
	if inm, ok := r.Header["If-None-Match"]; ok && noneMatchHits(inm, hb.vals[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	} else if !ok && notModifiedSince(r, res.LastModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if res.ContentType != "" {
		h["Content-Type"] = []string{res.ContentType}
	} else {
		h["Content-Type"] = contentTypeOctet
	}
	if r.Method == http.MethodHead {
		h["Content-Length"] = hb.vals[1:2:2]
		w.WriteHeader(http.StatusOK)
		return
	}
	// net/http adds Content-Length itself, without touching the header map, when a handler
	// returns having written a body that fits its buffer; larger bodies need it set here, or
	// they would go out chunked.
	if len(res.Bytes) > autoContentLength {
		h["Content-Length"] = hb.vals[1:2:2]
	}
	_, _ = w.Write(res.Bytes)
}

// headerBlock holds one response's variable header values, and the text they point into, in
// a single allocation. The header map keeps slices of vals after the handler returns (net/http
// writes a small response's headers then), so a block is never reused.
type headerBlock struct {
	vals [3]string // ETag, Content-Length, Cache-Control (max-age, when the value has a TTL)
	text [72]byte  // room for all three at their longest
}

func newHeaderBlock(res group.Result) *headerBlock {
	hb := new(headerBlock)
	putETag((*[etagLen]byte)(hb.text[:etagLen]), res.Hash)
	b := hb.text[:etagLen]
	etagEnd := len(b)
	b = strconv.AppendInt(b, int64(len(res.Bytes)), 10)
	lengthEnd := len(b)
	if res.TTL > 0 {
		b = append(b, "max-age="...)
		b = strconv.AppendInt(b, int64(res.TTL/time.Second), 10)
	}
	// The bytes are never written again, which is what unsafe.String asks. (Were text ever
	// too small, append would have moved b to a new array, and s would point there.)
	s := unsafe.String(unsafe.SliceData(b), len(b))
	hb.vals[0], hb.vals[1], hb.vals[2] = s[:etagEnd], s[etagEnd:lengthEnd], s[lengthEnd:]
	return hb
}

// autoContentLength is the largest body for which net/http's server computes Content-Length
// by itself (its bufferBeforeChunkingSize).
const autoContentLength = 2048

// removeKey answers DELETE /groups/{group}/keys/{key}: the key leaves this node's caches and,
// through the cluster, the owner's and every hot copy, before the answer.
func (a *API) removeKey(w http.ResponseWriter, r *http.Request) {
	g, key, err := a.target(r, chi.URLParam(r, "group"), chi.URLParam(r, "key"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	confirmed, err := g.Remove(r.Context(), key)
	a.answerInvalidation(w, r, invalidation{Group: g.Name(), Key: key, PeersConfirmed: confirmed}, err)
}

// purgeGroup answers DELETE /groups/{group}: every entry of the group leaves every node.
func (a *API) purgeGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.lookupGroup(r, chi.URLParam(r, "group"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	confirmed, err := g.Purge(r.Context())
	a.answerInvalidation(w, r, invalidation{Group: g.Name(), PeersConfirmed: confirmed}, err)
}

// invalidation is the answer to a DELETE. Peers is how many other members the removal was
// meant for: the alive ones, and, when some did not confirm, those this node holds as dead
// (cut off or crashed in the last five minutes); Error and Code are set when some of them did
// not confirm (the removal is then sent to them again when they are back).
type invalidation struct {
	Group          string `json:"group"`
	Key            string `json:"key,omitempty"`
	PeersConfirmed int    `json:"peers_confirmed"`
	Peers          int    `json:"peers"`
	Error          string `json:"error,omitempty"`
	Code           string `json:"code,omitempty"`
}

func (a *API) answerInvalidation(w http.ResponseWriter, r *http.Request, inv invalidation, err error) {
	var incomplete *peers.IncompleteError
	switch {
	case errors.As(err, &incomplete):
		inv.Peers = incomplete.Peers() // the dead members it was meant for count too
	case a.cluster != nil:
		inv.Peers = max(a.cluster.Stats().Members-1, 0)
	}
	status := http.StatusOK
	if err != nil {
		what := "purging the group"
		if inv.Key != "" {
			what = fmt.Sprintf("removing %q", inv.Key)
		}
		err = &apiError{status: http.StatusBadGateway, code: CodeInvalidation,
			msg: fmt.Sprintf("group %q: %s on peers (%d confirmed)", inv.Group, what, inv.PeersConfirmed), err: err}
		status, inv.Code = errorStatus(err)
		inv.Error = publicMessage(err, inv.Code)
		a.metrics.httpErrors.WithLabelValues(inv.Code).Inc()
		if inv.Code != CodeCanceled {
			a.log.Error("invalidation incomplete", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	writeJSON(w, status, inv)
}

// keyInManySegments answers a key path with more than one segment: the key's own slashes
// must be escaped.
func (a *API) keyInManySegments(w http.ResponseWriter, r *http.Request) {
	a.fail(w, r, &apiError{status: http.StatusBadRequest, code: CodeBadKey,
		msg: "a key is one path segment: escape '/' in keys as %2F"})
}

// target returns the group and the decoded key that the path segments of a
// /groups/{group}/keys/{key} request name.
func (a *API) target(r *http.Request, groupSeg, keySeg string) (*group.Group, string, error) {
	g, err := a.lookupGroup(r, groupSeg)
	if err != nil {
		return nil, "", err
	}
	key, err := a.decodeKeySegment(r, keySeg)
	if err != nil {
		return nil, "", err
	}
	return g, key, nil
}

// lookupGroup returns the group that the path segment seg names.
func (a *API) lookupGroup(r *http.Request, seg string) (*group.Group, error) {
	name, err := decodeSegment(r, seg)
	if err != nil {
		return nil, &apiError{status: http.StatusNotFound, code: CodeUnknownGroup, msg: "bad group name", err: err}
	}
	g, ok := a.groups[name]
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, code: CodeUnknownGroup, msg: fmt.Sprintf("no group %q on this node", name)}
	}
	return g, nil
}

// decodeKeySegment returns the key that the path segment seg holds, checked against
// MaxKeyBytes.
func (a *API) decodeKeySegment(r *http.Request, seg string) (string, error) {
	if len(seg) > 3*a.maxKeyBytes { // cannot decode to MaxKeyBytes or fewer
		return "", a.keyTooLong(len(seg))
	}
	key, err := decodeSegment(r, seg)
	if err != nil {
		return "", &apiError{status: http.StatusBadRequest, code: CodeBadKey, msg: "badly escaped key", err: err}
	}
	switch {
	case key == "":
		return "", &apiError{status: http.StatusBadRequest, code: CodeBadKey, msg: "empty key"}
	case len(key) > a.maxKeyBytes:
		return "", a.keyTooLong(len(key))
	}
	return key, nil
}

func (a *API) keyTooLong(n int) error {
	return &apiError{status: http.StatusBadRequest, code: CodeBadKey,
		msg: fmt.Sprintf("key of %d bytes or more is longer than the limit of %d", n, a.maxKeyBytes)}
}

// decodeSegment decodes one path segment of r as the router matched it. Routing (chi's, and
// ServeHTTP's own) reads r.URL.RawPath when the client's escaping differs from Go's default
// (always so when a segment holds %2F): then segments are still escaped and are decoded
// here, "+" staying a "+". Otherwise routing reads r.URL.Path, which Go already decoded, and
// whose only slashes are separators.
func decodeSegment(r *http.Request, seg string) (string, error) {
	if r.URL.RawPath == "" {
		return seg, nil
	}
	return decodeKey(seg)
}

// routingPath is the path that routing reads (see decodeSegment).
func routingPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.Path
}

// splitKeyPath returns the group and key segments of a path of the form
// /groups/{group}/keys/{key} with both segments non-empty; ok is false for any other path.
func splitKeyPath(path string) (groupSeg, keySeg string, ok bool) {
	const groups, keys = "/groups/", "/keys/"
	rest, found := strings.CutPrefix(path, groups)
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	groupSeg, rest = rest[:i], rest[i:]
	keySeg, found = strings.CutPrefix(rest, keys)
	if !found || keySeg == "" || strings.IndexByte(keySeg, '/') >= 0 {
		return "", "", false
	}
	return groupSeg, keySeg, true
}

// decodeKey decodes one escaped path segment: %XX is the byte XX, every other byte stands for
// itself ("+" included). It returns an error for a malformed escape.
func decodeKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("decoding %q: %w", escaped, err)
	}
	return key, nil
}

// EscapeKey escapes key as one path segment of /groups/{group}/keys/{key}, so that any bytes
// (slash, space, "+", "%", newline, UTF-8) reach the group exactly. It is url.PathEscape,
// named here so that clients written in Go need not know the rules.
func EscapeKey(key string) string { return url.PathEscape(key) }

// etagLen is the length of an entity tag: 16 hex digits in quotes.
const etagLen = 18

// putETag writes the strong entity tag of a value whose xxhash is h.
func putETag(t *[etagLen]byte, h uint64) {
	const digits = "0123456789abcdef"
	t[0], t[etagLen-1] = '"', '"'
	for i := etagLen - 2; i >= 1; i-- {
		t[i] = digits[h&0xf]
		h >>= 4
	}
}

// noneMatchHits reports whether an If-None-Match field (every line of it) names etag, so that
// a GET or HEAD is answered 304 (RFC 9110, section 13.1.2): "*" matches any current value,
// and tags compare weakly, so W/"x" matches "x". Malformed members are skipped.
func noneMatchHits(fields []string, etag string) bool {
	for _, v := range fields {
		for {
			for len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[0] == ',') {
				v = v[1:]
			}
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			if len(v) >= 2 && v[0] == 'W' && v[1] == '/' {
				v = v[2:]
			}
			if len(v) == 0 || v[0] != '"' {
				// Not an entity-tag: skip to the next member.
				i := 0
				for i < len(v) && v[i] != ',' {
					i++
				}
				v = v[i:]
				continue
			}
			end := 1
			for end < len(v) && v[end] != '"' {
				end++
			}
			if end == len(v) { // unterminated
				break
			}
			if v[:end+1] == etag {
				return true
			}
			v = v[end+1:]
		}
	}
	return false
}
