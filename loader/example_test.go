package loader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// jsonSection is a Decoder over a JSON object, as strict as the node's over config.yaml: a
// key that names no field is an error. (encoding/json matches keys to field names without
// regard to case, and reads durations as nanoseconds.)
func jsonSection(doc string) loader.Decoder {
	return loader.DecoderFunc(func(v any) error {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	})
}

// A node builds its own Registry and decodes each group's `loader:` section with it, when it
// reads its configuration; it builds the loader when it starts, and closes it at shutdown.
func ExampleRegistry_Decode() {
	root, err := os.MkdirTemp("", "loader-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello, world"), 0o644); err != nil {
		log.Fatal(err)
	}

	reg := loader.NewRegistry()
	cfg, err := reg.Decode("file", jsonSection(fmt.Sprintf(`{"root": %q}`, root)))
	if err != nil {
		log.Fatal(err)
	}
	l, err := cfg.NewLoader()
	if err != nil {
		log.Fatal(err)
	}
	defer loader.Close(l)

	g, err := group.New("files", l, group.DefaultConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := g.Get(context.Background(), "hello.txt")
	fmt.Println(string(res.Bytes), err)
	_, err = g.Get(context.Background(), "../etc/passwd")
	fmt.Println(errors.Is(err, group.ErrInvalidKey))
	_, err = reg.Decode("file", jsonSection(`{}`))
	fmt.Println(err)
	_, err = reg.Decode("redis", jsonSection(`{}`))
	fmt.Println(err)
	// Output:
	// hello, world <nil>
	// true
	// Root: required: the directory whose files are served
	// unknown loader type "redis" (known: file, http, sql)
}

// PrefixConfig is a custom loader type's settings: in config.yaml,
// `loader: {type: prefix, prefix: "value of "}`.
type PrefixConfig struct {
	Prefix string `yaml:"prefix"`
}

// Validate reports a missing prefix as a FieldError, so that the node points at the line.
func (c PrefixConfig) Validate() error {
	if c.Prefix == "" {
		return group.FieldErrorf("Prefix", "required")
	}
	return nil
}

// NewLoader builds the loader: every value is the prefix and the key.
func (c PrefixConfig) NewLoader() (group.Loader, error) {
	return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		return group.Value{Bytes: fmt.Appendf(nil, "%s%s", c.Prefix, key)}, nil
	}), nil
}

// A custom loader type makes config.yaml able to name an origin the built-ins do not cover,
// with keys of its own.
func ExampleRegistry_Register() {
	reg := loader.NewRegistry()
	if err := reg.Register("prefix", loader.FactoryOf(PrefixConfig{})); err != nil {
		log.Fatal(err)
	}
	cfg, err := reg.Decode("prefix", jsonSection(`{"prefix": "value of "}`))
	if err != nil {
		log.Fatal(err)
	}
	l, err := cfg.NewLoader()
	if err != nil {
		log.Fatal(err)
	}
	v, _ := l.Load(context.Background(), "k")
	fmt.Println(string(v.Bytes))
	_, err = reg.Decode("prefix", jsonSection(`{"prefx": "value of "}`))
	fmt.Println(err)
	// Output:
	// value of k
	// json: unknown field "prefx"
}

// The HTTP loader path-escapes the key into one segment of the URL template.
func ExampleNewHTTP() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() == "/items/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "max-age=30")
		fmt.Fprintf(w, "origin saw %s", r.URL.EscapedPath())
	}))
	defer origin.Close()

	h, err := loader.NewHTTP(loader.HTTPConfig{URL: origin.URL + "/items/{key}", UseOriginTTL: true})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	v, err := h.Load(context.Background(), "a b/c")
	fmt.Println(string(v.Bytes), v.TTL, err)
	_, err = h.Load(context.Background(), "missing")
	fmt.Println(errors.Is(err, group.ErrNotFound))
	// Output:
	// origin saw /items/a%20b%2Fc 30s <nil>
	// true
}

// The SQL loader binds the key to the query's one placeholder; no row is ErrNotFound.
func ExampleNewSQL() {
	dir, err := os.MkdirTemp("", "loader-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "items.db")
	// The loader opens the database read-only and never creates it: an empty file is an
	// empty SQLite database.
	if err := os.WriteFile(dsn, nil, 0o600); err != nil {
		log.Fatal(err)
	}

	s, err := loader.NewSQL(loader.SQLConfig{Driver: "sqlite", DSN: dsn, Query: "SELECT 'value of ' || ? WHERE 1 = 1"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	v, err := s.Load(context.Background(), "k")
	fmt.Println(string(v.Bytes), err)

	_, err = loader.NewSQL(loader.SQLConfig{Driver: "sqlite", DSN: dsn, Query: "SELECT 1"})
	fmt.Println(err)
	// Output:
	// value of k <nil>
	// sql loader: the query has 0 placeholders, want exactly 1 (the key)
}
