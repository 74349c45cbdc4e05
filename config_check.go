package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"reflect"
	"regexp"
	"strings"

	"github.com/groupcached/groupcached/group"
)

// groupName is what a group may be called: it appears unescaped in URLs and metric labels.
var groupName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// source is where a setting can come from: its key in the file, the flag and the
// environment variable that override it ("" for none).
type source struct {
	path, flag, env string
}

// validate checks the configuration. The settings only the file has (preset, log level and
// format, warm_time and peek_timeout as the file means them, the groups' names and that each
// has a loader) are checked here; the settings the node hands to a package (group.Config,
// peers.Config, httpapi.Config and httpapi.NodeConfig) are checked by that package's Validate, and each *group.FieldError it returns is blamed on the flag or variable
// that set the value, or else on the value's line in the file. The loader blocks were
// checked by their types as the file was decoded.
func (c *Config) validate(f Flags, lookupEnv func(string) (string, bool)) error {
	var errs []error
	at := func(s source) *ConfigError {
		if s.flag != "" && f.set[s.flag] {
			return &ConfigError{File: "flag -" + s.flag}
		}
		if s.env != "" {
			if v, ok := lookupEnv(s.env); ok && v != "" {
				return &ConfigError{File: "environment " + s.env}
			}
		}
		return &ConfigError{File: c.File, Line: lineOf(c.lines, s.path), Path: s.path}
	}
	fail := func(s source, format string, args ...any) {
		e := at(s)
		e.Msg = fmt.Sprintf(format, args...)
		errs = append(errs, e)
	}
	// blame reports the FieldErrors of a package's Validate: the field named in sources
	// (with any index, "Seeds[1]") at its source, any other at the file as a whole.
	blame := func(err error, sources map[string]source, pkg string) {
		for _, e := range leaves(err) {
			var fe *group.FieldError
			if !errors.As(e, &fe) {
				errs = append(errs, &ConfigError{File: c.File, Msg: fmt.Sprintf("%s: %v", pkg, e)})
				continue
			}
			name, index, _ := strings.Cut(fe.Field, "[")
			s, ok := sources[name]
			if !ok {
				errs = append(errs, &ConfigError{File: c.File, Msg: fmt.Sprintf("%s: %v", pkg, fe)})
				continue
			}
			if index != "" {
				s.path += "[" + index
			}
			fail(s, "%v", fe.Err)
		}
	}

	n := &c.Node
	if n.Preset != presetLAN && n.Preset != presetLocal {
		fail(source{"node.preset", "", "GROUPCACHED_PRESET"}, "unknown preset %q: want %q or %q", n.Preset, presetLAN, presetLocal)
	}
	// warm_time and peek_timeout are the file's own: its 0s warm_time means no peeks (peers'
	// negative), and a 0s peek_timeout would leave peers' default in its place.
	if n.WarmTime < 0 {
		fail(source{path: "node.warm_time"}, "must be at least 0s (0s: no peeks), got %v", n.WarmTime)
	}
	if n.PeekTimeout <= 0 || n.PeekTimeout > maxPeekTimeout {
		fail(source{path: "node.peek_timeout"}, "must be above 0s and at most %v, got %v", maxPeekTimeout, n.PeekTimeout)
	}
	if _, err := parseLogLevel(n.LogLevel); err != nil {
		fail(source{"node.log_level", "", "GROUPCACHED_LOG_LEVEL"}, "%v", err)
	}
	if n.LogFormat != logText && n.LogFormat != logJSON {
		fail(source{"node.log_format", "", "GROUPCACHED_LOG_FORMAT"}, "unknown log format %q: want %q or %q", n.LogFormat, logText, logJSON)
	}
	nodeSources := map[string]source{
		"NodeName":    {"node.name", "name", "GROUPCACHED_NAME"},
		"HTTPAddr":    {"node.http_addr", "http", "GROUPCACHED_HTTP"},
		"GossipAddr":  {"node.gossip_addr", "gossip", "GROUPCACHED_GOSSIP"},
		"Seeds":       {"node.join", "join", "GROUPCACHED_JOIN"},
		"Label":       {"node.label", "", "GROUPCACHED_LABEL"},
		"SecretKey":   {"", "", n.SecretKeyEnv},
		"MaxKeyBytes": {path: "node.max_key_bytes"},
		"NoTTLMaxAge": {path: "node.no_ttl_max_age"},

		"MaxBatchKeys":          {path: "node.max_batch_keys"},
		"MaxBatchRequestBytes":  {path: "node.max_batch_request_bytes"},
		"MaxBatchResponseBytes": {path: "node.max_batch_response_bytes"},
		"AdminToken":            {"", "", n.AdminTokenEnv},
		"PurgeRate":             {path: "node.purge_rate"},
		"PurgeBurst":            {path: "node.purge_burst"},
		"PeerEjectAfter":        {path: "node.peer_eject_after"},
		"PeerEjectFor":          {path: "node.peer_eject_for"},
		"TombstoneTTL":          {path: "node.tombstone_ttl"},
	}
	if n.Name == "" {
		delete(nodeSources, "NodeName") // override reported why: the host name is unknown
	}
	peerSources := nodeSources
	advertised := n.HTTPAddr
	if n.PeerAddr != "" {
		advertised = n.PeerAddr
		peerSources = maps.Clone(nodeSources)
		peerSources["HTTPAddr"] = source{path: "node.peer_addr"}
	}
	blame(c.peersConfig(advertisable(advertised), nil).Validate(), peerSources, "peers")
	blame(c.apiConfig().Validate(), nodeSources, "httpapi")
	c.validateSecurity(fail)

	// The node's own settings, as httpapi.NewNode will get them, one fault per setting. Its
	// API and Cluster were blamed above, field by field, its Name as the cluster's NodeName,
	// the address it advertises (peer_addr, else http_addr) by peers, and its TLS files by
	// validateTLS.
	settingSources := map[string]source{
		"HTTPAddr":           nodeSources["HTTPAddr"],
		"ShutdownDelay":      {path: "node.shutdown_delay"},
		"HandOffBytes":       {path: "node.handoff_bytes"},
		"HandOffTimeout":     {path: "node.handoff_timeout"},
		"MaxConnections":     {path: "node.max_connections"},
		"MaxIdleConnections": {path: "node.max_idle_connections"},
	}
	skip := map[string]bool{"Name": true, "API": true, "Cluster": true, "TLS": true, "PeerAddr": true, "HTTPAddr": n.PeerAddr == ""}
	var nodeFaults []error
	for _, e := range leaves(nodeSettings(*c, nil).Validate()) {
		if fe, ok := e.(*group.FieldError); ok {
			if name, _, _ := strings.Cut(fe.Field, "."); skip[name] {
				continue
			}
			skip[fe.Field] = true
		}
		nodeFaults = append(nodeFaults, e)
	}
	blame(errors.Join(nodeFaults...), settingSources, "httpapi")

	if len(c.Groups) == 0 {
		fail(source{path: "groups"}, "at least one group is required")
	}
	seen := map[string]int{}
	for i, g := range c.Groups {
		p := fmt.Sprintf("groups[%d]", i)
		switch first, dup := seen[g.Name]; {
		case g.Name == "":
			fail(source{path: p}, "name is required")
		case !groupName.MatchString(g.Name):
			fail(source{path: p + ".name"}, "invalid group name %q: use 1 to 64 letters, digits, '.', '_' or '-'", g.Name)
		case dup:
			fail(source{path: p + ".name"}, "group %q is already defined by groups[%d]", g.Name, first)
		default:
			seen[g.Name] = i
		}
		groupSources := map[string]source{}
		for _, f := range yamlFieldList(reflect.TypeFor[group.Config]()) {
			groupSources[f.Name] = source{path: p + "." + f.Key}
		}
		blame(g.Config.Validate(), groupSources, fmt.Sprintf("group %q", g.Name))
		if g.NoTTLMaxAge < 0 && g.NoTTLMaxAge != inheritNoTTLMaxAge {
			fail(source{path: p + ".no_ttl_max_age"}, "must be >= 0s (0s: no-cache; left out: node.no_ttl_max_age), got %v", g.NoTTLMaxAge)
		}
		if g.Loader.Settings == nil {
			fail(source{path: p}, "loader is required, e.g. {type: file, root: ./examples/data}")
		}
	}
	return errors.Join(errs...)
}

// advertisable returns addr with a port of 0 replaced by 1: the node advertises its HTTP
// listener's address, whose port is the one the kernel picked, so peers.Config's refusal of
// port 0 does not apply to the configured address.
func advertisable(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return net.JoinHostPort(host, "1")
	}
	return addr
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch s {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("unknown log level %q: want debug, info, warn or error", s)
}
