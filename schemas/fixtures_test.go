package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each testdata/<dir>/<name>.schema.json is compiled and checked against
// testdata/<dir>/valid/<name>.*.json (must be valid) and
// testdata/<dir>/invalid/<name>.*.json, which hold
// {"instance": …, "want": [{"pointer", "keyword"[, "message"]}]}: the exact
// violations, in order, a message compared only when given.
func TestFixtures(t *testing.T) {
	drafts := map[string]Draft{
		"draft6/person":    Draft6,
		"draft7/person":    Draft7,
		"2019-09/person":   Draft2019,
		"2020-12/person":   Draft2020,
		"noschema/plain":   Draft2020,
		"noschema/tuple":   Draft7,
		"noschema/mixed":   Draft2019,
		"noschema/modern":  Draft2020,
		"noschema/recurse": Draft2019,
	}
	seen := 0
	for dir := range strings.SplitSeq("draft6 draft7 2019-09 2020-12 noschema", " ") {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.schema.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no schemas in testdata/%s (%v)", dir, err)
		}
		for _, file := range files {
			stem := strings.TrimSuffix(filepath.Base(file), ".schema.json")
			id := dir + "/" + stem
			t.Run(id, func(t *testing.T) {
				s := compileFile(t, file)
				want, ok := drafts[id]
				if !ok {
					t.Fatalf("no expected draft for %s in the test table", id)
				}
				if got := s.Draft(); got != want {
					t.Fatalf("Draft()=%v, want %v", got, want)
				}
				testInstances(t, s, filepath.Join("testdata", dir), stem)
			})
			seen++
		}
	}
	if seen != len(drafts) {
		t.Fatalf("found %d schemas, the table lists %d", seen, len(drafts))
	}
}

func compileFile(t *testing.T, file string) *Schema {
	t.Helper()
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(filepath.Base(file), doc)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func testInstances(t *testing.T, s *Schema, dir, stem string) {
	t.Helper()
	valid, _ := filepath.Glob(filepath.Join(dir, "valid", stem+".*.json"))
	invalid, _ := filepath.Glob(filepath.Join(dir, "invalid", stem+".*.json"))
	if len(valid) == 0 || len(invalid) == 0 {
		t.Fatalf("%s: want valid and invalid instances, have %d and %d", stem, len(valid), len(invalid))
	}
	for _, file := range valid {
		t.Run("valid/"+filepath.Base(file), func(t *testing.T) {
			v := decodeFile(t, file)
			if got := s.Validate(v); got != nil {
				t.Fatalf("Validate=%v, want valid", got)
			}
		})
	}
	for _, file := range invalid {
		t.Run("invalid/"+filepath.Base(file), func(t *testing.T) {
			var fixture struct {
				Instance json.RawMessage `json:"instance"`
				Want     []Violation     `json:"want"`
			}
			if err := json.Unmarshal(readFile(t, file), &fixture); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(fixture.Want) == 0 {
				t.Fatalf("%s: no expected violations", file)
			}
			v, err := Decode(fixture.Instance)
			if err != nil {
				t.Fatal(err)
			}
			checkViolations(t, s.Validate(v), fixture.Want)
		})
	}
}

// checkViolations compares pointers and keywords in order, and messages
// where want has one.
func checkViolations(t *testing.T, got, want []Violation) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Pointer == w.Pointer && g.Keyword == w.Keyword && (w.Message == "" || g.Message == w.Message)
	}
	if !same {
		t.Fatalf("violations:\n%s\nwant:\n%s", format(got), format(want))
	}
}

func format(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  " + v.Pointer + " [" + v.Keyword + "] " + v.Message + "\n")
	}
	return b.String()
}

func readFile(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFile(t *testing.T, file string) any {
	t.Helper()
	v, err := Decode(readFile(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}
