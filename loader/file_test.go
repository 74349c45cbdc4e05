package loader

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

const secret = "SECRET: outside the root"

// fileTree builds, in a fresh temporary directory, a root to serve and a secret file next to
// it, with symlinks from the root pointing inside and outside. It returns the root.
func fileTree(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper"), 0o755))
	must(os.WriteFile(filepath.Join(base, "secret.txt"), []byte(secret), 0o644))
	files := map[string]string{
		"hello.txt":              "hello, world\n",
		"sub/nested.txt":         "nested",
		"sub/deeper/x.json":      `{"x":1}`,
		"empty":                  "",
		"with space & plus+.txt": "odd name",
		"big":                    strings.Repeat("b", 100),
	}
	for name, content := range files {
		must(os.WriteFile(filepath.Join(root, filepath.FromSlash(name)), []byte(content), 0o644))
	}
	must(os.Symlink("hello.txt", filepath.Join(root, "link-in")))
	must(os.Symlink("../hello.txt", filepath.Join(root, "sub", "link-up-in")))
	must(os.Symlink("../secret.txt", filepath.Join(root, "link-out")))
	must(os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(root, "link-abs")))
	must(os.Symlink("..", filepath.Join(root, "dir-link-out")))
	must(os.Symlink("/", filepath.Join(root, "dir-link-slash")))
	must(os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return root
}

func TestFileLoad(t *testing.T) {
	root := fileTree(t)
	secretPath := filepath.Join(filepath.Dir(root), "secret.txt")
	f, err := NewFile(FileConfig{Root: root, MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })

	tests := []struct {
		key     string
		want    string
		wantErr error // nil: want the value
	}{
		{key: "hello.txt", want: "hello, world\n"},
		{key: "sub/nested.txt", want: "nested"},
		{key: "sub/deeper/x.json", want: `{"x":1}`},
		{key: "sub/../hello.txt", want: "hello, world\n"},
		{key: "./hello.txt", want: "hello, world\n"},
		{key: "sub//nested.txt", want: "nested"},
		{key: "with space & plus+.txt", want: "odd name"},
		{key: "empty", want: ""},
		{key: "link-in", want: "hello, world\n"},
		{key: "sub/link-up-in", want: "hello, world\n"},

		{key: "missing.txt", wantErr: group.ErrNotFound},
		{key: "sub", wantErr: group.ErrNotFound},
		{key: "sub/", wantErr: group.ErrNotFound},
		{key: ".", wantErr: group.ErrNotFound},
		{key: "hello.txt/x", wantErr: group.ErrNotFound},
		{key: "fifo", wantErr: group.ErrNotFound},
		{key: "loop-a", wantErr: group.ErrNotFound},
		{key: "big", wantErr: ErrTooLarge},

		// Symlinks out of the root: not found, never read.
		{key: "link-out", wantErr: group.ErrNotFound},
		{key: "link-abs", wantErr: group.ErrNotFound},
		{key: "dir-link-out/secret.txt", wantErr: group.ErrNotFound},
		{key: "dir-link-slash/etc/passwd", wantErr: group.ErrNotFound},

		// Keys that leave the root lexically: invalid, refused before any system call.
		{key: "", wantErr: group.ErrInvalidKey},
		{key: "..", wantErr: group.ErrInvalidKey},
		{key: "../secret.txt", wantErr: group.ErrInvalidKey},
		{key: "sub/../../secret.txt", wantErr: group.ErrInvalidKey},
		{key: "/etc/passwd", wantErr: group.ErrInvalidKey},
		{key: secretPath, wantErr: group.ErrInvalidKey},
		{key: "hello.txt\x00", wantErr: group.ErrInvalidKey},
		{key: "\x00../secret.txt", wantErr: group.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			v := checkLoad(t, f, tt.key, tt.want, tt.wantErr, false)
			if tt.wantErr != nil && v.Bytes != nil {
				t.Fatalf("Load(%q) returned bytes with an error: %q", tt.key, v.Bytes)
			}
			if v.TTL != 0 {
				t.Fatalf("Load(%q) has TTL %v, want 0", tt.key, v.TTL)
			}
		})
	}

	t.Run("errors do not reveal the root", func(t *testing.T) {
		_, err := f.Load(context.Background(), "missing.txt")
		if err == nil || strings.Contains(err.Error(), root) {
			t.Fatalf("error %v mentions the root directory %s", err, root)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := f.Load(ctx, "hello.txt"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Load with a cancelled context: %v, want context.Canceled", err)
		}
	})
}

// A file's Content-Type comes from its extension, its Last-Modified from its mtime.
func TestFileMetadata(t *testing.T) {
	root := fileTree(t)
	mtime := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "hello.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct{ key, contentType string }{
		{"hello.txt", "text/plain; charset=utf-8"},
		{"sub/deeper/x.json", "application/json"},
		{"empty", ""},
	} {
		v, err := f.Load(context.Background(), tt.key)
		if err != nil || v.ContentType != tt.contentType {
			t.Errorf("Load(%q) Content-Type = %q, %v; want %q", tt.key, v.ContentType, err, tt.contentType)
		}
	}
	if v, _ := f.Load(context.Background(), "hello.txt"); !v.LastModified.Equal(mtime) {
		t.Errorf("Load(hello.txt) Last-Modified = %v, want the mtime %v", v.LastModified, mtime)
	}
}

