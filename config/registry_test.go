package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
)

func TestLoadRegistry(t *testing.T) {
	r, err := LoadRegistry("testdata/registry/valid.yaml", RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	schemas := abs(t, "testdata/registry/schemas")
	person, err := os.ReadFile(filepath.Join(schemas, "person-registered.json"))
	if err != nil {
		t.Fatal(err)
	}
	anySchema := json.RawMessage("true\n")
	wantTypes := []broker.EventType{
		{
			Name:         "md.gov.person.registered",
			Schema:       person,
			SchemaFile:   filepath.Join(schemas, "person-registered.json"),
			Retention:    120 * time.Hour,
			Replicas:     3,
			MaxEventSize: 1 << 20,
			DedupWindow:  broker.DefaultDedupWindow,
		},
		{
			Name:         "org.example.order-status_changed",
			Schema:       anySchema,
			SchemaFile:   filepath.Join(schemas, "any.json"),
			Retention:    48 * time.Hour,
			Replicas:     1,
			MaxEventSize: 64 << 10,
			DedupWindow:  2 * time.Hour,
		},
		{
			Name:         "defaults",
			Schema:       anySchema,
			SchemaFile:   filepath.Join(schemas, "any.json"),
			Retention:    broker.DefaultRetention,
			Replicas:     broker.DefaultReplicas,
			MaxEventSize: broker.MaxRequestSize,
			DedupWindow:  broker.DefaultDedupWindow,
		},
	}
	if !reflect.DeepEqual(r.Types, wantTypes) {
		t.Fatalf("Types=\n%+v\nwant\n%+v", r.Types, wantTypes)
	}
	wantClients := []broker.Client{
		{
			ID:          "civil-registry",
			Certificate: broker.CertificateMatch{Subject: "CN=civil-registry"},
			Produce:     []string{"md.gov.person.registered"},
			Consume:     []string{},
			MaxDeliver:  10,
		},
		{
			ID:          "archive_2",
			Certificate: broker.CertificateMatch{Fingerprint: strings.Repeat("abcdef0123456789", 4)},
			Consume:     []string{"md.gov.person.registered", "org.example.order-status_changed"},
			RateLimit:   12.5,
			MaxDeliver:  3,
			Admin:       true,
			Disabled:    true,
		},
		{
			ID:          "minimal",
			Certificate: broker.CertificateMatch{Subject: "CN=minimal,O=Example"},
			MaxDeliver:  broker.DefaultMaxDeliver,
		},
	}
	if !reflect.DeepEqual(r.Clients, wantClients) {
		t.Fatalf("Clients=\n%+v\nwant\n%+v", r.Clients, wantClients)
	}

	// The registry is indexed.
	if c := r.ClientByCertificate("CN=civil-registry", ""); c == nil || c.ID != "civil-registry" {
		t.Fatalf("ClientByCertificate(subject)=%v", c)
	}
	if c := r.ClientByCertificate("CN=other", "sha256:"+strings.Repeat("ABCDEF0123456789", 4)); c == nil || c.ID != "archive_2" {
		t.Fatalf("ClientByCertificate(fingerprint)=%v", c)
	}
	if typ := r.Type("defaults"); typ == nil || typ.Replicas != 3 {
		t.Fatalf("Type(defaults)=%v", typ)
	}
}

func TestLoadRegistrySingleNode(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type":"object"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		replicas string // the replicas line, or ""
		single   bool
		want     int
		err      string
	}{
		{"cluster default", "", false, 3, ""},
		{"single default", "", true, 1, ""},
		{"single explicit 1", "replicas: 1", true, 1, ""},
		{"single explicit 3", "replicas: 3", true, 0, "reg.yaml:4: eventTypes[0].replicas: 3: a single node holds only 1 replica"},
		{"cluster explicit 5", "replicas: 5", false, 5, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "reg.yaml")
			doc := "eventTypes:\n  - type: a.b\n    schema: s.json\n    " + tt.replicas + "\n"
			if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := LoadRegistry(file, RegistryOptions{SingleNode: tt.single})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadRegistry: %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Types[0].Replicas; got != tt.want {
				t.Fatalf("Replicas=%d, want %d", got, tt.want)
			}
		})
	}
}

func TestLoadRegistryInvalid(t *testing.T) {
	testInvalid(t, "testdata/registry/invalid", func(path string) error {
		_, err := LoadRegistry(path, RegistryOptions{})
		return err
	})
}

func TestLoadRegistryEmpty(t *testing.T) {
	file := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(file, []byte("# nothing yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRegistry(file, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Types) != 0 || len(r.Clients) != 0 {
		t.Fatalf("empty registry has %d types, %d clients", len(r.Types), len(r.Clients))
	}
}

// Every problem of a file is reported, each at its line.
func TestLoadRegistryAllProblems(t *testing.T) {
	file := filepath.Join(t.TempDir(), "registry.yaml")
	doc := `eventTypes:
  - {type: "a b", schema: missing.json}
clients:
  - {id: c, certificate: {subject: CN=c}, produce: [x]}
  - {id: c, certificate: {subject: CN=d}, maxDeliver: 0}
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadRegistry(file, RegistryOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		file + `:2: eventTypes[0].type: "a b"`,
		file + `:2: eventTypes[0].schema: open `,
		file + `:4: clients[0].produce[0]: "x" is not a configured event type`,
		file + `:5: clients[1].id: "c" is already used by clients[0]`,
		file + `:5: clients[1].maxDeliver: 0: must be at least 1`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant it to contain %q", err, want)
		}
	}
}
