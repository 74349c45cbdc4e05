package loader_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// A node builds its own Registry and turns each group's `loader:` block into a loader, then
// closes the loader at shutdown.
func ExampleRegistry_New() {
	root, err := os.MkdirTemp("", "loader-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello, world"), 0o644); err != nil {
		log.Fatal(err)
	}

	reg := loader.NewRegistry()
	l, err := reg.New(loader.Config{Type: "file", Root: root})
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
	_, err = reg.New(loader.Config{Type: "redis"})
	fmt.Println(err)
	// Output:
	// hello, world <nil>
	// true
	// loader: unknown type "redis" (known: file, http, sql)
}

// A custom loader type makes config.yaml able to name an origin the built-ins do not cover.
func ExampleRegistry_Register() {
	reg := loader.NewRegistry()
	err := reg.Register("prefix", func(cfg loader.Config) (group.Loader, error) {
		return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
			return group.Value{Bytes: fmt.Appendf(nil, "%s%s", cfg.URL, key)}, nil
		}), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := reg.New(loader.Config{Type: "prefix", URL: "value of "})
	if err != nil {
		log.Fatal(err)
	}
	v, _ := l.Load(context.Background(), "k")
	fmt.Println(string(v.Bytes))
	// Output: value of k
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

	h, err := loader.NewHTTP(loader.Config{URL: origin.URL + "/items/{key}", UseOriginTTL: true})
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

	s, err := loader.NewSQL(loader.Config{Driver: "sqlite", DSN: dsn, Query: "SELECT 'value of ' || ? WHERE 1 = 1"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	v, err := s.Load(context.Background(), "k")
	fmt.Println(string(v.Bytes), err)

	_, err = loader.NewSQL(loader.Config{Driver: "sqlite", DSN: dsn, Query: "SELECT 1"})
	fmt.Println(err)
	// Output:
	// value of k <nil>
	// sql loader: the query has 0 placeholders, want exactly 1 (the key)
}
