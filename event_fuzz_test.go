package mevents

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// addFixtures adds every event fixture to the seed corpus.
func addFixtures(f *testing.F, add func([]byte)) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, file := range fixtures(f, dir) {
			raw, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			add(raw)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	addFixtures(f, func(raw []byte) { f.Add(raw) })
	f.Add(benchEvent)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, probs := ParseEvent(raw, 3)
		syntax := false
		for _, p := range probs {
			if p.Index != 3 || p.Code != CodeInvalid || p.Keyword == "" || p.Message == "" {
				t.Fatalf("bad problem %+v", p)
			}
			syntax = syntax || p.Keyword == kwJSON
		}
		// The scanner agrees with encoding/json on what is well-formed.
		if wellFormed := json.Valid(raw) && utf8.Valid(raw); wellFormed == syntax {
			t.Fatalf("json.Valid&&utf8.Valid=%v, but syntax problem=%v: %+v", wellFormed, syntax, probs)
		}
		if len(probs) == 0 {
			checkRoundTrip(t, e)
		}
	})
}

func FuzzParseBatch(f *testing.F) {
	addFixtures(f, func(raw []byte) {
		f.Add(raw)
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
			f.Add([]byte("[" + string(raw) + "," + string(raw) + "]"))
		}
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		events, probs := ParseBatch(body)
		for _, p := range probs {
			if p.Index < 0 || p.Index > len(events) || p.Code != CodeInvalid || p.Keyword == "" {
				t.Fatalf("bad problem %+v (%d events)", p, len(events))
			}
		}
		if len(probs) != 0 {
			return
		}
		for _, e := range events {
			checkRoundTrip(t, e)
		}
		// The events written as a batch read back as the same batch.
		out := []byte{'['}
		for i, e := range events {
			if i > 0 {
				out = append(out, ',')
			}
			out = e.AppendJSON(out)
		}
		out = append(out, ']')
		back, probs := ParseBatch(out)
		if len(probs) != 0 || len(back) != len(events) {
			t.Fatalf("reparse of %s: %d events, problems %+v", out, len(back), probs)
		}
	})
}

// FuzzNewEvent checks the binary-mode constructor with attributes given as strings.
func FuzzNewEvent(f *testing.F) {
	f.Add("1.0", "id1", "/s", "t", "application/json", "ext", "v", []byte(`{"a": 1}`))
	f.Add("1.0", "id1", "/s", "t", "text/plain", "testevent", "true", []byte("hi"))
	f.Add("0.3", "", "a b", "", "json", "Bad", "\x00", []byte(`{`))
	f.Fuzz(func(t *testing.T, sv, id, source, typ, ct, name, value string, data []byte) {
		attrs := []Attr{
			AttrFromString("specversion", sv), AttrFromString("id", id),
			AttrFromString("source", source), AttrFromString("type", typ),
			AttrFromString(strings.ToLower(name), value),
		}
		if ct != "" {
			attrs = append(attrs, AttrFromString("datacontenttype", ct))
		}
		e, probs := NewEvent(attrs, data, 0)
		if len(probs) == 0 {
			checkRoundTrip(t, e)
		}
	})
}
