package loader

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Production defaults, used wherever the matching Config field is left zero.
const (
	// DefaultMaxBodyBytes bounds one value read from a file or an HTTP origin.
	DefaultMaxBodyBytes group.ByteSize = 8 << 20
	// DefaultHTTPTimeout bounds one request to an HTTP origin, connection included.
	DefaultHTTPTimeout = 10 * time.Second
	// DefaultMaxOpenConns bounds the SQL pool: at most this many loads reach the database at once.
	DefaultMaxOpenConns = 10
	// DefaultMaxIdleConns is how many SQL connections stay open between bursts of misses.
	DefaultMaxIdleConns = 5
	// DefaultQueryTimeout bounds one SQL query.
	DefaultQueryTimeout = 5 * time.Second
)

// Built-in loader types, the values of Config.Type that NewRegistry knows.
const (
	TypeFile = "file"
	TypeHTTP = "http"
	TypeSQL  = "sql"
)

// Config is one group's `loader:` block in config.yaml; the yaml tags are the config keys.
// Type picks the loader; the fields of other built-in loader types must be left empty, and
// Validate names the first one that does not belong. A custom type (see Registry.Register)
// may read any field; its factory validates them.
//
// Zero values of optional fields mean the Default… constants above.
type Config struct {
	// Type is "file", "http", "sql", or a type registered on the Registry. Required.
	Type string `yaml:"type"`

	// Root (file) is the directory whose files are the values; a key is a slash-separated
	// path relative to it. Required for "file". Nothing outside Root is ever read.
	Root string `yaml:"root"`

	// URL (http) is the origin's address with exactly one "{key}" in its path, for example
	// "http://origin:8080/items/{key}". The key is path-escaped into it as one segment, so it
	// can never change the scheme, host, port or query. Required for "http".
	URL string `yaml:"url"`
	// Headers (http) are sent with every request, for example an origin token; they may
	// replace the default User-Agent, "groupcached". Nil: none.
	Headers map[string]string `yaml:"headers"`
	// MaxBodyBytes (http, file) is the largest value accepted; a larger body or file is an
	// error, never a truncated value. Zero: DefaultMaxBodyBytes (8MiB).
	MaxBodyBytes group.ByteSize `yaml:"max_body_bytes"`
	// Timeout (http) bounds one request, connection and body included. The caller's deadline
	// (the group's load timeout) applies too; the earlier wins. Zero: DefaultHTTPTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// UseOriginTTL (http) lets the origin's Cache-Control header set the entry's TTL:
	// s-maxage or max-age, minus Age; no-store, no-cache or private make the value expire at
	// once (it is still shared by the callers of that one load). False: the group's TTL.
	UseOriginTTL bool `yaml:"use_origin_ttl"`

	// Driver (sql) is "postgres" (github.com/jackc/pgx/v5/stdlib) or "sqlite"
	// (modernc.org/sqlite, no cgo). Required for "sql".
	Driver string `yaml:"driver"`
	// DSN (sql) is the data source name, e.g. "postgres://user@host:5432/db" or a SQLite
	// file path. Prefer DSNEnv, which keeps passwords out of config files.
	DSN string `yaml:"dsn"`
	// DSNEnv (sql) names an environment variable holding the DSN. When that variable is set
	// and not empty it overrides DSN; when it is unset, DSN is used, and one of the two must
	// give a DSN.
	DSNEnv string `yaml:"dsn_env"`
	// Query (sql) returns the value of one key: exactly one placeholder ($1 for postgres, ?
	// for sqlite) to which the key is bound as a parameter, one row, one text or bytes
	// column. No row, or NULL, is not-found; more than one row is an error. Required for "sql".
	Query string `yaml:"query"`
	// MaxOpenConns (sql) bounds the connections, and so the concurrent loads, the database
	// sees from this node. Zero: DefaultMaxOpenConns.
	MaxOpenConns int `yaml:"max_open_conns"`
	// MaxIdleConns (sql) is how many connections stay open while idle; at most MaxOpenConns.
	// Zero: DefaultMaxIdleConns (capped at MaxOpenConns).
	MaxIdleConns int `yaml:"max_idle_conns"`
	// QueryTimeout (sql) bounds one query. The caller's deadline applies too; the earlier
	// wins. Zero: DefaultQueryTimeout.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// fieldOwners says which built-in type each optional field belongs to, by yaml key. Type is
// everyone's.
var fieldOwners = map[string][]string{
	"root":           {TypeFile},
	"url":            {TypeHTTP},
	"headers":        {TypeHTTP},
	"max_body_bytes": {TypeHTTP, TypeFile},
	"timeout":        {TypeHTTP},
	"use_origin_ttl": {TypeHTTP},
	"driver":         {TypeSQL},
	"dsn":            {TypeSQL},
	"dsn_env":        {TypeSQL},
	"query":          {TypeSQL},
	"max_open_conns": {TypeSQL},
	"max_idle_conns": {TypeSQL},
	"query_timeout":  {TypeSQL},
}

// DefaultConfig returns a Config of the given type with every optional field of that type set
// to its production default; fill in the required fields (Root, URL, or Driver, DSN and Query).
func DefaultConfig(typ string) Config {
	return Config{Type: typ}.withDefaults()
}

// withDefaults fills the zero optional fields of c's own type.
func (c Config) withDefaults() Config {
	switch c.Type {
	case TypeFile:
		if c.MaxBodyBytes == 0 {
			c.MaxBodyBytes = DefaultMaxBodyBytes
		}
	case TypeHTTP:
		if c.MaxBodyBytes == 0 {
			c.MaxBodyBytes = DefaultMaxBodyBytes
		}
		if c.Timeout == 0 {
			c.Timeout = DefaultHTTPTimeout
		}
	case TypeSQL:
		if c.MaxOpenConns == 0 {
			c.MaxOpenConns = DefaultMaxOpenConns
		}
		if c.MaxIdleConns == 0 {
			c.MaxIdleConns = min(DefaultMaxIdleConns, c.MaxOpenConns)
		}
		if c.QueryTimeout == 0 {
			c.QueryTimeout = DefaultQueryTimeout
		}
	}
	return c
}

// Validate reports what is wrong with c: a missing type, a field that belongs to another
// built-in type, a missing required field or a value out of range. For a custom type it checks
// only Type; the type's factory checks the rest. It does not touch the file system, the
// network or the environment: the constructors do that.
func (c Config) Validate() error {
	if c.Type == "" {
		return errors.New("loader: type is required (file, http, sql or a registered type)")
	}
	switch c.Type {
	case TypeFile, TypeHTTP, TypeSQL:
	default:
		return nil
	}
	var errs []error
	if err := c.checkForeignFields(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes must be >= 0, got %d", c.MaxBodyBytes))
	}
	switch c.Type {
	case TypeFile:
		if c.Root == "" {
			errs = append(errs, errors.New("root is required: the directory whose files are served"))
		}
	case TypeHTTP:
		if _, err := parseTemplate(c.URL); err != nil {
			errs = append(errs, err)
		}
		if c.Timeout < 0 {
			errs = append(errs, fmt.Errorf("timeout must be >= 0, got %v", c.Timeout))
		}
		for name := range c.Headers {
			if !validHeaderName(name) {
				errs = append(errs, fmt.Errorf("headers: %q is not a valid header name", name))
			}
		}
	case TypeSQL:
		switch c.Driver {
		case "postgres", "sqlite":
		case "":
			errs = append(errs, errors.New(`driver is required: "postgres" or "sqlite"`))
		default:
			errs = append(errs, fmt.Errorf(`driver %q is not supported: want "postgres" or "sqlite"`, c.Driver))
		}
		if c.DSN == "" && c.DSNEnv == "" {
			errs = append(errs, errors.New("dsn or dsn_env is required"))
		}
		if strings.TrimSpace(c.Query) == "" {
			errs = append(errs, errors.New("query is required: a SELECT with one placeholder bound to the key"))
		}
		if c.MaxOpenConns < 0 {
			errs = append(errs, fmt.Errorf("max_open_conns must be >= 0, got %d", c.MaxOpenConns))
		}
		if c.MaxIdleConns < 0 {
			errs = append(errs, fmt.Errorf("max_idle_conns must be >= 0, got %d", c.MaxIdleConns))
		}
		if open := c.withDefaults().MaxOpenConns; c.MaxIdleConns > open {
			errs = append(errs, fmt.Errorf("max_idle_conns (%d) must not exceed max_open_conns (%d)", c.MaxIdleConns, open))
		}
		if c.QueryTimeout < 0 {
			errs = append(errs, fmt.Errorf("query_timeout must be >= 0, got %v", c.QueryTimeout))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loader %q: %w", c.Type, err)
	}
	return nil
}

// checkForeignFields names the first set field, in declaration order, that belongs to other
// built-in types only.
func (c Config) checkForeignFields() error {
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("yaml")
		owners, ok := fieldOwners[key]
		if !ok || v.Field(i).IsZero() {
			continue
		}
		mine := false
		for _, o := range owners {
			mine = mine || o == c.Type
		}
		if !mine {
			return fmt.Errorf("field %q does not belong to type %q (it is for %s)", key, c.Type, strings.Join(owners, ", "))
		}
	}
	return nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110, section 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// urlTemplate is an http loader's URL split around its "{key}".
type urlTemplate struct {
	prefix, suffix string
	scheme, host   string
}

// keyPlaceholder is the part of Config.URL that the escaped key replaces.
const keyPlaceholder = "{key}"

// parseTemplate checks that raw is an absolute http(s) URL with exactly one {key}, in its path.
func parseTemplate(raw string) (urlTemplate, error) {
	if raw == "" {
		return urlTemplate{}, errors.New(`url is required, e.g. "http://origin:8080/items/{key}"`)
	}
	if n := strings.Count(raw, keyPlaceholder); n != 1 {
		return urlTemplate{}, fmt.Errorf("url %q must contain %s exactly once, found %d", raw, keyPlaceholder, n)
	}
	prefix, suffix, _ := strings.Cut(raw, keyPlaceholder)
	u, err := url.Parse(strings.Replace(raw, keyPlaceholder, "KEY", 1))
	if err != nil {
		return urlTemplate{}, fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlTemplate{}, fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return urlTemplate{}, fmt.Errorf("url %q: host is required", raw)
	}
	if u.User != nil {
		return urlTemplate{}, fmt.Errorf("url %q: credentials in the URL are not allowed; use headers", raw)
	}
	// The key must sit in the path: after the slash that ends the authority, before any query
	// or fragment. Then no escaped key can reach the host, and the query stays fixed.
	authority := u.Scheme + "://" + u.Host + "/"
	if !strings.HasPrefix(strings.ToLower(prefix), strings.ToLower(authority)) || strings.ContainsAny(prefix, "?#") {
		return urlTemplate{}, fmt.Errorf("url %q: %s must be in the path, after %q", raw, keyPlaceholder, authority)
	}
	return urlTemplate{prefix: prefix, suffix: suffix, scheme: u.Scheme, host: u.Host}, nil
}
