package mevents

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseFixture parses a fixture file: batch-*.json as a batch, the others as
// one event.
func parseFixture(name string, raw []byte) ([]Event, []Problem) {
	if strings.HasPrefix(name, "batch-") {
		return ParseBatch(raw)
	}
	e, probs := ParseEvent(raw, 0)
	return []Event{e}, probs
}

// fixtures returns the event files of testdata/events/dir, without the .want.json files.
func fixtures(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "events", dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".want.json") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return out
}

func TestEventFixturesValid(t *testing.T) {
	for _, file := range fixtures(t, "valid") {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			events, probs := parseFixture(name, raw)
			if len(probs) != 0 {
				t.Fatalf("problems %+v, want none", probs)
			}
			for _, e := range events {
				checkRoundTrip(t, e)
			}
		})
	}
}

// checkRoundTrip checks that AppendJSON gives compact JSON that parses back
// to the same event.
func checkRoundTrip(t *testing.T, e Event) {
	t.Helper()
	out := e.AppendJSON(nil)
	if !json.Valid(out) {
		t.Fatalf("AppendJSON gave invalid JSON: %s", out)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, out); err != nil || !bytes.Equal(c.Bytes(), out) {
		t.Fatalf("AppendJSON gave JSON that is not compact: %s", out)
	}
	back, probs := ParseEvent(out, 0)
	if len(probs) != 0 {
		t.Fatalf("reparse of %s: problems %+v", out, probs)
	}
	if got, want := len(back.Attrs), len(e.Attrs); got != want {
		t.Fatalf("reparse: %d attributes, want %d", got, want)
	}
	for i := range e.Attrs {
		if got, want := back.Attrs[i].Name, e.Attrs[i].Name; got != want {
			t.Fatalf("reparse: attribute %d name=%q, want %q", i, got, want)
		}
		if got, want := string(back.Attrs[i].Value), string(e.Attrs[i].Value); got != want {
			t.Fatalf("reparse: %s=%s, want %s", e.Attrs[i].Name, got, want)
		}
	}
	if got, want := string(back.Data), string(e.Data); got != want {
		t.Fatalf("reparse: data=%s, want %s", got, want)
	}
	if (back.Data == nil) != (e.Data == nil) {
		t.Fatalf("reparse: data nil=%v, want %v", back.Data == nil, e.Data == nil)
	}
	if got, want := back.DataBase64, e.DataBase64; got != want {
		t.Fatalf("reparse: data_base64=%q, want %q", got, want)
	}
	if back.ID != e.ID || back.Source != e.Source || back.Type != e.Type || back.SpecVersion != e.SpecVersion || back.PartitionKey != e.PartitionKey {
		t.Fatalf("reparse: copies %q %q %q %q %q, want %q %q %q %q %q",
			back.ID, back.Source, back.Type, back.SpecVersion, back.PartitionKey,
			e.ID, e.Source, e.Type, e.SpecVersion, e.PartitionKey)
	}
}

type wantProblem struct {
	Index   int    `json:"index"`
	ID      string `json:"id"`
	Pointer string `json:"pointer"`
	Keyword string `json:"keyword"`
}

func TestEventFixturesInvalid(t *testing.T) {
	for _, file := range fixtures(t, "invalid") {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantRaw, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".want.json")
			if err != nil {
				t.Fatal(err)
			}
			var want []wantProblem
			if err := json.Unmarshal(wantRaw, &want); err != nil {
				t.Fatal(err)
			}
			_, got := parseFixture(name, raw)
			checkProblems(t, got, want)
		})
	}
}

func checkProblems(t *testing.T, got []Problem, want []wantProblem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d problems %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if g.Index != w.Index {
			t.Fatalf("problem %d index=%d, want %d (%+v)", i, g.Index, w.Index, g)
		}
		if g.Pointer != w.Pointer {
			t.Fatalf("problem %d pointer=%q, want %q (%+v)", i, g.Pointer, w.Pointer, g)
		}
		if g.Keyword != w.Keyword {
			t.Fatalf("problem %d keyword=%q, want %q (%+v)", i, g.Keyword, w.Keyword, g)
		}
		if g.ID != w.ID {
			t.Fatalf("problem %d id=%q, want %q (%+v)", i, g.ID, w.ID, g)
		}
		if g.Code != CodeInvalid {
			t.Fatalf("problem %d code=%q, want %q", i, g.Code, CodeInvalid)
		}
		if g.Message == "" {
			t.Fatalf("problem %d has no message", i)
		}
	}
}

