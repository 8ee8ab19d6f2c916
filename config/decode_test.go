package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// testInvalid loads every fixture in dir with load and checks that it fails
// with the error its first line announces ("# want: substring").
func testInvalid(t *testing.T, dir string, load func(path string) error) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s (%v)", dir, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want := wantError(t, file)
			err := load(file)
			if err == nil {
				t.Fatalf("loaded without error, want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != file {
				t.Fatalf("error %v: want an *Error naming file %s", err, file)
			}
		})
	}
}

func wantError(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	want, ok := strings.CutPrefix(strings.TrimSpace(line), "# want: ")
	if !ok {
		t.Fatalf("%s: first line %q is not \"# want: error substring\"", file, line)
	}
	// Messages name files by the path given to the loader.
	return strings.ReplaceAll(want, filepath.Base(file)+":", file+":")
}

func TestSplitPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a.b", []string{"a", "b"}},
		{"clients[2].produce[0]", []string{"clients", "[2]", "produce", "[0]"}},
		{"a[1][2]", []string{"a", "[1]", "[2]"}},
	} {
		if got := splitPath(tt.path); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitPath(%q)=%q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestLocate(t *testing.T) {
	const doc = `a:
  b: 1
list:
  - x: 1
  -
    x: 2
    y: 3
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"a", 1},
		{"a.b", 2},
		{"a.missing", 1}, // reported at its section
		{"list[0].x", 4},
		{"list[1].y", 7},
		{"list[9]", 3},
		{"missing", 0},
	} {
		if got := locate(&root, tt.path); got != tt.want {
			t.Errorf("locate(%q)=%d, want %d", tt.path, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		err  Error
		want string
	}{
		{Error{File: "node.yaml", Line: 3, Field: "jetstream.sync", Err: errors.New("bad")}, "node.yaml:3: jetstream.sync: bad"},
		{Error{File: "node.yaml", Field: "node.name", Err: errors.New("required")}, "node.yaml: node.name: required"},
		{Error{Field: "node.name", Err: errors.New("required")}, "node.name: required"},
		{Error{File: "f.yaml", Err: errors.New("broken")}, "f.yaml: broken"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error()=%q, want %q", got, tt.want)
		}
	}
}

func TestDecodeMergeKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "merge.yaml")
	if err := os.WriteFile(file, []byte(`node: {name: n1}
api:
  tls: &tls {cert: a.pem, key: a-key.pem, clientCA: ca.pem}
nats:
  tls:
    <<: *tls
  operators: [{user: ops, password: x}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadNode(file)
	if err == nil || !strings.Contains(err.Error(), "nats.tls.clientCA: unknown field") {
		t.Fatalf("LoadNode: %v, want the merged clientCA reported unknown under nats.tls", err)
	}
}
