package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kaptinlin/jsonschema"
)

// Violation is one rule the instance breaks.
type Violation struct {
	// Pointer is an RFC 6901 pointer into the instance: "" for the root,
	// "/idnp", "/address/0/street". For a missing required property and for
	// a property that is not allowed it points at that property.
	Pointer string `json:"pointer"`
	// Keyword is the JSON Schema keyword that failed, spelled as in the
	// schema's draft: "pattern", "required", "type", "format",
	// "additionalProperties", "additionalItems" (draft-07), ...
	Keyword string `json:"keyword"`
	// Message says what is wrong, in English, e.g. `"123" does not match
	// pattern "^[0-9]{13}$"`.
	Message string `json:"message"`
}

// String returns "pointer: message", with "(root)" for the root.
func (v Violation) String() string { return pointerOrRoot(v.Pointer) + ": " + v.Message }

// place is where an evaluation result applies: the instance location and
// value, and the applicator keyword through which its schema was reached.
type place struct {
	ptr   string
	value any
	via   string
	// name is set when the value is a property name checked by propertyNames.
	name bool
}

// explainedBy maps an applicator's own error keyword to the keywords of the
// child results that explain it. When a child produced a violation, the
// applicator's error ("Property 'a' does not match the schema") is noise.
var explainedBy = map[string][]string{
	"properties":           {"properties", "patternProperties", "unevaluatedProperties"},
	"additionalProperties": {"additionalProperties"},
	"items":                {"items"},
	"prefixItems":          {"prefixItems"},
	"unevaluatedItems":     {"unevaluatedItems"},
	"allOf":                {"allOf"},
	"dependentSchemas":     {"dependentSchemas"},
	"propertyNames":        {"propertyNames"},
	"contentSchema":        {"contentSchema"},
	"then":                 {"then"},
	"else":                 {""},
	"$ref":                 {""},
	"$dynamicRef":          {""},
}

