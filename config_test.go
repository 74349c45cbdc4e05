package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// envMap is a fake environment for loadConfig.
type envMap map[string]string

func (e envMap) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustFlags(t testing.TB, args ...string) Flags {
	t.Helper()
	f, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags(%q): %v", args, err)
	}
	return f
}

func TestEmbeddedConfigParsesAndValidates(t *testing.T) {
	cfg, err := loadConfig(mustFlags(t), envMap{}.lookup)
	if err != nil {
		t.Fatalf("embedded config.yaml: %v", err)
	}
	if cfg.File != embeddedConfigName {
		t.Errorf("File = %q, want %q", cfg.File, embeddedConfigName)
	}
	n := cfg.Node
	if n.Name != "node-1" || n.HTTPAddr != "127.0.0.1:8080" || n.GossipAddr != "127.0.0.1:7946" || len(n.Join) != 0 {
		t.Errorf("node = %+v, want node-1 on 127.0.0.1:8080 / :7946 with no seeds", n)
	}
	if len(cfg.Groups) != 1 {
		t.Fatalf("groups = %+v, want one", cfg.Groups)
	}
	g := cfg.Groups[0]
	fc, _ := g.Loader.Settings.(loader.FileConfig)
	if g.Name != "files" || g.CacheBytes != 64<<20 || g.TTL != 0 || g.Loader.Type != "file" || fc.Root != "./examples/data" {
		t.Errorf("group = %+v, want files, 64MiB, ttl 0, file loader over ./examples/data", g)
	}
	if err := g.Config.Validate(); err != nil {
		t.Errorf("group engine config: %v", err)
	}
	if _, err := os.Stat(fc.Root); err != nil {
		t.Errorf("the embedded config serves %s, which must ship with the repo: %v", fc.Root, err)
	}
}

