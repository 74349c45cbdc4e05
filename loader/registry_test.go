package loader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupcached/groupcached/group"
)

// prefixConfig is a custom loader type's settings: values are Prefix + key.
type prefixConfig struct {
	Prefix string `yaml:"prefix"`
}

func (c prefixConfig) Validate() error {
	if c.Prefix == "" {
		return group.FieldErrorf("Prefix", "required")
	}
	return nil
}

func (c prefixConfig) NewLoader() (group.Loader, error) {
	return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		return group.Value{Bytes: []byte(c.Prefix + key)}, nil
	}), nil
}

// brokenConfig validates but cannot be built.
type brokenConfig struct{}

func (brokenConfig) Validate() error                  { return nil }
func (brokenConfig) NewLoader() (group.Loader, error) { return nil, errors.New("cannot build") }

func TestRegistry(t *testing.T) {
	custom := FactoryOf(prefixConfig{})
	failing := func(Decoder) (Config, error) { return nil, errors.New("cannot decode") }
	nothing := func(Decoder) (Config, error) { return nil, nil }

	t.Run("built-ins are registered", func(t *testing.T) {
		got := strings.Join(NewRegistry().Types(), ",")
		if got != "file,http,sql" {
			t.Fatalf("Types() = %s, want file,http,sql", got)
		}
	})

	registerTests := []struct {
		name    string
		typ     string
		f       Factory
		wantErr string
	}{
		{"new type", "custom", custom, ""},
		{"empty type", "", custom, "empty type"},
		{"blank type", "  ", custom, "empty type"},
		{"nil factory", "other", nil, "nil factory"},
		{"duplicate built-in", "file", custom, `"file" is already registered`},
	}
	for _, tt := range registerTests {
		t.Run("Register "+tt.name, func(t *testing.T) {
			err := NewRegistry().Register(tt.typ, tt.f)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Register(%q) = %v, want error %q", tt.typ, err, tt.wantErr)
			}
		})
	}

	t.Run("duplicate custom", func(t *testing.T) {
		r := NewRegistry()
		if err := r.Register("custom", custom); err != nil {
			t.Fatal(err)
		}
		if err := r.Register("custom", custom); err == nil {
			t.Fatal("second Register of the same type succeeded")
		}
	})

	t.Run("registries are independent", func(t *testing.T) {
		a, b := NewRegistry(), NewRegistry()
		if err := a.Register("custom", custom); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Decode("custom", yamlSection("prefix: p")); !errors.Is(err, ErrUnknownType) {
			t.Fatalf("a type registered on one registry is known to another: %v", err)
		}
	})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("file value"), 0o644); err != nil {
		t.Fatal(err)
	}
	newTests := []struct {
		name, typ, section string
		key, want          string
		wantErr            string // from Decode
		buildErr           string // from NewLoader
	}{
		{name: "file", typ: "file", section: "root: " + dir, key: "k", want: "file value"},
		{name: "custom", typ: "custom", section: "prefix: prefix-", key: "k", want: "prefix-k"},
		{name: "custom with its own key misspelt", typ: "custom", section: "prefx: prefix-", wantErr: "prefx"},
		{name: "custom that does not validate", typ: "custom", section: "{}", wantErr: "Prefix: required"},
		{name: "unknown lists known", typ: "redis", wantErr: `unknown loader type "redis" (known: broken, custom, failing, file, http, nothing, sql)`},
		{name: "key of another type", typ: "file", section: "{url: \"http://x/{key}\", root: " + dir + "}", wantErr: "url"},
		{name: "missing root dir", typ: "file", section: "root: " + filepath.Join(dir, "absent"), buildErr: "opening root"},
		{name: "factory error", typ: "failing", wantErr: "cannot decode"},
		{name: "factory returns nil", typ: "nothing", wantErr: "returned no config"},
		{name: "build error", typ: "broken", buildErr: "cannot build"},
		{name: "sql bad dsn env", typ: "sql", section: "{driver: sqlite, dsn_env: GROUPCACHED_TEST_UNSET_VARIABLE, query: \"SELECT ?\"}", buildErr: "GROUPCACHED_TEST_UNSET_VARIABLE (dsn_env) is not set"},
	}
	r := NewRegistry()
	for typ, f := range map[string]Factory{"custom": custom, "failing": failing, "nothing": nothing, "broken": FactoryOf(brokenConfig{})} {
		if err := r.Register(typ, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range newTests {
		t.Run("Decode "+tt.name, func(t *testing.T) {
			cfg, err := r.Decode(tt.typ, yamlSection(tt.section))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l, err := cfg.NewLoader()
			if tt.buildErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.buildErr) {
					t.Fatalf("NewLoader() error = %v, want %q", err, tt.buildErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer Close(l)
			v, err := l.Load(context.Background(), tt.key)
			if err != nil || string(v.Bytes) != tt.want {
				t.Fatalf("Load(%q) = %q, %v; want %q", tt.key, v.Bytes, err, tt.want)
			}
		})
	}

	t.Run("file max_body_bytes applies through the registry", func(t *testing.T) {
		cfg, err := NewRegistry().Decode("file", yamlSection("{root: "+dir+", max_body_bytes: 4}"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := cfg.NewLoader()
		if err != nil {
			t.Fatal(err)
		}
		defer Close(l)
		if _, err := l.Load(context.Background(), "k"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Load of a 10-byte file with a 4-byte limit: %v, want ErrTooLarge", err)
		}
	})

	t.Run("FactoryOf starts from its defaults", func(t *testing.T) {
		cfg, err := FactoryOf(prefixConfig{Prefix: "default-"})(yamlSection("{}"))
		if err != nil || cfg.(prefixConfig).Prefix != "default-" {
			t.Fatalf("FactoryOf over an empty section = %+v, %v; want the initial value", cfg, err)
		}
	})
}
