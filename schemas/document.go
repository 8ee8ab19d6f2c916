package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strings"
)

// document is a schema document that has passed our own checks: valid JSON,
// a known draft, and keyword values of the right shape. kaptinlin accepts
// many malformed schemas silently (a negative minLength, an unknown
// $schema, a 2020-12 schema that uses "dependencies"), so these checks are
// the meta-schema validation it does not do offline.
type document struct {
	// data is the document to compile: the input, or a translation of it.
	data  []byte
	draft Draft
	// dependencies is set when the document spells dependentRequired and
	// dependentSchemas the draft-07 way, so violations can name it.
	dependencies bool
}

// keyword kinds: what shape a keyword's value must have.
type kind int

const (
	kSchema         kind = iota // a schema
	kSchemaArray                // a non-empty array of schemas
	kSchemaMap                  // an object whose values are schemas
	kItems                      // a schema, or before 2020-12 an array of schemas
	kDependencies               // an object of schemas or arrays of strings
	kStringArrayMap             // an object of arrays of strings
	kNonNegInt                  // an integer >= 0
	kNumber                     // a number
	kPositive                   // a number > 0
	kString                     // a string
	kRegex                      // a string holding a Go RE2 regular expression
	kBool                       // true or false
	kStringSet                  // an array of unique strings
	kType                       // a type name or a non-empty array of unique type names
	kArray                      // any array
	kBoolMap                    // an object of booleans
)

// kindOf returns the shape of a keyword of drafts 6 to 2020-12 whose value
// is constrained. Anything else (extensions, "default", "const") is not
// checked.
func kindOf(keyword string) (kind, bool) {
	switch keyword {
	case "not", "if", "then", "else", "additionalItems", "contains", "unevaluatedItems",
		"additionalProperties", "propertyNames", "unevaluatedProperties", "contentSchema":
		return kSchema, true
	case "allOf", "anyOf", "oneOf", "prefixItems":
		return kSchemaArray, true
	case "$defs", "definitions", "properties", "patternProperties", "dependentSchemas":
		return kSchemaMap, true
	case "items":
		return kItems, true
	case "dependencies":
		return kDependencies, true
	case "dependentRequired":
		return kStringArrayMap, true
	case "maxLength", "minLength", "maxItems", "minItems", "maxContains", "minContains",
		"maxProperties", "minProperties":
		return kNonNegInt, true
	case "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum":
		return kNumber, true
	case "multipleOf":
		return kPositive, true
	case "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
		"$comment", "format", "contentEncoding", "contentMediaType", "title", "description":
		return kString, true
	case "pattern":
		return kRegex, true
	case "$recursiveAnchor", "uniqueItems", "deprecated", "readOnly", "writeOnly":
		return kBool, true
	case "required":
		return kStringSet, true
	case "type":
		return kType, true
	case "enum", "examples":
		return kArray, true
	case "$vocabulary":
		return kBoolMap, true
	}
	return 0, false
}

// replacedIn2020 names the keywords 2020-12 dropped, with their successor.
var replacedIn2020 = map[string]string{
	"additionalItems":  `"items" after "prefixItems"`,
	"dependencies":     `"dependentRequired" or "dependentSchemas"`,
	"$recursiveRef":    `"$dynamicRef"`,
	"$recursiveAnchor": `"$dynamicAnchor"`,
}

var simpleTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// parseDocument decodes and checks a schema document. Errors name the
// problem and, for bad keywords, every offending location.
func parseDocument(data []byte) (*document, error) {
	root, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch root.(type) {
	case map[string]any, bool:
	default:
		return nil, fmt.Errorf("a schema must be a JSON object or boolean, got %s", jsonType(root))
	}

	scan := &walker{used: map[string]bool{}}
	scan.schema(root, "", 0)
	if len(scan.problems) > 0 {
		return nil, errors.New(strings.Join(scan.problems, "; "))
	}
	doc := &document{}
	if obj, ok := root.(map[string]any); ok && obj["$schema"] != nil {
		doc.draft, _ = draftOf(obj["$schema"].(string)) // checked by scan
	} else if doc.draft, err = inferDraft(scan.used); err != nil {
		return nil, err
	}
	doc.dependencies = scan.used["dependencies"] && !scan.used["dependentRequired"] && !scan.used["dependentSchemas"]

	check := &walker{}
	check.schema(root, "", doc.draft)
	if len(check.problems) > 0 {
		return nil, fmt.Errorf("invalid %s schema: %s", doc.draft, strings.Join(check.problems, "; "))
	}

	doc.data = data
	if len(scan.bothDefs) > 0 {
		// kaptinlin reads "definitions" as "$defs" only when "$defs" is
		// absent; merged, both "#/$defs/x" and "#/definitions/x" resolve.
		for _, at := range scan.bothDefs {
			defs, old := at.obj["$defs"].(map[string]any), at.obj["definitions"].(map[string]any)
			for name, s := range old {
				if _, dup := defs[name]; dup {
					return nil, fmt.Errorf("%s/definitions/%s: %q is defined in both $defs and definitions", at.ptr, escape(name), name)
				}
				defs[name] = s
			}
			delete(at.obj, "definitions")
		}
		if doc.data, err = json.Marshal(root); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// decode parses exactly one JSON value, with numbers as json.Number.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF {
			return nil, errors.New("empty document")
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return v, nil
}

// walker visits every subschema of a document. With draft 0 it only
// records the keywords used and checks "$schema"; with a draft it checks
// every keyword's value against that draft.
type walker struct {
	used     map[string]bool
	problems []string
	// bothDefs lists the schema objects with both "$defs" and "definitions".
	bothDefs []located
}

type located struct {
	ptr string
	obj map[string]any
}

func (w *walker) problem(ptr, format string, args ...any) {
	w.problems = append(w.problems, fmt.Sprintf("%s: ", pointerOrRoot(ptr))+fmt.Sprintf(format, args...))
}

func (w *walker) schema(v any, ptr string, draft Draft) {
	obj, ok := v.(map[string]any)
	if !ok {
		if _, ok := v.(bool); !ok {
			w.problem(ptr, "a schema must be an object or boolean, got %s", describe(v))
		}
		return
	}
	if raw, present := obj["$schema"]; present {
		s, isString := raw.(string)
		d, known := draftOf(s)
		switch {
		case !isString && draft == 0:
			w.problem(ptr+"/$schema", "$schema must be a string, got %s", describe(raw))
		case !known && draft == 0:
			w.problem(ptr+"/$schema", "unsupported $schema %q; use %s", s, supportedSchemaURIs)
		case known && draft != 0:
			draft = d
		}
	}
	if w.used != nil {
		_, defs := obj["$defs"].(map[string]any)
		_, definitions := obj["definitions"].(map[string]any)
		if defs && definitions {
			w.bothDefs = append(w.bothDefs, located{ptr, obj})
		}
	}
	for _, k := range sortedKeys(obj) {
		w.keyword(k, obj[k], ptr+"/"+escape(k), draft)
	}
}

func (w *walker) keyword(k string, v any, ptr string, draft Draft) {
	kind, known := kindOf(k)
	if !known {
		return
	}
	if w.used != nil {
		w.used[k] = true
		if _, ok := v.([]any); ok && k == "items" {
			w.used["items[]"] = true
		}
	}
	if draft != 0 {
		if next, dropped := replacedIn2020[k]; dropped && draft == Draft2020 {
			w.problem(ptr, "%s is not a 2020-12 keyword; use %s", k, next)
			return
		}
		if slices.Contains(keywords2020, k) && draft < Draft2020 {
			w.problem(ptr, "%s is a 2020-12 keyword but the schema is %s", k, draft)
			return
		}
	}
	check := draft != 0
	switch kind {
	case kSchema:
		w.schema(v, ptr, draft)
	case kSchemaArray:
		a, ok := v.([]any)
		if !ok || len(a) == 0 {
			if check {
				w.problem(ptr, "%s must be a non-empty array of schemas, got %s", k, describe(v))
			}
			return
		}
		for i, s := range a {
			w.schema(s, fmt.Sprintf("%s/%d", ptr, i), draft)
		}
	case kSchemaMap:
		m, ok := v.(map[string]any)
		if !ok {
			if check {
				w.problem(ptr, "%s must be an object of schemas, got %s", k, describe(v))
			}
			return
		}
		for _, name := range sortedKeys(m) {
			if check && k == "patternProperties" {
				if _, err := regexp.Compile(name); err != nil {
					w.problem(ptr+"/"+escape(name), "%q is not a valid regular expression: %v", name, err)
				}
			}
			w.schema(m[name], ptr+"/"+escape(name), draft)
		}
	case kItems:
		if a, ok := v.([]any); ok {
			if check && draft == Draft2020 {
				w.problem(ptr, "items must be a schema in 2020-12; for tuples use prefixItems")
				return
			}
			for i, s := range a {
				w.schema(s, fmt.Sprintf("%s/%d", ptr, i), draft)
			}
			return
		}
		w.schema(v, ptr, draft)
	case kDependencies:
		m, ok := v.(map[string]any)
		if !ok {
			if check {
				w.problem(ptr, "dependencies must be an object, got %s", describe(v))
			}
			return
		}
		for _, name := range sortedKeys(m) {
			if _, ok := m[name].([]any); ok {
				if check {
					w.stringSet(name, m[name], ptr+"/"+escape(name))
				}
				continue
			}
			w.schema(m[name], ptr+"/"+escape(name), draft)
		}
	}
	if !check {
		return
	}
	switch kind {
	case kStringArrayMap:
		m, ok := v.(map[string]any)
		if !ok {
			w.problem(ptr, "%s must be an object of string arrays, got %s", k, describe(v))
			return
		}
		for _, name := range sortedKeys(m) {
			w.stringSet(name, m[name], ptr+"/"+escape(name))
		}
	case kNonNegInt:
		if n, ok := number(v); !ok || !n.IsInt() || n.Sign() < 0 {
			w.problem(ptr, "%s must be a non-negative integer, got %s", k, describe(v))
		}
	case kNumber:
		if _, ok := number(v); !ok {
			if _, isBool := v.(bool); isBool && (k == "exclusiveMaximum" || k == "exclusiveMinimum") {
				w.problem(ptr, "%s must be a number since draft-06 (the draft-04 boolean form is not supported), got %s", k, describe(v))
				return
			}
			w.problem(ptr, "%s must be a number, got %s", k, describe(v))
		}
	case kPositive:
		if n, ok := number(v); !ok || n.Sign() <= 0 {
			w.problem(ptr, "%s must be a number greater than 0, got %s", k, describe(v))
		}
	case kString:
		if _, ok := v.(string); !ok {
			w.problem(ptr, "%s must be a string, got %s", k, describe(v))
		}
	case kRegex:
		s, ok := v.(string)
		if !ok {
			w.problem(ptr, "%s must be a string, got %s", k, describe(v))
			return
		}
		if _, err := regexp.Compile(s); err != nil {
			w.problem(ptr, "%q is not a valid regular expression: %v", s, err)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			w.problem(ptr, "%s must be true or false, got %s", k, describe(v))
		}
	case kStringSet:
		w.stringSet(k, v, ptr)
	case kType:
		w.typeValue(v, ptr)
	case kArray:
		if _, ok := v.([]any); !ok {
			w.problem(ptr, "%s must be an array, got %s", k, describe(v))
		}
	case kBoolMap:
		m, ok := v.(map[string]any)
		if !ok {
			w.problem(ptr, "%s must be an object of booleans, got %s", k, describe(v))
			return
		}
		for _, name := range sortedKeys(m) {
			if _, ok := m[name].(bool); !ok {
				w.problem(ptr+"/"+escape(name), "must be true or false, got %s", describe(m[name]))
			}
		}
	}
}

func (w *walker) stringSet(k string, v any, ptr string) {
	a, ok := v.([]any)
	if !ok {
		w.problem(ptr, "%s must be an array of strings, got %s", k, describe(v))
		return
	}
	seen := make(map[string]bool, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			w.problem(fmt.Sprintf("%s/%d", ptr, i), "must be a string, got %s", describe(e))
			continue
		}
		if seen[s] {
			w.problem(fmt.Sprintf("%s/%d", ptr, i), "%q is listed twice", s)
		}
		seen[s] = true
	}
}