func TestConfigDefaultsFillWhatTheFileLeavesOut(t *testing.T) {
	path := writeConfig(t, "groups:\n  - name: g\n    loader: {type: file, root: .}\n")
	cfg, err := loadConfig(mustFlags(t, "-config", path), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	d := group.DefaultConfig()
	got := cfg.Groups[0].Config
	if got != d {
		t.Errorf("group config = %+v, want the engine defaults %+v", got, d)
	}
	want := defaultConfig().Node
	host, _ := os.Hostname()
	want.Name = host
	if !reflect.DeepEqual(cfg.Node, want) {
		t.Errorf("node = %+v, want defaults %+v", cfg.Node, want)
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `node:
  name: from-file
  http_addr: 127.0.0.1:1001
  gossip_addr: 127.0.0.1:2001
  join: [file-seed:1]
groups:
  - name: g
    loader: {type: file, root: .}
`)
	other := writeConfig(t, `node:
  name: from-env-file
groups:
  - name: g
    loader: {type: file, root: .}
`)
	type node struct {
		name, http, gossip string
		join               []string
	}
	tests := []struct {
		name string
		args []string
		env  envMap
		want node
	}{
		{"embedded file", nil, nil, node{"node-1", "127.0.0.1:8080", "127.0.0.1:7946", nil}},
		{"file over defaults", []string{"-config", file}, nil,
			node{"from-file", "127.0.0.1:1001", "127.0.0.1:2001", []string{"file-seed:1"}}},
		{"config path from the environment", nil, envMap{"GROUPCACHED_CONFIG": other},
			node{"from-env-file", defaultHTTPAddr, defaultGossipAddr, nil}},
		{"flag -config over GROUPCACHED_CONFIG", []string{"-config", file}, envMap{"GROUPCACHED_CONFIG": other},
			node{"from-file", "127.0.0.1:1001", "127.0.0.1:2001", []string{"file-seed:1"}}},
		{"environment over file", []string{"-config", file}, envMap{
			"GROUPCACHED_NAME": "from-env", "GROUPCACHED_HTTP": "127.0.0.1:1002",
			"GROUPCACHED_GOSSIP": "127.0.0.1:2002", "GROUPCACHED_JOIN": "a:1, b:2",
		}, node{"from-env", "127.0.0.1:1002", "127.0.0.1:2002", []string{"a:1", "b:2"}}},
		{"empty environment variables are ignored, GROUPCACHED_JOIN empties the list", []string{"-config", file}, envMap{
			"GROUPCACHED_NAME": "", "GROUPCACHED_JOIN": "",
		}, node{"from-file", "127.0.0.1:1001", "127.0.0.1:2001", nil}},
		{"flags over environment", []string{"-config", file, "-name", "from-flag", "-http", "127.0.0.1:1003",
			"-gossip", "127.0.0.1:2003", "-join", "c:3,d:4"}, envMap{
			"GROUPCACHED_NAME": "from-env", "GROUPCACHED_HTTP": "127.0.0.1:1002",
			"GROUPCACHED_GOSSIP": "127.0.0.1:2002", "GROUPCACHED_JOIN": "a:1",
		}, node{"from-flag", "127.0.0.1:1003", "127.0.0.1:2003", []string{"c:3", "d:4"}}},
		{"one flag, the rest from the environment", []string{"-config", file, "-http", "127.0.0.1:0"},
			envMap{"GROUPCACHED_NAME": "from-env"},
			node{"from-env", "127.0.0.1:0", "127.0.0.1:2001", []string{"file-seed:1"}}},
		{"an empty -join flag empties the list", []string{"-config", file, "-join", ""}, nil,
			node{"from-file", "127.0.0.1:1001", "127.0.0.1:2001", nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(mustFlags(t, tt.args...), tt.env.lookup)
			if err != nil {
				t.Fatal(err)
			}
			got := node{cfg.Node.Name, cfg.Node.HTTPAddr, cfg.Node.GossipAddr, cfg.Node.Join}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigEnvironmentSettings(t *testing.T) {
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
	tests := []struct {
		name  string
		file  string
		env   envMap
		check func(t *testing.T, c Config)
	}{
		{"secret key from the default variable", "", envMap{"GROUPCACHED_SECRET_KEY": key32},
			func(t *testing.T, c Config) {
				if len(c.SecretKey) != 32 {
					t.Errorf("SecretKey has %d bytes, want 32", len(c.SecretKey))
				}
			}},
		{"secret key from a named variable", "node: {secret_key_env: MY_KEY}\n", envMap{"MY_KEY": key32, "GROUPCACHED_SECRET_KEY": "ignored!"},
			func(t *testing.T, c Config) {
				if len(c.SecretKey) != 32 {
					t.Errorf("SecretKey has %d bytes, want 32", len(c.SecretKey))
				}
			}},
		{"an empty secret_key_env means the default variable", "node: {secret_key_env: \"\"}\n", envMap{"GROUPCACHED_SECRET_KEY": key32},
			func(t *testing.T, c Config) {
				if len(c.SecretKey) != 32 {
					t.Errorf("SecretKey has %d bytes, want 32", len(c.SecretKey))
				}
			}},
		{"empty or zero node settings mean their defaults", "node: {http_addr: \"\", gossip_addr: \"\", preset: \"\", log_level: \"\", max_key_bytes: 0}\n", nil,
			func(t *testing.T, c Config) {
				n := c.Node
				if n.HTTPAddr != defaultHTTPAddr || n.GossipAddr != defaultGossipAddr || n.Preset != defaultPreset ||
					n.LogLevel != defaultLogLevel || n.MaxKeyBytes != defaultMaxKeyBytes {
					t.Errorf("node = %+v, want the defaults", n)
				}
			}},
		{"no key, no encryption", "", nil,
			func(t *testing.T, c Config) {
				if c.SecretKey != nil {
					t.Errorf("SecretKey = %x, want none", c.SecretKey)
				}
			}},
		{"log format and access log", "node: {log_format: json, access_log: true}\n", nil,
			func(t *testing.T, c Config) {
				if c.Node.LogFormat != "json" || !c.apiConfig().AccessLog {
					t.Errorf("log format %q, access log %v; want json and on", c.Node.LogFormat, c.apiConfig().AccessLog)
				}
			}},
		{"text logs and no access log by default", "", nil,
			func(t *testing.T, c Config) {
				if c.Node.LogFormat != "text" || c.apiConfig().AccessLog {
					t.Errorf("log format %q, access log %v; want text and off", c.Node.LogFormat, c.apiConfig().AccessLog)
				}
			}},
		{"label, preset and log level from the environment", "node: {label: file, preset: lan}\n",
			envMap{"GROUPCACHED_LABEL": "env", "GROUPCACHED_PRESET": "local", "GROUPCACHED_LOG_LEVEL": "debug"},
			func(t *testing.T, c Config) {
				if c.Node.Label != "env" || c.Node.Preset != "local" || c.Node.LogLevel != "debug" {
					t.Errorf("node = %+v, want label env, preset local, log level debug", c.Node)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file+"groups:\n  - name: g\n    loader: {type: file, root: .}\n")
			cfg, err := loadConfig(mustFlags(t, "-config", path), tt.env.lookup)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	const okGroup = "groups:\n  - name: g\n    loader: {type: file, root: .}\n"
	tests := []struct {
		name string
		file string   // YAML; FILE in want is replaced by its path
		args []string // extra flags
		env  envMap
		want []string // each must appear in the error, in this form
	}{
		{"unknown top-level key", "nodes:\n  name: x\n" + okGroup,
			nil, nil, []string{`FILE:1: nodes: unknown key "nodes" (known keys here: node, groups)`}},
		{"unknown node key", "node:\n  name: x\n  http: 127.0.0.1:1\n" + okGroup,
			nil, nil, []string{`FILE:3: node.http: unknown key "http"`}},
		{"unknown group key", "groups:\n  - name: g\n    size: 1MiB\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].size: unknown key "size"`}},
		{"unknown loader key", "groups:\n  - name: g\n    loader:\n      type: file\n      rot: .\n",
			nil, nil, []string{`FILE:5: groups[0].loader.rot: unknown key "rot"`}},
		{"bad size", "groups:\n  - name: g\n    cache_bytes: 64 megs\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].cache_bytes: invalid size "64 megs"`}},
		{"bad duration", "groups:\n  - name: g\n    loader: {type: file, root: .}\n    ttl: 30 seconds\n",
			nil, nil, []string{`FILE:4: groups[0].ttl: invalid duration "30 seconds"`}},
		{"negative group no_ttl_max_age", "groups:\n  - name: g\n    no_ttl_max_age: -5s\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].no_ttl_max_age: must be >= 0s`}},
		{"bad number", "groups:\n  - name: g\n    hot_cache_fraction: lots\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].hot_cache_fraction: invalid number "lots"`}},
		{"list where a value belongs", "node:\n  name: [a, b]\n" + okGroup,
			nil, nil, []string{`FILE:2: node.name: want a string, got a list`}},
		{"value where a list belongs", "node:\n  join: a:1\n" + okGroup,
			nil, nil, []string{`FILE:2: node.join: want a list, got "a:1"`}},
		{"duplicate key", "node:\n  name: a\n  name: b\n" + okGroup,
			nil, nil, []string{`FILE:3: node.name: duplicate key "name"`}},
		{"YAML syntax", "node:\n  name: [unclosed\n" + okGroup,
			nil, nil, []string{`FILE:`, `invalid YAML`}},
		{"every mistake at once", "node:\n  nam: x\ngroups:\n  - name: g\n    ttl: soon\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:2: node.nam: unknown key`, `FILE:5: groups[0].ttl: invalid duration "soon"`}},
		{"negative peer_eject_for", "node:\n  peer_eject_for: -1s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.peer_eject_for: must be > 0s`}},
		{"negative ttl", "groups:\n  - name: g\n    loader: {type: file, root: .}\n    ttl: -5s\n",
			nil, nil, []string{`FILE:4: groups[0].ttl: must be >= 0s`}},
		{"zero load timeout", "groups:\n  - name: g\n    load_timeout: 0s\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].load_timeout: must be > 0s`}},
		{"zero cache", "groups:\n  - name: g\n    cache_bytes: 0\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].cache_bytes: must be > 0`}},
		{"hot cache fraction out of range", "groups:\n  - name: g\n    hot_cache_fraction: 0.9\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].hot_cache_fraction: must be in [0, 0.5]`}},
		{"bad group name", "groups:\n  - name: a/b\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:2: groups[0].name: invalid group name "a/b"`}},
		{"duplicate group", okGroup + "  - name: g\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:4: groups[1].name: group "g" is already defined by groups[0]`}},
		{"no groups", "node:\n  name: x\n",
			nil, nil, []string{`FILE: groups: at least one group is required`}},
		{"missing loader", "groups:\n  - name: g\n",
			nil, nil, []string{`FILE:2: groups[0]: loader is required`}},
		{"loader rejects its config", "groups:\n  - name: g\n    loader:\n      type: http\n",
			nil, nil, []string{`FILE:4: groups[0].loader.url: required`}},
		{"loader rejects a value", "groups:\n  - name: g\n    loader:\n      type: http\n      url: http://o/items\n      timeout: -1s\n",
			nil, nil, []string{`FILE:5: groups[0].loader.url: "http://o/items" must contain {key} exactly once`, `FILE:6: groups[0].loader.timeout: must be >= 0s`}},
		{"loader without a type", "groups:\n  - name: g\n    loader: {root: .}\n",
			nil, nil, []string{`FILE:3: groups[0].loader.type: required: one of file, http, sql`}},
		{"loader with an empty type", "groups:\n  - name: g\n    loader:\n      type:\n      root: .\n",
			nil, nil, []string{`FILE:4: groups[0].loader.type: required: one of file, http, sql`}},
		{"unknown loader type", "groups:\n  - name: g\n    loader:\n      root: .\n      type: redis\n",
			nil, nil, []string{`FILE:5: groups[0].loader.type: unknown loader type "redis" (known: file, http, sql)`}},
		{"bad address in the file", "node:\n  http_addr: localhost\n" + okGroup,
			nil, nil, []string{`FILE:2: node.http_addr: invalid address "localhost"`}},
		{"bad port in the file", "node:\n  gossip_addr: 127.0.0.1:99999\n" + okGroup,
			nil, nil, []string{`FILE:2: node.gossip_addr: invalid port`}},
		{"seed without a port", "node:\n  join:\n    - seed-a:7946\n    - seed-b\n" + okGroup,
			nil, nil, []string{`FILE:4: node.join[1]: seed "seed-b": want host:port`}},
		{"seed from a flag", okGroup, []string{"-join", "a:1,b:0"}, nil,
			[]string{`flag -join: seed "b:0": want host:port`}},
		{"bad preset", "node:\n  preset: wan\n" + okGroup,
			nil, nil, []string{`FILE:2: node.preset: unknown preset "wan"`}},
		{"shutdown delay too long", "node:\n  shutdown_delay: 9s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.shutdown_delay: must be at least 0s and under 5s`}},
		{"negative warm time", "node:\n  warm_time: -1s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.warm_time: must be at least 0s`}},
		{"peek timeout zero", "node:\n  peek_timeout: 0s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.peek_timeout: must be above 0s and at most 5s`}},
		{"negative shutdown delay", "node:\n  name: x\n  shutdown_delay: -1s\n" + okGroup,
			nil, nil, []string{`FILE:3: node.shutdown_delay: must be at least 0s and under 5s, got -1s`}},
		{"peek timeout too long", "node:\n  peek_timeout: 6s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.peek_timeout: must be above 0s and at most 5s, got 6s`}},
		{"hand-off too long", "node:\n  handoff_timeout: 6s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.handoff_timeout: must be at least 0s (0s: 2s) and under 5s, got 6s`}},
		{"negative hand-off", "node:\n  name: x\n  handoff_timeout: -1s\n" + okGroup,
			nil, nil, []string{`FILE:3: node.handoff_timeout: must be at least 0s (0s: 2s) and under 5s, got -1s`}},
		{"hand-off and delay at their bounds at once", "node:\n  shutdown_delay: 5s\n  handoff_timeout: 5s\n" + okGroup,
			nil, nil, []string{`FILE:2: node.shutdown_delay: must be at least 0s and under 5s, got 5s`,
				`FILE:3: node.handoff_timeout: must be at least 0s (0s: 2s) and under 5s, got 5s`}},
		{"negative hand-off bytes", "node:\n  handoff_bytes: -1\n" + okGroup,
			nil, nil, []string{`FILE:2: node.handoff_bytes: invalid size "-1": negative`}},
		{"bad log level", "node:\n  log_level: loud\n" + okGroup,
			nil, nil, []string{`FILE:2: node.log_level: unknown log level "loud"`}},
		{"bad log format", "node:\n  name: n\n  log_format: xml\n" + okGroup,
			nil, nil, []string{`FILE:3: node.log_format: unknown log format "xml": want "text" or "json"`}},
		{"bad log format from the environment", okGroup, nil, envMap{"GROUPCACHED_LOG_FORMAT": "logfmt"},
			[]string{`environment GROUPCACHED_LOG_FORMAT: unknown log format "logfmt"`}},
		{"access log that is not a boolean", "node:\n  access_log: sometimes\n" + okGroup,
			nil, nil, []string{`FILE:2: node.access_log:`}},
		{"bad address from a flag", okGroup, []string{"-http", "nonsense"}, nil,
			[]string{`flag -http: invalid address "nonsense"`}},
		{"bad address from the environment", okGroup, nil, envMap{"GROUPCACHED_GOSSIP": "x:y"},
			[]string{`environment GROUPCACHED_GOSSIP: invalid port in "x:y"`}},
		{"secret key not base64", okGroup, nil, envMap{"GROUPCACHED_SECRET_KEY": "not base64!"},
			[]string{`environment GROUPCACHED_SECRET_KEY: the gossip key must be base64`}},
		{"secret key of the wrong length", okGroup, nil, envMap{"GROUPCACHED_SECRET_KEY": "c2hvcnQ="},
			[]string{`environment GROUPCACHED_SECRET_KEY: must be 16, 24 or 32 bytes`, `got 5`}},
		{"tls without a certificate", "node:\n  tls:\n    key_file: k.pem\n" + okGroup,
			nil, nil, []string{`FILE:3: node.tls.cert_file: required with tls`}},
		{"tls files that do not exist", "node:\n  tls:\n    cert_file: /nonexistent/c.pem\n    key_file: /nonexistent/k.pem\n    client_ca_file: /nonexistent/ca.pem\n" + okGroup,
			nil, nil, []string{`FILE:3: node.tls.cert_file: cannot load the certificate and its key`, `FILE:5: node.tls.client_ca_file: open /nonexistent/ca.pem`}},
		{"unknown tls key", "node:\n  tls:\n    cert: c.pem\n" + okGroup,
			nil, nil, []string{`FILE:3: node.tls.cert: unknown key "cert" (known keys here: cert_file, key_file, client_ca_file, ca_file)`}},
		{"bad peer address", "node:\n  peer_addr: nowhere\n" + okGroup,
			nil, nil, []string{`FILE:2: node.peer_addr: invalid address "nowhere"`}},
		{"bad HTTP address beside a peer address", "node:\n  insecure: true\n  http_addr: localhost\n  peer_addr: 127.0.0.1:9\n" + okGroup,
			nil, nil, []string{`FILE:3: node.http_addr: "localhost": want host:port`}},
		{"peer address on the HTTP address", "node:\n  http_addr: 127.0.0.1:8080\n  peer_addr: 127.0.0.1:8080\n" + okGroup,
			nil, nil, []string{`FILE:3: node.peer_addr: 127.0.0.1:8080 is http_addr too`}},
		{"negative purge rate", "node:\n  purge_rate: -1\n  purge_burst: -2\n" + okGroup,
			nil, nil, []string{`FILE:2: node.purge_rate: must be a number of purges per second >= 0`, `FILE:3: node.purge_burst: must be >= 0`}},
		{"batch keys out of range", "node:\n  max_batch_keys: 200000\n" + okGroup,
			nil, nil, []string{`FILE:2: node.max_batch_keys: must be between 0 (the default, 1000) and 100000, got 200000`}},
		{"negative batch bytes", "node:\n  max_batch_response_bytes: -1\n" + okGroup,
			nil, nil, []string{`FILE:2: node.max_batch_response_bytes: invalid size "-1": negative`}},
		{"insecure not a boolean", "node:\n  insecure: maybe\n" + okGroup,
			nil, nil, []string{`FILE:2: node.insecure: invalid boolean "maybe"`}},
		{"admin token with a space", okGroup, nil, envMap{"GROUPCACHED_ADMIN_TOKEN": "0123456789 abcdef0123"},
			[]string{`environment GROUPCACHED_ADMIN_TOKEN: must not hold spaces or control characters`}},
		{"bad values everywhere at once", "node:\n  label: " + strings.Repeat("x", 256) + "\n  max_key_bytes: 1MiB\n" +
			"groups:\n  - name: g\n    ttl: -1s\n    negative_ttl: -1s\n    hot_cache_rate: -1\n    loader: {type: file, root: .}\n",
			nil, nil, []string{`FILE:2: node.label: must be at most 255 bytes`, `FILE:3: node.max_key_bytes: must be between 0`,
				`FILE:6: groups[0].ttl: must be >= 0s`, `FILE:7: groups[0].negative_ttl: must be >= 0s`, `FILE:8: groups[0].hot_cache_rate: must be >= 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			_, err := loadConfig(mustFlags(t, append([]string{"-config", path}, tt.args...)...), tt.env.lookup)
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %v is not a *ConfigError", err)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", path)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  envMap
		want string
	}{
		{"from the flag", []string{"-config", "/nonexistent/x.yaml"}, nil, "flag -config: reading the config file"},
		{"from the environment", nil, envMap{"GROUPCACHED_CONFIG": "/nonexistent/x.yaml"}, "environment GROUPCACHED_CONFIG: reading the config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(mustFlags(t, tt.args...), tt.env.lookup)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseFlagsRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-port", "1"}},
		{"stray argument", []string{"serve"}},
		{"missing value", []string{"-name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args, io.Discard); err == nil {
				t.Errorf("parseFlags(%q) succeeded, want an error", tt.args)
			}
		})
	}
}

// TestGroupKeys: every key of a group entry reaches the group's engine config, and every
// field of group.Config has a key, so that the two cannot drift apart.
func TestGroupKeys(t *testing.T) {
	path := writeConfig(t, `groups:
  - name: g
    cache_bytes: 1MiB
    ttl: 1m
    negative_ttl: 0s
    load_timeout: 1s
    hot_cache_fraction: 0.25
    hot_cache_rate: 3
    max_concurrent_loads: 8
    max_queued_loads: 16
    max_loading_bytes: 32MiB
    error_ttl: 2s
    max_error_ttl: 1m
    stale_while_revalidate: 10s
    stale_if_error: 1h
    loader: {type: file, root: .}
`)
	cfg, err := loadConfig(mustFlags(t, "-config", path), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := group.Config{CacheBytes: 1 << 20, TTL: time.Minute, NegativeTTL: 0, LoadTimeout: time.Second, HotCacheFraction: 0.25, HotCacheRate: 3,
		MaxConcurrentLoads: 8, MaxQueuedLoads: 16, MaxLoadingBytes: 32 << 20, ErrorTTL: 2 * time.Second, MaxErrorTTL: time.Minute,
		StaleWhileRevalidate: 10 * time.Second, StaleIfError: time.Hour}
	if got := cfg.Groups[0].Config; got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	keys := knownKeys(reflect.TypeFor[GroupConfig]())
	for i := range reflect.TypeFor[group.Config]().NumField() {
		f := reflect.TypeFor[group.Config]().Field(i)
		if k := snakeCase(f.Name); !strings.Contains(", "+keys+", ", ", "+k+", ") {
			t.Errorf("group.Config.%s has no key %q in a group entry (keys: %s)", f.Name, k, keys)
		}
	}
}

func TestSnakeCase(t *testing.T) {
	for name, want := range map[string]string{
		"CacheBytes": "cache_bytes", "TTL": "ttl", "NegativeTTL": "negative_ttl", "HotCacheFraction": "hot_cache_fraction",
		"DSNEnv": "dsn_env", "URL": "url", "UseOriginTTL": "use_origin_ttl", "HTTPAddr": "http_addr", "Root": "root",
		"MaxIdleConns": "max_idle_conns", "IPv6Addr": "i_pv6_addr",
	} {
		if got := snakeCase(name); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConfigLoaderBlock(t *testing.T) {
	path := writeConfig(t, `groups:
  - name: api
    ttl: 5m
    loader:
      type: http
      url: "http://127.0.0.1:9/items/{key}"
      headers: {Authorization: "Bearer t0ken", X-Trace: "on"}
      timeout: 2s
      max_body_bytes: 1MiB
      use_origin_ttl: true
  - name: rows
    loader:
      type: sql
      driver: sqlite
      dsn_env: ROWS_DSN
      query: SELECT v FROM t WHERE k = ?
      max_open_conns: 4
`)
	cfg, err := loadConfig(mustFlags(t, "-config", path), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Groups[0].Loader.Type != "http" || cfg.Groups[1].Loader.Type != "sql" {
		t.Fatalf("loader types = %q, %q; want http, sql", cfg.Groups[0].Loader.Type, cfg.Groups[1].Loader.Type)
	}
	h := cfg.Groups[0].Loader.Settings.(loader.HTTPConfig)
	if h.URL != "http://127.0.0.1:9/items/{key}" || h.Timeout != 2*time.Second ||
		h.MaxBodyBytes != 1<<20 || !h.UseOriginTTL || cfg.Groups[0].TTL != 5*time.Minute {
		t.Errorf("http group = %+v", cfg.Groups[0])
	}
	if want := map[string]string{"Authorization": "Bearer t0ken", "X-Trace": "on"}; !reflect.DeepEqual(h.Headers, want) {
		t.Errorf("headers = %v, want %v", h.Headers, want)
	}
	s := cfg.Groups[1].Loader.Settings.(loader.SQLConfig)
	if s.Driver != "sqlite" || s.DSNEnv != "ROWS_DSN" || s.MaxOpenConns != 4 || s.Query != "SELECT v FROM t WHERE k = ?" {
		t.Errorf("sql group = %+v", cfg.Groups[1])
	}
}

func TestConfigLoaderBlockErrors(t *testing.T) {
	tests := []struct {
		name, loader, want string
	}{
		{"headers as a list", "{type: http, url: \"http://h:1/{key}\", headers: [a, b]}", `FILE:3: groups[0].loader.headers: want a mapping of names to values, got a list`},
		{"duplicate header", "\n      type: http\n      url: \"http://h:1/{key}\"\n      headers:\n        A: x\n        A: y", `FILE:8: groups[0].loader.headers: duplicate key "A"`},
		{"bad boolean", "{type: http, url: \"http://h:1/{key}\", use_origin_ttl: yes}", `FILE:3: groups[0].loader.use_origin_ttl: invalid boolean "yes": want true or false`},
		{"bad integer", "{type: sql, driver: sqlite, dsn: x, query: q, max_open_conns: many}", `FILE:3: groups[0].loader.max_open_conns: invalid integer "many"`},
		{"field of another type", "{type: file, root: ., url: \"http://h:1/{key}\"}", `FILE:3: groups[0].loader.url: unknown key "url" (known keys here: root, max_body_bytes)`},
		{"loader as a list", "[file, .]", `FILE:3: groups[0].loader: want a mapping of keys to values such as {type: file, root: ./data}, got a list`},
		{"type as a list", "{type: [file], root: .}", `FILE:3: groups[0].loader.type: want a loader type (file, http, sql), got a list`},
		{"duplicate type", "{type: file, type: http, root: .}", `FILE:3: groups[0].loader.type: duplicate key "type"`},
		{"listen channel on sqlite", "\n      type: sql\n      driver: sqlite\n      dsn: x.db\n      query: SELECT v FROM t WHERE k = ?\n      listen_channel: items_changed", `FILE:8: groups[0].loader.listen_channel: PostgreSQL only: SQLite has no LISTEN/NOTIFY`},
		{"listen channel not an identifier", "{type: sql, driver: postgres, dsn: x, query: q, listen_channel: items-changed}", `FILE:3: groups[0].loader.listen_channel: "items-changed" is not a PostgreSQL identifier`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, "groups:\n  - name: g\n    loader: "+tt.loader+"\n")
			_, err := loadConfig(mustFlags(t, "-config", path), envMap{}.lookup)
			if want := strings.ReplaceAll(tt.want, "FILE", path); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant it to contain %s", err, want)
			}
		})
	}
}

// FuzzParseConfig checks that no document, however malformed, panics the decoder, and that
// every error it reports is a *ConfigError naming the file.
func FuzzParseConfig(f *testing.F) {
	f.Add(string(embeddedConfig))
	f.Add("node: {name: a, join: [x:1]}\ngroups: [{name: g, loader: {type: http, headers: {a: b}}}]\n")
	f.Add("groups:\n  - &g {name: a}\n  - *g\n")
	f.Add("- 1\n- 2\n")
	f.Add("node: [1]\ngroups: {a: b}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		_, err := parseConfig("fuzz.yaml", []byte(doc), loader.NewRegistry())
		if err == nil {
			return
		}
		for _, e := range flatten(err) {
			ce, ok := e.(*ConfigError)
			if !ok || ce.File != "fuzz.yaml" {
				t.Fatalf("error %T %v is not a *ConfigError for fuzz.yaml", e, e)
			}
		}
	})
}

// flatten unwraps errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestConfigAliasBomb(t *testing.T) {
	// One group with 200 headers, repeated by alias 1,000 times: a small file that expands to
	// 200,000 values.
	var b strings.Builder
	b.WriteString("groups:\n  - &g {name: g, loader: {type: http, url: \"http://h:1/{key}\", headers: {")
	for i := range 200 {
		fmt.Fprintf(&b, "h%d: v, ", i)
	}
	b.WriteString("}}}\n")
	for range 999 {
		b.WriteString("  - *g\n")
	}
	_, err := parseConfig("bomb.yaml", []byte(b.String()), loader.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Errorf("err = %v, want the expansion refused", err)
	}
}

// TestREADMEConfigReference keeps the README's configuration reference true: its YAML block
// parses and validates as it stands.
func TestREADMEConfigReference(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(string(readme), "\n```yaml\n")
	block, _, closed := strings.Cut(rest, "\n```")
	if !found || !closed {
		t.Fatal("README.md has no ```yaml block")
	}
	cfg, err := loadConfig(mustFlags(t, "-config", writeConfig(t, block)), envMap{}.lookup)
	if err != nil {
		t.Fatalf("README's config block: %v", err)
	}
	if cfg.Node.Preset != presetLAN || len(cfg.Groups) != 1 || cfg.Groups[0].Loader.Type != "file" {
		t.Errorf("README's config block decoded to %+v", cfg)
	}
}

// TestExampleConfigs keeps the configurations shipped under examples/ valid for this binary.
func TestExampleConfigs(t *testing.T) {
	paths, err := filepath.Glob("examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no example configurations under examples/")
	}
	// The deploy examples listen on every interface and get their secrets from the
	// environment, as their READMEs say: protected mode must accept them with the secrets
	// set, and refuse them without.
	secrets := envMap{
		"GROUPCACHED_SECRET_KEY":  base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"GROUPCACHED_ADMIN_TOKEN": "0123456789abcdef0123456789abcdef",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			if _, err := loadConfig(mustFlags(t, "-config", path), secrets.lookup); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		expect int64
	}{
		{"auto from the groups' bounds", "groups:\n  - {name: a, cache_bytes: 64MiB, loader: {type: file, root: .}}\n  - {name: b, cache_bytes: 192MiB, loader: {type: file, root: .}}\n", (256<<20)*5/4 + 32<<20},
		{"explicit", "node: {memory_limit: 1GiB}\ngroups:\n  - {name: a, cache_bytes: 64MiB, loader: {type: file, root: .}}\n", 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags([]string{"-config", writeConfig(t, tt.yaml)}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(f, envMap{}.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.memoryLimit(); got != tt.expect {
				t.Errorf("memoryLimit() = %d, want %d", got, tt.expect)
			}
		})
	}
}

// TestWarmSettings: node.warm_time, peek_timeout, handoff_bytes and handoff_timeout reach
// the cluster's and the node's configurations, with 0s warm_time meaning no peeks.
func TestWarmSettings(t *testing.T) {
	const okGroup = "groups:\n  - name: g\n    loader: {type: file, root: .}\n"
	cfg, err := loadConfig(mustFlags(t, "-config", writeConfig(t, "node:\n  warm_time: 30s\n  peek_timeout: 20ms\n  handoff_bytes: 1MiB\n  handoff_timeout: 1s\n"+okGroup)), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	nc := nodeSettings(cfg, nil)
	if nc.Cluster.WarmTime != 30*time.Second || nc.Cluster.PeekTimeout != 20*time.Millisecond ||
		nc.HandOffBytes != 1<<20 || nc.HandOffTimeout != time.Second {
		t.Fatalf("warm settings: cluster %v/%v, node %d/%v", nc.Cluster.WarmTime, nc.Cluster.PeekTimeout, nc.HandOffBytes, nc.HandOffTimeout)
	}
	cfg, err = loadConfig(mustFlags(t, "-config", writeConfig(t, "node:\n  warm_time: 0s\n  handoff_bytes: 0\n"+okGroup)), envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if nc := nodeSettings(cfg, nil); nc.Cluster.WarmTime >= 0 || nc.HandOffBytes != 0 {
		t.Fatalf("0s warm_time and 0 handoff_bytes: cluster WarmTime %v, HandOffBytes %d", nc.Cluster.WarmTime, nc.HandOffBytes)
	}
	def := defaultConfig()
	if def.Node.WarmTime != time.Minute || def.Node.HandOffBytes != 64<<20 {
		t.Fatalf("defaults %+v", def.Node)
	}
}

// TestGroupNoTTLMaxAge: a group's no_ttl_max_age reaches httpapi.Config.GroupNoTTLMaxAge (0s
// included: no-cache for that group); a group that leaves it out follows node.no_ttl_max_age.
func TestGroupNoTTLMaxAge(t *testing.T) {
	path := writeConfig(t, "node: {no_ttl_max_age: 2m}\ngroups:\n"+
		"  - name: short\n    no_ttl_max_age: 5s\n    loader: {type: file, root: .}\n"+
		"  - name: never\n    no_ttl_max_age: 0s\n    loader: {type: file, root: .}\n"+
		"  - name: node\n    loader: {type: file, root: .}\n")
	cfg, err := loadConfig(mustFlags(t, "-config", path), envMap(nil).lookup)
	if err != nil {
		t.Fatal(err)
	}
	ac := cfg.apiConfig()
	want := map[string]time.Duration{"short": 5 * time.Second, "never": 0}
	if ac.NoTTLMaxAge != 2*time.Minute || !maps.Equal(ac.GroupNoTTLMaxAge, want) {
		t.Errorf("NoTTLMaxAge %v, GroupNoTTLMaxAge %v; want 2m0s and %v", ac.NoTTLMaxAge, ac.GroupNoTTLMaxAge, want)
	}
}
