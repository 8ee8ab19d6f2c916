package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeFile reads the YAML file at path into out (a pointer to a struct
// with yaml tags) strictly, and returns the document's root node, which
// callers use to find the lines of fields that fail validation.
//
// yaml.v3's own strict mode (Decoder.KnownFields) names neither the field
// path nor, for values rejected by an UnmarshalYAML method, the line; so the
// document is first checked against the shape of out by check, which reports
// every unknown field and every malformed value with its path and line. The
// strict decoder then runs as a backstop.
func decodeFile(path string, out any) (*yaml.Node, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(buf, &root); err != nil {
		return nil, &Error{File: path, Err: err}
	}
	if len(root.Content) == 0 { // an empty file is an empty configuration
		return &root, nil
	}

	var p problems
	check(&root, reflect.TypeOf(out).Elem(), "", &p)
	if len(p) > 0 {
		return nil, p.inFile(path, nil).err()
	}

	dec := yaml.NewDecoder(bytes.NewReader(buf))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return nil, &Error{File: path, Err: err}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, &Error{File: path, Err: fmt.Errorf("more than one YAML document")}
	}
	return &root, nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// check reports, in p, every field of n that t has no room for and every
// value that cannot be decoded into its field's type.
func check(n *yaml.Node, t reflect.Type, path string, p *problems) {
	n = resolveAlias(n)
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			check(c, t, path, p)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: the default applies
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			p.addErr(path, n.Line, err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			p.addErr(path, n.Line, fmt.Errorf("want a mapping of fields, got %s", describe(n)))
			return
		}
		checkMapping(n, t, path, map[string]int{}, p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			p.addErr(path, n.Line, fmt.Errorf("want a list, got %s", describe(n)))
			return
		}
		for i, e := range n.Content {
			check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			p.addErr(path, n.Line, fmt.Errorf("want a string, got %s", describe(n)))
		}
	default:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			p.addErr(path, n.Line, fmt.Errorf("want %s, got %s", kindName(t.Kind()), describe(n)))
		}
	}
}

// checkMapping checks the keys and values of mapping n against struct t;
// seen holds the line of every key met so far, to report repeated keys.
func checkMapping(n *yaml.Node, t reflect.Type, path string, seen map[string]int, p *problems) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" { // "<<: *anchor" merges another mapping's fields
			merged := resolveAlias(v)
			if merged.Kind == yaml.SequenceNode {
				for _, m := range merged.Content {
					if m = resolveAlias(m); m.Kind == yaml.MappingNode {
						checkMapping(m, t, path, seen, p)
					}
				}
			} else if merged.Kind == yaml.MappingNode {
				checkMapping(merged, t, path, seen, p)
			}
			continue
		}
		field := join(path, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			p.addErr(field, k.Line, fmt.Errorf("unknown field (known: %s)", known(fields)))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.addErr(field, k.Line, fmt.Errorf("repeated (first at line %d)", line))
			continue
		}
		seen[k.Value] = k.Line
		check(v, ft, field, p)
	}
}

// yamlFields maps the yaml names of t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func known(fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return k.String()
	}
}
