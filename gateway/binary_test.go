package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mevents/mevents"
)

// readHTTP reads a fixture of testdata/binary: header lines, a blank line,
// the body. Header names are kept as written, to exercise case-insensitivity.
func readHTTP(raw []byte) (http.Header, []byte) {
	head, body, _ := bytes.Cut(raw, []byte("\n\n"))
	h := http.Header{}
	for _, line := range strings.Split(string(head), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h[name] = append(h[name], strings.TrimLeft(value, " \t"))
	}
	return h, body
}

type wantProblem struct{ pointer, keyword, id string }

func TestParseBinary(t *testing.T) {
	base := func(kv ...string) http.Header {
		h := http.Header{}
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", "b1")
		h.Set("Ce-Source", "/s")
		h.Set("Ce-Type", "t")
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	raw := func(h http.Header, name string, values ...string) http.Header {
		h[name] = append(h[name], values...) // a name as a client might send it, not canonicalised
		return h
	}
	del := func(h http.Header, name string) http.Header { h.Del(name); return h }
	set := func(h http.Header, name, value string) http.Header { h.Set(name, value); return h }
	tests := []struct {
		name       string
		h          http.Header
		body       string
		attrs      map[string]string // attribute → JSON value
		data       string            // "<nil>" for none
		dataBase64 string
		want       []wantProblem
	}{
		{name: "json body", h: base("Content-Type", "application/json; charset=utf-8"), body: "{\n \"a\": 1\n}",
			attrs: map[string]string{"datacontenttype": `"application/json; charset=utf-8"`}, data: `{"a":1}`},
		{name: "+json body", h: base("Content-Type", "Application/Vnd.Example+JSON"), body: `[1]`, data: `[1]`},
		{name: "json body without content type", h: base(), body: `"s"`, data: `"s"`},
		{name: "empty body without content type", h: base(), body: "", data: "<nil>",
			attrs: map[string]string{"datacontenttype": "<absent>"}},
		{name: "empty body with content type", h: base("Content-Type", "application/json"), body: "", data: "<nil>"},
		{name: "xml body", h: base("Content-Type", "application/xml"), body: `<a/>`, data: "<nil>", dataBase64: "PGEvPg=="},
		{name: "binary body", h: base("Content-Type", "application/octet-stream"), body: "\x00\xff", data: "<nil>", dataBase64: "AP8="},
		{name: "percent-encoding", h: base("Ce-Subject", "Euro%20%E2%82%AC%20%F0%9F%98%80", "Ce-Comexampleplace", "caf%C3%A9%2fcaf%c3%a9"), data: "<nil>",
			attrs: map[string]string{"subject": `"Euro € 😀"`, "comexampleplace": `"café/café"`}},
		{name: "unnecessary percent-encoding", h: base("Ce-Subject", "%41%42C"), data: "<nil>", attrs: map[string]string{"subject": `"ABC"`}},
		{name: "raw non-ASCII", h: base("Ce-Subject", "café"), data: "<nil>", attrs: map[string]string{"subject": `"café"`}},
		{name: "quoted string", h: base("Ce-Subject", `"say \"hi\" 100%25"`), data: "<nil>", attrs: map[string]string{"subject": `"say \"hi\" 100%"`}},
		{name: "case-insensitive names", h: raw(raw(del(del(base(), "Ce-Id"), "Ce-Type"), "CE-ID", "b1"), "cE-tYPe", "t"), data: "<nil>",
			attrs: map[string]string{"id": `"b1"`, "type": `"t"`}},
		{name: "extensions are strings", h: base("Ce-Count", "5", "Ce-Flag", "true"), data: "<nil>",
			attrs: map[string]string{"count": `"5"`, "flag": `"true"`}},
		{name: "testevent is a Boolean", h: base("Ce-Testevent", "true"), data: "<nil>", attrs: map[string]string{"testevent": `true`}},
		{name: "W3C trace headers", h: base("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Tracestate", "rojo=1", "Tracestate", "congo=2"), data: "<nil>",
			attrs: map[string]string{"traceparent": `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`, "tracestate": `"rojo=1,congo=2"`}},
		{name: "ce-traceparent wins", h: base("Ce-Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Tracestate", "rojo=1"), data: "<nil>",
			attrs: map[string]string{"traceparent": `"00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01"`, "tracestate": "<absent>"}},
		{name: "repeated W3C traceparent ignored", h: base("Traceparent", "a", "Traceparent", "b"), data: "<nil>", attrs: map[string]string{"traceparent": "<absent>"}},

		{name: "invalid percent-encoding", h: base("Ce-Subject", "%ZZ"), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "invalid percent-encoding of a required attribute", h: set(base(), "Ce-Source", "%ZZ"), data: "<nil>", want: []wantProblem{{"/source", "encoding", "b1"}}},
		{name: "truncated percent-encoding", h: base("Ce-Subject", "abc%4"), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "overlong UTF-8", h: base("Ce-Subject", "%C0%A0"), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "lone continuation byte", h: base("Ce-Subject", "caf%A9"), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "raw invalid UTF-8", h: base("Ce-Subject", "caf\xe9"), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "unterminated quoted string", h: base("Ce-Subject", `"abc`), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "text after quoted string", h: base("Ce-Subject", `"abc"def`), data: "<nil>", want: []wantProblem{{"/subject", "encoding", "b1"}}},
		{name: "decoded control character", h: base("Ce-Subject", "a%00b"), data: "<nil>", want: []wantProblem{{"/subject", "characters", "b1"}}},
		{name: "repeated header", h: base("Ce-Subject", "a", "Ce-Subject", "b"), data: "<nil>", want: []wantProblem{{"/subject", "duplicate", "b1"}}},
		{name: "repeated header in two cases", h: raw(base(), "ce-id", "b2"), data: "<nil>", want: []wantProblem{{"/id", "duplicate", "b1"}}},
		{name: "ce-datacontenttype", h: base("Ce-Datacontenttype", "text/plain"), data: "<nil>", want: []wantProblem{{"/datacontenttype", "binding", "b1"}}},
		{name: "repeated Content-Type", h: base("Content-Type", "text/plain", "Content-Type", "application/json"), body: "x", data: "<nil>", dataBase64: "eA==",
			want: []wantProblem{{"/datacontenttype", "duplicate", "b1"}}},
		{name: "malformed Content-Type", h: base("Content-Type", "json"), body: "x", data: "<nil>", dataBase64: "eA==",
			want: []wantProblem{{"/datacontenttype", "format", "b1"}}},
		{name: "malformed json body", h: base("Content-Type", "application/json"), body: `{"a":`, data: "<nil>", want: []wantProblem{{"/data", "json", "b1"}}},
		{name: "non-json body without content type", h: base(), body: `hello`, data: "<nil>", want: []wantProblem{{"/data", "json", "b1"}}},
		{name: "bad attribute name", h: base("Ce-My_ext", "x"), data: "<nil>", want: []wantProblem{{"/my_ext", "name", "b1"}}},
		{name: "ce-data", h: base("Ce-Data", "x"), data: "<nil>", want: []wantProblem{{"/data", "name", "b1"}}},
		{name: "empty name", h: base("Ce-", "x"), data: "<nil>", want: []wantProblem{{"/", "name", "b1"}}},
		{name: "repeated specversion", h: base("Ce-Specversion", "0.3"), data: "<nil>", want: []wantProblem{{"/specversion", "duplicate", "b1"}}},
		{name: "wrong specversion", h: raw(del(base(), "Ce-Specversion"), "Ce-Specversion", "0.3"), data: "<nil>", want: []wantProblem{{"/specversion", "specversion", "b1"}}},
		{name: "missing type", h: del(base(), "Ce-Type"), data: "<nil>", want: []wantProblem{{"/type", "required", "b1"}}},
		{name: "testevent not a Boolean", h: base("Ce-Testevent", "yes"), data: "<nil>", want: []wantProblem{{"/testevent", "type", "b1"}}},
		{name: "every problem reported", h: raw(del(base("Ce-Time", "noon", "Ce-Subject", "%G0", "Ce-Datacontenttype", "x/y"), "Ce-Id"), "Ce-Source", "again"), body: "{", data: "<nil>",
			want: []wantProblem{{"/datacontenttype", "binding", ""}, {"/source", "duplicate", ""}, {"/subject", "encoding", ""}, {"/time", "format", ""}, {"/id", "required", ""}, {"/data", "json", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, probs := parseBinary(tt.h, []byte(tt.body))
			if len(probs) != len(tt.want) {
				t.Fatalf("%d problems %+v, want %d %+v", len(probs), probs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				p := probs[i]
				if p.Pointer != w.pointer || p.Keyword != w.keyword || p.ID != w.id || p.Index != 0 {
					t.Fatalf("problem %d = %+v, want pointer %q keyword %q id %q index 0", i, p, w.pointer, w.keyword, w.id)
				}
				if p.Code != mevents.CodeInvalid || p.Message == "" {
					t.Fatalf("problem %d = %+v, want code invalid and a message", i, p)
				}
			}
			for name, want := range tt.attrs {
				got := "<absent>"
				if v, ok := e.Attr(name); ok {
					got = string(v)
				}
				if got != want {
					t.Fatalf("attribute %s=%s, want %s", name, got, want)
				}
			}
			gotData := "<nil>"
			if e.Data != nil {
				gotData = string(e.Data)
			}
			if gotData != tt.data {
				t.Fatalf("Data=%s, want %s", gotData, tt.data)
			}
			if e.DataBase64 != tt.dataBase64 {
				t.Fatalf("DataBase64=%q, want %q", e.DataBase64, tt.dataBase64)
			}
			if len(probs) == 0 {
				checkStructured(t, e)
			}
		})
	}
}

// checkStructured checks that the event written in the JSON format reads
// back to the same attributes and data.
func checkStructured(t *testing.T, e mevents.Event) {
	t.Helper()
	out := e.AppendJSON(nil)
	if !json.Valid(out) {
		t.Fatalf("AppendJSON gave invalid JSON: %s", out)
	}
	back, probs := mevents.ParseEvent(out, 0)
	if len(probs) != 0 {
		t.Fatalf("reparse of %s: problems %+v", out, probs)
	}
	if got, want := len(back.Attrs), len(e.Attrs); got != want {
		t.Fatalf("reparse: %d attributes, want %d", got, want)
	}
	for i, a := range e.Attrs {
		if back.Attrs[i].Name != a.Name || string(back.Attrs[i].Value) != string(a.Value) {
			t.Fatalf("reparse: attribute %d = %s:%s, want %s:%s", i, back.Attrs[i].Name, back.Attrs[i].Value, a.Name, a.Value)
		}
	}
	if string(back.Data) != string(e.Data) || back.DataBase64 != e.DataBase64 {
		t.Fatalf("reparse: data %s %q, want %s %q", back.Data, back.DataBase64, e.Data, e.DataBase64)
	}
}

func TestParseBinaryFixtures(t *testing.T) {
	tests := map[string]string{ // fixture → problem keywords
		"json.http":     "",
		"xml.http":      "",
		"percent.http":  "",
		"trace.http":    "",
		"repeated.http": "duplicate",
		"invalid.http":  "binding encoding specversion name required json",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "binary", file))
			if err != nil {
				t.Fatal(err)
			}
			_, probs := parseBinary(readHTTP(raw))
			var got []string
			for _, p := range probs {
				got = append(got, p.Keyword)
			}
			if g := strings.Join(got, " "); g != want {
				t.Fatalf("keywords %q, want %q (%+v)", g, want, probs)
			}
		})
	}
}

func TestMediaType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"application/cloudevents+json", "application/cloudevents+json"},
		{"Application/CloudEvents+JSON; charset=utf-8", "application/cloudevents+json"},
		{"application/cloudevents-batch+json;charset=UTF-8", "application/cloudevents-batch+json"},
		{"application/json", "application/json"},
		{"text/plain; charset=\"utf-8\"", "text/plain"},
		{"", ""},
		{"cloudevents", ""},
		{"application/cloudevents+json; charset", ""},
		{"application/cloudevents+json, text/plain", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := mediaType(tt.in); got != tt.want {
				t.Fatalf("mediaType(%q)=%q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
