package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
)

// putKey answers PUT /groups/{group}/keys/{key}: the body becomes the key's value on its
// owner (group.Group.SetValue), for the max-age of the request's Cache-Control or else the
// group's TTL, and every other node's copy is dropped before the answer, which says how many
// peers confirmed, as a DELETE's does. A body over the group's value limit is refused with
// 413 before more of it is read than the limit.
func (a *API) putKey(w http.ResponseWriter, r *http.Request) {
	g, key, err := a.target(r, chi.URLParam(r, "group"), chi.URLParam(r, "key"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ttl, err := requestMaxAge(r.Header.Values("Cache-Control"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit := max(g.MaxValueBytes()-int64(len(key)), 0)
	tooLarge := &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
		msg: fmt.Sprintf("group %q takes values of at most %d bytes", g.Name(), limit)}
	if r.ContentLength > limit {
		a.fail(w, r, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.fail(w, r, tooLarge)
			return
		}
		a.fail(w, r, bodyReadError(err))
		return
	}
	v := group.Value{Bytes: body, TTL: ttl, ContentType: r.Header.Get("Content-Type")}
	confirmed, err := g.SetValue(r.Context(), key, v)
	answer := invalidation{Group: g.Name(), Key: key, PeersConfirmed: confirmed}
	if errors.Is(err, group.ErrValueTooLarge) { // the owner's cache is smaller than this node's
		a.fail(w, r, tooLarge)
		return
	}
	if errors.Is(err, group.ErrNotStored) {
		a.fail(w, r, fmt.Errorf("group %q, key %q: %w", g.Name(), key, err))
		return
	}
	a.answerInvalidation(w, r, answer, err)
}

// requestMaxAge reads max-age=N from a request's Cache-Control fields: N seconds, or zero (the
// group's TTL) when there is none.
func requestMaxAge(fields []string) (time.Duration, error) {
	for _, f := range fields {
		for _, d := range strings.Split(f, ",") {
			v, ok := strings.CutPrefix(strings.TrimSpace(strings.ToLower(d)), "max-age=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
			if err != nil || n <= 0 || n > int64(1<<62/time.Second) {
				return 0, &apiError{status: http.StatusBadRequest, code: CodeBadRequest,
					msg: fmt.Sprintf("Cache-Control max-age must be a positive number of seconds, got %q", v)}
			}
			return time.Duration(n) * time.Second, nil
		}
	}
	return 0, nil
}

// notModifiedSince reports whether r's If-Modified-Since names a time at or after
// lastModified (RFC 9110 13.1.3; If-None-Match, when present, is checked instead).
func notModifiedSince(r *http.Request, lastModified time.Time) bool {
	if lastModified.IsZero() {
		return false
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !lastModified.Truncate(time.Second).After(t)
}

// bodyReadError is the answer to a request body that could not be read (the size limit aside):
// 408 "timeout" when it did not arrive within the server's ReadTimeout (a client sending
// slowly), else 400 "bad_request" (a body cut short, a malformed chunk).
func bodyReadError(err error) *apiError {
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return &apiError{status: http.StatusRequestTimeout, code: CodeTimeout,
			msg: "the request body did not arrive within the server's read timeout", err: err}
	}
	return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, msg: "reading the request body failed", err: err}
}
