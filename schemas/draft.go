package schemas

import (
	"fmt"
	"strings"

	"github.com/kaptinlin/jsonschema"
)

// Draft is a version of JSON Schema.
type Draft int

// The supported drafts, oldest first.
const (
	Draft6 Draft = iota + 1
	Draft7
	Draft2019
	Draft2020
)

// String returns the draft's usual name, e.g. "2020-12".
func (d Draft) String() string {
	switch d {
	case Draft6:
		return "draft-06"
	case Draft7:
		return "draft-07"
	case Draft2019:
		return "2019-09"
	case Draft2020:
		return "2020-12"
	}
	return fmt.Sprintf("Draft(%d)", int(d))
}

// dialect is kaptinlin's name for the draft.
func (d Draft) dialect() jsonschema.Dialect {
	switch d {
	case Draft6:
		return jsonschema.Draft6
	case Draft7:
		return jsonschema.Draft7
	case Draft2019:
		return jsonschema.Draft201909
	}
	return jsonschema.Draft202012
}

// legacyTuples reports whether the draft spells tuples as an array-valued
// "items" plus "additionalItems" (before 2020-12's "prefixItems" + "items").
func (d Draft) legacyTuples() bool { return d < Draft2020 }

// draftOf maps a $schema URI to its draft. The scheme may be http or https
// and a trailing empty fragment is ignored, as every published meta-schema
// has been referenced both ways.
func draftOf(uri string) (Draft, bool) {
	u := strings.TrimSuffix(strings.TrimSpace(uri), "#")
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	switch u {
	case "json-schema.org/draft-06/schema":
		return Draft6, true
	case "json-schema.org/draft-07/schema":
		return Draft7, true
	case "json-schema.org/draft/2019-09/schema":
		return Draft2019, true
	case "json-schema.org/draft/2020-12/schema":
		return Draft2020, true
	}
	return 0, false
}

const supportedSchemaURIs = `"http://json-schema.org/draft-06/schema#", "http://json-schema.org/draft-07/schema#", ` +
	`"https://json-schema.org/draft/2019-09/schema" or "https://json-schema.org/draft/2020-12/schema"`

// Keywords that tell the draft of a document without "$schema".
var (
	// legacyKeywords exist only before 2020-12, which replaced them.
	legacyKeywords = []string{"additionalItems", "dependencies", "items[]"}
	// recursiveKeywords exist only in 2019-09.
	recursiveKeywords = []string{"$recursiveRef", "$recursiveAnchor"}
	// keywords2019 arrived in 2019-09 and remain in 2020-12.
	keywords2019 = []string{"$defs", "$anchor", "dependentRequired", "dependentSchemas",
		"unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains"}
	// keywords2020 arrived in 2020-12.
	keywords2020 = []string{"prefixItems", "$dynamicRef", "$dynamicAnchor"}
)

// inferDraft chooses the draft of a document without "$schema" from the
// keywords it uses (see the package comment). used holds every keyword met
// in a schema position; "items[]" stands for an array-valued "items".
func inferDraft(used map[string]bool) (Draft, error) {
	has := func(keywords []string) string {
		for _, k := range keywords {
			if used[k] {
				return k
			}
		}
		return ""
	}
	legacy := has(legacyKeywords)
	recursive := has(recursiveKeywords)
	if k := has(keywords2020); k != "" {
		old := legacy
		if old == "" {
			old = recursive
		}
		if old == "items[]" {
			old = "array-valued items"
		}
		if old != "" {
			return 0, fmt.Errorf("without $schema the draft is ambiguous: %s is a 2020-12 keyword but %s predates 2020-12; declare $schema", k, old)
		}
		return Draft2020, nil
	}
	if recursive != "" {
		return Draft2019, nil
	}
	if legacy != "" || used["definitions"] {
		if has(keywords2019) != "" {
			return Draft2019, nil
		}
		return Draft7, nil
	}
	return Draft2020, nil
}
