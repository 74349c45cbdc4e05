package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// Cluster is what the API needs from the peers package; *peers.Cluster implements it. The
// methods are called concurrently, on request paths and at metric scrapes, and must not block
// for long.
type Cluster interface {
	// Members returns every member as this node sees it, this node included.
	Members() []peers.Member
	// Stats returns a snapshot of the cluster's counters.
	Stats() peers.Stats
	// Handler serves the peer endpoints. It receives every request whose path is
	// peers.PathPrefix or below it, with the full path and without any routing state of the
	// API's router. New calls it once.
	Handler() http.Handler
	// Ready reports whether the membership lets this node take traffic (it has joined a seed
	// or needs none, no live member holds its name, it is not leaving) and, either way, why.
	// /readyz calls it on every probe: it must not block.
	Ready() (ready bool, reason string)
}

var _ Cluster = (*peers.Cluster)(nil)

// API is one node's HTTP handler. It is safe for concurrent use. A Node builds, serves and
// readies its own; to mount an API in a server of your own, build it with New, serve it with
// NewServer, and call SetReady(true) once the node may take traffic.
type API struct {
	cfg     Config
	log     *slog.Logger
	router  *chi.Mux
	cluster Cluster      // nil on a single node
	peer    http.Handler // the cluster's peer endpoints; nil on a single node

	// handler is what every request goes through: the request metrics around the access log
	// (with Config.AccessLog) around Config.Middleware around the recoverer around
	// requireAdmin (with an AdminToken) around dispatch. Middleware added anywhere else would
	// miss the fast path or the peers.
	handler http.Handler

	// groups is read on every request without a lock: it is built in New and never changes.
	groups map[string]*group.Group
	order  []*group.Group // name order, for /groups

	maxKeyBytes int
	// noTTLCacheControl is the Cache-Control value for values that never expire, computed
	// once from Config.NoTTLMaxAge.
	noTTLCacheControl []string
	// groupNoTTL holds the groups' own values of it (Config.GroupNoTTLMaxAge); nil when no
	// group has one, so that a hit pays the map lookup only where it can matter.
	groupNoTTL map[*group.Group][]string

	ready   atomic.Bool
	metrics *metrics
	// errLog rate-limits the log lines of failed requests (loglimit.go).
	errLog logLimiter

	// history is the node's recent past for the status page's charts, set by a Node before
	// it serves; nil for an API served on its own (the page then has no charts).
	history *history

	// splitPeers is set by a Node with a PeerAddr before it serves: peer paths are served only
	// on the requests its peer listener marks (peerListenerKey), and only they are.
	splitPeers bool
}

// noTTLCacheControl is the Cache-Control value of a value that never expires, for a max-age
// of d (0: no-cache).
func noTTLCacheControl(d time.Duration) []string {
	if d <= 0 {
		return cacheControlNoCache
	}
	return []string{fmt.Sprintf("max-age=%d", int64(d/time.Second))}
}

// noTTL returns the Cache-Control value of g's values that never expire.
func (a *API) noTTL(g *group.Group) []string {
	if a.groupNoTTL != nil {
		if cc, ok := a.groupNoTTL[g]; ok {
			return cc
		}
	}
	return a.noTTLCacheControl
}

// New builds the API over groups (names must be unique) and an optional cluster: with
// cluster == nil the node serves alone and has no peer endpoints. logger receives failed
// requests and handler panics; nil means slog.Default().
func New(cfg Config, groups []*group.Group, cluster Cluster, logger *slog.Logger) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	a := &API{
		cfg:         cfg,
		log:         orDefault(logger),
		cluster:     cluster,
		groups:      make(map[string]*group.Group, len(groups)),
		maxKeyBytes: cfg.MaxKeyBytes,
	}
	if a.maxKeyBytes == 0 {
		a.maxKeyBytes = DefaultMaxKeyBytes
	}
	a.noTTLCacheControl = noTTLCacheControl(cfg.NoTTLMaxAge)
	for _, g := range groups {
		if g == nil {
			return nil, errors.New("httpapi: nil group")
		}
		if _, dup := a.groups[g.Name()]; dup {
			return nil, fmt.Errorf("httpapi: two groups named %q", g.Name())
		}
		a.groups[g.Name()] = g
		a.order = append(a.order, g)
		if d, ok := cfg.GroupNoTTLMaxAge[g.Name()]; ok {
			if a.groupNoTTL == nil {
				a.groupNoTTL = make(map[*group.Group][]string)
			}
			a.groupNoTTL[g] = noTTLCacheControl(d)
		}
		if cfg.WriteTimeout > 0 && g.Config().LoadTimeout >= cfg.WriteTimeout {
			a.log.Warn("a slow load will be cut off by the server's WriteTimeout before it can be answered 504",
				"group", g.Name(), "load_timeout", g.Config().LoadTimeout, "write_timeout", cfg.WriteTimeout)
		}
	}
	slices.SortFunc(a.order, func(x, y *group.Group) int { return strings.Compare(x.Name(), y.Name()) })
	m, err := newMetrics(a.order, cluster)
	if err != nil {
		return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	a.metrics = m
	a.router = a.routes()
	if cluster != nil {
		a.peer = cluster.Handler()
	}
	mws := append(slices.Clip(cfg.Middleware), a.recoverer)
	if cfg.AdminToken != "" {
		mws = append(mws, a.requireAdmin)
	}
	if a.handler, err = chain(mws, http.HandlerFunc(a.dispatch)); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	// Around the whole chain: the access log, and outermost the request metrics, so that
	// they see every answer (the access log reuses their ResponseWriter wrapper).
	if cfg.AccessLog {
		a.handler = accessLog(a.log)(a.handler)
	}
	a.handler = a.metrics.requests.middleware(a.handler)
	return a, nil
}

