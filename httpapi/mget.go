package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// The batch read: POST /groups/{group}/mget with {"keys":[...]} answers every key in one
// round trip, each with its own status, through group.Group.GetMany (one fill per key in the
// cluster, one peer request per owner for the keys this node does not hold). It is a read:
// it fills caches as GETs do and changes nothing else, so it needs no admin token (see
// mutates), although its method is POST (a list of keys does not fit a URL).

// mgetRequest is the body of an mget.
type mgetRequest struct {
	Keys []string `json:"keys"`
}

// mgetAnswer is the answer to an mget: one item per requested key, in request order.
type mgetAnswer struct {
	Items []mgetItem `json:"items"`
}

// mgetItem is one key's answer: Status is the HTTP status a GET of the key would have had
// (200, 404, 400, 502, 504, ...), Code and Error the error body's fields when it is not 200.
// Value is base64 (standard, padded) in JSON; TTLSeconds is the remaining lifetime in whole
// seconds, as a GET's max-age, absent for a value that never expires. A stale value (the
// group's stale settings) has Stale set, TTLSeconds 0 and AgeSeconds the whole seconds since
// it expired, as a GET's Age.
type mgetItem struct {
	Key         string `json:"key"`
	Status      int    `json:"status"`
	Code        string `json:"code,omitempty"`
	Error       string `json:"error,omitempty"`
	Value       []byte `json:"value,omitempty"`
	TTLSeconds  *int64 `json:"ttl_seconds,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Stale       bool   `json:"stale,omitempty"`
	AgeSeconds  *int64 `json:"age_seconds,omitempty"`
}

// mget answers POST /groups/{group}/mget. The request is refused as a whole for an unknown
// group (404), a body that is not a JSON object {"keys":[strings]} sent as application/json
// (400 bad_request), a body over MaxBatchRequestBytes or more keys than MaxBatchKeys (413
// too_large). Otherwise the answer is 200 with one item per key: an empty or over-long key is
// that item's 400 bad_key; values past MaxBatchResponseBytes are that item's 413 too_large;
// keys not filled within the group's load timeout are that item's 504 timeout.
func (a *API) mget(w http.ResponseWriter, r *http.Request) {
	g, err := a.lookupGroup(r, chi.URLParam(r, "group"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	keys, err := a.readMgetKeys(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Keys the group would refuse are answered without it; the others are looked up at once.
	valid := make([]string, 0, len(keys))
	items := make([]mgetItem, len(keys))
	for i, key := range keys {
		items[i].Key = key
		switch {
		case key == "":
			items[i].fail(&apiError{status: http.StatusBadRequest, code: CodeBadKey, msg: "empty key"})
		case len(key) > a.maxKeyBytes:
			items[i].fail(a.keyTooLong(len(key)))
		default:
			valid = append(valid, key)
		}
	}
	// A GET waits at most one load timeout; so does an mget, whatever its number of keys:
	// keys whose fill has not ended by then (queued behind slower ones, see
	// group.GetMany) are answered 504 timeout, and the fills already started go on and
	// cache their values for the next read.
	ctx, cancel := context.WithTimeout(r.Context(), g.Config().LoadTimeout)
	defer cancel()
	results := g.GetMany(ctx, valid)
	budget := a.batchResponseBytes()
	var failed error // the first server-side failure, for the log
	overloaded := false
	nFailed := 0
	j := 0
	for i := range items {
		if items[i].Status != 0 {
			continue
		}
		res := results[j]
		j++
		switch {
		case res.Err != nil:
			items[i].fail(res.Err)
			overloaded = overloaded || items[i].Code == CodeOverloaded
			if items[i].Status >= 500 && items[i].Code != CodeCanceled {
				nFailed++
				if failed == nil {
					failed = fmt.Errorf("group %q, key %q: %w", g.Name(), items[i].Key, res.Err)
				}
			}
		case int64(len(res.Bytes)) > budget:
			items[i].fail(&apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
				msg: fmt.Sprintf("the answer reached its limit of %d value bytes; ask for this key in another request", a.batchResponseBytes())})
		default:
			budget -= int64(len(res.Bytes))
			items[i].Status, items[i].Value, items[i].ContentType = http.StatusOK, res.Bytes, res.ContentType
			switch {
			case res.Stale:
				var zero int64
				age := int64(res.Age / time.Second)
				items[i].Stale, items[i].TTLSeconds, items[i].AgeSeconds = true, &zero, &age
			case res.TTL > 0:
				ttl := int64(res.TTL / time.Second)
				items[i].TTLSeconds = &ttl
			}
		}
	}
	if failed != nil {
		if ok, held := a.errLog.allow(time.Now()); ok {
			a.log.Error("batch read: keys failed", "path", r.URL.Path, "failed", nFailed, "keys", len(keys), "first", failed,
				"log_lines_suppressed", held)
		}
	}
	if overloaded {
		w.Header()["Retry-After"] = overloadRetryAfter
	}
	for i := range items {
		a.metrics.mgetKeys.WithLabelValues(g.Name(), statusClassLabel(items[i].Status)).Inc()
	}
	writeJSON(w, http.StatusOK, mgetAnswer{Items: items})
}

// fail makes the item the answer a GET would have had for err.
func (it *mgetItem) fail(err error) {
	it.Status, it.Code = errorStatus(err)
	it.Error = publicMessage(err, it.Code)
}

// readMgetKeys reads and checks an mget's body: application/json, at most
// MaxBatchRequestBytes, one object with a "keys" array of strings and nothing else, at most
// MaxBatchKeys keys.
func (a *API) readMgetKeys(w http.ResponseWriter, r *http.Request) ([]string, error) {
	badRequest := func(msg string, err error) error {
		return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, msg: msg, err: err}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, badRequest(`an mget's body is JSON: send it with "Content-Type: application/json"`, err)
	}
	limit := a.batchRequestBytes()
	tooLarge := &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
		msg: fmt.Sprintf("an mget's body may hold at most %d bytes", limit)}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, bodyReadError(err)
	}
	// encoding/json turns invalid UTF-8, and a \u escape of a lone surrogate, into U+FFFD:
	// the mget would read another key than the one sent, and two keys could become one.
	// Refused instead (a key of other bytes is read with a GET).
	if !utf8.Valid(body) {
		return nil, badRequest("the body is not valid UTF-8: keys that are not UTF-8 text are read with a GET", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req mgetRequest
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest(`the body must be a JSON object {"keys": ["key", ...]}: `+jsonProblem(err), err)
	}
	if dec.More() {
		return nil, badRequest("the body holds more than one JSON value", nil)
	}
	if req.Keys == nil {
		return nil, badRequest(`the body has no "keys" array`, nil)
	}
	if literalFFFD := bytes.Contains(body, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)); !literalFFFD {
		for _, k := range req.Keys {
			if strings.ContainsRune(k, utf8.RuneError) {
				return nil, badRequest("a key holds a \\u escape of a lone surrogate, which is not a character", nil)
			}
		}
	}
	if max := a.batchKeys(); len(req.Keys) > max {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
			msg: fmt.Sprintf("an mget asks for at most %d keys, this one for %d", max, len(req.Keys))}
	}
	return req.Keys, nil
}

