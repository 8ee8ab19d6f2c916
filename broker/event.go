package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Attr is one context attribute, with its value as canonical JSON: a JSON
// string, true/false, or an integer. Values are compact (no insignificant
// space); string values keep the escapes the producer used.
type Attr struct {
	Name  string
	Value json.RawMessage
}

// Event is one CloudEvent (version 1.0) accepted from a producer.
//
// Events made by ParseEvent, ParseBatch and NewEvent share memory with their
// input: the caller must not modify the input afterwards.
type Event struct {
	// Copies of the required attributes, unquoted.
	ID, Source, Type, SpecVersion string
	// PartitionKey is the partitionkey extension attribute, "" if absent.
	PartitionKey string
	// Attrs holds every context attribute (required, optional and
	// extensions) except data and data_base64, in input order. Attributes
	// given as JSON null are unset and not listed.
	Attrs []Attr
	// Data is the compact JSON value of data, nil when absent. When
	// DataIsJSON is false it is a JSON string holding the text of the data.
	Data json.RawMessage
	// DataBase64 is the base64 text (standard encoding) of binary data:
	// structured data_base64, or a binary-mode body of a non-JSON content
	// type. "" when absent.
	DataBase64 string
}

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

// SpecVersion is the only CloudEvents specversion accepted.
const SpecVersion = "1.0"

// ParseEvent parses one event in the CloudEvents JSON format (structured
// mode, application/cloudevents+json) and checks every CloudEvents rule. It
// returns all problems of the event, each with the given index; the event is
// valid when there are none. With problems, the event holds what could be read.
//
// The envelope is read once; data is checked to be well-formed JSON but not
// decoded. Data and attribute values refer to raw's memory, unless data had
// insignificant space, which is removed into a new buffer.
func ParseEvent(raw []byte, index int) (Event, []Problem) {
	s := scanner{buf: raw}
	s.skipSpace()
	var e Event
	var probs []Problem
	if s.peek() == '{' {
		b := newBuilder(index, make([]Attr, 0, 16))
		if !s.event(&b) {
			return b.e, []Problem{s.problem(index, b.e.ID, "")}
		}
		e, probs = b.finish()
	} else {
		k := s.value(0)
		if k == kindInvalid {
			return e, []Problem{s.problem(index, "", "")}
		}
		probs = []Problem{typeProblem(index, "", "", "the event must be a JSON object, not "+k.String())}
	}
	s.skipSpace()
	if s.pos < len(s.buf) {
		s.fail("invalid character %s after the event", quoteChar(s.buf[s.pos]))
		return e, []Problem{s.problem(index, e.ID, "")}
	}
	return e, probs
}

// ParseBatch parses a batch in the JSON batch format
// (application/cloudevents-batch+json): a JSON array of events, possibly
// empty. It returns the problems of every event, each with the event's
// position as Index. A body that is not an array gives one problem with
// index 0; malformed JSON ends the batch with one problem at the index of
// the event where it occurred.
//
// With no problems, events[i] is element i. With problems, events holds what
// could be read, up to the first malformed element; an element that is not
// an object is a zero Event. Events share memory with body.
func ParseBatch(body []byte) ([]Event, []Problem) {
	s := scanner{buf: body}
	s.skipSpace()
	if s.peek() != '[' {
		k := s.value(0)
		if k == kindInvalid {
			return nil, []Problem{s.problem(0, "", "")}
		}
		return nil, []Problem{typeProblem(0, "", "", "the batch must be a JSON array, not "+k.String())}
	}
	s.pos++
	s.skipSpace()
	var events []Event
	var probs []Problem
	var chunk []Attr // attributes of several events share one allocation
	if s.peek() == ']' {
		s.pos++
	} else {
		for i := 0; ; i++ {
			if s.peek() == '{' {
				if cap(chunk)-len(chunk) < 16 {
					chunk = make([]Attr, 0, 512)
				}
				free := chunk[len(chunk):]
				b := newBuilder(i, free)
				if !s.event(&b) {
					return events, append(probs, s.problem(i, b.e.ID, ""))
				}
				e, p := b.finish()
				if n := len(e.Attrs); n <= cap(free) {
					chunk = chunk[:len(chunk)+n]
					e.Attrs = e.Attrs[:n:n] // appends by SetAttr must not overwrite the next event's
				}
				events = append(events, e)
				probs = append(probs, p...)
			} else {
				k := s.value(1)
				if k == kindInvalid {
					return events, append(probs, s.problem(i, "", ""))
				}
				events = append(events, Event{})
				probs = append(probs, typeProblem(i, "", "", "each event of a batch must be a JSON object, not "+k.String()))
			}
			s.skipSpace()
			if s.peek() == ',' {
				s.pos++
				s.skipSpace()
				continue
			}
			if s.peek() == ']' {
				s.pos++
				break
			}
			if s.pos >= len(s.buf) {
				s.fail("unexpected end of JSON input in the batch")
			} else {
				s.fail("invalid character %s after event %d of the batch", quoteChar(s.buf[s.pos]), i)
			}
			return events, append(probs, s.problem(i, "", ""))
		}
	}
	s.skipSpace()
	if s.pos < len(s.buf) {
		s.fail("invalid character %s after the batch", quoteChar(s.buf[s.pos]))
		return events, append(probs, s.problem(max(len(events)-1, 0), "", ""))
	}
	return events, probs
}

