package loader

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Production defaults, used wherever the matching field of a built-in config is left zero.
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

// Built-in loader types, the `type:` values that NewRegistry knows.
const (
	TypeFile = "file"
	TypeHTTP = "http"
	TypeSQL  = "sql"
)

// Config is one loader type's settings, decoded from its section of a configuration (the keys
// of a `loader:` block after `type:`) and checked before anything is built. FileConfig,
// HTTPConfig and SQLConfig are the built-ins'; a custom type brings its own (Registry.Register).
type Config interface {
	// Validate reports every setting that is missing or out of range, each as a
	// *group.FieldError naming the Go field, joined, so that the node can point at the line
	// of its key. It does no I/O: the file system, the network and the environment are for
	// NewLoader.
	Validate() error

	// NewLoader builds the loader. It may open files, pools or connections, and fail on
	// them; a loader that holds any implements io.Closer, and its builder closes it.
	NewLoader() (group.Loader, error)
}

// Decoder reads one loader section. The node implements it over config.yaml; a program can
// implement it over any format (see DecoderFunc).
//
// Decode stores the section in v, a pointer to a struct. A key names a field by the field's
// `yaml` tag, or else by the field's name in snake_case (MaxOpenConns: max_open_conns). A
// field whose key is absent keeps its value, so a factory sets defaults before decoding. A key
// that names no field, a duplicate key and a value of the wrong type are errors: the node
// reports every one with its file, line and key. Sizes read as group.ByteSize ("8MiB"),
// durations as time.Duration ("5s").
type Decoder interface {
	Decode(v any) error
}

// DecoderFunc adapts a function to Decoder.
type DecoderFunc func(v any) error

// Decode calls f(v).
func (f DecoderFunc) Decode(v any) error { return f(v) }

// FileConfig is the settings of type "file" (see File).
type FileConfig struct {
	// Root is the directory whose files are the values; a key is a slash-separated path
	// relative to it. Nothing outside Root is ever read. Required.
	Root string `yaml:"root"`
	// MaxBodyBytes is the largest file served; a larger one is an error (ErrTooLarge), never a
	// truncated value. Zero: DefaultMaxBodyBytes (8MiB).
	MaxBodyBytes group.ByteSize `yaml:"max_body_bytes"`
}

// HTTPConfig is the settings of type "http" (see HTTP).
type HTTPConfig struct {
	// URL is the origin's address with exactly one "{key}" in its path, for example
	// "http://origin:8080/items/{key}". The key is path-escaped into it as one segment, so it
	// can never change the scheme, host, port or query, and a key with a "." or ".." segment
	// (split at '/' or '\\', also once percent-decoded) is refused as group.ErrInvalidKey, so
	// it cannot leave the path prefix either (see HTTP). Required.
	URL string `yaml:"url"`
	// Headers are sent with every request, for example an origin token; they may replace the
	// default User-Agent, "groupcached". Nil: none.
	Headers map[string]string `yaml:"headers"`
	// MaxBodyBytes is the largest value accepted; a larger body is an error (ErrTooLarge),
	// never a truncated value. Zero: DefaultMaxBodyBytes (8MiB).
	MaxBodyBytes group.ByteSize `yaml:"max_body_bytes"`
	// Timeout bounds one request, connection and body included. The caller's deadline (the
	// group's load timeout) applies too; the earlier wins. Zero: DefaultHTTPTimeout (10s).
	Timeout time.Duration `yaml:"timeout"`
	// UseOriginTTL lets the origin's Cache-Control header set the entry's TTL: s-maxage or
	// max-age, minus Age; no-store, no-cache or private make the value expire at once (it is
	// still shared by the callers of that one load). False: the group's TTL.
	UseOriginTTL bool `yaml:"use_origin_ttl"`
}

