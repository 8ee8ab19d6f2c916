package gateway

import (
	"fmt"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/schemas"
)

// Catalog is a registry with its schemas compiled: what the gateway
// authorizes and validates against. It is immutable.
type Catalog struct {
	reg     *broker.Registry
	schemas map[string]*schemas.Schema
}

// NewCatalog compiles the schema of every event type of reg. It fails on
// the first schema that does not compile, naming the type and the file.
func NewCatalog(reg *broker.Registry) (*Catalog, error) {
	c := &Catalog{reg: reg, schemas: make(map[string]*schemas.Schema, len(reg.Types))}
	for _, t := range reg.Types {
		name := t.SchemaFile
		if name == "" {
			name = t.Name
		}
		sch, err := schemas.Compile(name, t.Schema)
		if err != nil {
			return nil, fmt.Errorf("event type %s: %w", t.Name, err)
		}
		c.schemas[t.Name] = sch
	}
	return c, nil
}

// Registry returns the registry the catalog was made from.
func (c *Catalog) Registry() *broker.Registry { return c.reg }
