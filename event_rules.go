// The CloudEvents rules on an event's attributes: the problem keywords, the
// builder that collects an event's members and checks them, and attribute types.

package mevents

import (
	"fmt"
	"strings"
)

// Problem keywords of the CloudEvents rules. Each names one rule; a Problem
// carries one of these in Keyword (schema problems of data use JSON Schema
// keywords instead):
//
//	json        not well-formed JSON or UTF-8 (the message gives the byte offset);
//	            binary mode: a JSON-typed body that is not JSON
//	type        wrong JSON type: the event is not an object, the batch not an
//	            array, an attribute value not of its attribute's type, an
//	            extension value not a string, boolean or 32-bit integer, or
//	            data not a string although datacontenttype is not JSON
//	required    a required attribute (specversion, id, source, type) is
//	            missing or null
//	specversion specversion is not "1.0"
//	nonempty    an attribute that must be a non-empty string is empty
//	characters  a String value holds a character CloudEvents forbids: control
//	            characters U+0000–U+001F and U+007F–U+009F, unpaired
//	            surrogates, noncharacters
//	format      a value does not follow its type's format: URI-reference
//	            (source), absolute URI (dataschema), RFC 3339 timestamp (time,
//	            recordedtime), RFC 2046 media type (datacontenttype), base64
//	            (data_base64)
//	name        an attribute name is not lower-case a-z and 0-9, or is "data"
//	duplicate   a member name appears twice in the event object; binary mode:
//	            a header is repeated
//	exclusive   data and data_base64 are both present
//	encoding    binary mode: a header value is not valid quoting,
//	            percent-encoding or UTF-8
//	binding     binary mode: a ce-datacontenttype header (Content-Type carries
//	            datacontenttype)
//
// All of them have Code CodeInvalid.
const (
	kwJSON        = "json"
	kwType        = "type"
	kwRequired    = "required"
	kwSpecVersion = "specversion"
	kwNonEmpty    = "nonempty"
	kwCharacters  = "characters"
	kwFormat      = "format"
	kwName        = "name"
	kwDuplicate   = "duplicate"
	kwExclusive   = "exclusive"
)

// event reads the event object at s.pos into b and reports whether it was
// well-formed JSON.
func (s *scanner) event(b *builder) bool {
	s.pos++ // {
	s.skipSpace()
	if s.peek() == '}' {
		s.pos++
		return true
	}
	for {
		if s.peek() != '"' {
			s.failHere("looking for the beginning of an attribute name")
			return false
		}
		start := s.pos
		escaped, ok := s.str()
		if !ok {
			return false
		}
		var name string
		if escaped {
			name = unquoteString(s.buf[start:s.pos])
		} else {
			name = internName(s.buf[start+1 : s.pos-1])
		}
		s.skipSpace()
		if s.peek() != ':' {
			s.failHere("after an attribute name")
			return false
		}
		s.pos++
		s.skipSpace()
		start = s.pos
		s.space = false
		k := s.value(1)
		if k == kindInvalid {
			return false
		}
		b.member(name, s.buf[start:s.pos], k, s.space, s.special)
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return true
		default:
			s.failHere("after an event member")
			return false
		}
	}
}

// builder collects the members of one event and checks the attribute rules;
// ParseEvent and NewEvent share it.
type builder struct {
	e     Event
	probs []Problem
	index int
	// unset lists names given as null: they count for duplicates.
	unset []string
	// names indexes every name once an event has many; nil before.
	names             map[string]struct{}
	hasData, hasB64   bool
	badContentType    bool
	dataKind, b64Kind kind
}

func newBuilder(index int, attrs []Attr) builder {
	return builder{index: index, e: Event{Attrs: attrs}}
}

// add records a problem with the member called name.
func (b *builder) add(name, keyword, msg string) {
	b.probs = append(b.probs, Problem{Index: b.index, Pointer: pointer(name), Keyword: keyword, Message: msg, Code: CodeInvalid})
}

