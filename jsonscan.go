// A validating JSON scanner (well-formed JSON in valid UTF-8, read once,
// without decoding) and the JSON string helpers the events use.

package mevents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

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
