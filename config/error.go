package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem with one field of a configuration file. Loaders
// return every problem of a file at once, joined with errors.Join; use
// errors.As to get the first one.
type Error struct {
	// File is the path of the file as given to the loader; empty when the
	// configuration did not come from a file (Node.Validate).
	File string
	// Line is the 1-based line of the field in File, or 0 when unknown.
	Line int
	// Field is the path of the field, like "jetstream.sync" or
	// "clients[2].produce[0]"; empty when the problem concerns the whole file.
	Field string
	// Err is the reason.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// problems collects the errors of one file, so that an operator sees all of
// them after one attempt instead of one per attempt.
type problems []*Error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &Error{Field: field, Err: fmt.Errorf(format, args...)})
}

func (p *problems) addErr(field string, line int, err error) {
	*p = append(*p, &Error{Field: field, Line: line, Err: err})
}

// inFile sets the file of every problem, and its line where the problem
// carries none, by finding its field in the document root.
func (p problems) inFile(file string, root *yaml.Node) problems {
	for _, e := range p {
		e.File = file
		if e.Line == 0 && root != nil {
			e.Line = locate(root, e.Field)
		}
	}
	return p
}

// err returns nil or the problems joined.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	errs := make([]error, len(p))
	for i, e := range p {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// locate returns the line of the field at path ("a.b[2].c") in the document
// root, or of its deepest ancestor present in the file (a missing field is
// reported where its section is), or 0.
func locate(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return 0
		}
		n = n.Content[0]
	}
	line := 0
	for _, step := range splitPath(path) {
		n = resolveAlias(n)
		next, at := child(n, step)
		if next == nil {
			return line
		}
		n, line = next, at
	}
	return line
}

// splitPath turns "a.b[2].c" into "a", "b", "[2]", "c".
func splitPath(path string) []string {
	var steps []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part[1:], '[')
			if i < 0 {
				steps = append(steps, part)
				break
			}
			steps = append(steps, part[:i+1])
			part = part[i+1:]
		}
	}
	return steps
}

// child returns the node a path step leads to from n, and the line to report
// for it: the key's line in a mapping, the element's line in a sequence.
func child(n *yaml.Node, step string) (*yaml.Node, int) {
	if strings.HasPrefix(step, "[") {
		i, err := strconv.Atoi(strings.Trim(step, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil, 0
		}
		return n.Content[i], n.Content[i].Line
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == step {
			return n.Content[i+1], k.Line
		}
	}
	return nil, 0
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
