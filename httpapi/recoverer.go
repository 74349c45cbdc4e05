package httpapi

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// recoverer is the innermost middleware of the API's chain: it turns a panic in a handler
// (the key path, the peer endpoints, any chi route) into a logged 500, so that one bad request
// cannot take the node down.
func (a *API) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer a.recoverPanic(w, r)
		next.ServeHTTP(w, r)
	})
}

// recoverPanic, deferred, answers a panic with a logged 500. http.ErrAbortHandler passes
// through: net/http uses it to abort a response.
func (a *API) recoverPanic(w http.ResponseWriter, r *http.Request) {
	rec := recover()
	if rec == nil {
		return
	}
	if rec == http.ErrAbortHandler {
		panic(rec)
	}
	a.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", rec, "stack", string(debug.Stack()))
	// Headers the handler set for its own answer (an ETag, say) must not ride along with the
	// error. If they were already sent, the error goes nowhere anyway.
	clear(w.Header())
	a.fail(w, r, &apiError{status: http.StatusInternalServerError, code: CodeInternal,
		msg: fmt.Sprintf("internal error serving %s %s", r.Method, r.URL.Path)})
}