// seen records name and reports whether it was seen before.
func (b *builder) seen(name string) bool {
	if b.names == nil {
		for _, a := range b.e.Attrs {
			if a.Name == name {
				return true
			}
		}
		for _, n := range b.unset {
			if n == name {
				return true
			}
		}
		if len(b.e.Attrs)+len(b.unset) < 32 {
			return false
		}
		// Many members: index them, so that a hostile event costs O(n).
		b.names = make(map[string]struct{}, 64)
		for _, a := range b.e.Attrs {
			b.names[a.Name] = struct{}{}
		}
		for _, n := range b.unset {
			b.names[n] = struct{}{}
		}
	}
	if _, ok := b.names[name]; ok {
		return true
	}
	b.names[name] = struct{}{}
	return false
}

// member takes one member of the event object: v is its raw JSON value,
// already checked to be well-formed, of kind k.
func (b *builder) member(name string, v []byte, k kind, space, special bool) {
	switch name {
	case "data":
		if b.hasData {
			b.add("data", kwDuplicate, "data appears more than once in the event")
			return
		}
		b.hasData = true
		b.dataKind = k
		b.e.Data = v
		if space {
			b.e.Data = compact(make([]byte, 0, len(v)), v)
		}
	case "data_base64":
		if b.hasB64 {
			b.add("data_base64", kwDuplicate, "data_base64 appears more than once in the event")
			return
		}
		b.hasB64 = true
		b.b64Kind = k
		switch k {
		case kindNull: // unset
		case kindString:
			text := unquote(v)
			if !validBase64(text) {
				b.add("data_base64", kwFormat, "data_base64 must be base64 text (RFC 4648, standard alphabet, padded)")
			}
			b.e.DataBase64 = string(text)
		default:
			b.add("data_base64", kwType, "data_base64 must be a JSON string of base64 text, not "+k.String())
		}
	default:
		b.attr(name, v, k, special)
	}
}

// attr checks one context attribute and keeps it unless it is null. special
// says that a string value has escapes or characters outside printable ASCII,
// which need checking against the String type.
func (b *builder) attr(name string, v []byte, k kind, special bool) {
	if b.seen(name) {
		b.add(name, kwDuplicate, "attribute "+name+" appears more than once in the event")
		return
	}
	if !validName(name) {
		msg := fmt.Sprintf("attribute name %s must consist of lower-case letters a-z and digits 0-9", quoteShort(name))
		if name == "data" {
			msg = "data is not an attribute name: it is reserved for the event data"
		}
		b.add(name, kwName, msg)
	}
	if k == kindNull { // the JSON format: null is unset
		b.unset = append(b.unset, name)
		return
	}
	b.e.Attrs = append(b.e.Attrs, Attr{Name: name, Value: v})

	t := typeOf(name)
	switch t {
	case tBoolean:
		if k != kindBool {
			b.add(name, kwType, name+" must be a Boolean (JSON true or false), not "+k.String())
		}
		return
	case tAny:
		switch k {
		case kindString: // checked below
		case kindBool:
			return
		case kindInteger:
			if !validInt32(v) {
				b.add(name, kwType, "extension attribute "+name+" is an integer outside the 32-bit range of a CloudEvents Integer")
			}
			return
		default:
			b.add(name, kwType, "extension attribute "+name+" must be a string, boolean or integer, not "+k.String())
			return
		}
	default:
		if k != kindString {
			b.add(name, kwType, name+" must be a JSON string ("+t.String()+"), not "+k.String())
			if name == "datacontenttype" {
				b.badContentType = true
			}
			return
		}
	}

	// A JSON string: check the characters of the String type, then the format.
	if special {
		if r, ok := checkChars(v); !ok {
			b.add(name, kwCharacters, fmt.Sprintf("%s contains %U, which a CloudEvents String must not contain (control characters, unpaired surrogates and noncharacters are not allowed)", name, r))
		}
	}
	s := unquote(v)
	if len(s) == 0 {
		if nonEmpty(name) {
			b.add(name, kwNonEmpty, name+" must be a non-empty string")
		} else if t == tMediaType {
			b.add(name, kwFormat, "datacontenttype must be a media type (RFC 2046), not empty")
			b.badContentType = true
		}
		return
	}
	switch name {
	case "specversion":
		b.e.SpecVersion = SpecVersion // no allocation in the usual case
		if string(s) != SpecVersion {
			b.e.SpecVersion = string(s)
			b.add(name, kwSpecVersion, fmt.Sprintf("specversion must be %q, not %s", SpecVersion, quoteShort(b.e.SpecVersion)))
		}
	case "id":
		b.e.ID = string(s)
	case "source":
		b.e.Source = string(s)
	case "type":
		b.e.Type = string(s)
	case "partitionkey":
		b.e.PartitionKey = string(s)
	}
	switch t {
	case tURIRef:
		if why := checkURI(s, false); why != "" {
			b.add(name, kwFormat, name+" must be a URI-reference (RFC 3986): "+why)
		}
	case tURI:
		if why := checkURI(s, true); why != "" {
			b.add(name, kwFormat, name+" must be an absolute URI (RFC 3986 section 4.3): "+why)
		}
	case tTimestamp:
		if !validTimestamp(s) {
			b.add(name, kwFormat, name+" must be an RFC 3339 timestamp such as 2024-05-01T12:34:56Z")
		}
	case tMediaType:
		if _, _, ok := parseMediaType(s); !ok {
			b.add(name, kwFormat, "datacontenttype must be a media type (RFC 2046) such as application/json")
			b.badContentType = true
		}
	}
}

