package main

import (
	_ "embed"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// embeddedConfig is config.yaml as shipped: the configuration used when neither -config nor
// GROUPCACHED_CONFIG names a file.
//
//go:embed config.yaml
var embeddedConfig []byte

// embeddedConfigName is how errors and logs name the embedded file.
const embeddedConfigName = "config.yaml (embedded)"

// Config is everything one node needs. It is built by loadConfig from, in rising precedence,
// the defaults below, a YAML file, GROUPCACHED_* environment variables and flags.
type Config struct {
	Node   NodeConfig    `yaml:"node"`
	Groups []GroupConfig `yaml:"groups"`

	// SecretKey is the gossip encryption key, read from the environment variable that
	// Node.SecretKeyEnv names (never from the file). Nil: gossip is not encrypted.
	SecretKey []byte `yaml:"-"`

	// File names where the configuration came from, for messages.
	File string `yaml:"-"`
	// lines maps key paths ("groups[0].ttl") to their line in File, so that checks made
	// after decoding still point at the line to fix.
	lines map[string]int
}

// NodeConfig is the `node:` block: who this node is, where it listens and whom it joins.
type NodeConfig struct {
	// Name identifies the node in the cluster and must be unique there. Empty: the host name.
	Name string `yaml:"name"`
	// HTTPAddr is the host:port of the client API, the peer API and /metrics. Port 0 picks a
	// free port (the node logs the one it got). Default 127.0.0.1:8080.
	HTTPAddr string `yaml:"http_addr"`
	// GossipAddr is the host:port memberlist binds for gossip (TCP and UDP). Port 0 picks a
	// free port. Default 127.0.0.1:7946.
	GossipAddr string `yaml:"gossip_addr"`
	// Join lists seeds as host:port, where host may be a DNS name that resolves to several
	// addresses (every one is tried). The node joins them at start and keeps rejoining them,
	// so a healed partition merges again. Empty: the node starts a cluster of its own (others
	// may join it).
	Join []string `yaml:"join"`
	// Preset picks the cluster's timing: "lan" (production values for a data-centre network)
	// or "local" (fast failure detection and convergence, for one machine and for tests).
	// Empty: "lan".
	Preset string `yaml:"preset"`
	// Label is a cluster label: nodes with a different label ignore this node's gossip, so
	// two clusters can share a network. Empty: no label.
	Label string `yaml:"label"`
	// SecretKeyEnv names the environment variable holding the gossip encryption key, base64
	// of 16, 24 or 32 bytes (AES-128/192/256). The key itself is never written in the file.
	// Empty: GROUPCACHED_SECRET_KEY. An unset or empty variable means no encryption.
	SecretKeyEnv string `yaml:"secret_key_env"`
	// MaxKeyBytes is the longest key the HTTP API accepts; longer keys are answered 400.
	// Zero: 1KiB.
	MaxKeyBytes group.ByteSize `yaml:"max_key_bytes"`
	// ShutdownDelay is how long /readyz answers 503 before the node stops accepting
	// connections on SIGTERM, so that load balancers take it out of rotation first. The
	// whole stop (delay, leave, drain) is bounded at 10s, so it must be under 5s. Zero: no
	// delay. Default 1s.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// LogLevel is debug, info, warn or error. Empty: info.
	LogLevel string `yaml:"log_level"`
	// MemoryLimit is the soft limit given to Go's garbage collector (debug.SetMemoryLimit).
	// Without one the collector lets the heap grow to twice the live data between cycles, so
	// a node whose caches evict can reach about twice their bound. Zero: 1.25x the sum of the
	// groups' cache_bytes plus 32MiB. The GOMEMLIMIT variable, when set, wins (GOMEMLIMIT=off
	// removes the limit).
	MemoryLimit group.ByteSize `yaml:"memory_limit"`
}

// memoryLimit is the soft memory limit the node asks of the runtime: the configured one, or
// room for every group's full cache plus the heap's own slack.
func (c Config) memoryLimit() int64 {
	if c.Node.MemoryLimit > 0 {
		return int64(c.Node.MemoryLimit)
	}
	var caches int64
	for _, g := range c.Groups {
		caches += int64(g.CacheBytes)
	}
	return caches + caches/4 + 32<<20
}

// GroupConfig is one entry of `groups:`: a named cache over one loader.
type GroupConfig struct {
	// Name is the group's name in URLs (/groups/{name}/keys/{key}): letters, digits, '.',
	// '_' and '-'. Required, unique.
	Name string `yaml:"name"`
	// CacheBytes bounds the group's memory on this node (main and hot cache, with per-entry
	// overhead), e.g. 64MiB. Default 64MiB.
	CacheBytes group.ByteSize `yaml:"cache_bytes"`
	// TTL is how long a loaded value is served when its loader sets none. 0s: never expires.
	TTL time.Duration `yaml:"ttl"`
	// NegativeTTL is how long a not-found answer is remembered. 0s: not remembered.
	// Default 1s.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// LoadTimeout bounds one fill (a loader call or a fetch from the owner). Default 30s.
	LoadTimeout time.Duration `yaml:"load_timeout"`
	// HotCacheFraction is the share of CacheBytes that holds copies of popular keys owned by
	// other nodes, in [0, 0.5]. 0: no hot cache. Default 0.125.
	HotCacheFraction float64 `yaml:"hot_cache_fraction"`
	// Loader says where values come from: {type: file, root: ...}, {type: http, url: ...} or
	// {type: sql, ...}. See the loader package for every key. Required.
	Loader loader.Config `yaml:"loader"`
}

// Defaults for what a file leaves out.
const (
	defaultHTTPAddr      = "127.0.0.1:8080"
	defaultGossipAddr    = "127.0.0.1:7946"
	defaultPreset        = presetLAN
	defaultSecretKeyEnv  = "GROUPCACHED_SECRET_KEY"
	defaultMaxKeyBytes   = group.ByteSize(1 << 10)
	defaultShutdownDelay = time.Second
	defaultLogLevel      = "info"

	// maxShutdownDelay keeps delay + leave + drain within the 10s a stop may take.
	maxShutdownDelay = 5 * time.Second

	presetLAN   = "lan"
	presetLocal = "local"
)

// defaultConfig returns the node defaults; it has no groups (a file must name them).
func defaultConfig() Config {
	return Config{
		Node: NodeConfig{
			HTTPAddr:      defaultHTTPAddr,
			GossipAddr:    defaultGossipAddr,
			Preset:        defaultPreset,
			SecretKeyEnv:  defaultSecretKeyEnv,
			MaxKeyBytes:   defaultMaxKeyBytes,
			ShutdownDelay: defaultShutdownDelay,
			LogLevel:      defaultLogLevel,
		},
	}
}

// fillZeros gives the node settings whose documented zero value means "the default" (an
// empty string or 0 written in the file, or an empty variable) that default.
func (n *NodeConfig) fillZeros() {
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&n.HTTPAddr, defaultHTTPAddr},
		{&n.GossipAddr, defaultGossipAddr},
		{&n.Preset, defaultPreset},
		{&n.SecretKeyEnv, defaultSecretKeyEnv},
		{&n.LogLevel, defaultLogLevel},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	if n.MaxKeyBytes == 0 {
		n.MaxKeyBytes = defaultMaxKeyBytes
	}
}