// SQLConfig is the settings of type "sql" (see SQL).
type SQLConfig struct {
	// Driver is "postgres" (github.com/jackc/pgx/v5/stdlib) or "sqlite" (modernc.org/sqlite,
	// no cgo). Required.
	Driver string `yaml:"driver"`
	// DSN is the data source name, e.g. "postgres://user@host:5432/db" or a SQLite file
	// path. Prefer DSNEnv, which keeps passwords out of config files.
	DSN string `yaml:"dsn"`
	// DSNEnv names an environment variable holding the DSN. When that variable is set and not
	// empty it overrides DSN; when it is unset, DSN is used, and one of the two must give a
	// DSN.
	DSNEnv string `yaml:"dsn_env"`
	// Query returns the value of one key: exactly one placeholder ($1 for postgres, ? for
	// sqlite) to which the key is bound as a parameter, one row, one text or bytes column. No
	// row, or NULL, is not-found; more than one row is an error. Required.
	Query string `yaml:"query"`
	// MaxOpenConns bounds the connections, and so the concurrent loads, the database sees
	// from this node. Zero: DefaultMaxOpenConns (10).
	MaxOpenConns int `yaml:"max_open_conns"`
	// MaxIdleConns is how many connections stay open while idle; at most MaxOpenConns. Zero:
	// DefaultMaxIdleConns (5, capped at MaxOpenConns).
	MaxIdleConns int `yaml:"max_idle_conns"`
	// QueryTimeout bounds one query. The caller's deadline applies too; the earlier wins.
	// Zero: DefaultQueryTimeout (5s).
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// ListenChannel is a PostgreSQL notification channel that names changed keys: the node
	// LISTENs on it over one connection of its own (outside the pool, so at most
	// MaxOpenConns + 1 per node) and drops from its caches the key that each notification's
	// payload holds, typically sent by a trigger, pg_notify('items_changed', OLD.k), when the
	// writing transaction commits. After the connection was down the group is purged, since
	// notifications sent meanwhile are lost (SQL.Watch has the design). PostgreSQL only. A
	// PostgreSQL identifier of at most 63 bytes: letters, digits, '_' and '$', not starting
	// with a digit or '$'. It is quoted, so its case is kept: the trigger must spell it the
	// same way (a bare NOTIFY folds it to lower case; prefer lower case). Empty: nothing is
	// heard, and a changed row is served until its TTL runs out or it is DELETEd.
	ListenChannel string `yaml:"listen_channel"`
	// ContentType is the media type of every value of the group, served as Content-Type,
	// for example "application/json" when the query returns JSON; a query cannot choose it
	// per row. Empty: none (the API serves application/octet-stream).
	ContentType string `yaml:"content_type"`
}

var (
	_ Config = FileConfig{}
	_ Config = HTTPConfig{}
	_ Config = SQLConfig{}
)

