package loader

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/groupcached/groupcached/group"
)

// checkLoad calls l.Load(key) and fails t unless it gives what a table row expects: an error
// wrapping wantErr when that is set, a failure that is not ErrNotFound when anyErr is set, and
// otherwise the value want. It returns the value for the caller's own further checks.
func checkLoad(t *testing.T, l group.Loader, key, want string, wantErr error, anyErr bool) group.Value {
	t.Helper()
	v, err := l.Load(context.Background(), key)
	switch {
	case wantErr != nil:
		if !errors.Is(err, wantErr) {
			t.Fatalf("Load(%q) = %q, %v; want %v", key, v.Bytes, err, wantErr)
		}
	case anyErr:
		if err == nil || errors.Is(err, group.ErrNotFound) {
			t.Fatalf("Load(%q) = %q, %v; want a load failure", key, v.Bytes, err)
		}
	default:
		if err != nil || string(v.Bytes) != want {
			t.Fatalf("Load(%q) = %q, %v; want %q", key, v.Bytes, err, want)
		}
	}
	return v
}

// yamlSection is a Decoder over a YAML document as strict as the node's: a key that names no
// field is an error.
func yamlSection(doc string) Decoder {
	return DecoderFunc(func(v any) error {
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	})
}
