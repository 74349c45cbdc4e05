package group

import (
	"encoding"
	"testing"
)

var (
	_ encoding.TextUnmarshaler = (*ByteSize)(nil)
	_ encoding.TextMarshaler   = ByteSize(0)
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"4096B", 4096, false},
		{"512KiB", 512 << 10, false},
		{"64MiB", 64 << 20, false},
		{" 64 MiB ", 64 << 20, false},
		{"1GiB", 1 << 30, false},
		{"2TiB", 2 << 40, false},
		{"1.5GiB", 3 << 29, false},
		{"0.5KiB", 512, false},
		{"100KB", 100_000, false},
		{"100kB", 100_000, false},
		{"3MB", 3_000_000, false},
		{"1GB", 1_000_000_000, false},
		{"1TB", 1_000_000_000_000, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"-1MiB", 0, true},
		{"-0.5GiB", 0, true},
		{"ten", 0, true},
		{"64 mebibytes", 0, true},
		{"64MiBs", 0, true},
		{"99999999999TiB", 0, true},
		{"1e30", 0, true},
		{"9223372036854775807", 9223372036854775807, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			var u ByteSize
			if err := u.UnmarshalText([]byte(tt.in)); (err != nil) != tt.wantErr || u != tt.want {
				t.Fatalf("UnmarshalText(%q) = %d, %v", tt.in, u, err)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{64 << 20, "64MiB"},
		{3 << 30, "3GiB"},
		{5 << 40, "5TiB"},
		{(1 << 30) + (1 << 20), "1025MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			text, err := tt.in.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseByteSize(string(text))
			if err != nil || back != tt.in {
				t.Fatalf("round trip through %q = %d, %v", text, back, err)
			}
		})
	}
}