// NewEvent builds an event from attributes and data read by a binary-mode
// protocol binding, checking the same rules as ParseEvent. Attribute values
// must be JSON values; a binding that carries attributes as strings makes
// them with AttrFromString. NewEvent keeps attrs (it does not copy it).
//
// data is the event's data as bytes (nil or empty: no data). When the
// datacontenttype attribute declares JSON (see DataIsJSON) it must be a JSON
// value and becomes Data; otherwise it becomes DataBase64.
func NewEvent(attrs []Attr, data []byte, index int) (Event, []Problem) {
	b := newBuilder(index, attrs[:0])
	for _, a := range attrs {
		s := scanner{buf: a.Value}
		k := s.value(0)
		if k != kindInvalid && s.pos != len(s.buf) {
			k = kindInvalid
			s.fail("more than one JSON value")
		}
		if k == kindInvalid {
			p := s.problem(index, "", pointer(a.Name))
			p.Message = "the value of " + a.Name + " is not JSON: " + p.Message
			b.probs = append(b.probs, p)
			continue
		}
		b.attr(a.Name, a.Value, k, s.special)
	}
	e, probs := b.finish()
	if len(data) == 0 {
		return e, probs
	}
	if !e.DataIsJSON() {
		e.DataBase64 = base64.StdEncoding.EncodeToString(data)
		return e, probs
	}
	s := scanner{buf: data}
	s.skipSpace()
	start := s.pos
	k := s.value(1)
	if k != kindInvalid {
		end := s.pos
		s.skipSpace()
		if s.pos < len(s.buf) {
			s.fail("invalid character %s after the data", quoteChar(s.buf[s.pos]))
			k = kindInvalid
		}
		data = data[start:end]
	}
	if k == kindInvalid {
		p := s.problem(index, e.ID, "/data")
		p.Message = "the data is not JSON although datacontenttype declares JSON: " + p.Message
		return e, append(probs, p)
	}
	e.Data = data
	if s.space {
		e.Data = compact(make([]byte, 0, len(data)), data)
	}
	return e, probs
}

// AttrFromString returns the attribute name with value given in the
// canonical string encoding of its type, as binary-mode protocol bindings
// carry it: "true"/"false" for a Boolean attribute (testevent), a JSON
// string otherwise. A value that is not a valid encoding of the attribute's
// type is kept as a string, and NewEvent reports it.
func AttrFromString(name, value string) Attr {
	if typeOf(name) == tBoolean && (value == "true" || value == "false") {
		return Attr{Name: name, Value: json.RawMessage(value)}
	}
	return Attr{Name: name, Value: appendQuoted(nil, value)}
}

// Attr returns the JSON value of the attribute called name.
func (e *Event) Attr(name string) (json.RawMessage, bool) {
	for _, a := range e.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return nil, false
}

// StringAttr returns the unquoted value of the string attribute called name,
// or "" if it is absent or not a string.
func (e *Event) StringAttr(name string) string {
	v, _ := e.Attr(name)
	return unquoteString(v)
}

// SetAttr sets the attribute called name to v, replacing its value if
// present, else appending it. v must be a compact JSON string, boolean or
// integer; SetAttr does not check it. The copies (ID, Source, Type,
// SpecVersion, PartitionKey) follow.
func (e *Event) SetAttr(name string, v json.RawMessage) {
	e.setCopy(name, v)
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs[i].Value = v
			return
		}
	}
	e.Attrs = append(e.Attrs, Attr{Name: name, Value: v})
}

