package main

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
	"github.com/groupcached/groupcached/loader"
	"github.com/groupcached/groupcached/peers"
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

	// SecretKey is the cluster secret: the gossip encryption key, and the key peers will
	// authenticate each other with. It is read from the environment variable that
	// Node.SecretKeyEnv names (never from the file). Nil: gossip is not encrypted.
	SecretKey []byte `yaml:"-"`

	// AdminToken is the token that removes and purges need, read from the environment
	// variable that Node.AdminTokenEnv names (never from the file). Empty: none is needed.
	AdminToken string `yaml:"-"`

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
	// AdminTokenEnv names the environment variable holding the admin token: when it is set,
	// DELETE of a key or a group (and any write route) needs "Authorization: Bearer <token>",
	// else 401. At least 16 characters, no spaces. The token itself is never written in the
	// file. Empty: GROUPCACHED_ADMIN_TOKEN. An unset or empty variable means no token.
	AdminTokenEnv string `yaml:"admin_token_env"`
	// Insecure turns protected mode off: without it, a node whose http_addr, gossip_addr or
	// peer_addr is not a loopback address refuses to start unless both the cluster secret
	// and the admin token are set. Set it only when every host that can reach those
	// addresses is trusted; the node logs a warning. Default false.
	Insecure bool `yaml:"insecure"`
	// PeerAddr is a second host:port serving only the peer endpoints, advertised to the
	// peers instead of http_addr (which then answers 404 under /_peer), so that node-to-node
	// traffic can stay on a cluster-only network. Port 0 picks a free port. Empty: http_addr
	// serves peers too.
	PeerAddr string `yaml:"peer_addr"`
	// TLS serves http_addr and peer_addr over TLS. Empty: plain HTTP.
	TLS TLSFilesConfig `yaml:"tls"`
	// MaxConnections caps the connections open at once on each listener; at the cap the
	// longest-idle connection is closed to make room (httpapi.NodeConfig.MaxConnections).
	// Zero: three quarters of the open-file limit, at most 65536. Negative: no cap.
	MaxConnections int `yaml:"max_connections"`
	// MaxIdleConnections bounds the idle keep-alive connections on each listener. Zero: half
	// of max_connections. Negative: only max_connections bounds them.
	MaxIdleConnections int `yaml:"max_idle_connections"`
	// PurgeRate bounds the group purges (DELETE /groups/{group}) this node accepts, per
	// second, all clients together; past it the answer is 429 with Retry-After. Zero: no
	// limit. Default 0.2 (one every 5s).
	PurgeRate float64 `yaml:"purge_rate"`
	// PurgeBurst is how many purges may come at once above purge_rate. Zero: 1. Default 3.
	PurgeBurst int `yaml:"purge_burst"`
	// MaxKeyBytes is the longest key the HTTP API accepts; longer keys are answered 400.
	// At most 64KiB (httpapi.Config.MaxKeyBytes). Zero: 1KiB.
	MaxKeyBytes group.ByteSize `yaml:"max_key_bytes"`
	// MaxBatchKeys bounds the keys of one batch read (POST /groups/{group}/mget); more are
	// answered 413 (httpapi.Config.MaxBatchKeys). Zero: 1000. At most 100000.
	MaxBatchKeys int `yaml:"max_batch_keys"`
	// MaxBatchRequestBytes bounds the body of a batch read; a longer one is answered 413.
	// Zero: 1MiB.
	MaxBatchRequestBytes group.ByteSize `yaml:"max_batch_request_bytes"`
	// MaxBatchResponseBytes bounds the value bytes one batch read answers with; the values
	// past it are their items' 413 (httpapi.Config.MaxBatchResponseBytes). Zero: 16MiB.
	MaxBatchResponseBytes group.ByteSize `yaml:"max_batch_response_bytes"`
	// NoTTLMaxAge is the Cache-Control max-age the HTTP API sends with values that never
	// expire (httpapi.Config.NoTTLMaxAge): how long a downstream cache may serve one after a
	// PUT or DELETE changed it. 0s: no-cache (revalidate every read). Default 1m.
	NoTTLMaxAge time.Duration `yaml:"no_ttl_max_age"`
	// ShutdownDelay is how long /readyz answers 503 before the node stops accepting
	// connections on SIGTERM, so that load balancers take it out of rotation first. The
	// whole stop (delay, leave, drain) is bounded at 10s, so it must be under 5s
	// (httpapi.MaxShutdownDelay). Zero: no delay. Default 1s.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// LogLevel is debug, info, warn or error. Empty: info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (logfmt: key=value) or json (one JSON object per line, for a log
	// collector). Empty: text.
	LogFormat string `yaml:"log_format"`
	// AccessLog logs one line per HTTP request, peers' included, at info: method, route
	// pattern, group, the key's length (never the key), status, bytes, duration, client and,
	// from a peer, its name (httpapi.Config.AccessLog). Default false.
	AccessLog bool `yaml:"access_log"`
	// MemoryLimit is the soft limit given to Go's garbage collector (debug.SetMemoryLimit).
	// Without one the collector lets the heap grow to twice the live data between cycles, so
	// a node whose caches evict can reach about twice their bound. Zero: 1.25x the sum of the
	// groups' cache_bytes plus 32MiB. The GOMEMLIMIT variable, when set, wins (GOMEMLIMIT=off
	// removes the limit).
	MemoryLimit group.ByteSize `yaml:"memory_limit"`
	// TombstoneTTL is how long this node keeps a DELETE that a member did not confirm (it
	// was cut off or down), to apply it when the member is back (peers.Config.TombstoneTTL).
	// Negative: none kept. Zero: 10m.
	TombstoneTTL time.Duration `yaml:"tombstone_ttl"`
	// WarmTime is how long after a change of the ring a node that now owns a key first asks
	// the key's previous owner for the value in its memory (never its loader) before loading
	// it from the origin (peers.Config.WarmTime). 0s: never. Default 1m.
	WarmTime time.Duration `yaml:"warm_time"`
	// PeekTimeout bounds that question: a previous owner that does not answer within it
	// delays the load no more (peers.Config.PeekTimeout). Above 0s, at most 5s. Default 100ms.
	PeekTimeout time.Duration `yaml:"peek_timeout"`
	// HandOffBytes bounds what a node stopping on SIGTERM hands to the keys' next owners
	// before it leaves: its most valuable values first, by its eviction policy, up to this
	// many bytes of keys and values (httpapi.NodeConfig.HandOffBytes). 0: no hand-off.
	// Default 64MiB.
	HandOffBytes group.ByteSize `yaml:"handoff_bytes"`
	// HandOffTimeout bounds the hand-off, within the 10s a stop may take. Under 5s
	// (httpapi.MaxHandOffTimeout). 0s or default: 2s.
	HandOffTimeout time.Duration `yaml:"handoff_timeout"`
	// PeerEjectAfter is how many fetches in a row must find a peer unreachable before this
	// node routes around it and loads its keys itself (peers.Config.PeerEjectAfter).
	// Negative: never. Zero: 3.
	PeerEjectAfter int `yaml:"peer_eject_after"`
	// PeerEjectFor is how long an ejected peer stays routed around before a ping asks
	// whether it is back; doubled per failed ping, up to 10x (peers.Config.PeerEjectFor).
	// Zero: 5s.
	PeerEjectFor time.Duration `yaml:"peer_eject_for"`
}