// jsonProblem says what is wrong with a body in terms of the body, without Go's type names.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%q must be an array of strings", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

// isMgetPath reports whether path (routingPath of a request) is /groups/{group}/mget, the
// one POST that reads.
func isMgetPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/groups/")
	if !ok {
		return false
	}
	groupSeg, ok := strings.CutSuffix(rest, "/mget")
	return ok && groupSeg != "" && strings.IndexByte(groupSeg, '/') < 0
}

func (a *API) batchKeys() int {
	if a.cfg.MaxBatchKeys > 0 {
		return a.cfg.MaxBatchKeys
	}
	return DefaultMaxBatchKeys
}

func (a *API) batchRequestBytes() int64 {
	if a.cfg.MaxBatchRequestBytes > 0 {
		return a.cfg.MaxBatchRequestBytes
	}
	return DefaultMaxBatchRequestBytes
}

func (a *API) batchResponseBytes() int64 {
	if a.cfg.MaxBatchResponseBytes > 0 {
		return a.cfg.MaxBatchResponseBytes
	}
	return DefaultMaxBatchResponseBytes
}

// statusClassLabel is an item's status as a label: its class, 2xx to 5xx, or 499.
func statusClassLabel(status int) string {
	if status == statusClientClosedRequest {
		return "499"
	}
	return classifyStatus(status).String()
}
