package httpapi

import (
	"math"
	"strconv"
	"strings"

	"github.com/groupcached/groupcached/group"
)

// sizingView is a group's sizing curve on the status page: the hit ratio estimated at each
// simulated cache size (group.Config.Sizing), drawn as a line over the sizes on a log scale.
type sizingView struct {
	Warming  bool
	Sampled  int64
	Requests int64
	Points   []sizingPoint
	Path     string // SVG path data through the points
	W, H     int
	Top      string // the hit ratio at the top of the plot
	Bottom   string // and at its bottom
	TopY     int    // y of the plot's top
	BottomY  int    // and of its bottom
	PlotX    int    // x where the plot starts, right of the y labels
	AxisY    int    // y of the x axis's labels
}

// sizingPoint is one simulated size.
type sizingPoint struct {
	Label    string // ¼x, ½x, 1x, 2x ...
	Bytes    string
	HitRatio string
	X, Y     float64
	Current  bool // the configured size
}

// sizing chart geometry: y labels left of sizingPlotX, the points between sizingPadL and
// sizingW-sizingPadR, from sizingTop to sizingB, the sizes' labels below.
const (
	sizingW, sizingH       = 380, 150
	sizingPlotX            = 34
	sizingPadL, sizingPadR = 52, 24
	sizingTop, sizingB     = 22, 118
)

// newSizingView returns g's sizing curve, or nil when g does not estimate sizing.
func newSizingView(g *group.Group) *sizingView {
	est, ok := g.Sizing()
	if !ok {
		return nil
	}
	return sizingViewOf(est)
}

func sizingViewOf(est group.SizingEstimate) *sizingView {
	v := &sizingView{Warming: est.Warming, Sampled: est.Sampled, Requests: est.Requests, W: sizingW, H: sizingH,
		TopY: sizingTop, BottomY: sizingB, PlotX: sizingPlotX, AxisY: sizingB + 22}
	if len(est.Sizes) == 0 {
		return v
	}
	lo, hi := 1.0, 0.0
	minX, maxX := math.Inf(1), math.Inf(-1)
	for _, s := range est.Sizes {
		lo, hi = min(lo, s.HitRatio), max(hi, s.HitRatio)
		minX, maxX = min(minX, math.Log2(s.Ratio)), max(maxX, math.Log2(s.Ratio))
	}
	// The y axis spans the estimates with a margin, in steps of 5 points, at least 10 points.
	lo, hi = math.Max(math.Floor((lo-0.02)*20)/20, 0), math.Min(math.Ceil((hi+0.02)*20)/20, 1)
	for hi-lo < 0.1 {
		lo, hi = math.Max(lo-0.05, 0), math.Min(hi+0.05, 1)
	}
	v.Top, v.Bottom = pctLabel(hi), pctLabel(lo)
	var d strings.Builder
	for i, s := range est.Sizes {
		x := float64(sizingPadL+sizingW-sizingPadR) / 2
		if maxX > minX {
			x = sizingPadL + (sizingW-sizingPadL-sizingPadR)*(math.Log2(s.Ratio)-minX)/(maxX-minX)
		}
		p := sizingPoint{
			Label:   ratioLabel(s.Ratio),
			Bytes:   humanBytes(s.Bytes),
			X:       math.Round(x*10) / 10,
			Current: s.Ratio == 1,
		}
		if !est.Warming {
			p.HitRatio = strconv.FormatFloat(100*s.HitRatio, 'f', 1, 64) + "%"
			p.Y = math.Round((sizingB-(sizingB-sizingTop)*(s.HitRatio-lo)/(hi-lo))*10) / 10
			if i == 0 {
				d.WriteString("M")
			} else {
				d.WriteString(" L")
			}
			d.WriteString(strconv.FormatFloat(p.X, 'f', 1, 64) + " " + strconv.FormatFloat(p.Y, 'f', 1, 64))
		}
		v.Points = append(v.Points, p)
	}
	v.Path = d.String()
	return v
}

// ratioLabel names a size by its multiple of the configured bytes: ¼x, ½x, 1x, 2x, 1.5x.
func ratioLabel(r float64) string {
	switch r {
	case 0.25:
		return "¼x"
	case 0.5:
		return "½x"
	case 0.75:
		return "¾x"
	}
	return strconv.FormatFloat(r, 'g', -1, 64) + "x"
}

func pctLabel(v float64) string { return strconv.FormatFloat(100*v, 'f', 0, 64) + "%" }
