// Event and Attr, the CloudEvent a producer sends, and the entry points
// that make one: ParseEvent, ParseBatch (structured mode) and NewEvent (binary mode).

package mevents

import (
	"encoding/base64"
	"encoding/json"
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
