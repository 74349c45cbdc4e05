package httpapi

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/groupcached/groupcached/group"
)

// metrics is the node's Prometheus registry and what feeds it. The group and cluster series
// come from statsCollector, which reads Group.Stats and Cluster.Stats at scrape time, so a
// Get pays nothing for them. Series are labelled by group (and cache or source), never by key.
type metrics struct {
	registry *prometheus.Registry

	// httpErrors counts error answers by code. It is touched only on the error path.
	httpErrors *prometheus.CounterVec

	// requests counts and times every request (requestmetrics.go).
	requests *requestMetrics

	// mgetKeys counts the keys of batch reads by group and item status class (mget.go).
	mgetKeys *prometheus.CounterVec
}

func newMetrics(groups []*group.Group, cluster Cluster) (*metrics, error) {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		httpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "http_errors_total",
			Help:      "Error answers of the HTTP API, by error code.",
		}, []string{"code"}),
		requests: newRequestMetrics(),
		mgetKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "mget_keys_total",
			Help:      "Keys asked for in batch reads (POST /groups/{group}/mget), by group and by the status class of their item (code: 2xx, 4xx, 499 or 5xx).",
		}, []string{"group", "code"}),
	}
	for _, c := range append([]prometheus.Collector{
		newStatsCollector(groups, cluster),
		m.httpErrors,
		m.mgetKeys,
		newBuildInfoGauge(ReadBuildInfo()),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, m.requests.collectors()...) {
		if err := m.registry.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

const namespace = "groupcached"

// statsCollector turns group.Stats and peers.Stats snapshots into const metrics.
type statsCollector struct {
	groups  []*group.Group
	cluster Cluster // may be nil

	gets, cacheHits, negativeHits, misses, loads, dedupedLoads *prometheus.Desc
	loadErrors, loaderPanics, peerErrors, serverRequests       *prometheus.Desc
	loadDuration                                               *prometheus.Desc
	cacheBytes, cacheItems, evictions, expirations, capacity   *prometheus.Desc
	sizingHitRatio, sizingBytes, sizingSampled, sizingDropped  *prometheus.Desc

	loadsInFlight, loadQueue, loadingBytes, overloadRejected, queuedLoads *prometheus.Desc
	rememberedErrors, failureLogsSuppressed, staleServed, staleRefreshes  *prometheus.Desc

	members, ringRebuilds, fetchErrors, unreachable, invalidations, rebuildLatency *prometheus.Desc
	peerConns, peerAuthRefused                                                     *prometheus.Desc
	batchesServed, batchKeysServed                                                 *prometheus.Desc
	peersEjected, peerEjections                                                    *prometheus.Desc
}

func newStatsCollector(groups []*group.Group, cluster Cluster) *statsCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	g, gc, gs := []string{"group"}, []string{"group", "cache"}, []string{"group", "source"}
	return &statsCollector{
		groups:  groups,
		cluster: cluster,

		gets:           desc("gets_total", "Get calls from clients of this node.", g...),
		cacheHits:      desc("cache_hits_total", "Gets and peer requests answered from a cache (main: keys this node owns; hot: copies of other nodes' keys).", gc...),
		negativeHits:   desc("negative_hits_total", "Cache hits on a remembered not-found answer.", g...),
		misses:         desc("cache_misses_total", "Gets and peer requests that missed both caches.", g...),
		loads:          desc("loads_total", "Values (or not-found answers) filled, by source: local (this node's loader), peer (the owner), fallback (local loads because the owner was unreachable).", gs...),
		dedupedLoads:   desc("deduped_loads_total", "Fills started after concurrent misses of one key were folded into one.", g...),
		loadErrors:     desc("load_errors_total", "Loader calls on this node that failed, timed out or panicked.", g...),
		loaderPanics:   desc("loader_panics_total", "Loader calls on this node that panicked.", g...),
		peerErrors:     desc("peer_errors_total", "Fetches from a key's owner that failed.", g...),
		serverRequests: desc("peer_requests_served_total", "Requests from other nodes served by this node.", g...),
		loadDuration:   desc("load_duration_seconds", "Duration of loader calls on this node.", g...),
		cacheBytes:     desc("cache_bytes", "Bytes held by a cache, per-entry overhead included.", gc...),
		cacheItems:     desc("cache_items", "Entries held by a cache.", gc...),
		evictions:      desc("cache_evictions_total", "Entries dropped to stay within the byte bound.", gc...),
		expirations:    desc("cache_expirations_total", "Entries dropped because their TTL ran out.", gc...),
		capacity:       desc("cache_capacity_bytes", "The group's configured byte bound (main and hot caches together).", g...),

		sizingHitRatio: desc("sizing_hit_ratio", "Hit ratio the group would have had since start with a cache of this size (a multiple of its main cache), estimated from a sample of its traffic (group sizing). Absent while the estimate warms up.", "group", "size"),
		sizingBytes:    desc("sizing_size_bytes", "The cache size each sizing estimate simulates.", "group", "size"),
		sizingSampled:  desc("sizing_sampled_requests_total", "Requests the group's sizing estimator simulated.", g...),
		sizingDropped:  desc("sizing_dropped_requests_total", "Sampled requests the sizing estimator skipped because another was being simulated.", g...),

		loadsInFlight:         desc("loads_in_flight", "Loader calls in progress on this node (bounded by max_concurrent_loads).", g...),
		loadQueue:             desc("load_queue_depth", "Loads waiting for a load slot or for the loading byte budget (bounded by max_queued_loads).", g...),
		loadingBytes:          desc("loading_bytes", "Estimated bytes of the loads in progress, charged against max_loading_bytes.", g...),
		overloadRejected:      desc("load_rejections_total", "Loads refused because max_concurrent_loads were in progress and max_queued_loads waiting (answered 503 overloaded).", g...),
		queuedLoads:           desc("loads_queued_total", "Loads that waited in the queue before they started.", g...),
		rememberedErrors:      desc("remembered_errors_total", "Requests answered with a remembered load failure, without calling the origin (error_ttl).", g...),
		failureLogsSuppressed: desc("load_failure_logs_suppressed_total", "Load failure log lines held back by the log's rate limit.", g...),
		staleServed:           desc("stale_served_total", "Answers with an expired value, by reason: revalidate (stale_while_revalidate) or error (stale_if_error).", "group", "reason"),
		staleRefreshes:        desc("stale_refreshes_total", "Background loads started to revalidate an expired value.", g...),

		members:         desc("cluster_members", "Alive members of the cluster, this node included."),
		ringRebuilds:    desc("ring_rebuilds_total", "Times a new hash ring was swapped in."),
		fetchErrors:     desc("peer_fetch_errors_total", "Peer fetches that failed on this node, any reason."),
		unreachable:     desc("peer_unreachable_total", "Peer fetches that failed because the owner could not be reached."),
		invalidations:   desc("invalidations_sent_total", "Remove and Purge broadcasts sent to the cluster."),
		rebuildLatency:  desc("ring_rebuild_latency_seconds", "Time from the last membership event to the ring swap."),
		peerConns:       desc("peer_connections", "Peer wire connections this node holds to its peers."),
		batchesServed:   desc("peer_batches_served_total", "Batch fetches (one mget's keys for this node, in one peer message) that other nodes sent this node."),
		batchKeysServed: desc("peer_batch_keys_served_total", "Keys of the batch fetches other nodes sent this node."),
		peersEjected:    desc("peers_ejected", "Peers this node routes around now (outlier detection: consecutive unreachable fetches); it loads their keys itself."),
		peerEjections:   desc("peer_ejections_total", "Times this node ejected a peer from its routing after consecutive unreachable fetches."),
		peerAuthRefused: desc("peer_auth_refused_total", "Peer connections refused by the authentication checks, by reason: clock_skew (the nodes' clocks disagree) or other (no or a bad MAC, not a member, a replay).",
			"reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.gets, c.cacheHits, c.negativeHits, c.misses, c.loads, c.dedupedLoads,
		c.loadErrors, c.loaderPanics, c.peerErrors, c.serverRequests, c.loadDuration,
		c.cacheBytes, c.cacheItems, c.evictions, c.expirations, c.capacity,
		c.sizingHitRatio, c.sizingBytes, c.sizingSampled, c.sizingDropped,
		c.loadsInFlight, c.loadQueue, c.loadingBytes, c.overloadRejected, c.queuedLoads,
		c.rememberedErrors, c.failureLogsSuppressed, c.staleServed, c.staleRefreshes,
		c.members, c.ringRebuilds, c.fetchErrors, c.unreachable, c.invalidations, c.rebuildLatency,
		c.batchesServed, c.batchKeysServed,
		c.peerConns, c.peerAuthRefused,
		c.peersEjected, c.peerEjections,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Stats snapshot per group, one for the cluster.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, g := range c.groups {
		name, st := g.Name(), g.Stats()
		counter(c.gets, st.Gets, name)
		counter(c.cacheHits, st.Main.Hits, name, "main")
		counter(c.cacheHits, st.Hot.Hits, name, "hot")
		counter(c.negativeHits, st.NegativeHits, name)
		counter(c.misses, st.Loads, name)
		counter(c.loads, st.LocalLoads, name, "local")
		counter(c.loads, st.PeerLoads, name, "peer")
		counter(c.loads, st.FallbackLoads, name, "fallback")
		counter(c.dedupedLoads, st.LoadsDeduped, name)
		counter(c.loadErrors, st.LocalLoadErrs, name)
		counter(c.loaderPanics, st.LoaderPanics, name)
		counter(c.peerErrors, st.PeerErrors, name)
		counter(c.serverRequests, st.ServerRequests, name)
		ch <- constHistogram(c.loadDuration, st.LoadDuration, name)
		for _, cs := range []struct {
			cache string
			s     group.CacheStats
		}{{"main", st.Main}, {"hot", st.Hot}} {
			gauge(c.cacheBytes, float64(cs.s.Bytes), name, cs.cache)
			gauge(c.cacheItems, float64(cs.s.Items), name, cs.cache)
			counter(c.evictions, cs.s.Evictions, name, cs.cache)
			counter(c.expirations, cs.s.Expirations, name, cs.cache)
		}
		gauge(c.capacity, float64(g.Config().CacheBytes), name)
		gauge(c.loadsInFlight, float64(st.Admission.InFlight), name)
		gauge(c.loadQueue, float64(st.Admission.Queued), name)
		gauge(c.loadingBytes, float64(st.Admission.LoadingBytes), name)
		counter(c.overloadRejected, st.Admission.Rejected, name)
		counter(c.queuedLoads, st.Admission.Waited, name)
		counter(c.rememberedErrors, st.RememberedErrors, name)
		counter(c.failureLogsSuppressed, st.FailureLogsSuppressed, name)
		counter(c.staleServed, st.StaleRevalidating, name, "revalidate")
		counter(c.staleServed, st.StaleOnError, name, "error")
		counter(c.staleRefreshes, st.StaleRefreshes, name)
		if est, ok := g.Sizing(); ok {
			counter(c.sizingSampled, est.Sampled, name)
			counter(c.sizingDropped, est.Dropped, name)
			for _, s := range est.Sizes {
				size := sizeLabel(s.Ratio)
				gauge(c.sizingBytes, float64(s.Bytes), name, size)
				if !est.Warming {
					gauge(c.sizingHitRatio, s.HitRatio, name, size)
				}
			}
		}
	}

	if c.cluster == nil {
		gauge(c.members, 1)
		return
	}
	cs := c.cluster.Stats()
	gauge(c.members, float64(cs.Members))
	counter(c.ringRebuilds, int64(cs.RingRebuilds))
	counter(c.fetchErrors, int64(cs.FetchErrors))
	counter(c.unreachable, int64(cs.Unreachable))
	counter(c.invalidations, int64(cs.Invalidations))
	gauge(c.rebuildLatency, cs.RebuildLatency.Seconds())
	gauge(c.peerConns, float64(cs.PeerConns))
	gauge(c.peersEjected, float64(cs.Ejected))
	counter(c.peerEjections, int64(cs.Ejections))
	counter(c.peerAuthRefused, int64(cs.ClockSkewRefused), "clock_skew")
	counter(c.peerAuthRefused, int64(cs.AuthRefused-cs.ClockSkewRefused), "other")
	counter(c.batchesServed, int64(cs.BatchesServed))
	counter(c.batchKeysServed, int64(cs.BatchKeysServed))
}

// constHistogram turns group's per-bucket counts into Prometheus's cumulative buckets.
func constHistogram(d *prometheus.Desc, h group.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, upper := range h.Bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[upper] = cum
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// watchCollector exports what the sinks of a Node's change feeds count (watch.go), for the
// groups whose watcher has reported at least once.
type watchCollector struct {
	sinks                              []*watchSink
	changes, badPayloads, gaps, feedUp *prometheus.Desc
}

func newWatchCollector(sinks []*watchSink) *watchCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "invalidation", name), help, []string{"group"}, nil)
	}
	return &watchCollector{
		sinks:       sinks,
		changes:     desc("notifications_total", "Changed keys heard from the origin's change feed (a PostgreSQL LISTEN), bad payloads included."),
		badPayloads: desc("bad_payloads_total", "Change feed payloads that are not a key (empty, or over max_key_bytes), ignored."),
		gaps:        desc("gaps_total", "Times the change feed came back after changes may have gone unheard, and the group was purged here and on the peers."),
		feedUp:      desc("feed_up", "1 while the change feed is listening; 0 while changes at the origin are not heard."),
	}
}

// Describe implements prometheus.Collector.
func (c *watchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.changes
	ch <- c.badPayloads
	ch <- c.gaps
	ch <- c.feedUp
}

// Collect implements prometheus.Collector.
func (c *watchCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sinks {
		if !s.active.Load() {
			continue
		}
		name := s.g.Name()
		up := 0.0
		if s.up.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(s.changes.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.badPayloads, prometheus.CounterValue, float64(s.badKeys.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.gaps, prometheus.CounterValue, float64(s.gaps.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.feedUp, prometheus.GaugeValue, up, name)
	}
}

// sizeLabel is a sizing estimate's size label: its multiple of the main cache, "0.25x" to "4x".
func sizeLabel(ratio float64) string { return strconv.FormatFloat(ratio, 'g', -1, 64) + "x" }
