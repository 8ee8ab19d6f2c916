package gateway

import (
	"fmt"
	"sort"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/schemas"
)

// validateData validates the event's data against its type's schema.
// Absent data is validated as null, so a schema decides whether an event
// may come without data.
func (cat *Catalog) validateData(i int, e *mevents.Event) []mevents.Problem {
	sch := cat.schemas[e.Type]
	var v any
	if len(e.Data) > 0 {
		var err error
		if v, err = schemas.DecodeData(e.Data); err != nil {
			return []mevents.Problem{{Index: i, ID: e.ID, Pointer: "/data", Keyword: "json",
				Message: fmt.Sprintf("data is not valid JSON: %v", err), Code: mevents.CodeInvalid}}
		}
	}
	violations := sch.Validate(v)
	if len(violations) == 0 {
		return nil
	}
	problems := make([]mevents.Problem, len(violations))
	for k, vi := range violations {
		problems[k] = mevents.Problem{Index: i, ID: e.ID, Pointer: "/data" + vi.Pointer, Keyword: vi.Keyword,
			Message: vi.Message, Code: mevents.CodeInvalid}
	}
	return problems
}

// sortProblems orders problems by event, then pointer, keeping the order
// within one pointer.
func sortProblems(p []mevents.Problem) {
	sort.SliceStable(p, func(a, b int) bool {
		if p[a].Index != p[b].Index {
			return p[a].Index < p[b].Index
		}
		return p[a].Pointer < p[b].Pointer
	})
}
