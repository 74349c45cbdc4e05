package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Flags are the command-line settings; each one given overrides the environment and the file.
type Flags struct {
	Config string // -config: the YAML file
	Name   string // -name: node.name
	HTTP   string // -http: node.http_addr
	Gossip string // -gossip: node.gossip_addr
	Join   string // -join: node.join, comma-separated

	Version bool // -version: print the build's version and exit

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
	fs.BoolVar(&f.Version, "version", false, "print the version (module version, VCS revision, Go version) and exit")
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

// override applies GROUPCACHED_* variables from lookupEnv, then flags, over what the file
// set; then it gives the node settings left empty their defaults (the host name for the
// node's name) and reads the cluster secret and the admin token from their variables. It returns the mistakes found in
// the variables' own format; validate checks the values.
func (c *Config) override(f Flags, lookupEnv func(string) (string, bool)) []error {
	var errs []error
	overlay := func(dst *string, envName, flagName, flagValue string) {
		if v, ok := lookupEnv(envName); ok && v != "" {
			*dst = v
		}
		if f.set[flagName] {
			*dst = flagValue
		}
	}
	n := &c.Node
	overlay(&n.Name, "GROUPCACHED_NAME", "name", f.Name)
	overlay(&n.HTTPAddr, "GROUPCACHED_HTTP", "http", f.HTTP)
	overlay(&n.GossipAddr, "GROUPCACHED_GOSSIP", "gossip", f.Gossip)
	if v, ok := lookupEnv("GROUPCACHED_JOIN"); ok {
		n.Join = splitList(v)
	}
	if f.set["join"] {
		n.Join = splitList(f.Join)
	}
	for _, env := range []struct {
		name string
		dst  *string
	}{
		{"GROUPCACHED_PRESET", &n.Preset},
		{"GROUPCACHED_LABEL", &n.Label},
		{"GROUPCACHED_LOG_LEVEL", &n.LogLevel},
		{"GROUPCACHED_LOG_FORMAT", &n.LogFormat},
	} {
		if v, ok := lookupEnv(env.name); ok && v != "" {
			*env.dst = v
		}
	}
	if n.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, &ConfigError{File: c.File, Path: "node.name", Msg: fmt.Sprintf("not set, and the host name is unknown: %v", err)})
		}
		n.Name = host
	}
	n.fillZeros()
	if v, ok := lookupEnv(n.AdminTokenEnv); ok && v != "" {
		c.AdminToken = strings.TrimSpace(v)
	}
	if v, ok := lookupEnv(n.SecretKeyEnv); ok && v != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, &ConfigError{File: "environment " + n.SecretKeyEnv, Msg: "the gossip key must be base64 (for example: openssl rand -base64 32)"})
		} else {
			c.SecretKey = key
		}
	}
	return errs
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