// TLSFilesConfig is the `node.tls:` block: PEM files (httpapi.TLSConfig documents each).
type TLSFilesConfig struct {
	// CertFile and KeyFile are the certificate chain served and its key, re-read when they
	// change. Both required when the block is used.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CAs whose client certificates are accepted (verified when a
	// client presents one; required of peers once the peer wire lands). Empty: none asked.
	ClientCAFile string `yaml:"client_ca_file"`
	// CAFile holds the CAs trusted when dialling peers. Empty: client_ca_file, else the
	// system's roots.
	CAFile string `yaml:"ca_file"`
}

// enabled reports whether the block is used at all.
func (t TLSFilesConfig) enabled() bool { return t != TLSFilesConfig{} }

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
	// Config is the group's engine settings: each of its fields is a key of the entry, its
	// name in snake_case (HotCacheFraction: hot_cache_fraction; CacheBytes: cache_bytes,
	// which takes a size such as 64MiB). group.Config documents them and validates them; a
	// key left out keeps group.DefaultConfig's value.
	group.Config
	// NoTTLMaxAge is this group's Cache-Control max-age for values that never expire, in
	// place of node.no_ttl_max_age (httpapi.Config.GroupNoTTLMaxAge); 0s sends no-cache. Left
	// out, the group follows the node's.
	NoTTLMaxAge time.Duration `yaml:"no_ttl_max_age"`
	// Loader says where values come from: {type: file, root: ...}, {type: http, url: ...},
	// {type: sql, ...} or a type registered on the node's loader.Registry, whose keys it
	// defines. Required.
	Loader LoaderConfig `yaml:"loader"`
}