// setDefaults gives a group entry the engine's production values before the file's keys are
// applied, so that a key left out means its default rather than zero.
func (g *GroupConfig) setDefaults() {
	d := group.DefaultConfig()
	*g = GroupConfig{
		CacheBytes:       group.ByteSize(d.CacheBytes),
		TTL:              d.TTL,
		NegativeTTL:      d.NegativeTTL,
		LoadTimeout:      d.LoadTimeout,
		HotCacheFraction: d.HotCacheFraction,
	}
}

// GroupEngineConfig is the group package's Config for this entry.
func (g GroupConfig) GroupEngineConfig() group.Config {
	c := group.DefaultConfig()
	c.CacheBytes = int64(g.CacheBytes)
	c.TTL = g.TTL
	c.NegativeTTL = g.NegativeTTL
	c.LoadTimeout = g.LoadTimeout
	c.HotCacheFraction = g.HotCacheFraction
	return c
}

// ConfigError is a configuration mistake the user must fix: where it is and what is wrong.
// Any ConfigError makes the node exit with status 2.
type ConfigError struct {
	File string // a file name, "flag -x" or "environment GROUPCACHED_X"
	Line int    // 1-based line in File; 0 when File is not a file
	Path string // the key, e.g. "groups[0].ttl"; empty for the file as a whole
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Flags are the command-line settings; each one given overrides the environment and the file.
type Flags struct {
	Config string // -config: the YAML file
	Name   string // -name: node.name
	HTTP   string // -http: node.http_addr
	Gossip string // -gossip: node.gossip_addr
	Join   string // -join: node.join, comma-separated

	// set holds the names of the flags given on the command line: an empty value given
	// explicitly (-join "") still overrides, a flag not given does not.
	set map[string]bool
}

// parseFlags reads the command line. Errors (and -h) are already reported on out.
func parseFlags(args []string, out io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet("groupcached", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.Config, "config", "", "YAML config `file` (env GROUPCACHED_CONFIG; default: the embedded config.yaml)")
	fs.StringVar(&f.Name, "name", "", "node `name`, unique in the cluster (env GROUPCACHED_NAME)")
	fs.StringVar(&f.HTTP, "http", "", "HTTP listen `host:port`; port 0 picks one (env GROUPCACHED_HTTP)")
	fs.StringVar(&f.Gossip, "gossip", "", "gossip listen `host:port`; port 0 picks one (env GROUPCACHED_GOSSIP)")
	fs.StringVar(&f.Join, "join", "", "comma-separated `seeds` to join, host:port or DNS names (env GROUPCACHED_JOIN)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: groupcached [flags]\n\nA peer-filling read-through cache node. Flags override GROUPCACHED_* environment\nvariables, which override the config file, which overrides the defaults.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Flags{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintln(out, err)
		fs.Usage()
		return Flags{}, err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// loadConfig builds the node's configuration: defaults, then the file (flag -config, else
// GROUPCACHED_CONFIG, else the embedded config.yaml), then GROUPCACHED_* variables from
// lookupEnv, then flags, and validates the result. Every mistake found is returned, joined;
// each is a *ConfigError.
func loadConfig(f Flags, lookupEnv func(string) (string, bool)) (Config, error) {
	data, name := embeddedConfig, embeddedConfigName
	path, origin := f.Config, "flag -config"
	if !f.set["config"] {
		path, origin = "", ""
		if v, ok := lookupEnv("GROUPCACHED_CONFIG"); ok && v != "" {
			path, origin = v, "environment GROUPCACHED_CONFIG"
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &ConfigError{File: origin, Msg: fmt.Sprintf("reading the config file: %v", err)}
		}
		data, name = b, path
	}
	cfg, err := parseConfig(name, data)
	if err != nil {
		return Config{}, err
	}
	var errs []error
	overlay := func(dst *string, envName, flagName, flagValue string) {
		if v, ok := lookupEnv(envName); ok && v != "" {
			*dst = v
		}
		if f.set[flagName] {
			*dst = flagValue
		}
	}
	overlay(&cfg.Node.Name, "GROUPCACHED_NAME", "name", f.Name)
	overlay(&cfg.Node.HTTPAddr, "GROUPCACHED_HTTP", "http", f.HTTP)
	overlay(&cfg.Node.GossipAddr, "GROUPCACHED_GOSSIP", "gossip", f.Gossip)
	if v, ok := lookupEnv("GROUPCACHED_JOIN"); ok {
		cfg.Node.Join = splitList(v)
	}
	if f.set["join"] {
		cfg.Node.Join = splitList(f.Join)
	}
	for _, env := range []struct {
		name string
		dst  *string
	}{
		{"GROUPCACHED_PRESET", &cfg.Node.Preset},
		{"GROUPCACHED_LABEL", &cfg.Node.Label},
		{"GROUPCACHED_LOG_LEVEL", &cfg.Node.LogLevel},
	} {
		if v, ok := lookupEnv(env.name); ok && v != "" {
			*env.dst = v
		}
	}
	if cfg.Node.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, &ConfigError{File: cfg.File, Path: "node.name", Msg: fmt.Sprintf("not set, and the host name is unknown: %v", err)})
		}
		cfg.Node.Name = host
	}
	cfg.Node.fillZeros()
	if v, ok := lookupEnv(cfg.Node.SecretKeyEnv); ok && v != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		switch {
		case err != nil:
			errs = append(errs, &ConfigError{File: "environment " + cfg.Node.SecretKeyEnv, Msg: "the gossip key must be base64 (for example: openssl rand -base64 32)"})
		case len(key) != 16 && len(key) != 24 && len(key) != 32:
			errs = append(errs, &ConfigError{File: "environment " + cfg.Node.SecretKeyEnv, Msg: fmt.Sprintf("the gossip key must decode to 16, 24 or 32 bytes, got %d", len(key))})
		default:
			cfg.SecretKey = key
		}
	}
	errs = append(errs, cfg.validate(f, lookupEnv))
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseConfig decodes a YAML document over the defaults. Unknown keys, values of the wrong
// type and YAML syntax errors are reported with their line; values are not validated yet.
func parseConfig(name string, data []byte) (Config, error) {
	cfg := defaultConfig()
	cfg.File = name
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, yamlSyntaxError(name, err)
	}
	d := &yamlDecoder{file: name, lines: map[string]int{}}
	if len(doc.Content) > 0 {
		d.decode(&doc, "", reflect.ValueOf(&cfg).Elem())
	}
	if err := errors.Join(d.errs...); err != nil {
		return Config{}, err
	}
	cfg.lines = d.lines
	return cfg, nil
}

