package schemas

import (
	"path/filepath"
	"strings"
	"testing"
)

// The example schemas shipped in dev mode compile as 2020-12, accept their
// example, and reject it once a field is broken.
func TestExamples(t *testing.T) {
	var files []string
	for _, name := range []string{"person-registered", "mojaloop-event", "process-order-status", "dataset-published"} {
		files = append(files, filepath.Join("../cmd/mevents/devdata/schemas", name+".schema.json"))
	}
	broken := map[string][]struct {
		path  []string // where to put value in the example
		value string
		want  Violation // pointer and keyword
	}{
		"person-registered": {
			{[]string{"idnp"}, `"200401234567"`, Violation{Pointer: "/idnp", Keyword: "pattern"}},
			{[]string{"birthDate"}, `"18.03.2024"`, Violation{Pointer: "/birthDate", Keyword: "format"}},
			{[]string{"sex"}, `"X"`, Violation{Pointer: "/sex", Keyword: "enum"}},
			{[]string{"address", "postalCode"}, `"2012"`, Violation{Pointer: "/address/postalCode", Keyword: "pattern"}},
		},
		"mojaloop-event": {
			{[]string{"metadata", "event", "type"}, `"debug"`, Violation{Pointer: "/metadata/event/type", Keyword: "enum"}},
			{[]string{"metadata", "event", "id"}, `"42"`, Violation{Pointer: "/metadata/event/id", Keyword: "format"}},
			{[]string{"metadata", "trace", "traceId"}, `"BBD7B2C7"`, Violation{Pointer: "/metadata/trace/traceId", Keyword: "pattern"}},
			{[]string{"metadata", "event", "state", "status"}, `"ok"`, Violation{Pointer: "/metadata/event/state/status", Keyword: "enum"}},
		},
		"process-order-status": {
			{[]string{"status"}, `"PAUSED"`, Violation{Pointer: "/status", Keyword: "enum"}},
			{[]string{"status"}, `"INTERRUPTED"`, Violation{Pointer: "/reason", Keyword: "required"}},
			{[]string{"quantity", "value"}, `-1`, Violation{Pointer: "/quantity/value", Keyword: "minimum"}},
			{[]string{"changedAt"}, `"yesterday"`, Violation{Pointer: "/changedAt", Keyword: "format"}},
		},
		"dataset-published": {
			{[]string{"datasetId"}, `"doi:10.5281/zenodo.1"`, Violation{Pointer: "/datasetId", Keyword: "pattern"}},
			{[]string{"version"}, `0`, Violation{Pointer: "/version", Keyword: "minimum"}},
			{[]string{"url"}, `"archive/datasets/1"`, Violation{Pointer: "/url", Keyword: "format"}},
			{[]string{"checksum", "algorithm"}, `"md5"`, Violation{Pointer: "/checksum/value", Keyword: "maxLength"}},
		},
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".schema.json")
		t.Run(name, func(t *testing.T) {
			s := compileFile(t, file)
			if got := s.Draft(); got != Draft2020 {
				t.Fatalf("Draft()=%v, want 2020-12", got)
			}
			example := filepath.Join("../cmd/mevents/devdata/examples", name+".data.json")
			if got := s.Validate(decodeFile(t, example)); got != nil {
				t.Fatalf("%s: Validate=%v, want valid", example, got)
			}
			cases := broken[name]
			if len(cases) == 0 {
				t.Fatalf("no broken variants of %s in the test table", name)
			}
			for _, c := range cases {
				v := decodeFile(t, example)
				obj := v.(map[string]any)
				for _, k := range c.path[:len(c.path)-1] {
					obj = obj[k].(map[string]any)
				}
				obj[c.path[len(c.path)-1]] = mustDecode(t, c.value)
				got := s.Validate(v)
				if len(got) != 1 || got[0].Pointer != c.want.Pointer || got[0].Keyword != c.want.Keyword {
					t.Fatalf("%s = %s: Validate=%v, want one %s violation at %s", strings.Join(c.path, "."), c.value, got, c.want.Keyword, c.want.Pointer)
				}
			}
		})
	}
}