// Defaults for what a file leaves out.
const (
	defaultHTTPAddr      = "127.0.0.1:8080"
	defaultGossipAddr    = "127.0.0.1:7946"
	defaultPreset        = presetLAN
	defaultSecretKeyEnv  = "GROUPCACHED_SECRET_KEY"
	defaultAdminTokenEnv = "GROUPCACHED_ADMIN_TOKEN"
	defaultPurgeRate     = 0.2
	defaultPurgeBurst    = 3
	defaultMaxKeyBytes   = group.ByteSize(1 << 10)
	defaultShutdownDelay = time.Second
	defaultWarmTime      = time.Minute
	defaultPeekTimeout   = 100 * time.Millisecond
	defaultHandOffTime   = 2 * time.Second

	// maxPeekTimeout keeps a peek short.
	maxPeekTimeout   = 5 * time.Second
	defaultLogLevel  = "info"
	defaultLogFormat = "text"

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
			AdminTokenEnv: defaultAdminTokenEnv,
			PurgeRate:     defaultPurgeRate,
			PurgeBurst:    defaultPurgeBurst,
			MaxKeyBytes:   defaultMaxKeyBytes,
			MaxBatchKeys:  httpapi.DefaultMaxBatchKeys,
			NoTTLMaxAge:   httpapi.DefaultNoTTLMaxAge,

			MaxBatchRequestBytes:  httpapi.DefaultMaxBatchRequestBytes,
			MaxBatchResponseBytes: httpapi.DefaultMaxBatchResponseBytes,
			ShutdownDelay:         defaultShutdownDelay,
			WarmTime:              defaultWarmTime,
			PeekTimeout:           defaultPeekTimeout,
			HandOffBytes:          httpapi.DefaultHandOffBytes,
			HandOffTimeout:        defaultHandOffTime,
			LogLevel:              defaultLogLevel,
			LogFormat:             defaultLogFormat,
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
		{&n.AdminTokenEnv, defaultAdminTokenEnv},
		{&n.LogLevel, defaultLogLevel},
		{&n.LogFormat, defaultLogFormat},
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
	*g = GroupConfig{Config: group.DefaultConfig(), NoTTLMaxAge: inheritNoTTLMaxAge}
}

// inheritNoTTLMaxAge marks a group's no_ttl_max_age as left out: the node's applies. A file
// cannot write it (a negative duration is refused by validate).
const inheritNoTTLMaxAge = time.Duration(-1)

