package loader

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		field   string // the field of the first *group.FieldError; "" means valid
		wantErr string
	}{
		{"file", FileConfig{Root: "./data"}, "", ""},
		{"file with size limit", FileConfig{Root: "./data", MaxBodyBytes: 1 << 20}, "", ""},
		{"file without root", FileConfig{}, "Root", "Root: required"},
		{"file negative size", FileConfig{Root: "d", MaxBodyBytes: -1}, "MaxBodyBytes", "MaxBodyBytes: must be >= 0"},
		{"http", HTTPConfig{URL: "http://origin:8080/items/{key}"}, "", ""},
		{"http https with query", HTTPConfig{URL: "https://origin/items/{key}.json?v=1"}, "", ""},
		{"http all fields", HTTPConfig{URL: "http://o/{key}", Headers: map[string]string{"Authorization": "Bearer x"}, MaxBodyBytes: 10, Timeout: time.Second, UseOriginTTL: true}, "", ""},
		{"http without url", HTTPConfig{}, "URL", "URL: required"},
		{"http without key", HTTPConfig{URL: "http://o/items"}, "URL", "exactly once, found 0"},
		{"http two keys", HTTPConfig{URL: "http://o/{key}/{key}"}, "URL", "exactly once, found 2"},
		{"http key in host", HTTPConfig{URL: "http://{key}.example.com/"}, "URL", "must be in the path"},
		{"http key in port", HTTPConfig{URL: "http://o:{key}/x"}, "URL", "URL"},
		{"http key in query", HTTPConfig{URL: "http://o/items?id={key}"}, "URL", "must be in the path"},
		{"http ftp scheme", HTTPConfig{URL: "ftp://o/{key}"}, "URL", "scheme must be http or https"},
		{"http relative", HTTPConfig{URL: "/items/{key}"}, "URL", "scheme must be http or https"},
		{"http credentials", HTTPConfig{URL: "http://u:p@o/{key}"}, "URL", "credentials"},
		{"http bad header", HTTPConfig{URL: "http://o/{key}", Headers: map[string]string{"Bad Header": "x"}}, "Headers", "not a valid header name"},
		{"http negative timeout", HTTPConfig{URL: "http://o/{key}", Timeout: -time.Second}, "Timeout", "Timeout: must be >= 0"},
		{"http negative size", HTTPConfig{URL: "http://o/{key}", MaxBodyBytes: -1}, "MaxBodyBytes", "MaxBodyBytes: must be >= 0"},
		{"sql", SQLConfig{Driver: "postgres", DSNEnv: "PG_DSN", Query: "SELECT v FROM t WHERE k = $1"}, "", ""},
		{"sql all fields", SQLConfig{Driver: "sqlite", DSN: "f.db", Query: "SELECT v FROM t WHERE k = ?", MaxOpenConns: 4, MaxIdleConns: 4, QueryTimeout: time.Second}, "", ""},
		{"sql no driver", SQLConfig{DSN: "x", Query: "q"}, "Driver", "Driver: required"},
		{"sql mysql", SQLConfig{Driver: "mysql", DSN: "x", Query: "q"}, "Driver", `"mysql" is not supported`},
		{"sql no dsn", SQLConfig{Driver: "sqlite", Query: "q"}, "DSN", "DSN: required, or dsn_env"},
		{"sql no query", SQLConfig{Driver: "sqlite", DSN: "x"}, "Query", "Query: required"},
		{"sql idle above open", SQLConfig{Driver: "sqlite", DSN: "x", Query: "q", MaxOpenConns: 2, MaxIdleConns: 3}, "MaxIdleConns", "must not exceed max_open_conns"},
		{"sql idle above default open", SQLConfig{Driver: "sqlite", DSN: "x", Query: "q", MaxIdleConns: DefaultMaxOpenConns + 1}, "MaxIdleConns", "must not exceed"},
		{"sql negative conns", SQLConfig{Driver: "sqlite", DSN: "x", Query: "q", MaxOpenConns: -1}, "MaxOpenConns", "MaxOpenConns: must be >= 0"},
		{"sql negative timeout", SQLConfig{Driver: "sqlite", DSN: "x", Query: "q", QueryTimeout: -1}, "QueryTimeout", "QueryTimeout: must be >= 0"},
		{"sql listen channel", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "items_changed"}, "", ""},
		{"sql listen channel mixed case and $", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "_Items$2"}, "", ""},
		{"sql listen channel 63 bytes", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: strings.Repeat("c", 63)}, "", ""},
		{"sql listen channel on sqlite", SQLConfig{Driver: "sqlite", DSN: "x", Query: "q", ListenChannel: "items_changed"}, "ListenChannel", "PostgreSQL only"},
		{"sql listen channel 64 bytes", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: strings.Repeat("c", 64)}, "ListenChannel", "at most 63"},
		{"sql listen channel starts with a digit", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "1items"}, "ListenChannel", "not a PostgreSQL identifier"},
		{"sql listen channel starts with $", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "$items"}, "ListenChannel", "not a PostgreSQL identifier"},
		{"sql listen channel with a quote", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: `items"; DROP TABLE t; --`}, "ListenChannel", "not a PostgreSQL identifier"},
		{"sql listen channel with a dash", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "items-changed"}, "ListenChannel", "not a PostgreSQL identifier"},
		{"sql listen channel non-ASCII", SQLConfig{Driver: "postgres", DSN: "x", Query: "q", ListenChannel: "clés"}, "ListenChannel", "not a PostgreSQL identifier"},
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
			var fe *group.FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Fatalf("Validate() = %v, want a *group.FieldError for %s", err, tt.field)
			}
		})
	}
}

