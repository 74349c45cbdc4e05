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

func TestRegistry(t *testing.T) {
	custom := func(cfg Config) (group.Loader, error) {
		return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
			return group.Value{Bytes: []byte(cfg.URL + key)}, nil
		}), nil
	}
	failing := func(Config) (group.Loader, error) { return nil, errors.New("cannot build") }
	nothing := func(Config) (group.Loader, error) { return nil, nil }

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
		if _, err := b.New(Config{Type: "custom"}); err == nil {
			t.Fatal("a type registered on one registry is known to another")
		}
	})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("file value"), 0o644); err != nil {
		t.Fatal(err)
	}
	newTests := []struct {
		name    string
		cfg     Config
		key     string
		want    string
		wantErr string
	}{
		{name: "file", cfg: Config{Type: "file", Root: dir}, key: "k", want: "file value"},
		{name: "custom", cfg: Config{Type: "custom", URL: "prefix-"}, key: "k", want: "prefix-k"},
		{name: "unknown lists known", cfg: Config{Type: "redis"}, wantErr: `unknown type "redis" (known: custom, failing, file, http, nothing, sql)`},
		{name: "invalid config", cfg: Config{Type: "file", URL: "http://x/{key}", Root: dir}, wantErr: `field "url" does not belong`},
		{name: "missing root dir", cfg: Config{Type: "file", Root: filepath.Join(dir, "absent")}, wantErr: "opening root"},
		{name: "factory error", cfg: Config{Type: "failing"}, wantErr: "cannot build"},
		{name: "factory returns nil", cfg: Config{Type: "nothing"}, wantErr: "returned no loader"},
		{name: "sql bad dsn env", cfg: Config{Type: "sql", Driver: "sqlite", DSNEnv: "GROUPCACHED_TEST_UNSET_VARIABLE", Query: "SELECT ?"}, wantErr: "GROUPCACHED_TEST_UNSET_VARIABLE (dsn_env) is not set"},
	}
	r := NewRegistry()
	for typ, f := range map[string]Factory{"custom": custom, "failing": failing, "nothing": nothing} {
		if err := r.Register(typ, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range newTests {
		t.Run("New "+tt.name, func(t *testing.T) {
			l, err := r.New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New() error = %v, want %q", err, tt.wantErr)
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
		l, err := NewRegistry().New(Config{Type: "file", Root: dir, MaxBodyBytes: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer Close(l)
		if _, err := l.Load(context.Background(), "k"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Load of a 10-byte file with a 4-byte limit: %v, want ErrTooLarge", err)
		}
	})
}
