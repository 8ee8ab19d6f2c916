package schemas

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // a substring of the error, after "compile schema test.json: "
	}{
		{"invalid JSON", `{"type": "object",}`, "invalid JSON: invalid character '}'"},
		{"truncated JSON", `{"type": `, "invalid JSON: unexpected EOF"},
		{"empty", ``, "invalid JSON: empty document"},
		{"trailing data", `{} {}`, "invalid JSON: unexpected data after the JSON value"},
		{"array", `[{"type": "string"}]`, "a schema must be a JSON object or boolean, got array"},
		{"string", `"string"`, "a schema must be a JSON object or boolean, got string"},
		{"null", `null`, "a schema must be a JSON object or boolean, got null"},
		{"unknown $schema", `{"$schema": "https://example.org/my-schema"}`, `/$schema: unsupported $schema "https://example.org/my-schema"`},
		{"draft-04", `{"$schema": "http://json-schema.org/draft-04/schema#"}`, `unsupported $schema "http://json-schema.org/draft-04/schema#"`},
		{"$schema not a string", `{"$schema": 7}`, "/$schema: $schema must be a string, got 7"},
		{"nested unknown $schema", `{"$defs": {"a": {"$schema": "urn:x"}}}`, `/$defs/a/$schema: unsupported $schema "urn:x"`},
		{"type number", `{"type": 5}`, "invalid 2020-12 schema: /type: type must be a string or an array of strings, got 5"},
		{"unknown type", `{"properties": {"a": {"type": "strin"}}}`, `/properties/a/type: unknown type "strin"`},
		{"negative minLength", `{"properties": {"name": {"minLength": -1}}}`, "/properties/name/minLength: minLength must be a non-negative integer, got -1"},
		{"fractional maxItems", `{"maxItems": 1.5}`, "/maxItems: maxItems must be a non-negative integer, got 1.5"},
		{"invalid pattern", `{"properties": {"idnp": {"pattern": "^[0-9{13}$"}}}`, `/properties/idnp/pattern: "^[0-9{13}$" is not a valid regular expression: error parsing regexp: missing closing ]`},
		{"lookahead pattern", `{"pattern": "^(?=a)"}`, `/pattern: "^(?=a)" is not a valid regular expression`},
		{"invalid patternProperties", `{"patternProperties": {"(": {}}}`, `/patternProperties/(: "(" is not a valid regular expression`},
		{"required not array", `{"required": "idnp"}`, `/required: required must be an array of strings, got "idnp"`},
		{"required twice", `{"required": ["a", "a"]}`, `/required/1: "a" is listed twice`},
		{"multipleOf zero", `{"multipleOf": 0}`, "/multipleOf: multipleOf must be a number greater than 0, got 0"},
		{"maximum string", `{"maximum": "10"}`, `/maximum: maximum must be a number, got "10"`},
		{"subschema not a schema", `{"properties": {"a": 5}}`, "/properties/a: a schema must be an object or boolean, got 5"},
		{"empty allOf", `{"allOf": []}`, "/allOf: allOf must be a non-empty array of schemas, got an array"},
		{"several problems", `{"minLength": -1, "type": 5}`, "/minLength: minLength must be a non-negative integer, got -1; /type: type must be"},
		{"boolean exclusiveMaximum", `{"$schema": "http://json-schema.org/draft-07/schema#", "maximum": 5, "exclusiveMaximum": true}`,
			"invalid draft-07 schema: /exclusiveMaximum: exclusiveMaximum must be a number since draft-06 (the draft-04 boolean form is not supported), got true"},
		{"tuple items in 2020-12", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "items": [{}]}`, "/items: items must be a schema in 2020-12; for tuples use prefixItems"},
		{"additionalItems in 2020-12", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "additionalItems": false}`, `/additionalItems: additionalItems is not a 2020-12 keyword; use "items" after "prefixItems"`},
		{"dependencies in 2020-12", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "dependencies": {"a": ["b"]}}`, `/dependencies: dependencies is not a 2020-12 keyword; use "dependentRequired" or "dependentSchemas"`},
		{"prefixItems in draft-07", `{"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{}]}`, "/prefixItems: prefixItems is a 2020-12 keyword but the schema is draft-07"},
		{"ambiguous draft", `{"prefixItems": [{}], "additionalItems": false}`, "without $schema the draft is ambiguous: prefixItems is a 2020-12 keyword but additionalItems predates 2020-12; declare $schema"},
		{"unresolvable pointer", `{"properties": {"a": {"$ref": "#/$defs/missing"}}}`, `reference resolution failed at #/properties/a/$ref ("#/$defs/missing")`},
		{"unresolvable anchor", `{"$ref": "#nowhere"}`, `reference resolution failed at #/$ref ("#nowhere")`},
		{"relative ref without base", `{"$ref": "address.json"}`, `$ref "address.json" points outside this document`},
		{"relative ref to another file", `{"$id": "https://example.org/person.json", "$ref": "address.json"}`, `$ref "https://example.org/address.json" points outside this document`},
		{"definitions and $defs collide", `{"$defs": {"s": {}}, "definitions": {"s": {}}}`, `/definitions/s: "s" is defined in both $defs and definitions`},
		{"urn ref", `{"$ref": "urn:example:address"}`, `("urn:example:address")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("test.json", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Compile succeeded, want error containing %q", tt.want)
			}
			const prefix = "compile schema test.json: "
			if got := err.Error(); !strings.HasPrefix(got, prefix) || !strings.Contains(got, tt.want) {
				t.Fatalf("error=%q, want %q containing %q", got, prefix, tt.want)
			}
		})
	}
}

// A remote $ref fails compilation without any request being made.
func TestCompileNeverFetches(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write([]byte(`{"type": "string"}`))
	}))
	defer srv.Close()

	tests := []struct {
		name string
		doc  string
	}{
		{"absolute", `{"properties": {"a": {"$ref": "` + srv.URL + `/string.json"}}}`},
		{"relative to $id", `{"$id": "` + srv.URL + `/person.json", "properties": {"a": {"$ref": "string.json"}}}`},
		{"draft-07", `{"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "` + srv.URL + `/string.json"}`},
		{"$dynamicRef", `{"$dynamicRef": "` + srv.URL + `/string.json#meta"}`},
		{"$schema", `{"$schema": "` + srv.URL + `/meta.json"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("remote.json", []byte(tt.doc))
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("error=%q, want it to name %s", err, srv.URL)
			}
			if n := requests.Load(); n != 0 {
				t.Fatalf("%d requests made to %s, want none", n, srv.URL)
			}
		})
	}
}

func TestCompileLocalRefs(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		valid   string
		invalid string
	}{
		{"$defs", `{"$ref": "#/$defs/s", "$defs": {"s": {"type": "string"}}}`, `"a"`, `1`},
		{"definitions in 2020-12", `{"$ref": "#/definitions/s", "definitions": {"s": {"type": "string"}}}`, `"a"`, `1`},
		{"definitions beside $defs", `{"$defs": {"t": {}}, "$ref": "#/definitions/s", "definitions": {"s": {"type": "string"}}}`, `"a"`, `1`},
		{"definitions in draft-07", `{"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "#/definitions/s", "definitions": {"s": {"type": "string"}}}`, `"a"`, `1`},
		{"$anchor", `{"$ref": "#s", "$defs": {"s": {"$anchor": "s", "type": "string"}}}`, `"a"`, `1`},
		{"draft-07 $id anchor", `{"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "#s", "definitions": {"s": {"$id": "#s", "type": "string"}}}`, `"a"`, `1`},
		{"embedded resource by $id", `{"$id": "https://example.org/person.json", "properties": {"home": {"$ref": "address.json"}},
			"$defs": {"address": {"$id": "address.json", "type": "object", "required": ["city"]}}}`, `{"home": {"city": "Cahul"}}`, `{"home": {}}`},
		{"pointer into embedded resource", `{"$id": "https://example.org/person.json", "properties": {"home": {"$ref": "address.json#/properties/city"}},
			"$defs": {"address": {"$id": "address.json", "properties": {"city": {"type": "string"}}}}}`, `{"home": "Cahul"}`, `{"home": 1}`},
		{"recursive", `{"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["v"]}`, `{"v": 1, "next": {"v": 2}}`, `{"v": 1, "next": {}}`},
		{"escaped pointer", `{"$ref": "#/$defs/a~1b", "$defs": {"a/b": {"type": "string"}}}`, `"a"`, `1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile("local.json", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if got := s.Validate(mustDecode(t, tt.valid)); got != nil {
				t.Fatalf("Validate(%s)=%v, want valid", tt.valid, got)
			}
			if got := s.Validate(mustDecode(t, tt.invalid)); got == nil {
				t.Fatalf("Validate(%s) is valid, want violations", tt.invalid)
			}
		})
	}
}

func TestCompileBooleanSchemas(t *testing.T) {
	yes, err := Compile("true.json", []byte(`true`))
	if err != nil {
		t.Fatal(err)
	}
	if got := yes.Validate(mustDecode(t, `{"a": 1}`)); got != nil {
		t.Fatalf("true: Validate=%v, want valid", got)
	}
	no, err := Compile("false.json", []byte(` false `))
	if err != nil {
		t.Fatal(err)
	}
	got := no.Validate(mustDecode(t, `1`))
	want := []Violation{{Pointer: "", Keyword: "false", Message: "no value is allowed here: the schema is false"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("false: Validate=%v, want %v", got, want)
	}
}

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("Decode(%s): %v", s, err)
	}
	return v
}