// finish checks the rules on the event as a whole and returns it.
func (b *builder) finish() (Event, []Problem) {
	for _, name := range [...]string{"specversion", "id", "source", "type"} {
		if _, ok := b.e.Attr(name); !ok {
			b.add(name, kwRequired, "the required attribute "+name+" is missing")
		}
	}
	if b.hasData && b.hasB64 && b.b64Kind != kindNull {
		b.add("data_base64", kwExclusive, "data and data_base64 must not both be present")
	}
	if b.hasData && b.dataKind != kindString && !b.badContentType && !b.e.DataIsJSON() {
		b.add("data", kwType, "data must be a JSON string because datacontenttype does not declare JSON (use data_base64 for binary data), not "+b.dataKind.String())
	}
	for i := range b.probs {
		b.probs[i].ID = b.e.ID
	}
	return b.e, b.probs
}

// attrType is the CloudEvents type of an attribute, as this package checks it.
type attrType uint8

const (
	tAny       attrType = iota // an unknown extension: String, Boolean or Integer
	tString                    // String
	tURIRef                    // URI-reference
	tURI                       // URI (absolute)
	tTimestamp                 // Timestamp
	tMediaType                 // String holding an RFC 2046 media type
	tBoolean                   // Boolean
)

func (t attrType) String() string {
	return [...]string{"String, Boolean or Integer", "String", "URI-reference", "URI", "Timestamp", "media type", "Boolean"}[t]
}

// typeOf returns the type of the attributes of the core specification and of
// the extensions this service knows.
func typeOf(name string) attrType {
	switch name {
	case "specversion", "id", "type", "subject",
		"partitionkey",              // partitioning
		"traceparent", "tracestate", // distributed tracing
		"authtype", "authid": // authcontext
		return tString
	case "source":
		return tURIRef
	case "dataschema":
		return tURI
	case "time", "recordedtime":
		return tTimestamp
	case "datacontenttype":
		return tMediaType
	case "testevent":
		return tBoolean
	}
	return tAny
}

// nonEmpty reports whether the attribute must not be an empty string.
func nonEmpty(name string) bool {
	switch name {
	case "specversion", "id", "source", "type", "dataschema", "subject", "partitionkey":
		return true
	}
	return false
}

// validName reports whether name is a CloudEvents attribute name: lower-case
// letters and digits. (The spec's limit of 20 characters is a SHOULD.)
func validName(name string) bool {
	if name == "" || name == "data" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// internName returns key as a string, without allocating for the names of
// the known attributes.
func internName(key []byte) string {
	switch string(key) {
	case "specversion":
		return "specversion"
	case "id":
		return "id"
	case "source":
		return "source"
	case "type":
		return "type"
	case "datacontenttype":
		return "datacontenttype"
	case "dataschema":
		return "dataschema"
	case "subject":
		return "subject"
	case "time":
		return "time"
	case "data":
		return "data"
	case "data_base64":
		return "data_base64"
	case "partitionkey":
		return "partitionkey"
	case "traceparent":
		return "traceparent"
	case "tracestate":
		return "tracestate"
	}
	return string(key)
}

// pointer returns the RFC 6901 JSON pointer to the member name of the event.
func pointer(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return "/" + name
	}
	return "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

func typeProblem(index int, id, ptr, msg string) Problem {
	return Problem{Index: index, ID: id, Pointer: ptr, Keyword: kwType, Message: msg, Code: CodeInvalid}
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