func TestEventParsedFields(t *testing.T) {
	read := func(name string) Event {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", "events", "valid", name))
		if err != nil {
			t.Fatal(err)
		}
		e, probs := ParseEvent(raw, 0)
		if len(probs) != 0 {
			t.Fatalf("%s: problems %+v", name, probs)
		}
		return e
	}
	tests := []struct {
		file, field, got, want string
	}{
		{"full.json", "ID", read("full.json").ID, "e1"},
		{"full.json", "Source", read("full.json").Source, "https://registry.example/agency/42"},
		{"full.json", "Type", read("full.json").Type, "md.gov.person.registered"},
		{"full.json", "SpecVersion", read("full.json").SpecVersion, "1.0"},
		{"full.json", "PartitionKey", read("full.json").PartitionKey, "2000123456789"},
		{"full.json", "names", attrNames(read("full.json")), "specversion id source type datacontenttype dataschema subject time partitionkey traceparent tracestate"},
		{"full.json", "Data", string(read("full.json").Data), `{"idnp":"2000123456789","name":{"first":"Ion","last":"Popescu"},"born":"1990-01-01","tags":["a","b"],"n":1500.0,"ok":true,"none":null}`},
		{"pretty.json", "Data", string(read("pretty.json").Data), `{"a":[1,2,{"b":"x y"}],"c":"  spaces  kept  "}`},
		{"data-null.json", "Data", string(read("data-null.json").Data), "null"},
		{"data-base64.json", "DataBase64", read("data-base64.json").DataBase64, "3q2+7w=="},
		{"data-base64-null-with-data.json", "DataBase64", read("data-base64-null-with-data.json").DataBase64, ""},
		{"null-optional.json", "names", attrNames(read("null-optional.json")), "specversion id source type"},
		{"escaped-member-name.json", "ID", read("escaped-member-name.json").ID, "e1"},
		{"escapes.json", "ID", read("escapes.json").ID, "e1"},
		{"escapes.json", "Source", read("escapes.json").Source, "https://registry.example/x"},
		{"escapes.json", "subject", strAttr(read("escapes.json"), "subject"), "quote \" backslash \\ e\u0301 😀"},
		{"escapes.json", "subject raw", string(mustAttr(read("escapes.json"), "subject")), `"quote \" backslash \\ e\u0301 \ud83d\ude00"`},
		{"extension-types.json", "comexampleothervalue", string(mustAttr(read("extension-types.json"), "comexampleothervalue")), "5"},
		{"extension-types.json", "flag", string(mustAttr(read("extension-types.json"), "flag")), "false"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.field, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("%s=%q, want %q", tt.field, tt.got, tt.want)
			}
		})
	}
}

func attrNames(e Event) string {
	var names []string
	for _, a := range e.Attrs {
		names = append(names, a.Name)
	}
	return strings.Join(names, " ")
}

func mustAttr(e Event, name string) json.RawMessage {
	v, ok := e.Attr(name)
	if !ok {
		return json.RawMessage("<absent>")
	}
	return v
}

