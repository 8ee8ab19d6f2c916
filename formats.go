// Checks of the value formats of CloudEvents types: String characters,
// Integer range, base64, RFC 3339 timestamps, RFC 3986 URIs and RFC 2046 media types.

package mevents

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

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

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	}
	return rune(c - 'A' + 10)
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
