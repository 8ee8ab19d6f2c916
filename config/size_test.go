package config

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"512B", 512},
		{"1KiB", 1 << 10},
		{"1MiB", 1 << 20},
		{"100GiB", 100 << 30},
		{"2TiB", 2 << 40},
		{"1.5GiB", 3 << 29},
		{"1 MiB", 1 << 20},
		{"1KB", 1000},
		{"64MB", 64e6},
		{"10GB", 10e9},
		{"1TB", 1e12},
		{"0.5KB", 500},
	} {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q)=%d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeInvalid(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "is not a size"},
		{"-1", "is not a size"},
		{"MiB", "is not a size"},
		{"1e6", "is not a size"},
		{"10 gigs", `unknown unit "gigs"`},
		{"1mib", `unknown unit "mib"`},
		{"1.5", "not a whole number of bytes"},
		{"0.1KiB", "not a whole number of bytes"},
		{"9999999TiB", "too large"},
		{"99999999999999999999", "too large"},
	} {
		_, err := ParseSize(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSize(%q): %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tt := range []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1000, "1000"}, {1 << 10, "1KiB"}, {3 << 29, "1536MiB"}, {10 << 30, "10GiB"}, {1 << 40, "1TiB"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String()=%q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.want); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q)=%d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestYAMLValues(t *testing.T) {
	var v struct {
		Size     Size     `yaml:"size"`
		Duration Duration `yaml:"duration"`
		Sync     Sync     `yaml:"sync"`
	}
	if err := yaml.Unmarshal([]byte("{size: 1MiB, duration: 1h30m, sync: 2m}"), &v); err != nil {
		t.Fatal(err)
	}
	if v.Size != 1<<20 || time.Duration(v.Duration) != 90*time.Minute || v.Sync.Interval() != 2*time.Minute || v.Sync.Always() {
		t.Fatalf("decoded %+v", v)
	}
	if err := yaml.Unmarshal([]byte("{sync: always}"), &v); err != nil || !v.Sync.Always() {
		t.Fatalf("sync: always: %v, %v", v.Sync, err)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "size: 1MiB\nduration: 1h30m0s\nsync: always\n"; got != want {
		t.Fatalf("Marshal=%q, want %q", got, want)
	}

	for _, tt := range []struct{ doc, want string }{
		{"duration: 5", `"5" is not a duration`},
		{"duration: 5 days", `"5 days" is not a duration`},
		{"duration: [1h]", "want a duration like 120h, got a list"},
		{"size: {a: 1}", "want a size like 1MiB, got a mapping"},
		{"sync: -1s", "an interval must be positive"},
		{"sync: Always", `"Always" is neither "always" nor a duration`},
	} {
		err := yaml.Unmarshal([]byte(tt.doc), &v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.doc, err, tt.want)
		}
	}
}