func TestEventAttrMethods(t *testing.T) {
	e, probs := ParseEvent([]byte(`{"specversion":"1.0","id":"e1","source":"/s","type":"t","partitionkey":"k1","recordedtime":"2000-01-01T00:00:00Z","data":{"a":1}}`), 0)
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	e.SetStringAttr("recordedtime", "2024-05-01T12:00:00Z") // replaces
	e.SetStringAttr("authtype", "service_account")          // appends
	e.SetStringAttr("authid", "civil \"registry\"\n")       // needs escaping
	e.SetAttr("testevent", json.RawMessage("true"))
	e.SetStringAttr("partitionkey", "k2")
	e.SetStringAttr("id", "e2")
	e.DeleteAttr("source")
	e.DeleteAttr("nosuch")

	tests := []struct{ what, got, want string }{
		{"names", attrNames(e), "specversion id type partitionkey recordedtime authtype authid testevent"},
		{"recordedtime", e.StringAttr("recordedtime"), "2024-05-01T12:00:00Z"},
		{"authid", e.StringAttr("authid"), "civil \"registry\"\n"},
		{"testevent", string(mustAttr(e, "testevent")), "true"},
		{"StringAttr of a boolean", e.StringAttr("testevent"), ""},
		{"StringAttr of an absent attribute", e.StringAttr("nosuch"), ""},
		{"PartitionKey", e.PartitionKey, "k2"},
		{"ID", e.ID, "e2"},
		{"Source", e.Source, ""},
		{"AppendJSON", string(e.AppendJSON(nil)), `{"specversion":"1.0","id":"e2","type":"t","partitionkey":"k2","recordedtime":"2024-05-01T12:00:00Z","authtype":"service_account","authid":"civil \"registry\"\n","testevent":true,"data":{"a":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("%s=%q, want %q", tt.what, tt.got, tt.want)
			}
		})
	}
}

// SetAttr on one event of a batch must not change its neighbours, which share
// an allocation.
func TestBatchSetAttrIsolation(t *testing.T) {
	body := []byte(`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]`)
	events, probs := ParseBatch(body)
	if len(probs) != 0 || len(events) != 2 {
		t.Fatalf("%d events, problems %+v", len(events), probs)
	}
	events[0].SetStringAttr("recordedtime", "2024-05-01T12:00:00Z")
	events[0].SetStringAttr("authid", "x")
	if got, want := attrNames(events[1]), "specversion id source type"; got != want {
		t.Fatalf("second event names=%q, want %q", got, want)
	}
	if got, want := events[1].ID, "b"; got != want {
		t.Fatalf("second event id=%q, want %q", got, want)
	}
	out := events[0].AppendJSON(nil)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if got, want := len(m), 6; got != want {
		t.Fatalf("AppendJSON has %d members, want %d: %s", got, want, out)
	}
}

// AppendJSON after SetAttr of existing names has no duplicate names.
func TestEventAppendJSONNoDuplicates(t *testing.T) {
	e, _ := ParseEvent([]byte(`{"specversion":"1.0","id":"e1","source":"/s","type":"t","authtype":"user","authid":"me","testevent":false,"recordedtime":"2000-01-01T00:00:00Z"}`), 0)
	for i := 0; i < 3; i++ {
		e.SetStringAttr("recordedtime", "2024-05-01T12:00:00Z")
		e.SetStringAttr("authtype", "service_account")
		e.SetStringAttr("authid", "civil-registry")
		e.SetAttr("testevent", json.RawMessage("true"))
	}
	out := e.AppendJSON(nil)
	dec := json.NewDecoder(bytes.NewReader(out))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		name := tok.(string)
		if seen[name] {
			t.Fatalf("duplicate name %q in %s", name, out)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := len(seen), 8; got != want {
		t.Fatalf("%d names, want %d: %s", got, want, out)
	}
}

func TestEventDataIsJSON(t *testing.T) {
	tests := []struct {
		contentType string // "-" for absent
		want        bool
	}{
		{"-", true},
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{"text/json", true},
		{"application/cloudevents+json", true},
		{"application/vnd.example.person+JSON;v=1", true},
		{"application/xml", false},
		{"text/plain", false},
		{"application/jsonx", false},
		{"application/xjson", false},
		{"application/json-seq", false},
		{"json", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			var e Event
			if tt.contentType != "-" {
				e.SetStringAttr("datacontenttype", tt.contentType)
			}
			if got := e.DataIsJSON(); got != tt.want {
				t.Fatalf("DataIsJSON()=%v, want %v", got, tt.want)
			}
		})
	}
}

func TestMediaType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"application/cloudevents+json", "application/cloudevents+json"},
		{"Application/CloudEvents+JSON; charset=utf-8", "application/cloudevents+json"},
		{"application/cloudevents-batch+json;charset=UTF-8", "application/cloudevents-batch+json"},
		{"text/plain ; charset=\"utf-8\" ; format=flowed", "text/plain"},
		{"text/plain;", "text/plain"},
		{"text/plain; a=\"q\\\"uoted\"", "text/plain"},
		{"", ""},
		{"json", ""},
		{"application/", ""},
		{"/json", ""},
		{"application/json; charset", ""},
		{"application/json; =x", ""},
		{"application/json; a=\"unterminated", ""},
		{"application /json", ""},
		{"application/json x", ""},
		{"application/json, text/plain", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := MediaType(tt.in); got != tt.want {
				t.Fatalf("MediaType(%q)=%q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewEvent(t *testing.T) {
	attrs := func(ct string, more ...Attr) []Attr {
		a := []Attr{
			AttrFromString("specversion", "1.0"),
			AttrFromString("id", "b1"),
			AttrFromString("source", "/s"),
			AttrFromString("type", "t"),
		}
		if ct != "" {
			a = append(a, AttrFromString("datacontenttype", ct))
		}
		return append(a, more...)
	}
	tests := []struct {
		name       string
		attrs      []Attr
		data       string
		wantData   string // "<nil>" for none
		wantBase64 string
		want       []wantProblem
	}{
		{name: "json body", attrs: attrs("application/json"), data: "{\n  \"a\": [1, 2]\n}\n", wantData: `{"a":[1,2]}`},
		{name: "json body without content type", attrs: attrs(""), data: `"text"`, wantData: `"text"`},
		{name: "+json body", attrs: attrs("application/vnd.x+json; charset=utf-8"), data: ` 42 `, wantData: `42`},
		{name: "binary body", attrs: attrs("application/octet-stream"), data: "\x00\x01\xfe", wantData: "<nil>", wantBase64: "AAH+"},
		{name: "text body", attrs: attrs("text/plain"), data: "héllo", wantData: "<nil>", wantBase64: base64.StdEncoding.EncodeToString([]byte("héllo"))},
		{name: "empty body", attrs: attrs("application/json"), data: "", wantData: "<nil>"},
		{name: "malformed json body", attrs: attrs("application/json"), data: `{"a":`, wantData: "<nil>",
			want: []wantProblem{{Pointer: "/data", Keyword: "json", ID: "b1"}}},
		{name: "two json values", attrs: attrs(""), data: `1 2`, wantData: "<nil>",
			want: []wantProblem{{Pointer: "/data", Keyword: "json", ID: "b1"}}},
		{name: "testevent from string", attrs: attrs("", AttrFromString("testevent", "true")), wantData: "<nil>"},
		{name: "testevent not boolean", attrs: attrs("", AttrFromString("testevent", "TRUE")), wantData: "<nil>",
			want: []wantProblem{{Pointer: "/testevent", Keyword: "type", ID: "b1"}}},
		{name: "extension stays a string", attrs: attrs("", AttrFromString("count", "5")), wantData: "<nil>"},
		{name: "attribute value not JSON", attrs: attrs("", Attr{Name: "x", Value: json.RawMessage(`{`)}), wantData: "<nil>",
			want: []wantProblem{{Pointer: "/x", Keyword: "json", ID: "b1"}}},
		{name: "attribute named data", attrs: attrs("", AttrFromString("data", "x")), wantData: "<nil>",
			want: []wantProblem{{Pointer: "/data", Keyword: "name", ID: "b1"}}},
		{name: "duplicate attribute", attrs: attrs("", AttrFromString("id", "b2")), wantData: "<nil>",
			want: []wantProblem{{Pointer: "/id", Keyword: "duplicate", ID: "b1"}}},
		{name: "rules shared with the JSON format", attrs: []Attr{AttrFromString("specversion", "0.3"), AttrFromString("id", ""), AttrFromString("time", "x")}, wantData: "<nil>",
			want: []wantProblem{{Pointer: "/specversion", Keyword: "specversion"}, {Pointer: "/id", Keyword: "nonempty"}, {Pointer: "/time", Keyword: "format"}, {Pointer: "/source", Keyword: "required"}, {Pointer: "/type", Keyword: "required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data []byte
			if tt.data != "" {
				data = []byte(tt.data)
			}
			e, probs := NewEvent(tt.attrs, data, 0)
			checkProblems(t, probs, tt.want)
			gotData := "<nil>"
			if e.Data != nil {
				gotData = string(e.Data)
			}
			if gotData != tt.wantData {
				t.Fatalf("Data=%s, want %s", gotData, tt.wantData)
			}
			if e.DataBase64 != tt.wantBase64 {
				t.Fatalf("DataBase64=%q, want %q", e.DataBase64, tt.wantBase64)
			}
			if len(probs) == 0 {
				checkRoundTrip(t, e)
			}
		})
	}
}

func TestBatchEvents(t *testing.T) {
	tests := []struct {
		body    string
		wantIDs string
	}{
		{`[]`, ""},
		{` [ ] `, ""},
		{`[{"specversion":"1.0","id":"a","source":"/s","type":"t"}]`, "a"},
		{`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t","data":[1, 2]}]`, "a b"},
		{`[{"specversion":"1.0","id":"a","source":"/s","type":"t"}, 7, {"specversion":"1.0","id":"c","source":"/s","type":"t"}]`, "a  c"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			events, _ := ParseBatch([]byte(tt.body))
			var ids []string
			for _, e := range events {
				ids = append(ids, e.ID)
			}
			if got := strings.Join(ids, " "); got != tt.wantIDs {
				t.Fatalf("ids=%q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func TestEventTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"2024-05-01T12:34:56Z", true},
		{"2024-05-01T12:34:56.123456789Z", true},
		{"2024-05-01T12:34:56+14:00", true},
		{"2024-05-01T12:34:56-23:59", true},
		{"2024-05-01t12:34:56z", true},
		{"2000-02-29T00:00:00Z", true},
		{"2016-12-31T23:59:60Z", true},
		{"1900-02-29T00:00:00Z", false},
		{"2024-04-31T00:00:00Z", false},
		{"2024-00-01T00:00:00Z", false},
		{"2024-05-00T00:00:00Z", false},
		{"2024-05-01T24:00:00Z", false},
		{"2024-05-01T12:60:00Z", false},
		{"2024-05-01T12:00:61Z", false},
		{"2024-05-01T12:00:00.Z", false},
		{"2024-05-01T12:00:00+24:00", false},
		{"2024-05-01T12:00:00+0200", false},
		{"2024-05-01T12:00:00Z ", false},
		{"2024-5-01T12:00:00Z", false},
		{"+2024-05-01T12:00:00Z", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := validTimestamp([]byte(tt.in)); got != tt.want {
				t.Fatalf("validTimestamp(%q)=%v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEventURI(t *testing.T) {
	tests := []struct {
		in            string
		ref, absolute bool
	}{
		{"https://github.com/cloudevents", true, true},
		{"mailto:cncf-wg-serverless@lists.cncf.io", true, true},
		{"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", true, true},
		{"/cloudevents/spec/pull/123", true, false},
		{"1-555-123-4567", true, false},
		{"//host.example/path", true, false},
		{"http://[::1]:8080/x", true, true},
		{"http://h/p?q=1#f", true, false},
		{"a:", true, true},
		{"./a:b", true, false},
		{"http://h/a b", false, false},
		{"http://h/%zz", false, false},
		{"http://h:x/", false, false},
		{"http://[::1/", false, false},
		{"1a:b", false, false},
		{":b", false, false},
		{"http://h/#a#b", false, false},
		{"http://h/ä", false, false},
		{"http://h/<x>", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := checkURI([]byte(tt.in), false) == ""; got != tt.ref {
				t.Fatalf("URI-reference %q valid=%v, want %v", tt.in, got, tt.ref)
			}
			if got := checkURI([]byte(tt.in), true) == ""; got != tt.absolute {
				t.Fatalf("absolute URI %q valid=%v, want %v", tt.in, got, tt.absolute)
			}
		})
	}
}

// validBase64 agrees with encoding/base64 on text without line breaks.
func TestEventBase64(t *testing.T) {
	for _, in := range []string{"", "AA==", "AAA=", "AAAA", "3q2+7w==", "A", "AA", "AAA", "A===", "====", "AA=A", "AB-_", "AA==AA==", "=AAA", "AAAAAA==", "+/+/"} {
		t.Run(in, func(t *testing.T) {
			_, err := base64.StdEncoding.DecodeString(in)
			if got, want := validBase64([]byte(in)), err == nil; got != want {
				t.Fatalf("validBase64(%q)=%v, want %v", in, got, want)
			}
		})
	}
}

// The scanner accepts exactly what encoding/json accepts, in UTF-8.
func TestEventScannerAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`0`, `-0`, `-`, `01`, `1.`, `1.5e`, `1e+5`, `1E-5`, `-1.0e10`, `.5`, `+1`,
		`""`, `"\u00e9"`, `"\u00"`, `"\x"`, `"\/"`, `"a`, `"\"`,
		`[]`, `[1,]`, `[,1]`, `[1 2]`, `{}`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `{"a":1}}`,
		`true`, `tru`, `nul`, `null `, ` null`, `nulll`, `falsey`,
		"[\"\t\"]", "{\"a\":\n1}",
	} {
		t.Run(in, func(t *testing.T) {
			s := scanner{buf: []byte(in)}
			s.skipSpace()
			ok := s.value(0) != kindInvalid
			s.skipSpace()
			ok = ok && s.pos == len(in)
			if want := json.Valid([]byte(in)); ok != want {
				t.Fatalf("scanner valid=%v, json.Valid=%v (error %q at %d)", ok, want, s.errMsg, s.errPos)
			}
		})
	}
}

func strAttr(e Event, name string) string { return e.StringAttr(name) }

// With problems, the copies still hold what the producer sent.
func TestEventCopiesOfInvalidEvent(t *testing.T) {
	e, probs := ParseEvent([]byte(`{"specversion":"0.3","id":"e1","source":"a b","type":"t","partitionkey":""}`), 0)
	if len(probs) != 3 {
		t.Fatalf("problems %+v, want 3", probs)
	}
	tests := []struct{ what, got, want string }{
		{"SpecVersion", e.SpecVersion, "0.3"},
		{"ID", e.ID, "e1"},
		{"Source", e.Source, "a b"},
		{"Type", e.Type, "t"},
		{"PartitionKey", e.PartitionKey, ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Fatalf("%s=%q, want %q", tt.what, tt.got, tt.want)
		}
	}
}