func TestFileOpenAndClose(t *testing.T) {
	root := fileTree(t)
	tests := []struct {
		name string
		root string
	}{
		{"empty root", ""},
		{"missing root", filepath.Join(root, "nope")},
		{"root is a file", filepath.Join(root, "hello.txt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, err := NewFile(FileConfig{Root: tt.root}); err == nil {
				f.Close()
				t.Fatalf("NewFile(%q) succeeded", tt.root)
			}
		})
	}

	t.Run("loads after Close fail", func(t *testing.T) {
		f, err := NewFile(FileConfig{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Load(context.Background(), "hello.txt"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Load(context.Background(), "hello.txt"); err == nil || errors.Is(err, group.ErrNotFound) {
			t.Fatalf("Load after Close = %v, want a load failure", err)
		}
	})

	t.Run("file above the default limit", func(t *testing.T) {
		name := filepath.Join(root, "huge")
		if err := os.WriteFile(name, make([]byte, DefaultMaxBodyBytes+1), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := NewFile(FileConfig{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Load(context.Background(), "huge"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Load(huge) = %v, want ErrTooLarge", err)
		}
	})
}

// FuzzFileKey feeds arbitrary keys to the file loader over a root with symlinks pointing out
// of it. Whatever the key, the loader returns either an error or the content of a file that
// lies inside the root, never the secret next to it; and a key the mapping accepts is local.
func FuzzFileKey(f *testing.F) {
	for _, seed := range []string{
		"hello.txt", "sub/nested.txt", "../secret.txt", "link-out", "link-abs", "dir-link-out/secret.txt",
		"dir-link-slash/etc/passwd", "/etc/passwd", "sub/../../secret.txt", "a\x00b", "..", ".", "", "sub/link-up-in",
		"fifo", "loop-a", `..\secret.txt`, "sub/./../hello.txt", "%2e%2e/secret.txt",
	} {
		f.Add(seed)
	}
	root := fileTree(f)
	loader, err := NewFile(FileConfig{Root: root})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { loader.Close() })
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, key string) {
		name, mapErr := fileName(key)
		if mapErr == nil && (!filepath.IsLocal(name) || strings.ContainsRune(name, 0)) {
			t.Fatalf("fileName(%q) = %q, not a local path", key, name)
		}
		v, err := loader.Load(context.Background(), key)
		if mapErr != nil && err == nil {
			t.Fatalf("Load(%q) succeeded though the key mapping refused it: %v", key, mapErr)
		}
		if bytes.Contains(v.Bytes, []byte(secret)) {
			t.Fatalf("Load(%q) read the file outside the root", key)
		}
		if err != nil {
			return
		}
		// A value came back: it must be the content of a regular file inside the root.
		resolved, rerr := filepath.EvalSymlinks(filepath.Join(root, name))
		if rerr != nil {
			t.Fatalf("Load(%q) succeeded but the path does not resolve: %v", key, rerr)
		}
		if rel, _ := filepath.Rel(realRoot, resolved); !filepath.IsLocal(rel) {
			t.Fatalf("Load(%q) read %s, outside the root %s", key, resolved, realRoot)
		}
		want, rerr := os.ReadFile(resolved)
		if rerr != nil || !bytes.Equal(want, v.Bytes) {
			t.Fatalf("Load(%q) = %q, the file holds %q (%v)", key, v.Bytes, want, rerr)
		}
	})
}

func BenchmarkFileLoad(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "v"), bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := NewFile(FileConfig{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Load(ctx, "v"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		name            string
		size, hint, lim int64
		wantErr         error
	}{
		{"exact hint", 100, 100, 1000, nil},
		{"hint too small", 300, 10, 1000, nil},
		{"hint too large", 10, 500, 1000, nil},
		{"unknown size", 2000, -1, 4096, nil},
		{"empty", 0, 0, 10, nil},
		{"at the limit", 64, 64, 64, nil},
		{"one past the limit", 65, 64, 64, ErrTooLarge},
		{"hint hides a large body", 5000, 10, 100, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := bytes.Repeat([]byte("abcdefg"), int(tt.size/7)+1)[:tt.size]
			// iotest-style: a reader that hands out at most 33 bytes per Read.
			got, err := readLimited(context.Background(), &smallReader{r: bytes.NewReader(want)}, tt.hint, tt.lim)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("readLimited = %d bytes, %v; want %v", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("readLimited = %d bytes, %v; want the %d bytes", len(got), err, len(want))
			}
		})
	}
}

type smallReader struct{ r *bytes.Reader }

func (s *smallReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 33)]) }
