package httpapi

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// The status page, GET /: one HTML page for a person deciding whether the node and its cluster
// are healthy. It shows this node (build, readiness), the members with their state and share
// of the ring, and for each group its hit ratio, loads by source, bytes and evictions, charts
// of the last minutes (requests, hit ratio, origin loads) drawn from the node's history, and
// the sizing curve (the hit ratio estimated at other cache sizes) when the group estimates
// one. Everything is drawn on the server: inline SVG and CSS, no script, no external asset,
// so that it works on an isolated network and under a Content-Security-Policy that forbids
// everything else. It refreshes itself every 10 s with a meta refresh (?refresh=0: never).
// It mutates nothing and links only to the read-only JSON routes. Member and group names are
// text from the network and the configuration: html/template escapes them.

//go:embed status.html
var statusHTML string

// statusTemplate is parsed once; executing it is safe for concurrent use.
var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"pct": func(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" },
}).Parse(statusHTML))

// statusRefresh is how often the page reloads itself.
const statusRefresh = 10 * time.Second

// statusView is what the template draws.
type statusView struct {
	Node      string
	Build     BuildInfo
	Revision  string
	Now       string
	Ready     bool
	Reason    string
	Clustered bool
	Refresh   int // seconds; 0: no refresh
	History   string
	Members   []memberView
	Groups    []groupView
}

type memberView struct {
	Name, State, HTTPAddr string
	Self                  bool
	Ejected               bool // routed around by this node (outlier detection)
	Share                 float64
	ShareWidth            float64 // the share bar's width in px
}

type groupView struct {
	Name           string
	Requests       int64 // Gets and peer requests served
	Gets           int64
	ServerRequests int64
	HitRatio       string
	Local, Peer    int64
	Fallback       int64
	LoadErrors     int64
	PeerErrors     int64
	MainBytes      string
	HotBytes       string
	Capacity       string
	Fill           float64 // bytes held / capacity, 0..1
	FillWidth      float64 // the fill bar's width in px
	MainItems      int64
	HotItems       int64
	Evictions      int64
	Expirations    int64
	Charts         []chartView
	Sizing         *sizingView
}

// chart geometry, in SVG user units (pixels at 100% zoom).
const (
	chartW, chartH = 260, 64
	chartPad       = 2
)

// chartView is one small line chart of the last minutes.
type chartView struct {
	Title   string
	Path    string // SVG path data: M/L commands in chart coordinates
	LastX   float64
	LastY   float64
	HasLast bool
	Last    string // the newest value, formatted
	Top     string // the value at the top of the chart
	Span    string // the time the x axis covers
	W, H    int
}