// peersConfig is the membership configuration of the node block, advertising httpAddr (the
// HTTP listener's address, whose port is the real one even when 0 was asked for).
func (c *Config) peersConfig(httpAddr string, logger *slog.Logger) peers.Config {
	pc := peers.DefaultConfig()
	if c.Node.Preset == presetLocal {
		pc = peers.LocalConfig()
	}
	pc.NodeName = c.Node.Name
	pc.GossipAddr = c.Node.GossipAddr
	pc.HTTPAddr = httpAddr
	pc.Seeds = c.Node.Join
	pc.SecretKey = c.SecretKey
	pc.Label = c.Node.Label
	if c.Node.TombstoneTTL != 0 {
		pc.TombstoneTTL = c.Node.TombstoneTTL
	}
	pc.WarmTime = c.Node.WarmTime
	if pc.WarmTime == 0 {
		pc.WarmTime = -1 // 0s in the file: no peeks (peers' zero means its default)
	}
	if c.Node.PeekTimeout > 0 {
		pc.PeekTimeout = c.Node.PeekTimeout
	}
	if c.Node.PeerEjectAfter != 0 {
		pc.PeerEjectAfter = c.Node.PeerEjectAfter
	}
	if c.Node.PeerEjectFor != 0 {
		pc.PeerEjectFor = c.Node.PeerEjectFor
	}
	pc.Logger = logger
	return pc
}

// apiConfig is the HTTP API's configuration.
func (c *Config) apiConfig() httpapi.Config {
	ac := httpapi.DefaultConfig()
	ac.NodeName = c.Node.Name
	ac.MaxKeyBytes = int(c.Node.MaxKeyBytes)
	ac.MaxBatchKeys = c.Node.MaxBatchKeys
	ac.MaxBatchRequestBytes = int64(c.Node.MaxBatchRequestBytes)
	ac.MaxBatchResponseBytes = int64(c.Node.MaxBatchResponseBytes)
	ac.NoTTLMaxAge = c.Node.NoTTLMaxAge
	for _, g := range c.Groups {
		if g.NoTTLMaxAge != inheritNoTTLMaxAge {
			if ac.GroupNoTTLMaxAge == nil {
				ac.GroupNoTTLMaxAge = make(map[string]time.Duration)
			}
			ac.GroupNoTTLMaxAge[g.Name] = g.NoTTLMaxAge
		}
	}
	ac.AdminToken = c.AdminToken
	ac.AccessLog = c.Node.AccessLog
	ac.PurgeRate = c.Node.PurgeRate
	ac.PurgeBurst = c.Node.PurgeBurst
	// A cold Get may wait a whole load: the response deadline must outlast it, or a slow
	// load ends in a reset connection instead of a 504.
	for _, g := range c.Groups {
		ac.WriteTimeout = max(ac.WriteTimeout, g.LoadTimeout+10*time.Second)
	}
	return ac
}

// newLoader builds group i's loader from its `loader:` block. The settings were validated
// with the file; what fails now (a root directory that does not exist, a database that does
// not answer) is a *ConfigError at the block's line all the same.
func (c *Config) newLoader(i int) (group.Loader, error) {
	lc := c.Groups[i].Loader
	l, err := lc.Settings.NewLoader()
	if err == nil && l == nil {
		err = fmt.Errorf("loader type %q built no loader", lc.Type)
	}
	if err != nil {
		p := fmt.Sprintf("groups[%d].loader", i)
		return nil, &ConfigError{File: c.File, Line: c.lines[p], Path: p, Msg: err.Error()}
	}
	return l, nil
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

// loadConfig builds the node's configuration with the built-in loader types (loadConfigWith).
func loadConfig(f Flags, lookupEnv func(string) (string, bool)) (Config, error) {
	return loadConfigWith(f, lookupEnv, loader.NewRegistry())
}

// loadConfigWith builds the node's configuration: defaults, then the file (flag -config, else
// GROUPCACHED_CONFIG, else the embedded config.yaml) with its loader blocks decoded by the
// types of loaders, then GROUPCACHED_* variables from lookupEnv, then flags, and validates
// the result. Every mistake found is returned, joined; each is a *ConfigError.
func loadConfigWith(f Flags, lookupEnv func(string) (string, bool), loaders *loader.Registry) (Config, error) {
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
	cfg, err := parseConfig(name, data, loaders)
	if err != nil {
		return Config{}, err
	}
	errs := cfg.override(f, lookupEnv)
	errs = append(errs, cfg.validate(f, lookupEnv))
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
