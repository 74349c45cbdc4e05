package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// minAdminTokenBytes is the shortest admin token accepted: a token anyone may try against
// the port must not be guessable (openssl rand -hex 32 gives 64 characters).
const minAdminTokenBytes = 16

// exposedAddr is a listen address of the node that is not loopback, with where it was set.
type exposedAddr struct {
	addr string
	src  source
}

// exposed returns the node's listen addresses that other hosts may reach: any whose host is
// not a loopback address, wildcards (0.0.0.0, [::], an empty host) and names other than
// localhost included, since a name may resolve to anything.
func (c *Config) exposed() []exposedAddr {
	n := c.Node
	var out []exposedAddr
	for _, a := range []exposedAddr{
		{n.HTTPAddr, source{"node.http_addr", "http", "GROUPCACHED_HTTP"}},
		{n.GossipAddr, source{"node.gossip_addr", "gossip", "GROUPCACHED_GOSSIP"}},
		{n.PeerAddr, source{path: "node.peer_addr"}},
	} {
		if a.addr != "" && !isLoopback(a.addr) {
			out = append(out, a)
		}
	}
	return out
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// missingSecrets names, as the variables to set, the secrets protected mode wants and the
// environment does not hold.
func (c *Config) missingSecrets() []string {
	var missing []string
	if c.SecretKey == nil {
		missing = append(missing, c.Node.SecretKeyEnv+" (the cluster secret: base64 of 32 random bytes, e.g. `openssl rand -base64 32`, the same on every node)")
	}
	if c.AdminToken == "" {
		missing = append(missing, c.Node.AdminTokenEnv+" (the admin token for DELETE: e.g. `openssl rand -hex 32`)")
	}
	return missing
}

// validateSecurity checks the settings that decide who may reach and change the node:
// protected mode, the admin token, the TLS files and the peer address. fail reports a
// mistake at the source of a value.
func (c *Config) validateSecurity(fail func(s source, format string, args ...any)) {
	n := &c.Node
	if exposed := c.exposed(); len(exposed) > 0 && !n.Insecure {
		if missing := c.missingSecrets(); len(missing) > 0 {
			a := exposed[0]
			fail(a.src, "protected mode: the node would listen on %s, which other hosts can reach, without "+
				"authentication. Set %s; or listen on 127.0.0.1; or set node.insecure: true if every host "+
				"that can reach it is trusted", a.addr, strings.Join(missing, " and "))
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < minAdminTokenBytes {
		fail(source{env: n.AdminTokenEnv}, "the admin token must be at least %d characters (e.g. `openssl rand -hex 32`), got %d",
			minAdminTokenBytes, len(c.AdminToken))
	}
	if n.PeerAddr != "" {
		if _, _, err := net.SplitHostPort(n.PeerAddr); err != nil {
			fail(source{path: "node.peer_addr"}, "invalid address %q: want host:port, e.g. 10.0.0.1:8081", n.PeerAddr)
		} else if n.PeerAddr == n.HTTPAddr && !strings.HasSuffix(n.PeerAddr, ":0") {
			fail(source{path: "node.peer_addr"}, "%s is http_addr too: give peers an address of their own, or leave peer_addr empty", n.PeerAddr)
		}
	}
	c.validateTLS(fail)
}

// validateTLS checks that the tls block names a certificate and its key, and that the files
// load, so that a mistake there is reported at its line rather than when the node starts.
func (c *Config) validateTLS(fail func(s source, format string, args ...any)) {
	t := c.Node.TLS
	if !t.enabled() {
		return
	}
	at := func(key string) source { return source{path: "node.tls." + key} }
	switch {
	case t.CertFile == "":
		fail(at("cert_file"), "required with tls: the PEM certificate chain to serve")
	case t.KeyFile == "":
		fail(at("key_file"), "required with tls: the PEM private key of cert_file")
	default:
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			fail(at("cert_file"), "cannot load the certificate and its key: %v", err)
		}
	}
	for key, file := range map[string]string{"client_ca_file": t.ClientCAFile, "ca_file": t.CAFile} {
		if file == "" {
			continue
		}
		if b, err := os.ReadFile(file); err != nil {
			fail(at(key), "%v", err)
		} else if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
			fail(at(key), "%s holds no PEM certificate", file)
		}
	}
}

// insecureWarning returns what a node in insecure mode must say at start (nothing when it
// is not in insecure mode, or has every secret anyway).
func (c *Config) insecureWarning() (string, []any) {
	if !c.Node.Insecure {
		return "", nil
	}
	missing := c.missingSecrets()
	if len(missing) == 0 {
		return "", nil
	}
	var addrs []string
	for _, a := range c.exposed() {
		addrs = append(addrs, a.addr)
	}
	return fmt.Sprintf("protected mode is off (node.insecure: true): whoever reaches the node may %s",
			insecureConsequences(c.SecretKey == nil, c.AdminToken == "")),
		[]any{"exposed", addrs}
}

func insecureConsequences(noSecret, noToken bool) string {
	var parts []string
	if noToken {
		parts = append(parts, "remove keys and purge groups")
	}
	if noSecret {
		parts = append(parts, "join the cluster, read its gossip and call its peer endpoints")
	}
	return strings.Join(parts, ", and ")
}
