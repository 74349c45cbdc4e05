package httpapi

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// TestNodeConfigFieldErrors: every fault NodeConfig.Validate reports is a *group.FieldError
// naming its field (a nested configuration's by its path from NodeConfig), so that a program
// that filled the struct from a file can point at the bad value.
func TestNodeConfigFieldErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*NodeConfig)
		fields []string // the faults' fields, in Validate's order
	}{
		{"bad addresses", func(c *NodeConfig) { c.HTTPAddr, c.PeerAddr = "localhost", "nowhere" },
			[]string{"HTTPAddr", "PeerAddr"}},
		{"peer address alone", func(c *NodeConfig) { c.PeerAddr, c.Cluster = "127.0.0.1:0", nil },
			[]string{"PeerAddr"}},
		{"negative shutdown delay", func(c *NodeConfig) { c.ShutdownDelay = -time.Second }, []string{"ShutdownDelay"}},
		{"shutdown delay at its bound", func(c *NodeConfig) { c.ShutdownDelay = MaxShutdownDelay }, []string{"ShutdownDelay"}},
		{"negative hand-off timeout", func(c *NodeConfig) { c.HandOffTimeout = -time.Second }, []string{"HandOffTimeout"}},
		{"hand-off timeout at its bound", func(c *NodeConfig) { c.HandOffTimeout = MaxHandOffTimeout }, []string{"HandOffTimeout"}},
		{"a long stop allows a long delay", func(c *NodeConfig) {
			c.StopTimeout, c.ShutdownDelay, c.HandOffTimeout = time.Minute, 20*time.Second, 10*time.Second
		}, nil},
		{"but under half of it", func(c *NodeConfig) {
			c.StopTimeout, c.ShutdownDelay, c.HandOffTimeout = time.Minute, 30*time.Second, 30*time.Second
		}, []string{"ShutdownDelay", "HandOffTimeout"}},
		{"negative leave and stop", func(c *NodeConfig) { c.LeaveTimeout, c.StopTimeout = -1, -1 },
			[]string{"LeaveTimeout", "StopTimeout"}},
		{"delay and hand-off as long as the stop", func(c *NodeConfig) {
			c.ShutdownDelay, c.HandOffTimeout, c.StopTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		}, []string{"ShutdownDelay", "HandOffTimeout"}},
		{"unnamed in a cluster", func(c *NodeConfig) { c.Name = "" }, []string{"Name"}},
		{"nested faults", func(c *NodeConfig) {
			c.API.MaxBatchKeys = -1
			c.History.Samples = 1
			c.TLS = &TLSConfig{CertFile: "cert.pem"}
			pc := *c.Cluster
			pc.Seeds = []string{"a:1", "b"}
			c.Cluster = &pc
		}, []string{"TLS.KeyFile", "API.MaxBatchKeys", "History.Samples", "Cluster.Seeds[1]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := LocalNodeConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want no fault", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			var fields []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *group.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("fault %q is not a *group.FieldError", e)
					continue
				}
				fields = append(fields, fe.Field)
			}
			if !slices.Equal(fields, tt.fields) {
				t.Errorf("Validate = %q: faults name %q, want %q", err, fields, tt.fields)
			}
		})
	}
}
