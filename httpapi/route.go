package httpapi

import (
	"net/http"
	"strings"

	"github.com/groupcached/groupcached/peers"
	"github.com/groupcached/groupcached/peers/wire"
)

// route is the endpoint a request asked for, as the request metrics and the access log name
// it: a pattern from a fixed list, never the raw path, so that keys (which may be sensitive,
// and are unbounded) reach neither a label nor a log line. classifyRoute finds it from the
// path alone, before the request is served, without allocating.
type route uint8

const (
	routeKey       route = iota // /groups/{group}/keys/{key}
	routeKeyMany                // /groups/{group}/keys/* (a key in several segments: 400)
	routeMget                   // /groups/{group}/mget (the batch read)
	routeGroup                  // /groups/{group}
	routeGroups                 // /groups
	routeCluster                // /cluster
	routeHealthz                // /healthz
	routeReadyz                 // /readyz
	routeMetrics                // /metrics
	routeStatus                 // / (the status page)
	routePeerConn               // /_peer/v2/conn: the peer wire's upgrade (one request per connection)
	routePeerOther              // any other path under /_peer
	routeUnmatched              // no endpoint: 404
	numRoutes
)

// pattern is the route's label value: chi's pattern for the API's routes.
func (rt route) pattern() string {
	switch rt {
	case routeKey:
		return "/groups/{group}/keys/{key}"
	case routeKeyMany:
		return "/groups/{group}/keys/*"
	case routeMget:
		return "/groups/{group}/mget"
	case routeGroup:
		return "/groups/{group}"
	case routeGroups:
		return "/groups"
	case routeCluster:
		return "/cluster"
	case routeHealthz:
		return "/healthz"
	case routeReadyz:
		return "/readyz"
	case routeMetrics:
		return "/metrics"
	case routeStatus:
		return "/"
	case routePeerConn:
		return wire.DefaultPath
	case routePeerOther:
		return peers.PathPrefix + "/*"
	}
	return "unmatched"
}

// isPeer reports whether the route is one of the peer endpoints.
func (rt route) isPeer() bool { return rt == routePeerConn || rt == routePeerOther }

// classifyRoute returns the route of a request for path (routingPath of its URL, as dispatch
// reads it), with the group segment for the routes that have one (still escaped when the
// client escaped it). It matches the way dispatch and the router do, whatever the method: a
// method the route does not serve is answered 405 under the route's name.
func classifyRoute(path string) (rt route, groupSeg string) {
	if rest, ok := strings.CutPrefix(path, "/groups/"); ok {
		i := indexSlash(rest)
		switch {
		case i < 0 && rest != "":
			return routeGroup, rest
		case i <= 0:
			return routeUnmatched, ""
		}
		groupSeg, rest = rest[:i], rest[i:]
		if rest == "/mget" {
			return routeMget, groupSeg
		}
		keySeg, ok := strings.CutPrefix(rest, "/keys/")
		switch {
		case !ok:
			return routeUnmatched, ""
		case keySeg != "" && strings.IndexByte(keySeg, '/') < 0:
			return routeKey, groupSeg
		default:
			return routeKeyMany, groupSeg
		}
	}
	if rest, ok := strings.CutPrefix(path, peers.PathPrefix); ok && (rest == "" || rest[0] == '/') {
		if path == wire.DefaultPath {
			return routePeerConn, ""
		}
		return routePeerOther, ""
	}
	switch path {
	case "/groups":
		return routeGroups, ""
	case "/cluster":
		return routeCluster, ""
	case "/healthz":
		return routeHealthz, ""
	case "/readyz":
		return routeReadyz, ""
	case "/metrics":
		return routeMetrics, ""
	case "/":
		return routeStatus, ""
	}
	return routeUnmatched, ""
}

// indexSlash is strings.IndexByte(s, '/') for a short s, such as a group name, where a plain
// loop costs less than IndexByte's vector setup (the request metrics classify every request).
func indexSlash(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// method is a request method from a fixed list, for labels.
type method uint8

const (
	methodGet method = iota
	methodHead
	methodPost
	methodPut
	methodPatch
	methodDelete
	methodOptions
	methodOther
	numMethods
)

func classifyMethod(m string) method {
	switch m {
	case http.MethodGet:
		return methodGet
	case http.MethodHead:
		return methodHead
	case http.MethodPost:
		return methodPost
	case http.MethodPut:
		return methodPut
	case http.MethodPatch:
		return methodPatch
	case http.MethodDelete:
		return methodDelete
	case http.MethodOptions:
		return methodOptions
	}
	return methodOther
}

func (m method) String() string {
	switch m {
	case methodGet:
		return http.MethodGet
	case methodHead:
		return http.MethodHead
	case methodPost:
		return http.MethodPost
	case methodPut:
		return http.MethodPut
	case methodPatch:
		return http.MethodPatch
	case methodDelete:
		return http.MethodDelete
	case methodOptions:
		return http.MethodOptions
	}
	return "other"
}

// statusClass is a status code's class, for labels: 1xx to 5xx.
type statusClass uint8

const numStatusClasses = 5

func classifyStatus(code int) statusClass {
	return statusClass(min(max(code/100, 1), 5) - 1)
}

func (c statusClass) String() string {
	return [numStatusClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[c]
}