// yamlLine matches the "line N: " yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func yamlSyntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: name, Line: line, Msg: "invalid YAML: " + msg[len(m[0]):]}
	}
	return &ConfigError{File: name, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// groupName is what a group may be called: it appears unescaped in URLs and metric labels.
var groupName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validate checks values against their ranges. A value that came from a flag or the
// environment is blamed on it; one from the file, on its line.
func (c *Config) validate(f Flags, lookupEnv func(string) (string, bool)) error {
	var errs []error
	at := func(path, flagName, envName string) *ConfigError {
		if flagName != "" && f.set[flagName] {
			return &ConfigError{File: "flag -" + flagName}
		}
		if envName != "" {
			if v, ok := lookupEnv(envName); ok && v != "" {
				return &ConfigError{File: "environment " + envName}
			}
		}
		return &ConfigError{File: c.File, Line: c.lines[path], Path: path}
	}
	fail := func(path, flagName, envName, format string, args ...any) {
		e := at(path, flagName, envName)
		e.Msg = fmt.Sprintf(format, args...)
		errs = append(errs, e)
	}

	n := &c.Node
	if err := checkHostPort(n.HTTPAddr); err != nil {
		fail("node.http_addr", "http", "GROUPCACHED_HTTP", "%v", err)
	}
	if err := checkHostPort(n.GossipAddr); err != nil {
		fail("node.gossip_addr", "gossip", "GROUPCACHED_GOSSIP", "%v", err)
	}
	for i, seed := range n.Join {
		if err := checkHostPort(seed); err != nil || strings.HasSuffix(seed, ":0") {
			fail(fmt.Sprintf("node.join[%d]", i), "join", "GROUPCACHED_JOIN", "seed %q: want host:port, where host is an address or a DNS name", seed)
		}
	}
	if n.Preset != presetLAN && n.Preset != presetLocal {
		fail("node.preset", "", "GROUPCACHED_PRESET", "unknown preset %q: want %q or %q", n.Preset, presetLAN, presetLocal)
	}
	if n.MaxKeyBytes <= 0 || n.MaxKeyBytes > 64<<10 {
		fail("node.max_key_bytes", "", "", "must be between 1B and 64KiB, got %v", n.MaxKeyBytes)
	}
	if n.ShutdownDelay < 0 || n.ShutdownDelay >= maxShutdownDelay {
		fail("node.shutdown_delay", "", "", "must be at least 0s and under %v, got %v", maxShutdownDelay, n.ShutdownDelay)
	}
	if _, err := parseLogLevel(n.LogLevel); err != nil {
		fail("node.log_level", "", "GROUPCACHED_LOG_LEVEL", "%v", err)
	}

	if len(c.Groups) == 0 {
		fail("groups", "", "", "at least one group is required")
	}
	seen := map[string]int{}
	for i, g := range c.Groups {
		p := fmt.Sprintf("groups[%d]", i)
		switch first, dup := seen[g.Name]; {
		case g.Name == "":
			fail(p, "", "", "name is required")
		case !groupName.MatchString(g.Name):
			fail(p+".name", "", "", "invalid group name %q: use 1 to 64 letters, digits, '.', '_' or '-'", g.Name)
		case dup:
			fail(p+".name", "", "", "group %q is already defined by groups[%d]", g.Name, first)
		default:
			seen[g.Name] = i
		}
		if g.CacheBytes <= 0 {
			fail(p+".cache_bytes", "", "", "must be > 0, got %v", g.CacheBytes)
		}
		if g.TTL < 0 {
			fail(p+".ttl", "", "", "must be >= 0s (0s: never expires), got %v", g.TTL)
		}
		if g.NegativeTTL < 0 {
			fail(p+".negative_ttl", "", "", "must be >= 0s (0s: off), got %v", g.NegativeTTL)
		}
		if g.LoadTimeout <= 0 {
			fail(p+".load_timeout", "", "", "must be > 0s, got %v", g.LoadTimeout)
		}
		if g.HotCacheFraction < 0 || g.HotCacheFraction > 0.5 {
			fail(p+".hot_cache_fraction", "", "", "must be in [0, 0.5], got %v", g.HotCacheFraction)
		}
		if _, ok := c.lines[p+".loader"]; !ok {
			fail(p, "", "", "loader is required, e.g. {type: file, root: ./examples/data}")
		} else if err := g.Loader.Validate(); err != nil {
			fail(p+".loader", "", "", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// loaderError blames a failure to build group i's loader on its `loader:` line.
func (c *Config) loaderError(i int, err error) error {
	p := fmt.Sprintf("groups[%d].loader", i)
	return &ConfigError{File: c.File, Line: c.lines[p], Path: p, Msg: err.Error()}
}

// checkHostPort accepts host:port with a numeric port (0 allowed) and an optional host.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("invalid port in %q: want a number from 0 to 65535", addr)
	}
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch s {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("unknown log level %q: want debug, info, warn or error", s)
}
