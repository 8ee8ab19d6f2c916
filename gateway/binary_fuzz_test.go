package gateway

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseBinary(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "binary", "*.http"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, probs := parseBinary(readHTTP(raw))
		for _, p := range probs {
			if p.Index != 0 || p.Keyword == "" || p.Message == "" {
				t.Fatalf("bad problem %+v", p)
			}
		}
		if len(probs) == 0 {
			checkStructured(t, e)
		}
	})
}
