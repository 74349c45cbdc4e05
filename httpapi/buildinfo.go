package httpapi

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is what a binary knows of its own build, from runtime/debug.ReadBuildInfo: the
// -version flag prints it, /metrics exports it as groupcached_build_info and the status page
// shows it.
type BuildInfo struct {
	// Version is the main module's version: a tag (v1.2.0) or pseudo-version when the binary
	// was built with `go install module@version` or from a tagged checkout, "(devel)" for a
	// plain `go build` in a working tree, "unknown" when the binary carries no build
	// information.
	Version string
	// Revision is the VCS commit the binary was built from, "unknown" when it was built
	// without VCS stamping (-buildvcs=false, or outside a repository, as in a container build
	// that copies no .git).
	Revision string
	// Modified is true when the working tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary (go1.26.8).
	GoVersion string
}

// ReadBuildInfo returns the running binary's build information.
func ReadBuildInfo() BuildInfo {
	b := BuildInfo{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line -version prints: "groupcached v1.2.0 revision 0123abcd (modified)
// go1.26.8".
func (b BuildInfo) String() string {
	var s strings.Builder
	s.WriteString("groupcached " + b.Version + " revision " + b.Revision)
	if b.Modified {
		s.WriteString(" (modified)")
	}
	s.WriteString(" " + b.GoVersion)
	return s.String()
}

// revisionLabel is the revision as the metric and the status page show it, "-dirty" marking
// a modified tree.
func (b BuildInfo) revisionLabel() string {
	if b.Modified {
		return b.Revision + "-dirty"
	}
	return b.Revision
}

// newBuildInfoGauge is groupcached_build_info{version,revision,goversion} 1, the usual way
// of exporting a build's identity: join on it to label other series by version.
func newBuildInfoGauge(b BuildInfo) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; the labels say which build of groupcached this node runs.",
		ConstLabels: prometheus.Labels{
			"version":   b.Version,
			"revision":  b.revisionLabel(),
			"goversion": b.GoVersion,
		},
	})
	g.Set(1)
	return g
}