func (w *walker) typeValue(v any, ptr string) {
	switch t := v.(type) {
	case string:
		if !slices.Contains(simpleTypes, t) {
			w.problem(ptr, "unknown type %q; use one of %s", t, strings.Join(simpleTypes, ", "))
		}
		return
	case []any:
		if len(t) == 0 {
			w.problem(ptr, "type must not be an empty array")
		}
		seen := map[string]bool{}
		for i, e := range t {
			s, ok := e.(string)
			if !ok || !slices.Contains(simpleTypes, s) {
				w.problem(fmt.Sprintf("%s/%d", ptr, i), "unknown type %s; use one of %s", describe(e), strings.Join(simpleTypes, ", "))
				continue
			}
			if seen[s] {
				w.problem(fmt.Sprintf("%s/%d", ptr, i), "type %q is listed twice", s)
			}
			seen[s] = true
		}
		return
	}
	w.problem(ptr, "type must be a string or an array of strings, got %s", describe(v))
}

// number returns a JSON number's exact value.
func number(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// escape encodes one RFC 6901 reference token.
func escape(token string) string {
	if !strings.ContainsAny(token, "~/") {
		return token
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// unescape decodes one RFC 6901 reference token.
func unescape(token string) string {
	if !strings.Contains(token, "~") {
		return token
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(token)
}

func pointerOrRoot(ptr string) string {
	if ptr == "" {
		return "(root)"
	}
	return ptr
}
