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
//     (modernc, no cgo); on PostgreSQL it can also listen for changed keys.
//
// Each loader type owns its section of the configuration, caddy's module pattern: a group's
// `loader:` block names a type, and the type's Factory decodes the keys after `type:` into its
// own settings (FileConfig, HTTPConfig, SQLConfig, or a custom type's struct) through a
// Decoder the node implements strictly over the file, so a key the type does not know is
// reported at its line. The settings validate without I/O, when the file is read; the
// loader is built from them (Config.NewLoader) only when the node starts.
//
// A loader whose origin can announce changes also implements group.Watcher: SQL does on
// PostgreSQL with listen_channel, hearing the keys a trigger sends with pg_notify on commit
// (sqllisten.go has the design: every node listens, and purges after each reconnect). The
// loader only reports what it hears, to the group.ChangeSink it is given; the node that serves
// the group (httpapi.Node, which finds the loader through Group.Loader) runs Watch from Start
// to Stop, drops the keys, forwards removals to its peers, counts and logs. This package
// never imports httpapi.
//
// Loaders that hold resources (a directory handle, a connection pool, idle HTTP connections)
// implement io.Closer; whoever built them closes them at shutdown. Embedders with their own
// origin need none of this: group.LoaderFunc adapts a plain function.
//
// A loader whose origin may be down when the node starts implements group.Readier: SQL does.
// An unreachable database is not a configuration mistake, so NewSQL succeeds, Ready says why
// the origin cannot serve (the node's /readyz answers 503 with it), and a background check
// retries with a backoff until it can (ready.go). What no database can fix (a DSN that does
// not parse, a missing SQLite file, a query that does not prepare) still fails at start.
//
// The package never caches, retries loads or knows about peers: that is the group's job.
package loader

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/groupcached/groupcached/group"
)

// Factory decodes one section of its loader type with d and returns the settings, which the
// Registry then validates. It must not build the loader nor do any I/O: a node reads and checks
// its whole configuration before it starts anything. The errors of d.Decode are returned as
// they are (they already say where); FactoryOf covers the usual case.
type Factory func(d Decoder) (Config, error)

// FactoryOf returns the Factory of a type whose settings are the struct C: it decodes the
// section over a copy of initial, which holds the defaults of keys left out. C is a struct type
// whose value (not pointer) methods implement Config.
func FactoryOf[C Config](initial C) Factory {
	if reflect.TypeFor[C]().Kind() != reflect.Struct {
		panic(fmt.Sprintf("loader.FactoryOf: %v is not a struct type", reflect.TypeFor[C]()))
	}
	return func(d Decoder) (Config, error) {
		c := initial
		if err := d.Decode(&c); err != nil {
			return nil, err
		}
		return c, nil
	}
}

// ErrUnknownType is returned (wrapped) by Registry.Decode for a type nobody registered.
var ErrUnknownType = errors.New("unknown loader type")

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
		TypeFile: FactoryOf(FileConfig{}),
		TypeHTTP: FactoryOf(HTTPConfig{}),
		TypeSQL:  FactoryOf(SQLConfig{}),
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

// Decode reads a section of type typ with d and validates it: the error is what the factory
// returned, or Config.Validate's *group.FieldErrors, joined. An unknown type is
// ErrUnknownType, listing the known ones. Nothing is built: call NewLoader on the result.
func (r *Registry) Decode(typ string, d Decoder) (Config, error) {
	r.mu.RLock()
	f, ok := r.factories[typ]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownType, typ, strings.Join(r.Types(), ", "))
	}
	cfg, err := f(d)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("loader: the factory of type %q returned no config", typ)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Close closes l if it holds resources (implements io.Closer), and does nothing otherwise.
func Close(l group.Loader) error {
	if c, ok := l.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
