package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// mutates reports whether r may change the node's state, and so needs the admin token: every
// method but the safe ones (GET, HEAD, OPTIONS; RFC 9110, section 9.2.1), on every path but
// the peer endpoints, which the cluster authenticates itself, and but the batch read (POST
// /groups/{group}/mget, a read whose keys travel in the body). A route declares itself
// mutating by its method, so a write route added later is covered without a line here; a
// route must never change state on a safe method, nor may the batch read.
func mutates(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	case http.MethodPost:
		if isMgetPath(routingPath(r.URL)) {
			return false
		}
	}
	return !isPeerPath(r.URL.Path)
}

// tokenDigest is what requireAdmin compares: SHA-256 digests have one length whatever the
// tokens', so the comparison's time says nothing about the token's length or content.
func tokenDigest(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// requireAdmin is the API's middleware for Config.AdminToken: a request that mutates (see
// mutates) passes only with "Authorization: Bearer <token>"; any other is answered 401
// "unauthorized" with a WWW-Authenticate challenge, before routing, so that neither the
// handler nor a rate limit behind it sees it. New puts it in the chain only when a token is
// set.
func (a *API) requireAdmin(next http.Handler) http.Handler {
	want := tokenDigest(a.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !mutates(r) {
			next.ServeHTTP(w, r)
			return
		}
		token, given := bearerToken(r.Header.Get("Authorization"))
		got := tokenDigest(token)
		if given && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		challenge := `Bearer realm="groupcached"`
		msg := "this request changes the cache: it needs the admin token in an Authorization: Bearer header"
		if given {
			challenge += `, error="invalid_token"`
			msg = "the admin token is not valid"
		}
		w.Header().Set("WWW-Authenticate", challenge)
		a.fail(w, r, &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized, msg: msg})
	})
}

// bearerToken returns the token of an Authorization field of the Bearer scheme (the scheme's
// name is case-insensitive), and false for any other field or an empty token.
func bearerToken(field string) (string, bool) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(field), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
