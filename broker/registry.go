package broker

import (
	"encoding/json"
	"strings"
	"time"
)

// Defaults of the registry, as documented in the README.
const (
	DefaultRetention   = 120 * time.Hour
	DefaultReplicas    = 3
	DefaultDedupWindow = 10 * time.Minute
	DefaultMaxDeliver  = 10
	// MaxRequestSize is the largest request body the API accepts, and the
	// default size limit of one event.
	MaxRequestSize = 1 << 20
)

// EventType is one configured event type. Name is the CloudEvents `type`.
type EventType struct {
	Name string
	// Schema is the JSON Schema of the event's data, as read from its file.
	Schema json.RawMessage
	// SchemaFile is where Schema was read from, for messages.
	SchemaFile   string
	Retention    time.Duration
	Replicas     int
	MaxEventSize int64
	DedupWindow  time.Duration
}

// CertificateMatch says how a client certificate is recognised: by its
// subject distinguished name (RFC 2253 form, as x509 Name.String prints it)
// or by the SHA-256 fingerprint of the DER certificate (lower-case hex).
type CertificateMatch struct {
	Subject     string
	Fingerprint string
}

// Client is a registered client (an information system).
type Client struct {
	ID          string
	Certificate CertificateMatch
	Produce     []string
	Consume     []string
	// RateLimit is in events per second; 0 is unlimited.
	RateLimit  float64
	MaxDeliver int
	Admin      bool
	Disabled   bool
}

// MayProduce reports whether the client may produce events of type t.
func (c *Client) MayProduce(t string) bool { return contains(c.Produce, t) }

// MayConsume reports whether events of type t are routed to the client.
func (c *Client) MayConsume(t string) bool { return contains(c.Consume, t) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Registry is an immutable snapshot of the configured event types and
// clients. A new snapshot replaces the old one on reload; nobody mutates one.
type Registry struct {
	Types   []EventType
	Clients []Client

	types         map[string]*EventType
	clients       map[string]*Client
	bySubject     map[string]*Client
	byFingerprint map[string]*Client
}

// NewRegistry indexes types and clients. It does not validate them: that is
// the job of the loader (package config), which reports errors by file and field.
func NewRegistry(types []EventType, clients []Client) *Registry {
	r := &Registry{
		Types:         types,
		Clients:       clients,
		types:         make(map[string]*EventType, len(types)),
		clients:       make(map[string]*Client, len(clients)),
		bySubject:     make(map[string]*Client),
		byFingerprint: make(map[string]*Client),
	}
	for i := range r.Types {
		r.types[r.Types[i].Name] = &r.Types[i]
	}
	for i := range r.Clients {
		c := &r.Clients[i]
		r.clients[c.ID] = c
		if c.Certificate.Subject != "" {
			r.bySubject[c.Certificate.Subject] = c
		}
		if c.Certificate.Fingerprint != "" {
			r.byFingerprint[NormalizeFingerprint(c.Certificate.Fingerprint)] = c
		}
	}
	return r
}

// Type returns the event type called name, or nil.
func (r *Registry) Type(name string) *EventType { return r.types[name] }

// Client returns the client with the given id, or nil.
func (r *Registry) Client(id string) *Client { return r.clients[id] }

// ClientByCertificate returns the client registered for a certificate with
// the given subject or SHA-256 fingerprint (a fingerprint match wins), or nil.
func (r *Registry) ClientByCertificate(subject, fingerprint string) *Client {
	if c := r.byFingerprint[NormalizeFingerprint(fingerprint)]; c != nil && fingerprint != "" {
		return c
	}
	return r.bySubject[subject]
}

// NormalizeFingerprint turns "sha256:AB:CD…", "AB CD …" or "abcd…" into
// plain lower-case hex.
func NormalizeFingerprint(fp string) string {
	fp = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(fp)), "sha256:")
	return strings.NewReplacer(":", "", " ", "").Replace(fp)
}