// violations flattens kaptinlin's result tree into leaf causes.
func (s *Schema) violations(r *jsonschema.EvaluationResult, v any) []Violation {
	f := &flattener{doc: s.doc}
	f.walk(r, place{value: v})
	out := f.out
	slices.SortFunc(out, func(a, b Violation) int {
		if c := strings.Compare(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		if c := strings.Compare(a.Keyword, b.Keyword); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.Compact(out)
}

type flattener struct {
	doc *document
	out []Violation
}

func (f *flattener) walk(r *jsonschema.EvaluationResult, at place) {
	// In the legacy tuple form kaptinlin evaluates "items": [...] as
	// prefixItems and "additionalItems" as items; undo that in keywords.
	tuple := f.doc.draft.legacyTuples() && slices.ContainsFunc(r.Details, func(d *jsonschema.EvaluationResult) bool {
		return strings.HasPrefix(d.EvaluationPath, "/prefixItems/")
	})
	explained := map[string]bool{}
	for _, d := range r.Details {
		if d.Valid {
			continue
		}
		kw, _, _ := strings.Cut(strings.TrimPrefix(d.EvaluationPath, "/"), "/")
		switch kw {
		case "if", "not", "anyOf", "oneOf", "contains":
			// A failing branch here is not a failure of the instance; the
			// parent reports its own error when the keyword as a whole fails.
			continue
		}
		child := at
		if kw != "" { // "" is $ref, $dynamicRef and else: same place, same via
			child.via = f.keyword(kw, tuple)
		}
		// dependentSchemas applies to the object itself, although kaptinlin
		// records the triggering property as the instance location.
		if d.InstanceLocation != "" && kw != "dependentSchemas" {
			token := d.InstanceLocation[1:] // kaptinlin writes "/" + the raw name
			child.ptr = at.ptr + "/" + escape(token)
			if kw == "propertyNames" {
				child.value, child.name = token, true
			} else {
				value, ok := member(at.value, token)
				if !ok {
					// kaptinlin evaluates a required property's schema
					// against null when the property is absent; the
					// sibling "required" error reports it.
					explained[kw] = true
					continue
				}
				child.value = value
			}
		}
		n := len(f.out)
		f.walk(d, child)
		if len(f.out) > n {
			explained[kw] = true
		}
	}
	for _, e := range r.Errors {
		if slices.ContainsFunc(explainedBy[e.Keyword], func(k string) bool { return explained[k] }) {
			continue
		}
		f.emit(e, at, tuple)
	}
}

// keyword spells an evaluation keyword the way the schema's draft does.
func (f *flattener) keyword(kw string, tuple bool) string {
	switch {
	case kw == "prefixItems" && f.doc.draft.legacyTuples():
		return "items"
	case kw == "items" && tuple:
		return "additionalItems"
	case (kw == "dependentRequired" || kw == "dependentSchemas") && f.doc.dependencies:
		return "dependencies"
	}
	return kw
}

func (f *flattener) add(ptr, keyword, msg string, at place) {
	if at.name {
		msg = "property name " + msg
	}
	f.out = append(f.out, Violation{Pointer: ptr, Keyword: keyword, Message: msg})
}

// emit turns one kaptinlin error into violations with our messages.
func (f *flattener) emit(e *jsonschema.EvaluationError, at place, tuple bool) {
	p := e.Params
	value := describe(at.value)
	kw := f.keyword(e.Keyword, tuple)
	var msg string
	switch e.Code {
	case "false_schema_mismatch":
		f.notAllowed(at)
		return
	case "additional_property_false":
		name := fmt.Sprint(p["property"])
		f.add(at.ptr+"/"+escape(name), kw, fmt.Sprintf("property %q is not allowed", name), at)
		return
	case "missing_required_property", "missing_required_properties":
		names, ok := missing(p, at.value)
		if !ok {
			msg = fmt.Sprintf("missing required properties %v", p["properties"])
			break
		}
		for _, name := range names {
			f.add(at.ptr+"/"+escape(name), kw, fmt.Sprintf("missing required property %q", name), at)
		}
		return
	case "dependent_property_required":
		var deps map[string][]string
		if err := json.Unmarshal([]byte(fmt.Sprint(p["missing_properties"])), &deps); err != nil {
			break
		}
		for _, cause := range sortedKeysOf(deps) {
			for _, name := range deps[cause] {
				f.add(at.ptr+"/"+escape(name), kw, fmt.Sprintf("property %q is required when %q is present", name, cause), at)
			}
		}
		return
	case "unevaluated_items_not_allowed":
		for _, i := range strings.Split(fmt.Sprint(p["indexes"]), ", ") {
			f.add(at.ptr+"/"+i, kw, fmt.Sprintf("item %s is not allowed: no keyword evaluated it", i), at)
		}
		return
	case "type_mismatch":
		msg = fmt.Sprintf("expected %s, got %s", strings.ReplaceAll(fmt.Sprint(p["expected"]), ", ", " or "), typed(at.value))
	case "invalid_numeric":
		msg = fmt.Sprintf("%s is not a valid number", value)
	case "pattern_mismatch":
		msg = fmt.Sprintf("%s does not match pattern %q", value, p["pattern"])
	case "format_mismatch":
		msg = fmt.Sprintf("%s does not match format %q", value, p["format"])
	case "value_not_in_enum":
		msg = fmt.Sprintf("%s is not one of %s", value, list(p["allowed"]))
	case "const_mismatch", "const_mismatch_null":
		msg = fmt.Sprintf("%s does not equal the constant %s", value, describeJSON(p["expected"]))
	case "value_above_maximum":
		msg = fmt.Sprintf("%s is greater than the maximum %v", p["value"], p["maximum"])
	case "value_below_minimum":
		msg = fmt.Sprintf("%s is less than the minimum %v", p["value"], p["minimum"])
	case "exclusive_maximum_mismatch":
		msg = fmt.Sprintf("%s must be less than %v", p["value"], p["exclusive_maximum"])
	case "exclusive_minimum_mismatch":
		msg = fmt.Sprintf("%s must be greater than %v", p["value"], p["exclusive_minimum"])
	case "not_multiple_of":
		msg = fmt.Sprintf("%s is not a multiple of %v", p["value"], p["divisor"])
	case "string_too_long":
		msg = fmt.Sprintf("%s is %s long; the maximum is %v", value, count(p["length"], "character"), p["max_length"])
	case "string_too_short":
		msg = fmt.Sprintf("%s is %s long; the minimum is %v", value, count(p["length"], "character"), p["min_length"])
	case "items_too_long":
		msg = fmt.Sprintf("array has %s; the maximum is %v", count(p["count"], "item"), p["max_items"])
	case "items_too_short":
		msg = fmt.Sprintf("array has %s; the minimum is %v", count(p["count"], "item"), p["min_items"])
	case "too_many_properties":
		msg = fmt.Sprintf("object has %s; the maximum is %v", count(size(at.value), "property"), p["max_properties"])
	case "too_few_properties":
		msg = fmt.Sprintf("object has %s; the minimum is %v", count(size(at.value), "property"), p["min_properties"])
	case "unique_items_mismatch":
		msg = fmt.Sprintf("items %v and %v are equal; items must be unique", p["index1"], p["index2"])
	case "contains_too_few_items":
		if fmt.Sprint(p["min_contains"]) == "1" {
			kw = "contains"
			msg = "array has no item matching the contains schema"
		} else {
			msg = fmt.Sprintf("array has %s matching the contains schema; the minimum is %v", count(p["count"], "item"), p["min_contains"])
		}
	case "contains_too_many_items":
		msg = fmt.Sprintf("array has %s matching the contains schema; the maximum is %v", count(p["count"], "item"), p["max_contains"])
	case "any_of_item_mismatch":
		msg = "value matches none of the anyOf schemas"
	case "one_of_item_mismatch":
		msg = "value matches none of the oneOf schemas"
	case "one_of_multiple_matches":
		msg = fmt.Sprintf("value matches oneOf schemas %v; it must match exactly one", p["matches"])
	case "not_schema_mismatch":
		msg = `value must not match the "not" schema`
	case "pattern_property_mismatch", "pattern_properties_mismatch":
		kw = "patternProperties"
	case "unevaluated_property_mismatch", "unevaluated_properties_mismatch":
		kw = "unevaluatedProperties"
	}
	if msg == "" {
		// Content keywords and applicators no child explained: kaptinlin's
		// own sentence, which names the keyword's parameters.
		msg = e.Error()
		if msg != "" {
			msg = strings.ToLower(msg[:1]) + msg[1:]
		}
	}
	f.add(at.ptr, kw, msg, at)
}

// notAllowed reports an instance location whose schema is false.
func (f *flattener) notAllowed(at place) {
	last := lastToken(at.ptr)
	switch at.via {
	case "properties", "patternProperties", "additionalProperties", "unevaluatedProperties":
		f.add(at.ptr, at.via, fmt.Sprintf("property %q is not allowed", last), place{})
	case "items", "prefixItems", "additionalItems", "unevaluatedItems":
		f.add(at.ptr, at.via, fmt.Sprintf("item %s is not allowed", last), place{})
	case "propertyNames":
		f.add(at.ptr, at.via, fmt.Sprintf("property name %q is not allowed", last), place{})
	case "":
		f.add(at.ptr, "false", "no value is allowed here: the schema is false", at)
	default:
		f.add(at.ptr, at.via, "no value is allowed here: the schema is false", at)
	}
}

// missing lists the property names of a required error. kaptinlin joins
// them as "'a', 'b'"; a name that itself contains "', '" would split
// wrongly, so the names are checked against the object.
func missing(p map[string]any, obj any) ([]string, bool) {
	if s, ok := p["property"].(string); ok {
		return []string{strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'")}, true
	}
	s := fmt.Sprint(p["properties"])
	names := strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'"), "', '")
	for _, name := range names {
		if _, present := member(obj, name); present {
			return nil, false
		}
	}
	return names, true
}

// member returns the child of an object or array named by a pointer token.
func member(v any, token string) (any, bool) {
	switch c := v.(type) {
	case map[string]any:
		m, ok := c[token]
		return m, ok
	case []any:
		i, err := strconv.Atoi(token)
		if err != nil || i < 0 || i >= len(c) {
			return nil, false
		}
		return c[i], true
	}
	return nil, false
}

// lastToken returns the decoded last reference token of a pointer.
func lastToken(ptr string) string {
	return unescape(ptr[strings.LastIndexByte(ptr, '/')+1:])
}

func size(v any) int {
	if m, ok := v.(map[string]any); ok {
		return len(m)
	}
	return 0
}

func count(n any, noun string) string {
	if fmt.Sprint(n) == "1" {
		return "1 " + noun
	}
	if noun == "property" {
		return fmt.Sprintf("%v properties", n)
	}
	return fmt.Sprintf("%v %ss", n, noun)
}

func sortedKeysOf(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const maxShown = 40 // runes of a string value quoted in a message

// describe renders a value for a message: scalars as JSON (long strings
// cut), objects and arrays by their type only.
func describe(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		if r := []rune(t); len(r) > maxShown {
			return strconv.Quote(string(r[:maxShown])) + "…"
		}
		return strconv.Quote(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// typed renders a value with its JSON type: `string "12"`, `number 1.5`.
func typed(v any) string {
	t := jsonType(v)
	switch v.(type) {
	case map[string]any, []any, nil:
		return t
	}
	return t + " " + describe(v)
}

func jsonType(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	case json.Number:
		if _, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return "integer"
		}
		if n, ok := number(t); ok && n.IsInt() {
			return "integer"
		}
		return "number"
	case float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// describeJSON renders a schema value (an enum member, a const) as JSON.
func describeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if r := []rune(string(b)); len(r) > maxShown {
		return string(r[:maxShown]) + "…"
	}
	return string(b)
}

// list renders enum members: `"A", "B" or "C"`, at most ten.
func list(v any) string {
	values, _ := v.([]any)
	shown := make([]string, 0, min(len(values), 10))
	for i, e := range values {
		if i == 10 {
			shown = append(shown, fmt.Sprintf("… (%d more)", len(values)-10))
			break
		}
		shown = append(shown, describeJSON(e))
	}
	if len(shown) < 2 {
		return strings.Join(shown, "")
	}
	return strings.Join(shown[:len(shown)-1], ", ") + " or " + shown[len(shown)-1]
}
