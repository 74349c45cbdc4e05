package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/loader"
)

// echoSettings is an embedder's own loader type: values are Prefix + key, repeated Repeat
// times. Its fields have no yaml tags, so its keys are their names in snake_case.
type echoSettings struct {
	Prefix   string
	Repeat   int
	Timeout  time.Duration
	MaxBytes int64
}

func (s echoSettings) Validate() error {
	var errs []error
	if s.Prefix == "" {
		errs = append(errs, group.FieldErrorf("Prefix", "required"))
	}
	if s.Repeat < 1 {
		errs = append(errs, group.FieldErrorf("Repeat", "must be >= 1, got %d", s.Repeat))
	}
	return errors.Join(errs...)
}

func (s echoSettings) NewLoader() (group.Loader, error) {
	return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		return group.Value{Bytes: []byte(strings.Repeat(s.Prefix+key, s.Repeat))}, nil
	}), nil
}

// TestConfigCustomLoaderType: a loader type registered on the node's Registry gets keys of its
// own in config.yaml, decoded with the built-ins' rules and reported with the same file:line
// errors; a file naming it on a node that does not know it is refused at the type's line.
func TestConfigCustomLoaderType(t *testing.T) {
	reg := loader.NewRegistry()
	if err := reg.Register("echo", loader.FactoryOf(echoSettings{Repeat: 1})); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, doc string, loaders *loader.Registry) (Config, error) {
		t.Helper()
		return loadConfigWith(mustFlags(t, "-config", writeConfig(t, doc)), envMap{}.lookup, loaders)
	}

	t.Run("its keys are decoded", func(t *testing.T) {
		cfg, err := load(t, "groups:\n  - name: g\n    loader:\n      type: echo\n      prefix: \"hello \"\n      repeat: 2\n      timeout: 3s\n      max_bytes: 1KiB\n", reg)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cfg.Groups[0].Loader.Settings.(echoSettings)
		if want := (echoSettings{Prefix: "hello ", Repeat: 2, Timeout: 3 * time.Second, MaxBytes: 1 << 10}); !ok || got != want || cfg.Groups[0].Loader.Type != "echo" {
			t.Fatalf("settings = %T %+v, want %+v", cfg.Groups[0].Loader.Settings, got, want)
		}
		l, err := cfg.newLoader(0)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := l.Load(context.Background(), "k"); err != nil || string(v.Bytes) != "hello khello k" {
			t.Fatalf("Load = %q, %v; want the echo", v.Bytes, err)
		}
	})

	t.Run("its defaults are kept", func(t *testing.T) {
		cfg, err := load(t, "groups:\n  - name: g\n    loader: {type: echo, prefix: p}\n", reg)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Groups[0].Loader.Settings.(echoSettings).Repeat; got != 1 {
			t.Fatalf("repeat = %d, want the factory's default 1", got)
		}
	})

	errorTests := []struct {
		name, doc string
		loaders   *loader.Registry
		want      []string
	}{
		{"a typo in its key", "groups:\n  - name: g\n    loader:\n      type: echo\n      prefx: p\n", reg,
			[]string{`FILE:5: groups[0].loader.prefx: unknown key "prefx" (known keys here: prefix, repeat, timeout, max_bytes)`}},
		{"a value of the wrong type", "groups:\n  - name: g\n    loader:\n      type: echo\n      prefix: p\n      repeat: twice\n      timeout: soon\n", reg,
			[]string{`FILE:6: groups[0].loader.repeat: invalid integer "twice"`, `FILE:7: groups[0].loader.timeout: invalid duration "soon"`}},
		{"its Validate, at the key's line or the block's", "groups:\n  - name: g\n    loader:\n      type: echo\n      repeat: 0\n", reg,
			[]string{`FILE:5: groups[0].loader.repeat: must be >= 1, got 0`, `FILE:4: groups[0].loader.prefix: required`}},
		{"a key of a built-in type", "groups:\n  - name: g\n    loader: {type: echo, prefix: p, root: .}\n", reg,
			[]string{`FILE:3: groups[0].loader.root: unknown key "root"`}},
		{"a node without the type", "groups:\n  - name: g\n    loader:\n      type: echo\n      prefix: p\n", loader.NewRegistry(),
			[]string{`FILE:4: groups[0].loader.type: unknown loader type "echo" (known: file, http, sql)`}},
	}
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.doc)
			_, err := loadConfigWith(mustFlags(t, "-config", path), envMap{}.lookup, tt.loaders)
			if err == nil {
				t.Fatal("loadConfigWith succeeded, want an error")
			}
			for _, e := range flatten(err) {
				if _, ok := e.(*ConfigError); !ok {
					t.Errorf("error %T %v is not a *ConfigError", e, e)
				}
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "FILE", path); !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}