// TestConfigValidateReportsEveryField: one call names every bad field, each as its own
// *group.FieldError.
func TestConfigValidateReportsEveryField(t *testing.T) {
	err := SQLConfig{MaxOpenConns: -1, QueryTimeout: -1}.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *group.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *group.FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if want := []string{"Driver", "DSN", "Query", "MaxOpenConns", "QueryTimeout"}; !reflect.DeepEqual(fields, want) {
		t.Fatalf("fields = %v, want %v", fields, want)
	}
}

func TestWithDefaults(t *testing.T) {
	if got, want := (FileConfig{}).withDefaults(), (FileConfig{MaxBodyBytes: DefaultMaxBodyBytes}); got != want {
		t.Errorf("file: %+v, want %+v", got, want)
	}
	if got, want := (HTTPConfig{}).withDefaults(), (HTTPConfig{MaxBodyBytes: DefaultMaxBodyBytes, Timeout: DefaultHTTPTimeout}); !reflect.DeepEqual(got, want) {
		t.Errorf("http: %+v, want %+v", got, want)
	}
	if got, want := (SQLConfig{}).withDefaults(), (SQLConfig{MaxOpenConns: DefaultMaxOpenConns, MaxIdleConns: DefaultMaxIdleConns, QueryTimeout: DefaultQueryTimeout}); got != want {
		t.Errorf("sql: %+v, want %+v", got, want)
	}
	if got := (SQLConfig{MaxOpenConns: 2}).withDefaults().MaxIdleConns; got != 2 {
		t.Errorf("sql with 2 open connections: %d idle by default, want 2", got)
	}
	if got := (HTTPConfig{Timeout: time.Second}).withDefaults().Timeout; got != time.Second {
		t.Errorf("http: a set timeout became %v", got)
	}
}

// TestConfigYAML decodes loader sections as config.yaml writes them (the keys after `type:`),
// through the Registry with a strict YAML decoder: sizes go through group.ByteSize's
// UnmarshalText and durations through time.Duration, and a key of another type is refused.
func TestConfigYAML(t *testing.T) {
	tests := []struct {
		name, typ, yaml string
		want            Config
	}{
		{
			name: "file flow style", typ: "file",
			yaml: `{root: ./examples/data, max_body_bytes: 1MiB}`,
			want: FileConfig{Root: "./examples/data", MaxBodyBytes: 1 << 20},
		},
		{
			name: "http", typ: "http",
			yaml: `
url: "http://127.0.0.1:9000/items/{key}"
headers:
  Authorization: Bearer s3cret
max_body_bytes: 8MiB
timeout: 5s
use_origin_ttl: true
`,
			want: HTTPConfig{URL: "http://127.0.0.1:9000/items/{key}", Headers: map[string]string{"Authorization": "Bearer s3cret"},
				MaxBodyBytes: 8 << 20, Timeout: 5 * time.Second, UseOriginTTL: true},
		},
		{
			name: "sql", typ: "sql",
			yaml: `
driver: postgres
dsn_env: GROUPCACHED_PG_DSN
query: SELECT load_item($1)
max_open_conns: 8
max_idle_conns: 4
query_timeout: 1500ms
`,
			want: SQLConfig{Driver: "postgres", DSNEnv: "GROUPCACHED_PG_DSN", Query: "SELECT load_item($1)",
				MaxOpenConns: 8, MaxIdleConns: 4, QueryTimeout: 1500 * time.Millisecond},
		},
	}
	reg := NewRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reg.Decode(tt.typ, yamlSection(tt.yaml))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decoded %#v, want %#v", got, tt.want)
			}
		})
	}

	for _, tt := range []struct{ typ, doc, want string }{
		{"http", `{url: "http://o/{key}", max_body_bytes: lots}`, "lots"},
		{"file", `{rooot: x}`, "rooot"},
		{"http", `{url: "http://o/{key}", timeout: soon}`, "soon"},
		{"file", `{root: ., url: "http://h:1/{key}"}`, "url"},
		{"file", `{root: d, query: select 1}`, "query"},
		{"http", `{url: "http://o/{key}", root: d}`, "root"},
		{"http", `{url: "http://o/{key}", dsn: x}`, "dsn"},
		{"sql", `{driver: sqlite, dsn: x, query: q, headers: {a: b}}`, "headers"},
		{"sql", `{driver: sqlite, dsn: x, query: q, max_body_bytes: 5}`, "max_body_bytes"},
	} {
		t.Run("refused "+tt.doc, func(t *testing.T) {
			if _, err := reg.Decode(tt.typ, yamlSection(tt.doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%s, %s) = %v, want an error naming %q", tt.typ, tt.doc, err, tt.want)
			}
		})
	}
}