func (a *API) statusPage(w http.ResponseWriter, r *http.Request) {
	v := a.statusView(r.URL.Query().Get("refresh") != "0")
	var buf bytes.Buffer
	if err := statusTemplate.Execute(&buf, v); err != nil {
		a.fail(w, r, &apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "rendering the status page", err: err})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Nothing but the page's own inline style: no script, no frame, no form, no fetch.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// statusView gathers the page's data: one snapshot of the members, each group's stats, the
// history and the sizing estimates.
func (a *API) statusView(refresh bool) statusView {
	now := time.Now()
	b := ReadBuildInfo()
	v := statusView{
		Node:      a.cfg.NodeName,
		Build:     b,
		Revision:  shortRevision(b.revisionLabel()),
		Now:       now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Clustered: a.cluster != nil,
	}
	if refresh {
		v.Refresh = int(statusRefresh / time.Second)
	}
	v.Ready, v.Reason = a.readiness()

	members := []peers.Member{{Name: a.cfg.NodeName, State: peers.Alive, Self: true, Share: 1}}
	if a.cluster != nil {
		members = a.cluster.Members()
	}
	for _, m := range members {
		v.Members = append(v.Members, memberView{
			Name: m.Name, State: string(m.State), HTTPAddr: m.HTTPAddr, Self: m.Self, Ejected: m.Ejected,
			Share: m.Share, ShareWidth: math.Round(120 * min(max(m.Share, 0), 1)),
		})
	}

	var rates []groupRates
	span := time.Duration(0)
	if a.history != nil {
		rates = a.history.rates()
		span = a.history.window()
		v.History = fmt.Sprintf("last %v, one sample every %v", span, a.history.interval)
	}
	for i, g := range a.order {
		gv := newGroupView(g)
		var gr groupRates
		if i < len(rates) {
			gr = rates[i]
		}
		if a.history != nil {
			gv.Charts = []chartView{
				rateChart("requests/s", gr.at, gr.requests, now, span),
				ratioChart("hit ratio", gr.at, gr.hitRatio, now, span),
				rateChart("origin loads/s", gr.at, gr.origin, now, span),
			}
		}
		gv.Sizing = newSizingView(g)
		v.Groups = append(v.Groups, gv)
	}
	return v
}

// readiness is what /readyz would answer, in words.
func (a *API) readiness() (bool, string) {
	if !a.ready.Load() {
		return false, "not serving yet, or stopping"
	}
	if ok, reason := a.groupsReady(); !ok {
		return false, reason
	}
	if a.cluster != nil {
		return a.cluster.Ready()
	}
	return true, "serving alone"
}

func newGroupView(g *group.Group) groupView {
	st, cfg := g.Stats(), g.Config()
	gv := groupView{
		Name:           g.Name(),
		Requests:       st.Gets + st.ServerRequests,
		Gets:           st.Gets,
		ServerRequests: st.ServerRequests,
		HitRatio:       "–",
		Local:          st.LocalLoads,
		Peer:           st.PeerLoads,
		Fallback:       st.FallbackLoads,
		LoadErrors:     st.LocalLoadErrs,
		PeerErrors:     st.PeerErrors,
		MainBytes:      humanBytes(st.Main.Bytes),
		HotBytes:       humanBytes(st.Hot.Bytes),
		Capacity:       humanBytes(cfg.CacheBytes),
		MainItems:      st.Main.Items,
		HotItems:       st.Hot.Items,
		Evictions:      st.Main.Evictions + st.Hot.Evictions,
		Expirations:    st.Main.Expirations + st.Hot.Expirations,
	}
	if n := st.CacheHits + st.Loads; n > 0 {
		gv.HitRatio = strconv.FormatFloat(100*float64(st.CacheHits)/float64(n), 'f', 1, 64) + "%"
	}
	if cfg.CacheBytes > 0 {
		gv.Fill = min(float64(st.Main.Bytes+st.Hot.Bytes)/float64(cfg.CacheBytes), 1)
		gv.FillWidth = math.Round(120 * gv.Fill)
	}
	return gv
}

// rateChart draws a rate from 0 to a round maximum.
func rateChart(title string, at []time.Time, values []float64, now time.Time, span time.Duration) chartView {
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	top = roundUp(top)
	c := lineChart(title, at, values, now, span, 0, top)
	c.Top = formatRate(top)
	if n := len(values); n > 0 {
		c.Last = formatRate(values[n-1])
	}
	return c
}

// ratioChart draws a ratio from 0 to 1; NaN (no traffic) leaves a gap.
func ratioChart(title string, at []time.Time, values []float64, now time.Time, span time.Duration) chartView {
	c := lineChart(title, at, values, now, span, 0, 1)
	c.Top = "100%"
	c.Last = "–"
	for i := len(values) - 1; i >= 0; i-- { // the newest interval that had requests
		if !math.IsNaN(values[i]) {
			c.Last = strconv.FormatFloat(100*values[i], 'f', 1, 64) + "%"
			break
		}
	}
	return c
}

// lineChart maps the points onto the chart: x from now-span (left) to now (right), y from lo
// (bottom) to hi (top). A NaN value (an interval without requests, for a ratio) breaks the
// line.
func lineChart(title string, at []time.Time, values []float64, now time.Time, span time.Duration, lo, hi float64) chartView {
	c := chartView{Title: title, W: chartW, H: chartH, Span: span.String()}
	if span <= 0 || hi <= lo {
		return c
	}
	var d strings.Builder
	pen := false
	for i, v := range values {
		if math.IsNaN(v) {
			pen = false
			continue
		}
		age := now.Sub(at[i]).Seconds() / span.Seconds()
		x := chartPad + (chartW-2*chartPad)*min(max(1-age, 0), 1)
		y := chartPad + (chartH-2*chartPad)*(1-min(max((v-lo)/(hi-lo), 0), 1))
		xy := strconv.FormatFloat(x, 'f', 1, 64) + " " + strconv.FormatFloat(y, 'f', 1, 64)
		if pen {
			d.WriteString("L" + xy + " ")
		} else {
			// A zero-length segment after each move: with round caps, a point between two
			// gaps shows as a dot.
			d.WriteString("M" + xy + " h0 ")
		}
		pen = true
		c.LastX, c.LastY, c.HasLast = x, y, true
	}
	c.Path = strings.TrimSpace(d.String())
	return c
}

// roundUp returns a round number (1, 2 or 5 times a power of ten) at or above v, and 1 for 0.
func roundUp(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatRate(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// humanBytes formats n in binary units with three significant digits: 12.3 MiB.
func humanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, u := float64(n), -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	prec := 0
	switch {
	case v < 10:
		prec = 2
	case v < 100:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + " " + units[u:u+1] + "iB"
}

// shortRevision is a commit hash cut to 12 characters, as git shows them.
func shortRevision(rev string) string {
	if len(rev) > 12 && !strings.HasPrefix(rev, "unknown") {
		if strings.HasSuffix(rev, "-dirty") {
			return rev[:12] + "-dirty"
		}
		return rev[:12]
	}
	return rev
}
