package loader

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"file", Config{Type: "file", Root: "./data"}, ""},
		{"file with size limit", Config{Type: "file", Root: "./data", MaxBodyBytes: 1 << 20}, ""},
		{"no type", Config{Root: "./data"}, "type is required"},
		{"file without root", Config{Type: "file"}, "root is required"},
		{"file with url", Config{Type: "file", Root: "d", URL: "http://h/{key}"}, `field "url" does not belong to type "file"`},
		{"file with query", Config{Type: "file", Root: "d", Query: "select 1"}, `field "query" does not belong`},
		{"http", Config{Type: "http", URL: "http://origin:8080/items/{key}"}, ""},
		{"http https with query", Config{Type: "http", URL: "https://origin/items/{key}.json?v=1"}, ""},
		{"http all fields", Config{Type: "http", URL: "http://o/{key}", Headers: map[string]string{"Authorization": "Bearer x"}, MaxBodyBytes: 10, Timeout: time.Second, UseOriginTTL: true}, ""},
		{"http without url", Config{Type: "http"}, "url is required"},
		{"http without key", Config{Type: "http", URL: "http://o/items"}, "exactly once, found 0"},
		{"http two keys", Config{Type: "http", URL: "http://o/{key}/{key}"}, "exactly once, found 2"},
		{"http key in host", Config{Type: "http", URL: "http://{key}.example.com/"}, "must be in the path"},
		{"http key in port", Config{Type: "http", URL: "http://o:{key}/x"}, "url"},
		{"http key in query", Config{Type: "http", URL: "http://o/items?id={key}"}, "must be in the path"},
		{"http ftp scheme", Config{Type: "http", URL: "ftp://o/{key}"}, "scheme must be http or https"},
		{"http relative", Config{Type: "http", URL: "/items/{key}"}, "scheme must be http or https"},
		{"http credentials", Config{Type: "http", URL: "http://u:p@o/{key}"}, "credentials"},
		{"http bad header", Config{Type: "http", URL: "http://o/{key}", Headers: map[string]string{"Bad Header": "x"}}, "not a valid header name"},
		{"http negative timeout", Config{Type: "http", URL: "http://o/{key}", Timeout: -time.Second}, "timeout must be >= 0"},
		{"http negative size", Config{Type: "http", URL: "http://o/{key}", MaxBodyBytes: -1}, "max_body_bytes must be >= 0"},
		{"http with root", Config{Type: "http", URL: "http://o/{key}", Root: "d"}, `field "root" does not belong to type "http"`},
		{"http with dsn", Config{Type: "http", URL: "http://o/{key}", DSN: "x"}, `field "dsn" does not belong`},
		{"sql", Config{Type: "sql", Driver: "postgres", DSNEnv: "PG_DSN", Query: "SELECT v FROM t WHERE k = $1"}, ""},
		{"sql all fields", Config{Type: "sql", Driver: "sqlite", DSN: "f.db", Query: "SELECT v FROM t WHERE k = ?", MaxOpenConns: 4, MaxIdleConns: 4, QueryTimeout: time.Second}, ""},
		{"sql no driver", Config{Type: "sql", DSN: "x", Query: "q"}, "driver is required"},
		{"sql mysql", Config{Type: "sql", Driver: "mysql", DSN: "x", Query: "q"}, `driver "mysql" is not supported`},
		{"sql no dsn", Config{Type: "sql", Driver: "sqlite", Query: "q"}, "dsn or dsn_env is required"},
		{"sql no query", Config{Type: "sql", Driver: "sqlite", DSN: "x"}, "query is required"},
		{"sql idle above open", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", MaxOpenConns: 2, MaxIdleConns: 3}, "must not exceed max_open_conns"},
		{"sql idle above default open", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", MaxIdleConns: DefaultMaxOpenConns + 1}, "must not exceed"},
		{"sql negative conns", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", MaxOpenConns: -1}, "max_open_conns must be >= 0"},
		{"sql negative timeout", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", QueryTimeout: -1}, "query_timeout must be >= 0"},
		{"sql with headers", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", Headers: map[string]string{"a": "b"}}, `field "headers" does not belong`},
		{"sql with max body", Config{Type: "sql", Driver: "sqlite", DSN: "x", Query: "q", MaxBodyBytes: 5}, `field "max_body_bytes" does not belong to type "sql" (it is for http, file)`},
		{"custom type accepts any field", Config{Type: "redis", URL: "redis://x", Root: "r"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	tests := []struct {
		typ  string
		want Config
	}{
		{"file", Config{Type: "file", MaxBodyBytes: DefaultMaxBodyBytes}},
		{"http", Config{Type: "http", MaxBodyBytes: DefaultMaxBodyBytes, Timeout: DefaultHTTPTimeout}},
		{"sql", Config{Type: "sql", MaxOpenConns: DefaultMaxOpenConns, MaxIdleConns: DefaultMaxIdleConns, QueryTimeout: DefaultQueryTimeout}},
		{"custom", Config{Type: "custom"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			got := DefaultConfig(tt.typ)
			if got.Type != tt.want.Type || got.MaxBodyBytes != tt.want.MaxBodyBytes || got.Timeout != tt.want.Timeout ||
				got.MaxOpenConns != tt.want.MaxOpenConns || got.MaxIdleConns != tt.want.MaxIdleConns || got.QueryTimeout != tt.want.QueryTimeout {
				t.Fatalf("DefaultConfig(%q) = %+v, want %+v", tt.typ, got, tt.want)
			}
		})
	}
}

// TestConfigYAML decodes loader blocks as config.yaml writes them, with gopkg.in/yaml.v3:
// sizes go through group.ByteSize's UnmarshalText and durations through time.Duration.
func TestConfigYAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{
			name: "file flow style",
			yaml: `{type: file, root: ./examples/data, max_body_bytes: 1MiB}`,
			want: Config{Type: "file", Root: "./examples/data", MaxBodyBytes: 1 << 20},
		},
		{
			name: "http",
			yaml: `
type: http
url: "http://127.0.0.1:9000/items/{key}"
headers:
  Authorization: Bearer s3cret
max_body_bytes: 8MiB
timeout: 5s
use_origin_ttl: true
`,
			want: Config{Type: "http", URL: "http://127.0.0.1:9000/items/{key}", Headers: map[string]string{"Authorization": "Bearer s3cret"},
				MaxBodyBytes: 8 << 20, Timeout: 5 * time.Second, UseOriginTTL: true},
		},
		{
			name: "sql",
			yaml: `
type: sql
driver: postgres
dsn_env: GROUPCACHED_PG_DSN
query: SELECT load_item($1)
max_open_conns: 8
max_idle_conns: 4
query_timeout: 1500ms
`,
			want: Config{Type: "sql", Driver: "postgres", DSNEnv: "GROUPCACHED_PG_DSN", Query: "SELECT load_item($1)",
				MaxOpenConns: 8, MaxIdleConns: 4, QueryTimeout: 1500 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Config
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got.Type != tt.want.Type || got.Root != tt.want.Root || got.URL != tt.want.URL ||
				got.MaxBodyBytes != tt.want.MaxBodyBytes || got.Timeout != tt.want.Timeout || got.UseOriginTTL != tt.want.UseOriginTTL ||
				got.Driver != tt.want.Driver || got.DSN != tt.want.DSN || got.DSNEnv != tt.want.DSNEnv || got.Query != tt.want.Query ||
				got.MaxOpenConns != tt.want.MaxOpenConns || got.MaxIdleConns != tt.want.MaxIdleConns || got.QueryTimeout != tt.want.QueryTimeout ||
				len(got.Headers) != len(tt.want.Headers) {
				t.Fatalf("decoded %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.Headers {
				if got.Headers[k] != v {
					t.Fatalf("header %q = %q, want %q", k, got.Headers[k], v)
				}
			}
		})
	}

	t.Run("bad size and unknown key are errors", func(t *testing.T) {
		for _, doc := range []string{`{type: http, max_body_bytes: lots}`, `{type: file, rooot: x}`, `{type: http, timeout: soon}`} {
			var c Config
			dec := yaml.NewDecoder(strings.NewReader(doc))
			dec.KnownFields(true)
			if err := dec.Decode(&c); err == nil {
				t.Errorf("decoding %s: no error", doc)
			}
		}
	})
}
