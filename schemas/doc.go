// Package schemas compiles JSON Schemas and validates decoded JSON values
// against them, reporting every violation with an RFC 6901 pointer, the
// failing keyword and an English message. It is the rulebook for the data
// of every event type. It does no I/O and imports nothing of mevents;
// validation is built on github.com/kaptinlin/jsonschema.
//
// # Drafts
//
// Drafts 6, 7, 2019-09 and 2020-12 are supported. The draft follows the
// root "$schema" (http or https, with or without a trailing "#"); any other
// "$schema", draft-04 included, is a compile error. A document without
// "$schema" is read as:
//
//   - 2020-12 if it uses prefixItems, $dynamicRef or $dynamicAnchor (and a
//     compile error if it also uses a keyword 2020-12 dropped);
//   - 2019-09 if it uses $recursiveRef/$recursiveAnchor, or mixes a draft-07
//     spelling (array-valued items, additionalItems, dependencies,
//     definitions) with a 2019-09 keyword ($defs, dependentRequired,
//     dependentSchemas, unevaluated*, minContains, maxContains, $anchor);
//   - draft-07 if it uses only draft-07 spellings among those;
//   - 2020-12 otherwise (the drafts agree on every other keyword, except
//     that 2019-09 and later also apply the siblings of a $ref).
//
// kaptinlin implements each draft's own keywords natively, so documents are
// compiled as written, with no translation: array-valued items with
// additionalItems, dependencies (split into dependentRequired and
// dependentSchemas), definitions (reachable as "#/definitions/..."), $id
// with a plain-name fragment as an anchor, $ref ignoring its siblings
// (draft-06/07), $recursiveRef (2019-09), numeric exclusiveMinimum and
// exclusiveMaximum. In violations, keywords are spelled as the draft
// spells them ("additionalItems", "dependencies").
//
// Compile also checks what kaptinlin does not: every keyword's value has
// the shape its meta-schema requires (minLength a non-negative integer,
// type a known type name, pattern a valid regular expression, ...), and a
// keyword of the wrong draft is an error rather than silently ignored or
// reinterpreted: additionalItems, dependencies, array-valued items and
// $recursiveRef in 2020-12; prefixItems, $dynamicRef and $dynamicAnchor
// before 2020-12. Newer keywords in an older draft (if/then/else in
// draft-06, dependentRequired or unevaluatedProperties in draft-07) are
// applied, not ignored.
//
// # Formats, patterns and references
//
// "format" is asserted for the formats kaptinlin knows: date-time, date,
// time, duration, email, idn-email, hostname, idn-hostname, ipv4, ipv6,
// uri, uri-reference, iri, iri-reference, uri-template, uuid, json-pointer,
// relative-json-pointer and regex. An unknown format is an annotation.
//
// contentEncoding and contentMediaType are asserted too (a string that is
// not valid base64 or JSON fails), although the drafts make them
// annotations.
//
// Patterns are Go RE2 regular expressions, not ECMA-262: lookaround and
// backreferences make Compile fail.
//
// No $ref is ever fetched: a reference to anything outside the document,
// remote or relative, fails compilation, as does a local reference that
// does not resolve. References into "#/$defs/...", "#/definitions/...",
// to anchors and to embedded resources by their $id work.
//
// # Values
//
// Validate takes a value decoded by encoding/json (map[string]any, []any,
// string, bool, nil and numbers). Decode produces it with numbers as
// json.Number, which kaptinlin compares exactly: integers beyond 2^53 and
// decimals such as multipleOf 0.01 behave as written in the JSON.
package schemas