// SetStringAttr sets the attribute called name to the JSON string v.
func (e *Event) SetStringAttr(name, v string) {
	e.SetAttr(name, appendQuoted(nil, v))
}

// DeleteAttr removes the attribute called name, if present.
func (e *Event) DeleteAttr(name string) {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs = append(e.Attrs[:i:i], e.Attrs[i+1:]...)
			e.setCopy(name, nil)
			return
		}
	}
}

func (e *Event) setCopy(name string, v json.RawMessage) {
	switch name {
	case "id":
		e.ID = unquoteString(v)
	case "source":
		e.Source = unquoteString(v)
	case "type":
		e.Type = unquoteString(v)
	case "specversion":
		e.SpecVersion = unquoteString(v)
	case "partitionkey":
		e.PartitionKey = unquoteString(v)
	}
}

// DataIsJSON reports whether the event's data is JSON: datacontenttype is
// absent, or its media type (case-insensitive, parameters ignored) is */json
// or */*+json, as the JSON format defines it.
func (e *Event) DataIsJSON() bool {
	v, ok := e.Attr("datacontenttype")
	if !ok {
		return true
	}
	_, sub, ok := parseMediaType(unquote(v))
	return ok && isJSONSubtype(sub)
}

// AppendJSON appends the event in the CloudEvents JSON format to dst and
// returns the result: the attributes in order, then data or data_base64, as
// compact JSON. It is valid JSON when the attribute values are (as they are
// in events made by this package).
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, a := range e.Attrs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, a.Name)
		dst = append(dst, ':')
		dst = append(dst, a.Value...)
	}
	if e.Data == nil && e.DataBase64 == "" {
		return append(dst, '}')
	}
	if len(e.Attrs) > 0 {
		dst = append(dst, ',')
	}
	if e.Data != nil {
		dst = append(dst, `"data":`...)
		dst = append(dst, e.Data...)
	} else {
		dst = append(dst, `"data_base64":`...)
		dst = appendQuoted(dst, e.DataBase64)
	}
	return append(dst, '}')
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

