package group

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes that reads and prints with binary units ("64MiB", "512KiB",
// "1GiB") as well as plain numbers. It implements encoding.TextUnmarshaler, so configuration
// decoders (YAML, flags, environment) accept sizes as text.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"B", 1},
}

// ParseByteSize parses "64MiB", "1.5GiB", "100KB", "4096" or "4096B".
func ParseByteSize(s string) (ByteSize, error) {
	text := strings.TrimSpace(s)
	factor := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(text, u.suffix) {
			text = strings.TrimSpace(strings.TrimSuffix(text, u.suffix))
			factor = u.factor
			break
		}
	}
	if text == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as 64MiB", s)
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("invalid size %q: negative", s)
		}
		if factor > 1 && n > (1<<62)/factor {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return ByteSize(n * factor), nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as 64MiB", s)
	}
	if f < 0 || f*float64(factor) > float64(1<<62) {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return ByteSize(f * float64(factor)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String prints the size with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:4] {
		if b != 0 && int64(b)%u.factor == 0 {
			return strconv.FormatInt(int64(b)/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
