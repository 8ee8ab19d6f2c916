package config

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mevents/mevents/broker"
)

// RegistryOptions adjust LoadRegistry to the node that loads the registry.
type RegistryOptions struct {
	// SingleNode is set on a node without a cluster (Node.SingleNode). Event
	// types that leave replicas out get 1 instead of broker.DefaultReplicas,
	// and a type that asks for more than 1 is an error, since one node holds
	// at most one replica.
	SingleNode bool
}

// Limits of registry.yaml.
const (
	MaxTypeNameLength = 200 // type names become NATS subject tokens and stream names
	MaxReplicas       = 5   // JetStream's limit
	MinDedupWindow    = time.Second
)

// registryFile is the shape of registry.yaml. Pointers tell a field left out
// (the default applies) from one set to zero (an error).
type registryFile struct {
	EventTypes []eventTypeFile `yaml:"eventTypes"`
	Clients    []clientFile    `yaml:"clients"`
}

type eventTypeFile struct {
	Type         string    `yaml:"type"`
	Schema       string    `yaml:"schema"`
	Retention    *Duration `yaml:"retention"`
	Replicas     *int      `yaml:"replicas"`
	MaxEventSize *Size     `yaml:"maxEventSize"`
	DedupWindow  *Duration `yaml:"dedupWindow"`
}

type clientFile struct {
	ID          string          `yaml:"id"`
	Certificate certificateFile `yaml:"certificate"`
	Produce     []string        `yaml:"produce"`
	Consume     []string        `yaml:"consume"`
	RateLimit   float64         `yaml:"rateLimit"`
	MaxDeliver  *int            `yaml:"maxDeliver"`
	Admin       bool            `yaml:"admin"`
	Disabled    bool            `yaml:"disabled"`
}

type certificateFile struct {
	Subject     string `yaml:"subject"`
	Fingerprint string `yaml:"fingerprint"`
}