func quoteChar(c byte) string {
	if c < utf8.RuneSelf {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// unquote returns the contents of the JSON string v, with escapes decoded;
// nil if v is not a JSON string. Without escapes it is a subslice of v.
func unquote(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return s
	}
	var out string
	if json.Unmarshal(v, &out) != nil {
		return nil
	}
	return []byte(out)
}

func unquoteString(v []byte) string { return string(unquote(v)) }

// appendQuoted appends s to dst as a JSON string, escaping only what JSON
// requires. Invalid UTF-8 becomes U+FFFD.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// kind is the JSON type of a value.
type kind uint8

const (
	kindInvalid kind = iota
	kindNull
	kindBool
	kindInteger // a number without fraction or exponent
	kindNumber  // any other number
	kindString
	kindObject
	kindArray
)

func (k kind) String() string {
	return [...]string{"invalid JSON", "null", "a boolean", "an integer", "a number with a fraction or exponent", "a string", "an object", "an array"}[k]
}

// maxDepth bounds the nesting of JSON values, as encoding/json does.
const maxDepth = 10000

// scanner reads JSON text from buf, checking it as it goes: well-formed JSON
// (RFC 8259) in valid UTF-8. The first syntax error stops it.
type scanner struct {
	buf    []byte
	pos    int
	errMsg string // the first syntax error, at errPos
	errPos int
	// space records insignificant space inside a value read by value
	// (the value needs compacting).
	space bool
	// special records that the last string read has escapes or bytes
	// outside printable ASCII.
	special bool
}

func (s *scanner) peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// skipInner skips space inside a value, recording that there was some.
func (s *scanner) skipInner() {
	p := s.pos
	s.skipSpace()
	if s.pos != p {
		s.space = true
	}
}

// fail records a syntax error at the current position and returns kindInvalid.
func (s *scanner) fail(format string, args ...any) kind {
	if s.errMsg == "" {
		s.errMsg = fmt.Sprintf(format, args...)
		s.errPos = s.pos
	}
	return kindInvalid
}

func (s *scanner) failHere(what string) kind {
	if s.pos >= len(s.buf) {
		return s.fail("unexpected end of JSON input")
	}
	return s.fail("invalid character %s %s", quoteChar(s.buf[s.pos]), what)
}

// problem returns the syntax error as a Problem.
func (s *scanner) problem(index int, id, ptr string) Problem {
	return Problem{Index: index, ID: id, Pointer: ptr, Keyword: kwJSON, Code: CodeInvalid,
		Message: fmt.Sprintf("malformed JSON at byte offset %d: %s", s.errPos, s.errMsg)}
}

// value reads one JSON value at s.pos and returns its kind, or kindInvalid.
func (s *scanner) value(depth int) kind {
	switch c := s.peek(); {
	case c == '"':
		if _, ok := s.str(); ok {
			return kindString
		}
		return kindInvalid
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == 't':
		return s.literal("true", kindBool)
	case c == 'f':
		return s.literal("false", kindBool)
	case c == 'n':
		return s.literal("null", kindNull)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.failHere("looking for the beginning of a value")
}

func (s *scanner) literal(lit string, k kind) kind {
	for i := 0; i < len(lit); i++ {
		if s.peek() != lit[i] {
			return s.failHere("in literal " + lit)
		}
		s.pos++
	}
	return k
}

func (s *scanner) number() kind {
	k := kindInteger
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return s.failHere("in a number")
	}
	if s.peek() == '.' {
		s.pos++
		k = kindNumber
		if !s.digits() {
			return s.failHere("after the decimal point of a number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		k = kindNumber
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !s.digits() {
			return s.failHere("in the exponent of a number")
		}
	}
	return k
}

// digits skips 0-9 and reports whether there was at least one.
func (s *scanner) digits() bool {
	p := s.pos
	for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > p
}

// plain marks the bytes str skips without a closer look: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7F; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a JSON string at s.pos and reports whether it has escapes. It
// sets s.special.
func (s *scanner) str() (escaped, ok bool) {
	buf, i := s.buf, s.pos+1
	s.special = false
	for {
		for i < len(buf) && plain[buf[i]] {
			i++
		}
		if i >= len(buf) {
			s.pos = i
			s.fail("unexpected end of JSON input in a string")
			return escaped, false
		}
		switch c := buf[i]; {
		case c == '"':
			s.pos = i + 1
			return escaped, true
		case c == 0x7F:
			s.special = true
			i++
		case c == '\\':
			escaped, s.special = true, true
			if i+1 >= len(buf) {
				s.pos = i + 1
				s.fail("unexpected end of JSON input in a string escape")
				return escaped, false
			}
			switch buf[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(buf) || !isHex(buf[j]) {
						s.pos = min(j, len(buf))
						s.failHere(`in a \u escape`)
						return escaped, false
					}
				}
				i += 6
			default:
				s.pos = i + 1
				s.failHere("in a string escape")
				return escaped, false
			}
		case c < 0x20:
			s.pos = i
			s.fail("control character U+%04X in a string (it must be escaped)", c)
			return escaped, false
		default:
			s.special = true
			r, size := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && size == 1 {
				s.pos = i
				s.fail("invalid UTF-8 in a string")
				return escaped, false
			}
			i += size
		}
	}
}

func (s *scanner) object(depth int) kind {
	if depth > maxDepth {
		return s.fail("JSON nested deeper than %d levels", maxDepth)
	}
	s.pos++ // {
	s.skipInner()
	if s.peek() == '}' {
		s.pos++
		return kindObject
	}
	for {
		if s.peek() != '"' {
			return s.failHere("looking for the beginning of an object key")
		}
		if _, ok := s.str(); !ok {
			return kindInvalid
		}
		s.skipInner()
		if s.peek() != ':' {
			return s.failHere("after an object key")
		}
		s.pos++
		s.skipInner()
		if s.value(depth) == kindInvalid {
			return kindInvalid
		}
		s.skipInner()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipInner()
		case '}':
			s.pos++
			return kindObject
		default:
			return s.failHere("after an object member")
		}
	}
}

func (s *scanner) array(depth int) kind {
	if depth > maxDepth {
		return s.fail("JSON nested deeper than %d levels", maxDepth)
	}
	s.pos++ // [
	s.skipInner()
	if s.peek() == ']' {
		s.pos++
		return kindArray
	}
	for {
		if s.value(depth) == kindInvalid {
			return kindInvalid
		}
		s.skipInner()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipInner()
		case ']':
			s.pos++
			return kindArray
		default:
			return s.failHere("after an array element")
		}
	}
}

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

// compact appends the well-formed JSON value v to dst without insignificant space.
func compact(dst, v []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, v[start:i]...)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	}
	return rune(c - 'A' + 10)
}

