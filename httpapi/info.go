package httpapi

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// groupInfo is one group in GET /groups: its configuration, a snapshot of its counters and,
// when it estimates one, its sizing curve.
type groupInfo struct {
	Name   string      `json:"name"`
	Config groupConfig `json:"config"`
	Stats  groupStats  `json:"stats"`
	Sizing *sizingInfo `json:"sizing,omitempty"`
}

// sizingInfo is group.SizingEstimate: the hit ratio estimated at other cache sizes.
type sizingInfo struct {
	Requests int64      `json:"requests"` // requests offered: every size's denominator
	Sampled  int64      `json:"sampled"`  // requests simulated
	Dropped  int64      `json:"dropped"`  // sampled requests skipped while another was simulated
	Warming  bool       `json:"warming"`  // true until 512 sampled requests: no estimate yet
	Sizes    []sizeInfo `json:"sizes"`
}

type sizeInfo struct {
	Ratio    float64  `json:"ratio"`     // the size as a multiple of the configured bytes
	Bytes    int64    `json:"bytes"`     // the size simulated
	HitRatio *float64 `json:"hit_ratio"` // null while warming
	Rate     float64  `json:"rate"`      // share of the keys sampled for this size
	Entries  int      `json:"entries"`   // entries in its miniature cache
}

func newSizingInfo(g *group.Group) *sizingInfo {
	est, ok := g.Sizing()
	if !ok {
		return nil
	}
	out := &sizingInfo{Requests: est.Requests, Sampled: est.Sampled, Dropped: est.Dropped, Warming: est.Warming,
		Sizes: make([]sizeInfo, 0, len(est.Sizes))}
	for _, s := range est.Sizes {
		si := sizeInfo{Ratio: s.Ratio, Bytes: s.Bytes, Rate: s.Rate, Entries: s.Entries}
		if !est.Warming {
			si.HitRatio = &s.HitRatio
		}
		out.Sizes = append(out.Sizes, si)
	}
	return out
}

type groupConfig struct {
	CacheBytes       int64   `json:"cache_bytes"`
	HotCacheFraction float64 `json:"hot_cache_fraction"`
	HotCacheRate     int     `json:"hot_cache_rate"`
	TTL              string  `json:"ttl"` // "0s": values never expire
	NegativeTTL      string  `json:"negative_ttl"`
	LoadTimeout      string  `json:"load_timeout"`
	Sizing           bool    `json:"sizing"`

	MaxConcurrentLoads   int    `json:"max_concurrent_loads"`
	MaxQueuedLoads       int    `json:"max_queued_loads"`
	MaxLoadingBytes      int64  `json:"max_loading_bytes"`
	ErrorTTL             string `json:"error_ttl"`
	MaxErrorTTL          string `json:"max_error_ttl"`
	StaleWhileRevalidate string `json:"stale_while_revalidate"`
	StaleIfError         string `json:"stale_if_error"`
}

type groupStats struct {
	Gets           int64      `json:"gets"`
	CacheHits      int64      `json:"cache_hits"`
	NegativeHits   int64      `json:"negative_hits"`
	Loads          int64      `json:"loads"`
	LoadsDeduped   int64      `json:"loads_deduped"`
	LocalLoads     int64      `json:"local_loads"`
	LocalLoadErrs  int64      `json:"local_load_errors"`
	LoaderPanics   int64      `json:"loader_panics"`
	PeerLoads      int64      `json:"peer_loads"`
	PeerErrors     int64      `json:"peer_errors"`
	FallbackLoads  int64      `json:"fallback_loads"`
	ServerRequests int64      `json:"server_requests"`
	Main           cacheStats `json:"main"`
	Hot            cacheStats `json:"hot"`
	LoadCount      uint64     `json:"load_count"`
	LoadSeconds    float64    `json:"load_seconds"` // total time spent in the loader

	LoadsInFlight     int64 `json:"loads_in_flight"`
	LoadQueueDepth    int64 `json:"load_queue_depth"`
	LoadRejections    int64 `json:"load_rejections"` // answered 503 overloaded
	RememberedErrors  int64 `json:"remembered_errors"`
	StaleRevalidating int64 `json:"stale_revalidating"`
	StaleOnError      int64 `json:"stale_on_error"`
}

type cacheStats struct {
	Bytes       int64 `json:"bytes"`
	Items       int64 `json:"items"`
	Hits        int64 `json:"hits"`
	Evictions   int64 `json:"evictions"`
	Expirations int64 `json:"expirations"`
}

