package schemas

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kaptinlin/jsonschema"
)

// Schema is a compiled JSON Schema. It is immutable: Validate may be called
// from many goroutines at once.
type Schema struct {
	name     string
	doc      *document
	compiled *jsonschema.Schema
}

// Compile compiles a JSON Schema document. name identifies the document in
// error messages (a file name, an event type). The document is never
// resolved against the network or the file system: every $ref must point
// into doc itself.
//
// Compile returns an error, prefixed "compile schema <name>: ", for invalid
// JSON, a document that is not a schema object or boolean, an unsupported
// $schema, a keyword whose value is malformed (listing every such location),
// and a $ref that cannot be resolved inside the document.
func Compile(name string, doc []byte) (*Schema, error) {
	d, err := parseDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", name, err)
	}

	// A compiler per document: kaptinlin caches resources by $id, and two
	// event types may legitimately reuse one (or a reload recompile it).
	c := jsonschema.NewCompiler()
	c.SetAssertFormat(true)
	c.SetDefaultDialect(d.draft.dialect())
	// Replace the default http/https loaders so that a $ref outside the
	// document fails compilation instead of being fetched. "" is the scheme
	// of a relative reference in a document without an absolute $id.
	for scheme := range c.Loaders {
		delete(c.Loaders, scheme)
	}
	for _, scheme := range []string{"", "http", "https", "file"} {
		c.RegisterLoader(scheme, refuseLoad)
	}

	compiled, err := c.Compile(d.data)
	if err != nil {
		var remote *remoteRefError
		if errors.As(err, &remote) {
			return nil, fmt.Errorf("compile schema %s: %w", name, remote)
		}
		// kaptinlin names the scope URI, empty for a document without $id.
		msg := strings.ReplaceAll(err.Error(), " in  at ", " at ")
		return nil, fmt.Errorf("compile schema %s: %s", name, msg)
	}
	return &Schema{name: name, doc: d, compiled: compiled}, nil
}

// remoteRefError reports a $ref that points outside the document.
type remoteRefError struct{ uri string }

func (e *remoteRefError) Error() string {
	return fmt.Sprintf("$ref %q points outside this document; remote references are never fetched, copy the schema under $defs instead", e.uri)
}

func refuseLoad(uri string) (io.ReadCloser, error) {
	return nil, &remoteRefError{uri: uri}
}

// Name returns the name given to Compile.
func (s *Schema) Name() string { return s.name }

// Draft returns the draft the schema was compiled with: the one its
// $schema declares, or the one inferred from its keywords.
func (s *Schema) Draft() Draft { return s.doc.draft }

// Validate validates a decoded JSON value, as produced by Decode (or by
// encoding/json with Decoder.UseNumber; float64 numbers work too but lose
// precision beyond 2^53). It returns every violation, sorted by pointer,
// keyword and message, or nil if v is valid.
func (s *Schema) Validate(v any) []Violation {
	r := s.compiled.Validate(v)
	if r.IsValid() {
		return nil
	}
	return s.violations(r, v)
}

// Decode parses one JSON value into the form Validate expects: objects as
// map[string]any, arrays as []any and numbers as json.Number, so that big
// integers and decimals such as 0.1 keep their exact value. Data after the
// value is an error.
func Decode(data []byte) (any, error) {
	return decode(data)
}