// checkChars checks the well-formed JSON string v against the String type:
// no control characters (U+0000–U+001F, U+007F–U+009F), no surrogates unless
// properly paired, no noncharacters. It returns the first offending code
// point and false, or true.
func checkChars(v []byte) (rune, bool) {
	v = v[1 : len(v)-1]
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '\\':
			if v[i+1] != 'u' {
				switch v[i+1] {
				case 'b':
					return '\b', false
				case 'f':
					return '\f', false
				case 'n':
					return '\n', false
				case 'r':
					return '\r', false
				case 't':
					return '\t', false
				}
				i += 2
				continue
			}
			r := hex4(v[i+2:])
			i += 6
			if r >= 0xD800 && r <= 0xDBFF { // a high surrogate needs a low one
				if i+6 > len(v) || v[i] != '\\' || v[i+1] != 'u' {
					return r, false
				}
				lo := hex4(v[i+2:])
				if lo < 0xDC00 || lo > 0xDFFF {
					return r, false
				}
				i += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			}
			if !allowedRune(r) {
				return r, false
			}
		case c < utf8.RuneSelf:
			if c < 0x20 || c == 0x7F {
				return rune(c), false
			}
			i++
		default:
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 || !allowedRune(r) {
				return r, false
			}
			i += size
		}
	}
	return 0, true
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// allowedRune reports whether a CloudEvents String may contain r.
func allowedRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7F && r <= 0x9F:
		return false // control characters
	case r >= 0xD800 && r <= 0xDFFF:
		return false // unpaired surrogates
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return false // noncharacters
	}
	return true
}

// validInt32 reports whether the JSON integer v is within the range of a
// CloudEvents Integer (32-bit signed).
func validInt32(v []byte) bool {
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) > 10 {
		return false
	}
	var n int64
	for _, c := range v {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n >= -1<<31 && n <= 1<<31-1
}