// routes builds the router. Every route is listed here. The router has no middleware of its
// own: the chain in front of dispatch covers it with everything else.
func (a *API) routes() *chi.Mux {
	r := chi.NewRouter()
	r.NotFound(a.noRoute)
	r.MethodNotAllowed(a.methodNotAllowed)

	r.Get("/groups/{group}/keys/{key}", a.getKey)
	r.Head("/groups/{group}/keys/{key}", a.getKey)
	r.Delete("/groups/{group}/keys/{key}", a.removeKey)
	r.Put("/groups/{group}/keys/{key}", a.putKey)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut} {
		r.MethodFunc(m, "/groups/{group}/keys/*", a.keyInManySegments)
	}
	r.Post("/groups/{group}/mget", a.mget)
	r.Get("/groups/{group}", a.showGroup)
	r.With(a.limitPurges).Delete("/groups/{group}", a.purgeGroup)
	r.Get("/groups", a.listGroups)
	r.Get("/cluster", a.showCluster)
	r.Get("/", a.statusPage)
	r.Head("/", a.statusPage)
	r.Get("/healthz", a.healthz)
	r.Get("/readyz", a.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.InstrumentMetricHandler(a.metrics.registry,
		promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError),
		})))
	return r
}

// ServeHTTP implements http.Handler: every request passes the middleware chain (the request
// metrics, the access log when Config.AccessLog is set, Config.Middleware, the recoverer, then
// requireAdmin when an AdminToken is set), then dispatch.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// dispatch sends a request that has passed the middleware chain to its handler.
//
// Two kinds of request skip the chi router. Peer requests (every path under
// peers.PathPrefix) go straight to the cluster's handler, with their full path and no routing
// state. A GET or HEAD of /groups/{group}/keys/{key} with both segments present, the API's hot
// path, is matched here by chi's rules: chi's routing allocates a route context, a copy of the
// request and a map of path values on every request, which costs more than the cache lookup
// and the response headers together. Every other request, malformed ones included, goes
// through the chi router, which has the same key route.
//
// A node with a PeerAddr serves the peer paths on that listener only, and nothing else there.
func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	if a.splitPeers && (r.Context().Value(peerListenerKey{}) != nil) != isPeerPath(r.URL.Path) {
		a.noRoute(w, r)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if groupSeg, keySeg, ok := splitKeyPath(routingPath(r.URL)); ok {
			a.serveKey(w, r, groupSeg, keySeg)
			return
		}
	}
	if a.peer != nil && isPeerPath(r.URL.Path) {
		a.peer.ServeHTTP(w, r)
		return
	}
	a.router.ServeHTTP(w, r)
}

// isPeerPath reports whether path is peers.PathPrefix or below it.
func isPeerPath(path string) bool {
	rest, ok := strings.CutPrefix(path, peers.PathPrefix)
	return ok && (rest == "" || rest[0] == '/')
}

// SetReady sets what /readyz answers: 200 when ready, 503 otherwise. A new API is not ready:
// Node.Start calls SetReady(true) once the node has joined its cluster, and Node.Stop
// SetReady(false) first thing, so that load balancers drain it.
func (a *API) SetReady(ready bool) { a.ready.Store(ready) }

// Registry returns the node's own Prometheus registry (never the global one), which /metrics
// serves. Callers may register their own collectors on it.
func (a *API) Registry() *prometheus.Registry { return a.metrics.registry }

// NewServer returns an http.Server that serves the API with the configured timeouts and
// limits. The caller sets nothing else and calls Serve(listener), then Shutdown(ctx) to stop.
func (a *API) NewServer() *http.Server {
	return &http.Server{
		Handler:           a,
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.WriteTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// noRoute answers paths that match no route.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	a.fail(w, r, &apiError{status: http.StatusNotFound, code: CodeNoRoute,
		msg: fmt.Sprintf("no endpoint %s", r.URL.Path)})
}

// allMethods are the methods that methodNotAllowed offers in Allow.
var allMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions,
}

// methodNotAllowed answers a known path asked with a method it does not serve, listing the
// methods it does serve in Allow. chi hands a custom 405 handler no list, so it is found by
// asking the router which methods match the path.
func (a *API) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	path := routingPath(r.URL)
	var allowed []string
	for _, m := range allMethods {
		if a.router.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		a.noRoute(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	a.fail(w, r, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
		msg: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
}
