package httpapi

import (
	"runtime"
	"testing"
)

func TestBuildInfo(t *testing.T) {
	b := ReadBuildInfo()
	if b.GoVersion != runtime.Version() || b.Version == "" || b.Revision == "" {
		t.Errorf("ReadBuildInfo() = %+v", b)
	}
	b = BuildInfo{Version: "v1.2.0", Revision: "0123456789abcdef", Modified: true, GoVersion: "go1.26.8"}
	if got, want := b.String(), "groupcached v1.2.0 revision 0123456789abcdef (modified) go1.26.8"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := b.revisionLabel(); got != "0123456789abcdef-dirty" {
		t.Errorf("revisionLabel() = %q", got)
	}
}
