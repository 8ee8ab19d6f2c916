package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustCompile(t testing.TB, doc string) *Schema {
	t.Helper()
	s, err := Compile("test.json", []byte(doc))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func TestFormatAsserted(t *testing.T) {
	tests := []struct {
		format string
		valid  []string
		bad    []string
	}{
		{"date", []string{`"2024-02-29"`}, []string{`"2023-02-29"`, `"2024-2-1"`, `"01.02.2024"`}},
		{"date-time", []string{`"2024-05-01T10:00:00Z"`, `"2024-05-01T10:00:00.123+03:00"`}, []string{`"2024-05-01 10:00:00Z"`, `"2024-05-01T10:00:00"`, `"2024-05-01"`}},
		{"time", []string{`"10:00:00Z"`}, []string{`"25:00:00Z"`}},
		{"duration", []string{`"P1DT2H"`}, []string{`"1 day"`}},
		{"email", []string{`"ion@example.md"`}, []string{`"ion"`, `"ion@"`, `"@example.md"`}},
		{"uuid", []string{`"0f8fad5b-d9cb-469f-a165-70867728950e"`}, []string{`"0f8fad5b"`, `"0f8fad5b-d9cb-469f-a165-70867728950z"`}},
		{"uri", []string{`"https://example.org/a?b=c"`, `"urn:isbn:0451450523"`}, []string{`"/relative/path"`, `"not a uri"`}},
		{"uri-reference", []string{`"/relative/path"`}, []string{`"\\\\server"`}},
		{"ipv4", []string{`"192.168.0.1"`}, []string{`"256.1.1.1"`, `"192.168.0"`}},
		{"ipv6", []string{`"::1"`}, []string{`"12345::"`}},
		{"hostname", []string{`"example.org"`}, []string{`"-bad-.org"`}},
		{"regex", []string{`"^[a-z]+$"`}, []string{`"(["`}},
		{"json-pointer", []string{`"/a/b"`}, []string{`"a/b"`}},
		// A format applies to strings only, and an unknown format is an annotation.
		{"date", []string{`20240101`, `null`}, nil},
		{"x-phone", []string{`"anything"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			s := mustCompile(t, fmt.Sprintf(`{"format": %q}`, tt.format))
			for _, v := range tt.valid {
				if got := s.Validate(mustDecode(t, v)); got != nil {
					t.Fatalf("Validate(%s)=%v, want valid", v, got)
				}
			}
			for _, v := range tt.bad {
				got := s.Validate(mustDecode(t, v))
				want := fmt.Sprintf("%s does not match format %q", v, tt.format)
				if len(got) != 1 || got[0].Keyword != "format" || got[0].Message != want {
					t.Fatalf("Validate(%s)=%v, want one format violation %q", v, got, want)
				}
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct {
		schema string
		value  string
		valid  bool
	}{
		// Beyond 2^53 float64 cannot tell these apart; json.Number can.
		{`{"maximum": 9007199254740993}`, `9007199254740993`, true},
		{`{"maximum": 9007199254740993}`, `9007199254740994`, false},
		{`{"const": 12345678901234567890}`, `12345678901234567890`, true},
		{`{"const": 12345678901234567890}`, `12345678901234567891`, false},
		{`{"enum": [98765432109876543210]}`, `98765432109876543211`, false},
		{`{"type": "integer"}`, `123456789012345678901234567890`, true},
		{`{"type": "integer"}`, `1.0`, true},
		{`{"type": "integer"}`, `1.5`, false},
		{`{"type": "integer"}`, `1e3`, true},
		// Decimals are exact: 0.3 is a multiple of 0.1.
		{`{"multipleOf": 0.1}`, `0.3`, true},
		{`{"multipleOf": 0.1}`, `0.35`, false},
		{`{"multipleOf": 0.01}`, `19.99`, true},
		{`{"multipleOf": 0.01}`, `1e-3`, false},
		{`{"exclusiveMinimum": 0.1}`, `0.1000000000000000000001`, true},
		{`{"exclusiveMinimum": 0.1}`, `0.1`, false},
		{`{"minimum": -1e400}`, `-1e399`, true},
	}
	for _, tt := range tests {
		t.Run(tt.schema+" "+tt.value, func(t *testing.T) {
			got := mustCompile(t, tt.schema).Validate(mustDecode(t, tt.value))
			if (got == nil) != tt.valid {
				t.Fatalf("Validate=%v, want valid=%v", got, tt.valid)
			}
		})
	}
}

// Each kaptinlin error code becomes one message of ours.
func TestMessages(t *testing.T) {
	tests := []struct {
		schema, value string
		want          []Violation
	}{
		{`{"type": "string"}`, `12`, []Violation{{"", "type", "expected string, got integer 12"}}},
		{`{"type": ["string", "null"]}`, `{}`, []Violation{{"", "type", "expected string or null, got object"}}},
		{`{"type": "integer"}`, `1.5`, []Violation{{"", "type", "expected integer, got number 1.5"}}},
		{`{"pattern": "^[0-9]{13}$"}`, `"123"`, []Violation{{"", "pattern", `"123" does not match pattern "^[0-9]{13}$"`}}},
		{`{"minLength": 3}`, `"ab"`, []Violation{{"", "minLength", `"ab" is 2 characters long; the minimum is 3`}}},
		{`{"maxLength": 3}`, `"ăîșțâ"`, []Violation{{"", "maxLength", `"ăîșțâ" is 5 characters long; the maximum is 3`}}},
		{`{"maxLength": 3}`, `"` + strings.Repeat("x", 50) + `"`, []Violation{{"", "maxLength", `"` + strings.Repeat("x", 40) + `"… is 50 characters long; the maximum is 3`}}},
		{`{"minimum": 10}`, `9.5`, []Violation{{"", "minimum", "9.5 is less than the minimum 10"}}},
		{`{"maximum": 10}`, `11`, []Violation{{"", "maximum", "11 is greater than the maximum 10"}}},
		{`{"exclusiveMinimum": 0}`, `0`, []Violation{{"", "exclusiveMinimum", "0 must be greater than 0"}}},
		{`{"exclusiveMaximum": 1.5}`, `2`, []Violation{{"", "exclusiveMaximum", "2 must be less than 1.5"}}},
		{`{"multipleOf": 0.5}`, `0.7`, []Violation{{"", "multipleOf", "0.7 is not a multiple of 0.5"}}},
		{`{"enum": ["A", 1, null]}`, `"a"`, []Violation{{"", "enum", `"a" is not one of "A", 1 or null`}}},
		{`{"const": {"v": 1}}`, `{"v": 2}`, []Violation{{"", "const", `an object does not equal the constant {"v":1}`}}},
		{`{"const": null}`, `0`, []Violation{{"", "const", `0 does not equal the constant null`}}},
		{`{"minItems": 2}`, `[1]`, []Violation{{"", "minItems", "array has 1 item; the minimum is 2"}}},
		{`{"maxItems": 1}`, `[1, 2]`, []Violation{{"", "maxItems", "array has 2 items; the maximum is 1"}}},
		{`{"uniqueItems": true}`, `[1, 2, 1.0]`, []Violation{{"", "uniqueItems", "items 0 and 2 are equal; items must be unique"}}},
		{`{"minProperties": 2}`, `{"a": 1}`, []Violation{{"", "minProperties", "object has 1 property; the minimum is 2"}}},
		{`{"maxProperties": 1}`, `{"a": 1, "b": 2}`, []Violation{{"", "maxProperties", "object has 2 properties; the maximum is 1"}}},
		{`{"required": ["a", "b"]}`, `{}`, []Violation{{"/a", "required", `missing required property "a"`}, {"/b", "required", `missing required property "b"`}}},
		{`{"required": ["a/b"]}`, `{}`, []Violation{{"/a~1b", "required", `missing required property "a/b"`}}},
		{`{"dependentRequired": {"a": ["b", "c"]}}`, `{"a": 1}`, []Violation{
			{"/b", "dependentRequired", `property "b" is required when "a" is present`},
			{"/c", "dependentRequired", `property "c" is required when "a" is present`}}},
		{`{"additionalProperties": false, "properties": {"a": true}}`, `{"a": 1, "b~": 2}`, []Violation{{"/b~0", "additionalProperties", `property "b~" is not allowed`}}},
		{`{"additionalProperties": {"type": "string"}}`, `{"a": 1}`, []Violation{{"/a", "type", "expected string, got integer 1"}}},
		{`{"patternProperties": {"^x-": {"type": "string"}}}`, `{"x-a": 1}`, []Violation{{"/x-a", "type", "expected string, got integer 1"}}},
		{`{"patternProperties": {"^x-": false}}`, `{"x-a": 1}`, []Violation{{"/x-a", "patternProperties", `property "x-a" is not allowed`}}},
		{`{"properties": {"a": false}}`, `{"a": 1}`, []Violation{{"/a", "properties", `property "a" is not allowed`}}},
		{`{"propertyNames": {"pattern": "^[a-z]+$"}}`, `{"Ab": 1}`, []Violation{{"/Ab", "pattern", `property name "Ab" does not match pattern "^[a-z]+$"`}}},
		{`{"prefixItems": [true], "items": false}`, `[1, 2]`, []Violation{{"/1", "items", "item 1 is not allowed"}}},
		{`{"items": {"type": "string"}}`, `["a", 1]`, []Violation{{"/1", "type", "expected string, got integer 1"}}},
		{`{"unevaluatedItems": false, "prefixItems": [true]}`, `[1, 2, 3]`, []Violation{
			{"/1", "unevaluatedItems", "item 1 is not allowed: no keyword evaluated it"},
			{"/2", "unevaluatedItems", "item 2 is not allowed: no keyword evaluated it"}}},
		{`{"contains": {"type": "string"}}`, `[1]`, []Violation{{"", "contains", "array has no item matching the contains schema"}}},
		{`{"contains": {"type": "string"}, "minContains": 2}`, `["a", 1]`, []Violation{{"", "minContains", "array has 1 item matching the contains schema; the minimum is 2"}}},
		{`{"anyOf": [{"type": "string"}, {"type": "integer"}]}`, `1.5`, []Violation{{"", "anyOf", "value matches none of the anyOf schemas"}}},
		{`{"oneOf": [{"type": "string"}, {"type": "integer"}]}`, `1.5`, []Violation{{"", "oneOf", "value matches none of the oneOf schemas"}}},
		{`{"oneOf": [{"type": "integer"}, {"minimum": 1}]}`, `5`, []Violation{{"", "oneOf", "value matches oneOf schemas 0, 1; it must match exactly one"}}},
		{`{"not": {"type": "integer"}}`, `5`, []Violation{{"", "not", `value must not match the "not" schema`}}},
		{`{"allOf": [{"minimum": 1}, {"maximum": 0}]}`, `5`, []Violation{{"", "maximum", "5 is greater than the maximum 0"}}},
		{`{"if": {"minimum": 10}, "then": {"multipleOf": 10}, "else": {"maximum": 5}}`, `12`, []Violation{{"", "multipleOf", "12 is not a multiple of 10"}}},
		{`{"if": {"minimum": 10}, "then": {"multipleOf": 10}, "else": {"maximum": 5}}`, `7`, []Violation{{"", "maximum", "7 is greater than the maximum 5"}}},
		{`{"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}`, `{"a": 1}`, []Violation{{"/a", "type", "expected string, got integer 1"}}},
		{`{"properties": {"a": {"$ref": "#/$defs/no"}}, "$defs": {"no": false}}`, `{"a": 1}`, []Violation{{"/a", "properties", `property "a" is not allowed`}}},
		{`{"dependentSchemas": {"a": {"required": ["b"]}}}`, `{"a": 1}`, []Violation{{"/b", "required", `missing required property "b"`}}},
		{`{"unevaluatedProperties": false, "allOf": [{"properties": {"a": true}}]}`, `{"a": 1, "b": 2}`, []Violation{{"/b", "unevaluatedProperties", `property "b" is not allowed`}}},
		{`{"unevaluatedProperties": {"type": "string"}}`, `{"b": 2}`, []Violation{{"/b", "type", "expected string, got integer 2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.schema+" "+tt.value, func(t *testing.T) {
			got := mustCompile(t, tt.schema).Validate(mustDecode(t, tt.value))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Validate:\n%s\nwant:\n%s", format(got), format(tt.want))
			}
		})
	}
}

// Every violation of an instance is reported, leaf causes only, sorted by
// pointer and keyword.
func TestMultipleViolations(t *testing.T) {
	s := mustCompile(t, `{
		"type": "object",
		"required": ["idnp", "name", "address"],
		"additionalProperties": false,
		"properties": {
			"idnp": {"type": "string", "pattern": "^[0-9]{13}$", "minLength": 13},
			"name": {"type": "string"},
			"birthDate": {"type": "string", "format": "date"},
			"address": {
				"type": "array",
				"items": {"type": "object", "required": ["street"], "properties": {"street": {"type": "string", "minLength": 1}, "zip": {"pattern": "^MD-"}}}
			}
		}
	}`)
	got := s.Validate(mustDecode(t, `{
		"idnp": "123",
		"birthDate": "2024-13-01",
		"address": [{"street": ""}, {"zip": "2001"}, {"street": "Ștefan cel Mare"}],
		"extra": 1
	}`))
	want := []Violation{
		{"/address/0/street", "minLength", `"" is 0 characters long; the minimum is 1`},
		{"/address/1/street", "required", `missing required property "street"`},
		{"/address/1/zip", "pattern", `"2001" does not match pattern "^MD-"`},
		{"/birthDate", "format", `"2024-13-01" does not match format "date"`},
		{"/extra", "additionalProperties", `property "extra" is not allowed`},
		{"/idnp", "minLength", `"123" is 3 characters long; the minimum is 13`},
		{"/idnp", "pattern", `"123" does not match pattern "^[0-9]{13}$"`},
		{"/name", "required", `missing required property "name"`},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Validate:\n%s\nwant:\n%s", format(got), format(want))
	}
}

func TestConcurrentValidate(t *testing.T) {
	s := compileFile(t, "testdata/2020-12/person.schema.json")
	valid := decodeFile(t, "testdata/2020-12/valid/person.full.json")
	var fixture struct {
		Instance json.RawMessage `json:"instance"`
	}
	if err := json.Unmarshal(readFile(t, "testdata/2020-12/invalid/person.refs-unevaluated.json"), &fixture); err != nil {
		t.Fatal(err)
	}
	invalid := mustDecode(t, string(fixture.Instance))
	want := s.Validate(invalid)
	if len(want) == 0 {
		t.Fatal("the invalid fixture is valid")
	}

	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if (g+i)%2 == 0 {
					if got := s.Validate(valid); got != nil {
						errs <- fmt.Sprintf("valid instance: %v", got)
						return
					}
				} else if got := s.Validate(invalid); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("invalid instance: %v, want %v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDecode(t *testing.T) {
	v, err := Decode([]byte(` {"n": 12345678901234567890, "d": 0.1} `))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if got, want := m["n"], json.Number("12345678901234567890"); got != want {
		t.Fatalf("n=%#v, want %#v", got, want)
	}
	if got, want := m["d"], json.Number("0.1"); got != want {
		t.Fatalf("d=%#v, want %#v", got, want)
	}
	for _, bad := range []string{``, `{`, `{} {}`, `1 2`, `{"a": 1,}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Fatalf("Decode(%q) succeeded, want an error", bad)
		}
	}
}
