package httpapi

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics counts and times every request the API serves, by method, route and status
// class, never by key: groupcached_http_requests_total and
// groupcached_http_request_duration_seconds. Its middleware is the outermost of the chain, so
// it sees every answer, the 401s of the admin token and the 500s of the recoverer included.
//
// It is on the hit path of every GET, so it is built to cost little there: the route is
// classified from the path without allocating (classifyRoute), the labelled series are
// resolved once per method, route and class and kept in an array of atomic pointers (only
// the series a node has served appear at /metrics), and the ResponseWriter wrapper comes from
// a pool. BENCHMARKS.md has its cost.
type requestMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series[route][method][class] is resolved on first use; then the hit path reads it
	// with one atomic load.
	series [numRoutes][numMethods][numStatusClasses]atomic.Pointer[requestSeries]

	recorders sync.Pool // of *responseRecorder
}

// requestSeries is one labelled counter and histogram.
type requestSeries struct {
	total    prometheus.Counter
	duration prometheus.Observer
}

func newRequestMetrics() *requestMetrics {
	labels := []string{"method", "route", "code"}
	m := &requestMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "http_requests_total",
			Help:      "HTTP requests served by this node (clients' and peers'), by method, route pattern and status class.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "http_request_duration_seconds",
			Help:      "Time from the request's arrival in the handler chain to the end of its answer, by method, route pattern and status class. Upgraded connections (the peer wire) are counted in http_requests_total only.",
			// From a hit served from memory (tens of microseconds) to a slow fill at group's
			// default 30 s load timeout.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, labels),
	}
	m.recorders.New = func() any { return new(responseRecorder) }
	return m
}

// collectors are what the node's registry must hold for the series to be exported.
func (m *requestMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.total, m.duration}
}

// seriesFor returns the series of one method, route and class, resolving it the first time.
func (m *requestMetrics) seriesFor(rt route, me method, c statusClass) *requestSeries {
	p := &m.series[rt][me][c]
	if s := p.Load(); s != nil {
		return s
	}
	labels := []string{me.String(), rt.pattern(), c.String()}
	s := &requestSeries{
		total:    m.total.WithLabelValues(labels...),
		duration: m.duration.WithLabelValues(labels...),
	}
	// Two first requests may race here: both resolve the same children of the vectors.
	p.Store(s)
	return s
}

// middleware counts and times each request. It hands the request a responseRecorder that the
// access log, next in the chain, reuses.
func (m *requestMetrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rt, _ := classifyRoute(routingPath(r.URL))
		rec := m.recorders.Get().(*responseRecorder)
		rec.reset(w)
		next.ServeHTTP(rec, r)
		s := m.seriesFor(rt, classifyMethod(r.Method), classifyStatus(rec.Status()))
		s.total.Inc()
		if !rec.hijacked {
			// A hijacked connection's "request" lasts as long as the connection.
			s.duration.Observe(time.Since(start).Seconds())
		}
		rec.ResponseWriter = nil // reset on the next Get; the pool must not keep the connection's writer
		m.recorders.Put(rec)
	})
}

// recorderFor returns w as a responseRecorder, wrapping it in a new one unless an outer
// middleware already did; wrapped reports whether it wrapped.
func recorderFor(w http.ResponseWriter) (rec *responseRecorder, wrapped bool) {
	if rec, ok := w.(*responseRecorder); ok {
		return rec, false
	}
	return &responseRecorder{ResponseWriter: w}, true
}