// validBase64 reports whether s is base64 text in the standard alphabet with
// padding (RFC 4648 section 4), without line breaks.
func validBase64(s []byte) bool {
	if len(s)%4 != 0 {
		return false
	}
	n := len(s)
	if n > 0 && s[n-1] == '=' {
		n--
		if s[n-1] == '=' {
			n--
		}
	}
	for _, c := range s[:n] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// validTimestamp reports whether s is an RFC 3339 date-time
// (YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM); T and Z in either case; leap second 60 allowed).
func validTimestamp(s []byte) bool {
	num := func(i, n int) int { // the n digits at s[i:], or -1
		if i+n > len(s) {
			return -1
		}
		v := 0
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	at := func(i int, c byte) bool { return i < len(s) && s[i]|0x20 == c|0x20 }
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	if year < 0 || !at(4, '-') || month < 1 || month > 12 || !at(7, '-') || day < 1 ||
		!at(10, 'T') {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	if day > days {
		return false
	}
	hour, minute, second := num(11, 2), num(14, 2), num(17, 2)
	if hour < 0 || hour > 23 || !at(13, ':') || minute < 0 || minute > 59 || !at(16, ':') || second < 0 || second > 60 {
		return false
	}
	i := 19
	if at(i, '.') {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if at(i, 'Z') {
		return i+1 == len(s)
	}
	if i >= len(s) || s[i] != '+' && s[i] != '-' {
		return false
	}
	oh, om := num(i+1, 2), num(i+4, 2)
	return oh >= 0 && oh <= 23 && at(i+3, ':') && om >= 0 && om <= 59 && i+6 == len(s)
}

// Character classes of RFC 3986.
const (
	uriUnreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	uriSubDelims  = "!$&'()*+,;="
)

var (
	uriRegName   = charSet(uriUnreserved + uriSubDelims + "%")
	uriUserinfo  = charSet(uriUnreserved + uriSubDelims + "%:")
	uriPath      = charSet(uriUnreserved + uriSubDelims + "%:@/")
	uriQuery     = charSet(uriUnreserved + uriSubDelims + "%:@/?")
	uriIPLiteral = charSet(uriUnreserved + uriSubDelims + "%:")
	uriScheme    = charSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.")
)

func charSet(chars string) (t [256]bool) {
	for i := 0; i < len(chars); i++ {
		t[chars[i]] = true
	}
	return t
}

// checkChars3986 reports whether every byte of s is in set, with each '%'
// starting a percent-encoded octet.
func checkChars3986(s []byte, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !set[c] {
			return false
		}
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// checkURI returns why s is not an RFC 3986 URI-reference, or, when
// absolute is set, not an absolute-URI (scheme, no fragment); "" if it is one.
func checkURI(s []byte, absolute bool) string {
	if i := bytes.IndexByte(s, '#'); i >= 0 {
		if absolute {
			return "it must not have a fragment (#…)"
		}
		if !checkChars3986(s[i+1:], &uriQuery) {
			return "the fragment has a character that must be percent-encoded"
		}
		s = s[:i]
	}
	if i := bytes.IndexByte(s, '?'); i >= 0 {
		if !checkChars3986(s[i+1:], &uriQuery) {
			return "the query has a character that must be percent-encoded"
		}
		s = s[:i]
	}
	colon, slash := bytes.IndexByte(s, ':'), bytes.IndexByte(s, '/')
	if colon >= 0 && (slash < 0 || colon < slash) {
		scheme := s[:colon]
		if len(scheme) == 0 || !(scheme[0]|0x20 >= 'a' && scheme[0]|0x20 <= 'z') || !checkChars3986(scheme, &uriScheme) {
			return "it has an invalid scheme before the first colon"
		}
		s = s[colon+1:]
	} else if absolute {
		return "it has no scheme"
	}
	if bytes.HasPrefix(s, []byte("//")) {
		s = s[2:]
		end := bytes.IndexByte(s, '/')
		if end < 0 {
			end = len(s)
		}
		if why := checkAuthority(s[:end]); why != "" {
			return why
		}
		s = s[end:]
	}
	if !checkChars3986(s, &uriPath) {
		return "the path has a character that must be percent-encoded"
	}
	return ""
}

func checkAuthority(a []byte) string {
	if i := bytes.IndexByte(a, '@'); i >= 0 {
		if !checkChars3986(a[:i], &uriUserinfo) {
			return "the user information has a character that must be percent-encoded"
		}
		a = a[i+1:]
	}
	var port []byte
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !checkChars3986(a[1:end], &uriIPLiteral) {
			return "the host has an invalid IP literal"
		}
		rest := a[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return "the host has an invalid IP literal"
			}
			port = rest[1:]
		}
	} else {
		host := a
		if i := bytes.IndexByte(a, ':'); i >= 0 {
			host, port = a[:i], a[i+1:]
		}
		if !checkChars3986(host, &uriRegName) {
			return "the host has a character that must be percent-encoded"
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "the port is not a number"
		}
	}
	return ""
}

// MediaType returns the media type of a Content-Type or datacontenttype
// value, lower-cased and without parameters ("Application/JSON; charset=utf-8"
// gives "application/json"), or "" if the value is not a media type.
func MediaType(contentType string) string {
	typ, sub, ok := parseMediaType([]byte(contentType))
	if !ok {
		return ""
	}
	return strings.ToLower(string(typ) + "/" + string(sub))
}

// token marks the characters of an RFC 2045 token: printable US-ASCII except
// space and tspecials.
var token = func() (t [256]bool) {
	for c := 0x21; c < 0x7F; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
	}
	return t
}()

// parseMediaType parses an RFC 2046 media type, type "/" subtype *(";"
// parameter), with optional space around ";" and a trailing ";" tolerated.
func parseMediaType(s []byte) (typ, sub []byte, ok bool) {
	i := 0
	tok := func() []byte {
		start := i
		for i < len(s) && token[s[i]] {
			i++
		}
		return s[start:i]
	}
	space := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	if typ = tok(); len(typ) == 0 || i >= len(s) || s[i] != '/' {
		return nil, nil, false
	}
	i++
	if sub = tok(); len(sub) == 0 {
		return nil, nil, false
	}
	for {
		space()
		if i == len(s) {
			return typ, sub, true
		}
		if s[i] != ';' {
			return nil, nil, false
		}
		i++
		space()
		if i == len(s) {
			return typ, sub, true
		}
		if len(tok()) == 0 || i >= len(s) || s[i] != '=' {
			return nil, nil, false
		}
		i++
		if i < len(s) && s[i] == '"' {
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				} else if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7F {
					return nil, nil, false
				}
			}
			if i >= len(s) {
				return nil, nil, false
			}
			i++
		} else if len(tok()) == 0 {
			return nil, nil, false
		}
	}
}

// isJSONSubtype reports whether a media subtype declares JSON: json or *+json.
func isJSONSubtype(sub []byte) bool {
	n := len(sub)
	return n >= 4 && bytes.EqualFold(sub[n-4:], []byte("json")) && (n == 4 || sub[n-5] == '+')
}
