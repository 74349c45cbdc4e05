package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// maxLoggedLabel bounds the client-chosen text (a group segment, a peer's name) an access log
// line carries: group names are at most 64 bytes.
const maxLoggedLabel = 64

// accessLog is the access log middleware (Config.AccessLog): one Info line, "http request", per
// request on log, after the answer, with
//
//	method    the request's method
//	route     the route pattern (/groups/{group}/keys/{key}), never the path
//	group     the group segment, on the routes that have one (as sent: escaped if it was)
//	key_bytes the key's length in bytes, on the key routes: never the key, which may be
//	          sensitive (a user's e-mail address, a token); not a hash of it either, which
//	          anyone can test a guessed key against
//	status    the status sent (200 when the handler wrote nothing)
//	bytes     body bytes sent
//	duration  from the request's arrival in the middleware to the end of the answer
//	remote    the client's address (host:port)
//	peer      on the peer endpoints, the name the asking node gives (Groupcached-Peer)
//
// The query string, which carries the key on the peer endpoints, is never logged. A logger
// whose level is above Info costs the request one Enabled call. Text a
// client chose (group, peer) is cut to 64 bytes (truncate, marked with …); the slog handler quotes it. It reuses the
// request metrics' ResponseWriter wrapper when it runs inside them, as in the API's chain.
func accessLog(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !log.Enabled(r.Context(), slog.LevelInfo) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			path := routingPath(r.URL)
			rt, groupSeg := classifyRoute(path)
			rec, _ := recorderFor(w)
			next.ServeHTTP(rec, r)
			var buf [9]slog.Attr
			attrs := append(buf[:0],
				slog.String("method", r.Method),
				slog.String("route", rt.pattern()))
			if groupSeg != "" {
				attrs = append(attrs, slog.String("group", truncate(groupSeg, maxLoggedLabel)))
			}
			if rt == routeKey || rt == routeKeyMany {
				attrs = append(attrs, slog.Int("key_bytes", keyBytes(r, path, groupSeg)))
			}
			attrs = append(attrs,
				slog.Int("status", rec.Status()),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", time.Since(start)),
				slog.String("remote", r.RemoteAddr))
			if rt.isPeer() {
				attrs = append(attrs, slog.String("peer", truncate(r.Header.Get("Groupcached-Peer"), maxLoggedLabel)))
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
		})
	}
}

// keyBytes is the decoded length of the key in path, a key route's routing path: the
// segments after /keys/, still escaped when the URL has a RawPath (decodeSegment), in which
// case each %XX counts one byte.
func keyBytes(r *http.Request, path, groupSeg string) int {
	key := path[len("/groups/")+len(groupSeg)+len("/keys/"):]
	if r.URL.RawPath == "" {
		return len(key)
	}
	return len(key) - 2*strings.Count(key, "%")
}
