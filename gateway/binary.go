package gateway

import (
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mevents/mevents"
)

// mediaType returns the media type of a Content-Type header, lower-cased and
// without parameters, or "" if the header is malformed. Routing compares it
// with application/cloudevents+json and application/cloudevents-batch+json.
func mediaType(contentType string) string { return mevents.MediaType(contentType) }

// parseBinary reads one event in the binary content mode of the CloudEvents
// HTTP binding (1.0.2): each ce-NAME header is the attribute NAME (names are
// case-insensitive), its value unquoted if double-quoted, then percent-decoded
// as UTF-8; Content-Type is datacontenttype; the body is the data. When no
// ce-traceparent header is given, the W3C traceparent and tracestate headers
// of the request become those attributes.
//
// All problems are returned, with index 0. Besides the rules of
// mevents.NewEvent: a repeated header ("duplicate"), a ce-datacontenttype
// header ("binding"), a value that is not valid quoting, percent-encoding
// or UTF-8 ("encoding").
func parseBinary(h http.Header, body []byte) (mevents.Event, []mevents.Problem) {
	var attrs []mevents.Attr
	var probs []mevents.Problem
	reported := map[string]bool{} // pointers of the problems found here
	add := func(name, keyword, msg string) {
		ptr := attrPointer(name)
		reported[ptr] = true
		probs = append(probs, mevents.Problem{Pointer: ptr, Keyword: keyword, Message: msg, Code: mevents.CodeInvalid})
	}
	var keys []string
	var contentType, traceparent, tracestate []string
	for k, vs := range h {
		switch {
		case len(k) >= 3 && strings.EqualFold(k[:3], "ce-"):
			keys = append(keys, k)
		case strings.EqualFold(k, "Content-Type"):
			contentType = append(contentType, vs...)
		case strings.EqualFold(k, "Traceparent"):
			traceparent = append(traceparent, vs...)
		case strings.EqualFold(k, "Tracestate"):
			tracestate = append(tracestate, vs...)
		}
	}
	sort.Strings(keys) // a deterministic order of attributes and problems
	ceTrace := false
	for _, k := range keys {
		name := strings.ToLower(k[3:])
		vs := h[k]
		if name == "datacontenttype" {
			add(name, "binding", "the ce-datacontenttype header must not be used: the Content-Type header carries datacontenttype")
			continue
		}
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 { // reported; the first value is read, as for a repeated JSON member
			add(name, "duplicate", "the header ce-"+name+" must appear once")
		}
		v, why := decodeHeaderValue(vs[0])
		if why != "" {
			add(name, "encoding", "the value of header ce-"+name+" "+why)
			continue
		}
		if name == "traceparent" || name == "tracestate" {
			ceTrace = true
		}
		attrs = append(attrs, mevents.AttrFromString(name, v))
	}
	if len(contentType) > 1 {
		add("datacontenttype", "duplicate", "the header Content-Type must appear once")
	}
	if len(contentType) > 0 {
		attrs = append(attrs, mevents.AttrFromString("datacontenttype", contentType[0]))
	}
	// The W3C headers describe the last hop; they stand in for the
	// distributed tracing extension only when the producer gave neither
	// attribute, and are ignored when malformed, as W3C Trace Context asks.
	if !ceTrace && len(traceparent) == 1 && printableASCII(traceparent[0]) {
		attrs = append(attrs, mevents.AttrFromString("traceparent", traceparent[0]))
		if ts := strings.Join(tracestate, ","); ts != "" && printableASCII(ts) {
			attrs = append(attrs, mevents.AttrFromString("tracestate", ts))
		}
	}
	sort.SliceStable(attrs, func(i, j int) bool { return attrRank(attrs[i].Name) < attrRank(attrs[j].Name) })

	e, more := mevents.NewEvent(attrs, body, 0)
	for i := range probs {
		probs[i].ID = e.ID
	}
	for _, p := range more {
		if p.Keyword == "required" && reported[p.Pointer] {
			continue // its header is there, and reported above
		}
		probs = append(probs, p)
	}
	return e, probs
}

// attrRank orders the required attributes first, as the spec lists them.
func attrRank(name string) int {
	switch name {
	case "specversion":
		return 0
	case "id":
		return 1
	case "source":
		return 2
	case "type":
		return 3
	}
	return 4
}

// decodeHeaderValue decodes a ce- header value as the HTTP binding says:
// first unescape a double-quoted string (RFC 7230 section 3.2.6), then one
// round of percent-decoding; the result must be UTF-8. It returns the value,
// or why it cannot be decoded.
func decodeHeaderValue(v string) (string, string) {
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		i := 1
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' {
				i++
				if i == len(v) {
					break
				}
			}
			b.WriteByte(v[i])
		}
		if i != len(v)-1 {
			return "", "is not a valid double-quoted string"
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", "is not valid UTF-8"
		}
		return v, ""
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(v) || unhex(v[i+1]) < 0 || unhex(v[i+2]) < 0 {
			return "", "has a % that is not followed by two hexadecimal digits"
		}
		out = append(out, byte(unhex(v[i+1])<<4|unhex(v[i+2])))
		i += 2
	}
	if !utf8.Valid(out) {
		return "", "is not valid UTF-8 once percent-decoded"
	}
	return string(out), ""
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// attrPointer returns the JSON pointer to the attribute name (RFC 6901).
func attrPointer(name string) string {
	return "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}
