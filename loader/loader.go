// Package loader holds groupcached's built-in loaders, the code that reads a key from the
// origin when no node of the cluster has it cached, and the Registry through which
// config.yaml names them by type.
//
// A Group calls its loader on the key's owner only, once per key however many callers wait,
// so what flows into a loader is a stream of distinct cold keys and what flows out is a
// group.Value (the bytes and, optionally, a TTL) or an error: group.ErrNotFound when the
// origin has no such key, group.ErrInvalidKey (wrapped) when the key cannot name anything in
// this origin, group.ErrLoadTimeout (wrapped) when the origin did not answer in time, and any
// other error for a failure, which is never cached.
//
// The built-ins are:
//   - File: files under a root directory, through os.Root, so nothing outside it is ever read;
//   - HTTP: an origin service at a URL template, with the key path-escaped into one segment;
//   - SQL: a query with one placeholder bound to the key, on PostgreSQL (pgx) or SQLite
//     (modernc, no cgo).
//
// Loaders that hold resources (a directory handle, a connection pool, idle HTTP connections)
// implement io.Closer; whoever built them closes them at shutdown. Embedders with their own
// origin need none of this: group.LoaderFunc adapts a plain function.
//
// The package never caches, retries or knows about peers: that is the group's job.
package loader

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/groupcached/groupcached/group"
)

// Factory builds a loader from its config. It is called with a Config that passed Validate.
// Loaders holding resources (the SQL pool, the HTTP transport) also implement io.Closer; the
// node closes them at shutdown.
type Factory func(cfg Config) (group.Loader, error)

// Registry maps loader types, as config.yaml names them, to factories. Each node builds its
// own (there is no package-level registry), so tests can run several nodes, with different
// custom loaders, in one process. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns a Registry that knows "file", "http" and "sql".
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{
		TypeFile: func(cfg Config) (group.Loader, error) { return newFile(cfg.Root, cfg.withDefaults().MaxBodyBytes) },
		TypeHTTP: func(cfg Config) (group.Loader, error) { return NewHTTP(cfg) },
		TypeSQL:  func(cfg Config) (group.Loader, error) { return NewSQL(cfg) },
	}}
}

// Register adds a loader type. It fails when typ is empty or already registered (the built-ins
// included), or f is nil.
func (r *Registry) Register(typ string, f Factory) error {
	if strings.TrimSpace(typ) == "" {
		return errors.New("loader: registering an empty type")
	}
	if f == nil {
		return fmt.Errorf("loader: registering type %q with a nil factory", typ)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[typ]; dup {
		return fmt.Errorf("loader: type %q is already registered", typ)
	}
	r.factories[typ] = f
	return nil
}

// Types returns the registered types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.factories))
	for t := range r.factories {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// New validates cfg and builds the loader of its type. An unknown type is an error that lists
// the known ones.
func (r *Registry) New(cfg Config) (group.Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	f, ok := r.factories[cfg.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("loader: unknown type %q (known: %s)", cfg.Type, strings.Join(r.Types(), ", "))
	}
	l, err := f(cfg)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("loader: the factory of type %q returned no loader", cfg.Type)
	}
	return l, nil
}

// Close closes l if it holds resources (implements io.Closer), and does nothing otherwise.
func Close(l group.Loader) error {
	if c, ok := l.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
