package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/groupcached/groupcached/group"
)

// ErrTooLarge is returned (wrapped) when a value is bigger than the loader's limit
// (FileConfig.MaxBodyBytes, HTTPConfig.MaxBodyBytes). Nothing is cached; the origin keeps
// the value.
var ErrTooLarge = errors.New("value too large")

// File serves the regular files under one directory: the key "greetings/fr.txt" is the file
// greetings/fr.txt below the root. It reads through an os.Root, so no key, symlink or ".."
// can make it read outside the directory: keys that would leave it lexically (absolute, "..",
// NUL bytes) fail with group.ErrInvalidKey, and symlinks that point outside fail with
// group.ErrNotFound, before any byte is read. Directories and other non-regular files (FIFOs,
// devices) are not found. Values carry no TTL of their own: the group's TTL applies. A value's
// Content-Type is the one mime.TypeByExtension gives its extension (text/plain;
// charset=utf-8 for .txt; none for an unknown extension) and its Last-Modified is the file's
// modification time.
//
// File is safe for concurrent use. Close releases the directory handle.
type File struct {
	root     *os.Root
	maxBytes int64
}

var (
	_ group.Loader = (*File)(nil)
	_ io.Closer    = (*File)(nil)
)

// NewFile opens cfg.Root, which must be an existing directory, after checking cfg
// (FileConfig.Validate).
func NewFile(cfg FileConfig) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("file loader: %w", err)
	}
	cfg = cfg.withDefaults()
	r, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("file loader: opening root: %w", err)
	}
	return &File{root: r, maxBytes: int64(cfg.MaxBodyBytes)}, nil
}

// Load reads the file named by key.
func (f *File) Load(ctx context.Context, key string) (group.Value, error) {
	name, err := fileName(key)
	if err != nil {
		return group.Value{}, err
	}
	if err := ctx.Err(); err != nil {
		return group.Value{}, fmt.Errorf("file loader: %w", err)
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
	fh, err := f.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return group.Value{}, openError(key, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return group.Value{}, fmt.Errorf("file loader: %q: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		return group.Value{}, fmt.Errorf("file loader: %q is not a regular file: %w", key, group.ErrNotFound)
	}
	if st.Size() > f.maxBytes {
		return group.Value{}, fmt.Errorf("file loader: %q has %d bytes, limit %d: %w", key, st.Size(), f.maxBytes, ErrTooLarge)
	}
	data, err := readLimited(ctx, fh, st.Size(), f.maxBytes)
	if err != nil {
		return group.Value{}, fmt.Errorf("file loader: reading %q: %w", key, err)
	}
	// The type comes from the extension alone (never sniffed from the bytes, which would let
	// a file's content choose how a browser treats it); the mtime is the file's.
	return group.Value{Bytes: data, ContentType: mime.TypeByExtension(filepath.Ext(name)), LastModified: st.ModTime()}, nil
}

// Close releases the root directory. Loads after Close fail.
func (f *File) Close() error { return f.root.Close() }

// readLimited reads r to the end into one buffer sized from sizeHint, and fails with
// ErrTooLarge as soon as more than limit bytes arrive (a file that grew since its Stat, a body
// longer than announced).
func readLimited(ctx context.Context, r io.Reader, sizeHint, limit int64) ([]byte, error) {
	if sizeHint < 0 {
		sizeHint = 512
	}
	// The bytes are reserved against the group's max_loading_bytes before they are
	// allocated: the hint's, then twice the buffer each time it must grow (append grows it by
	// less). A reservation that does not fit ends the read with group.ErrOverloaded.
	first := min(sizeHint, limit) + 1 // one spare byte: a read that fills the hint meets EOF without growing
	if err := group.ReserveBytes(ctx, first); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, first)
	for {
		if len(buf) == cap(buf) {
			if err := group.ReserveBytes(ctx, min(2*int64(cap(buf)), limit+1)); err != nil {
				return nil, err
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// fileName maps a key to a name relative to the root, or refuses it with group.ErrInvalidKey
// when it could not name a file inside the root (empty, NUL bytes, absolute, or leaving it
// through ".."). Keys are slash-separated on every platform.
func fileName(key string) (string, error) {
	switch {
	case key == "":
		return "", fmt.Errorf("file loader: empty key: %w", group.ErrInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return "", fmt.Errorf("file loader: key %q contains a NUL byte: %w", key, group.ErrInvalidKey)
	}
	name := filepath.FromSlash(key)
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("file loader: key %q is not a path inside the root: %w", key, group.ErrInvalidKey)
	}
	return name, nil
}

// openError turns a failed open into group.ErrNotFound when the key names nothing readable
// inside the root, and into a load failure otherwise (permissions, too many open files).
func openError(key string, err error) error {
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file loader: opening %q: %w", key, err)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP, syscall.ENAMETOOLONG:
		default:
			return fmt.Errorf("file loader: opening %q: %w", key, err)
		}
	}
	// What is left is os.Root refusing a path that resolves outside the root (through a
	// symlink): to the caller, nothing of that name exists here.
	return fmt.Errorf("file loader: %q: %w", key, group.ErrNotFound)
}
