package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Error codes are the "code" field of every JSON error body. Clients branch on them; the
// "error" field is for people.
const (
	CodeUnknownGroup     = "unknown_group"           // 404: no group of that name on this node
	CodeNotFound         = "not_found"               // 404: the origin has no such key
	CodeNoRoute          = "no_route"                // 404: no such endpoint
	CodeBadKey           = "bad_key"                 // 400: empty, over-long or badly escaped key
	CodeMethodNotAllowed = "method_not_allowed"      // 405: see the Allow header
	CodeLoadFailed       = "load_failed"             // 502: the loader (here or on the owner) failed
	CodePeerUnavailable  = "peer_unavailable"        // 502: the owner could not be reached
	CodeInvalidation     = "invalidation_incomplete" // 502: some peers did not confirm a Remove/Purge
	CodeTimeout          = "timeout"                 // 504: the load ran past its timeout; 408: a request body arrived too slowly
	CodeLoaderPanic      = "loader_panic"            // 500: the loader panicked; nothing was cached
	CodeCanceled         = "canceled"                // 499: the client went away first
	CodeInternal         = "internal"                // 500: a bug in this node; see its log
	CodeNotReady         = "not_ready"               // 503: /readyz before SetReady(true)
	CodeUnauthorized     = "unauthorized"            // 401: a mutating request without the admin token
	CodeRateLimited      = "rate_limited"            // 429: past the purge rate; see Retry-After
	CodeTooLarge         = "too_large"               // 413: a PUT value or a batch over its limit
	CodeBadRequest       = "bad_request"             // 400: a malformed body or header
	CodeOverloaded       = "overloaded"              // 503: too many loads in progress (here or on the owner); see Retry-After
	CodeValueTooLarge    = "value_too_large"         // 502: the origin's value does not fit the group's cache
)

// overloadRetryAfter is the Retry-After of an "overloaded" answer, in seconds: loads free
// their slots within a load's time, and a client that waits a second finds the queue moved.
var overloadRetryAfter = []string{"1"}

// statusClientClosedRequest is the de-facto status for a request whose client left before
// the answer was ready. Nobody reads it; it keeps such requests apart from server errors.
const statusClientClosedRequest = 499

// apiError is an error that already knows its status: the request itself was wrong (bad key,
// unknown group, unknown route) or an operation wants its own code. It may wrap a cause.
type apiError struct {
	status int
	code   string
	msg    string
	err    error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

// errorStatus maps an error to its HTTP status and code. It is the one place where group's
// sentinels become statuses. Timeouts and cancellation are checked first, so that an
// operation-specific apiError wrapping a timeout still reads as a timeout.
func errorStatus(err error) (status int, code string) {
	var ae *apiError
	switch {
	case errors.Is(err, group.ErrLoadTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, CodeTimeout
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, CodeCanceled
	case errors.Is(err, group.ErrLoaderPanic):
		return http.StatusInternalServerError, CodeLoaderPanic
	case errors.Is(err, group.ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, group.ErrInvalidKey):
		return http.StatusBadRequest, CodeBadKey
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, group.ErrPeerUnavailable):
		return http.StatusBadGateway, CodePeerUnavailable
	case errors.Is(err, group.ErrOverloaded):
		return http.StatusServiceUnavailable, CodeOverloaded
	case errors.Is(err, group.ErrValueTooLarge):
		return http.StatusBadGateway, CodeValueTooLarge
	default:
		return http.StatusBadGateway, CodeLoadFailed
	}
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// publicMessage is what a client reads about err: the message of an apiError, which says
// what was wrong with the request in the request's own terms (its path, group, key) and
// never includes its cause; otherwise a plain sentence for the code. The cause (a loader's
// error with its file path or SQL text, a peer's name and address) goes to the node's log
// only: an error body tells the client what happened, not how the cluster is built.
func publicMessage(err error, code string) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.msg
	}
	switch code {
	case CodeTimeout:
		return "the load took longer than the group allows"
	case CodeCanceled:
		return "the request was canceled"
	case CodeLoaderPanic:
		return "the loader failed unexpectedly; nothing was cached"
	case CodeNotFound:
		return "the origin has no value for this key"
	case CodeBadKey:
		return "the key is not valid for this group"
	case CodePeerUnavailable:
		return "the node that owns this key could not be reached"
	case CodeLoadFailed:
		return "loading the value from the origin failed"
	case CodeOverloaded:
		return "too many loads in progress; retry later"
	case CodeValueTooLarge:
		return "the value is larger than the group's cache"
	}
	return "internal error; see the node's log"
}

// fail answers err as JSON with its mapped status and a public message (publicMessage), and
// logs it by severity with its whole cause: server-side failures at Error, a client that left
// and the client's own mistakes at Debug.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus(err)
	a.metrics.httpErrors.WithLabelValues(code).Inc()
	if code == CodeOverloaded {
		w.Header()["Retry-After"] = overloadRetryAfter
	}
	if status >= 500 && code != CodeCanceled {
		if ok, held := a.errLog.allow(time.Now()); ok && held == 0 {
			a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
		} else if ok {
			a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err,
				"log_lines_suppressed", held)
		}
	} else {
		a.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
	}
	writeJSON(w, status, errorBody{Error: publicMessage(err, code), Code: code})
}

// writeJSON answers v as JSON. Encoding errors can only be the client's broken connection.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: "encoding the answer failed", Code: CodeInternal})
	}
	body = append(body, '\n')
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = cacheControlNoStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// orDefault returns l, or slog.Default() when l is nil (as group.New does).
func orDefault(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}