var (
	// typePattern: dot-separated tokens, each a valid NATS subject token
	// without wildcards.
	typePattern     = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	hexPattern      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// LoadRegistry reads and validates the registry.yaml at path: its event
// types, with each type's JSON Schema read from its file (relative to the
// registry's directory; the bytes must be JSON, compiling them is the
// schemas package's job), and its clients. Every field left out gets its
// default from package broker. Errors name the file, line, field and reason
// (see Error); all the problems of the file are reported together.
func LoadRegistry(path string, opts RegistryOptions) (*broker.Registry, error) {
	var f registryFile
	root, err := decodeFile(path, &f)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	var p problems
	types := eventTypes(&p, f.EventTypes, dir, opts)
	clients := clients(&p, f.Clients, types)
	if err := p.inFile(path, root).err(); err != nil {
		return nil, err
	}
	return broker.NewRegistry(types, clients), nil
}

func eventTypes(p *problems, files []eventTypeFile, dir string, opts RegistryOptions) []broker.EventType {
	types := make([]broker.EventType, 0, len(files))
	names := map[string]int{}   // type name -> index
	streams := map[string]int{} // lower-case stream name -> index
	for i, f := range files {
		field := fmt.Sprintf("eventTypes[%d]", i)
		t := broker.EventType{
			Name:         f.Type,
			Retention:    broker.DefaultRetention,
			Replicas:     broker.DefaultReplicas,
			MaxEventSize: broker.MaxRequestSize,
			DedupWindow:  broker.DefaultDedupWindow,
		}
		switch {
		case f.Type == "":
			p.add(field+".type", "required")
		case len(f.Type) > MaxTypeNameLength:
			p.add(field+".type", "%.40q…: longer than %d characters", f.Type, MaxTypeNameLength)
		case !typePattern.MatchString(f.Type):
			p.add(field+".type", "%q: a type name is dot-separated tokens of letters, digits, '_' and '-'", f.Type)
		default:
			// Stream names are file names in the data directory, which is
			// case-insensitive on some systems: compare them ignoring case.
			stream := strings.ToLower(broker.StreamName(f.Type))
			if j, dup := names[f.Type]; dup {
				p.add(field+".type", "%q is already defined by eventTypes[%d]", f.Type, j)
			} else if j, dup := streams[stream]; dup {
				p.add(field+".type", "%q and eventTypes[%d] (%q) map to the same stream %s", f.Type, j, files[j].Type, broker.StreamName(f.Type))
			} else {
				names[f.Type] = i
				streams[stream] = i
			}
		}

		if f.Schema == "" {
			p.add(field+".schema", "required")
		} else {
			t.SchemaFile = resolvePath(dir, f.Schema)
			schema, err := os.ReadFile(t.SchemaFile)
			switch {
			case err != nil:
				p.add(field+".schema", "%v", err)
			case !json.Valid(schema):
				p.add(field+".schema", "%s is not valid JSON", t.SchemaFile)
			default:
				t.Schema = json.RawMessage(schema)
			}
		}

		if f.Retention != nil {
			t.Retention = time.Duration(*f.Retention)
		}
		if t.Retention <= 0 {
			p.add(field+".retention", "%s: must be positive", t.Retention)
		}

		if opts.SingleNode {
			t.Replicas = 1
		}
		if f.Replicas != nil {
			t.Replicas = *f.Replicas
			if t.Replicas < 1 || t.Replicas > MaxReplicas {
				p.add(field+".replicas", "%d: must be from 1 to %d", t.Replicas, MaxReplicas)
			} else if opts.SingleNode && t.Replicas > 1 {
				p.add(field+".replicas", "%d: a single node holds only 1 replica (leave replicas out to get 1 here and %d in a cluster)", t.Replicas, broker.DefaultReplicas)
			}
		}

		if f.MaxEventSize != nil {
			t.MaxEventSize = int64(*f.MaxEventSize)
			if t.MaxEventSize < 1 || t.MaxEventSize > broker.MaxRequestSize {
				p.add(field+".maxEventSize", "%s: must be from 1 byte to %s (the request limit)", *f.MaxEventSize, Size(broker.MaxRequestSize))
			}
		}

		if f.DedupWindow != nil {
			t.DedupWindow = time.Duration(*f.DedupWindow)
		}
		if t.DedupWindow < MinDedupWindow {
			p.add(field+".dedupWindow", "%s: must be at least %s", t.DedupWindow, MinDedupWindow)
		} else if t.Retention > 0 && t.DedupWindow > t.Retention {
			// JetStream refuses a duplicate window longer than the stream's max age.
			p.add(field+".dedupWindow", "%s: must not exceed the retention (%s)", t.DedupWindow, t.Retention)
		}
		types = append(types, t)
	}
	return types
}

func clients(p *problems, files []clientFile, types []broker.EventType) []broker.Client {
	known := make(map[string]bool, len(types))
	for _, t := range types {
		if t.Name != "" {
			known[t.Name] = true
		}
	}
	clients := make([]broker.Client, 0, len(files))
	ids := map[string]int{}
	subjects := map[string]int{}
	fingerprints := map[string]int{}
	for i, f := range files {
		field := fmt.Sprintf("clients[%d]", i)
		c := broker.Client{
			ID:         f.ID,
			Produce:    f.Produce,
			Consume:    f.Consume,
			RateLimit:  f.RateLimit,
			MaxDeliver: broker.DefaultMaxDeliver,
			Admin:      f.Admin,
			Disabled:   f.Disabled,
		}
		switch {
		case f.ID == "":
			p.add(field+".id", "required")
		case !clientIDPattern.MatchString(f.ID):
			p.add(field+".id", "%q: a client id is 1 to 64 letters, digits, '_' and '-'", f.ID)
		default:
			if j, dup := ids[f.ID]; dup {
				p.add(field+".id", "%q is already used by clients[%d]", f.ID, j)
			} else {
				ids[f.ID] = i
			}
		}

		cert := f.Certificate
		switch {
		case cert.Subject == "" && cert.Fingerprint == "":
			p.add(field+".certificate", "set subject or fingerprint")
		case cert.Subject != "" && cert.Fingerprint != "":
			p.add(field+".certificate", "set only one of subject and fingerprint")
		case cert.Subject != "":
			c.Certificate.Subject = cert.Subject
			if !strings.Contains(cert.Subject, "=") {
				p.add(field+".certificate.subject", "%q is not a distinguished name like %q", cert.Subject, "CN="+cert.Subject)
			} else if j, dup := subjects[cert.Subject]; dup {
				p.add(field+".certificate.subject", "%q is already used by clients[%d]", cert.Subject, j)
			} else {
				subjects[cert.Subject] = i
			}
		default:
			fp := broker.NormalizeFingerprint(cert.Fingerprint)
			c.Certificate.Fingerprint = fp
			if !hexPattern.MatchString(fp) {
				p.add(field+".certificate.fingerprint", "%q is not a SHA-256 fingerprint (sha256: and 64 hex digits)", cert.Fingerprint)
			} else if j, dup := fingerprints[fp]; dup {
				p.add(field+".certificate.fingerprint", "%q is already used by clients[%d]", cert.Fingerprint, j)
			} else {
				fingerprints[fp] = i
			}
		}

		typeList(p, field+".produce", f.Produce, known)
		typeList(p, field+".consume", f.Consume, known)

		if math.IsNaN(f.RateLimit) || math.IsInf(f.RateLimit, 0) || f.RateLimit < 0 {
			p.add(field+".rateLimit", "%v: must be a number of events per second, 0 or more (0 is unlimited)", f.RateLimit)
		}
		if f.MaxDeliver != nil {
			c.MaxDeliver = *f.MaxDeliver
			if c.MaxDeliver < 1 {
				p.add(field+".maxDeliver", "%d: must be at least 1", c.MaxDeliver)
			}
		}
		clients = append(clients, c)
	}
	return clients
}

// typeList checks a client's produce or consume list: configured types, each
// once.
func typeList(p *problems, field string, list []string, known map[string]bool) {
	seen := map[string]int{}
	for i, t := range list {
		entry := fmt.Sprintf("%s[%d]", field, i)
		if !known[t] {
			p.add(entry, "%q is not a configured event type", t)
		} else if j, dup := seen[t]; dup {
			p.add(entry, "%q is already listed at %s[%d]", t, field, j)
		} else {
			seen[t] = i
		}
	}
}