func newGroupInfo(g *group.Group) groupInfo {
	c, st := g.Config(), g.Stats()
	return groupInfo{
		Name: g.Name(),
		Config: groupConfig{
			CacheBytes:       c.CacheBytes,
			HotCacheFraction: c.HotCacheFraction,
			HotCacheRate:     c.HotCacheRate,
			TTL:              c.TTL.String(),
			NegativeTTL:      c.NegativeTTL.String(),
			LoadTimeout:      c.LoadTimeout.String(),
			Sizing:           c.Sizing,

			MaxConcurrentLoads:   c.MaxConcurrentLoads,
			MaxQueuedLoads:       c.MaxQueuedLoads,
			MaxLoadingBytes:      c.MaxLoadingBytes,
			ErrorTTL:             c.ErrorTTL.String(),
			MaxErrorTTL:          c.MaxErrorTTL.String(),
			StaleWhileRevalidate: c.StaleWhileRevalidate.String(),
			StaleIfError:         c.StaleIfError.String(),
		},
		Stats: groupStats{
			Gets:           st.Gets,
			CacheHits:      st.CacheHits,
			NegativeHits:   st.NegativeHits,
			Loads:          st.Loads,
			LoadsDeduped:   st.LoadsDeduped,
			LocalLoads:     st.LocalLoads,
			LocalLoadErrs:  st.LocalLoadErrs,
			LoaderPanics:   st.LoaderPanics,
			PeerLoads:      st.PeerLoads,
			PeerErrors:     st.PeerErrors,
			FallbackLoads:  st.FallbackLoads,
			ServerRequests: st.ServerRequests,
			Main:           newCacheStats(st.Main),
			Hot:            newCacheStats(st.Hot),
			LoadCount:      st.LoadDuration.Count,
			LoadSeconds:    st.LoadDuration.Sum,

			LoadsInFlight:     st.Admission.InFlight,
			LoadQueueDepth:    st.Admission.Queued,
			LoadRejections:    st.Admission.Rejected,
			RememberedErrors:  st.RememberedErrors,
			StaleRevalidating: st.StaleRevalidating,
			StaleOnError:      st.StaleOnError,
		},
		Sizing: newSizingInfo(g),
	}
}

func newCacheStats(c group.CacheStats) cacheStats {
	return cacheStats{Bytes: c.Bytes, Items: c.Items, Hits: c.Hits, Evictions: c.Evictions, Expirations: c.Expirations}
}

// listGroups answers GET /groups: every group of this node, in name order.
func (a *API) listGroups(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Node   string      `json:"node"`
		Groups []groupInfo `json:"groups"`
	}{Node: a.cfg.NodeName, Groups: make([]groupInfo, 0, len(a.order))}
	for _, g := range a.order {
		out.Groups = append(out.Groups, newGroupInfo(g))
	}
	writeJSON(w, http.StatusOK, out)
}

// showGroup answers GET /groups/{group}.
func (a *API) showGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.lookupGroup(r, chi.URLParam(r, "group"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newGroupInfo(g))
}

// clusterInfo is GET /cluster. Without a cluster, this node is the only member and owns the
// whole key space.
type clusterInfo struct {
	Node      string         `json:"node"`
	Clustered bool           `json:"clustered"`
	Members   []peers.Member `json:"members"`
	Stats     clusterStats   `json:"stats"`
}

type clusterStats struct {
	Members        int       `json:"members"`
	RingRebuilds   uint64    `json:"ring_rebuilds"`
	LastRebuild    time.Time `json:"last_rebuild,omitzero"`
	FetchErrors    uint64    `json:"fetch_errors"`
	Unreachable    uint64    `json:"unreachable"`
	Invalidations  uint64    `json:"invalidations"`
	RebuildLatency string    `json:"rebuild_latency"`
	Ejected        int       `json:"ejected"`   // peers routed around now (outlier detection)
	Ejections      uint64    `json:"ejections"` // times a peer was ejected
}

func (a *API) showCluster(w http.ResponseWriter, _ *http.Request) {
	out := clusterInfo{Node: a.cfg.NodeName}
	if a.cluster == nil {
		out.Members = []peers.Member{{Name: a.cfg.NodeName, State: "alive", Self: true, Share: 1}}
		out.Stats = clusterStats{Members: 1, RebuildLatency: time.Duration(0).String()}
		writeJSON(w, http.StatusOK, out)
		return
	}
	st := a.cluster.Stats()
	out.Clustered = true
	out.Members = a.cluster.Members()
	if out.Members == nil {
		out.Members = []peers.Member{}
	}
	out.Stats = clusterStats{
		Members:        st.Members,
		RingRebuilds:   st.RingRebuilds,
		LastRebuild:    st.LastRebuild,
		FetchErrors:    st.FetchErrors,
		Unreachable:    st.Unreachable,
		Invalidations:  st.Invalidations,
		RebuildLatency: st.RebuildLatency.String(),
		Ejected:        st.Ejected,
		Ejections:      st.Ejections,
	}
	writeJSON(w, http.StatusOK, out)
}

type health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
}

// healthz answers 200 while the process can serve HTTP at all.
func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok", Node: a.cfg.NodeName})
}

// readyz answers 200 between SetReady(true) and SetReady(false) while the membership is
// ready too (it has joined one of its seeds, or has none, and no live member holds its name),
// and every group's origin can serve (groupsReady), 503 otherwise with the reason, so that a
// load balancer sends traffic only to a node that has joined its cluster, can reach its
// origins and is not stopping.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the node is not ready", Code: CodeNotReady})
		return
	}
	if a.cluster != nil {
		if ok, reason := a.cluster.Ready(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "node " + a.cfg.NodeName + " is not ready: " + reason, Code: CodeNotReady})
			return
		}
	}
	if ok, reason := a.groupsReady(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "node " + a.cfg.NodeName + " is not ready: " + reason, Code: CodeNotReady})
		return
	}
	writeJSON(w, http.StatusOK, health{Status: "ready", Node: a.cfg.NodeName})
}