// Validate reports a missing Root and a negative MaxBodyBytes. Whether Root exists is
// NewLoader's business.
func (c FileConfig) Validate() error {
	var errs []error
	if c.Root == "" {
		errs = append(errs, group.FieldErrorf("Root", "required: the directory whose files are served"))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, group.FieldErrorf("MaxBodyBytes", "must be >= 0, got %d", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// NewLoader opens the File loader (NewFile).
func (c FileConfig) NewLoader() (group.Loader, error) { return NewFile(c) }

func (c FileConfig) withDefaults() FileConfig {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// Validate checks the URL template, the header names and the limits; it does not contact the
// origin.
func (c HTTPConfig) Validate() error {
	var errs []error
	if _, err := parseTemplate(c.URL); err != nil {
		errs = append(errs, &group.FieldError{Field: "URL", Err: err})
	}
	for name := range c.Headers {
		if !validHeaderName(name) {
			errs = append(errs, group.FieldErrorf("Headers", "%q is not a valid header name", name))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, group.FieldErrorf("MaxBodyBytes", "must be >= 0, got %d", c.MaxBodyBytes))
	}
	if c.Timeout < 0 {
		errs = append(errs, group.FieldErrorf("Timeout", "must be >= 0s, got %v", c.Timeout))
	}
	return errors.Join(errs...)
}

// NewLoader builds the HTTP loader (NewHTTP).
func (c HTTPConfig) NewLoader() (group.Loader, error) { return NewHTTP(c) }

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultHTTPTimeout
	}
	return c
}

// Validate checks the driver, that a DSN source and a query are given, and the pool's
// bounds; it neither reads the environment nor connects.
func (c SQLConfig) Validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, group.FieldErrorf(field, format, args...))
	}
	switch c.Driver {
	case "postgres", "sqlite":
	case "":
		fail("Driver", `required: "postgres" or "sqlite"`)
	default:
		fail("Driver", `%q is not supported: want "postgres" or "sqlite"`, c.Driver)
	}
	if c.DSN == "" && c.DSNEnv == "" {
		fail("DSN", "required, or dsn_env: the name of a variable holding it")
	}
	if strings.TrimSpace(c.Query) == "" {
		fail("Query", "required: a SELECT with one placeholder bound to the key")
	}
	if c.MaxOpenConns < 0 {
		fail("MaxOpenConns", "must be >= 0, got %d", c.MaxOpenConns)
	}
	if c.MaxIdleConns < 0 {
		fail("MaxIdleConns", "must be >= 0, got %d", c.MaxIdleConns)
	} else if open := c.withDefaults().MaxOpenConns; open >= 0 && c.MaxIdleConns > open {
		fail("MaxIdleConns", "must not exceed max_open_conns (%d), got %d", open, c.MaxIdleConns)
	}
	if c.QueryTimeout < 0 {
		fail("QueryTimeout", "must be >= 0s, got %v", c.QueryTimeout)
	}
	if c.ContentType != "" {
		if _, _, err := mime.ParseMediaType(c.ContentType); err != nil {
			fail("ContentType", "%q is not a media type: %v", c.ContentType, err)
		}
	}
	if c.ListenChannel != "" {
		if c.Driver == "sqlite" {
			fail("ListenChannel", "PostgreSQL only: SQLite has no LISTEN/NOTIFY (remove the key, or use driver postgres)")
		} else if err := checkChannel(c.ListenChannel); err != nil {
			fail("ListenChannel", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// maxChannelBytes is PostgreSQL's identifier limit (NAMEDATALEN - 1). A longer LISTEN name
// would be truncated without a word, while pg_notify refuses it: the two would never meet.
const maxChannelBytes = 63

// checkChannel reports why name is not a PostgreSQL identifier that LISTEN and pg_notify
// agree on: 1 to 63 bytes of ASCII letters, digits, '_' and '$', not starting with a digit or
// '$'.
func checkChannel(name string) error {
	if len(name) > maxChannelBytes {
		return fmt.Errorf("%q is %d bytes; PostgreSQL identifiers have at most %d", name, len(name), maxChannelBytes)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		letter := b == '_' || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
		if !letter && (i == 0 || (!isDigit(b) && b != '$')) {
			return fmt.Errorf("%q is not a PostgreSQL identifier: want letters, digits, '_' and '$', starting with a letter or '_'", name)
		}
	}
	return nil
}

// NewLoader connects and builds the SQL loader (NewSQL).
func (c SQLConfig) NewLoader() (group.Loader, error) { return NewSQL(c) }

func (c SQLConfig) withDefaults() SQLConfig {
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = min(DefaultMaxIdleConns, c.MaxOpenConns)
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	return c
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

// keyPlaceholder is the part of HTTPConfig.URL that the escaped key replaces.
const keyPlaceholder = "{key}"

// parseTemplate checks that raw is an absolute http(s) URL with exactly one {key}, in its path.
func parseTemplate(raw string) (urlTemplate, error) {
	if raw == "" {
		return urlTemplate{}, errors.New(`required, e.g. "http://origin:8080/items/{key}"`)
	}
	if n := strings.Count(raw, keyPlaceholder); n != 1 {
		return urlTemplate{}, fmt.Errorf("%q must contain %s exactly once, found %d", raw, keyPlaceholder, n)
	}
	prefix, suffix, _ := strings.Cut(raw, keyPlaceholder)
	u, err := url.Parse(strings.Replace(raw, keyPlaceholder, "KEY", 1))
	if err != nil {
		return urlTemplate{}, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlTemplate{}, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return urlTemplate{}, fmt.Errorf("%q: host is required", raw)
	}
	if u.User != nil {
		return urlTemplate{}, fmt.Errorf("%q: credentials in the URL are not allowed; use headers", raw)
	}
	// The key must sit in the path: after the slash that ends the authority, before any query
	// or fragment. Then no escaped key can reach the host, and the query stays fixed.
	authority := u.Scheme + "://" + u.Host + "/"
	if !strings.HasPrefix(strings.ToLower(prefix), strings.ToLower(authority)) || strings.ContainsAny(prefix, "?#") {
		return urlTemplate{}, fmt.Errorf("%q: %s must be in the path, after %q", raw, keyPlaceholder, authority)
	}
	return urlTemplate{prefix: prefix, suffix: suffix, scheme: u.Scheme, host: u.Host}, nil
}
