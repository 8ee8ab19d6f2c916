package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway"
	"github.com/mevents/mevents/gateway/gatewaytest"
	"github.com/prometheus/client_golang/prometheus"
)

// opsEnv is env with the operations parts wired as cmd/mevents wires them:
// an API server with its own metrics registry and a JSON logger, the ops
// listener serving that registry, and more clients: "admin" (the admin
// role) and "limited" (2 events/s).
type opsEnv struct {
	*env
	api2 *gateway.Server
	ops  *gateway.Ops
	log  *gatewaytest.LogBuffer
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	e := newEnv(t)
	old := e.node.Registry()
	clients := append([]broker.Client(nil), old.Clients...)
	clients = append(clients,
		broker.Client{ID: "admin", Certificate: broker.CertificateMatch{Subject: "CN=admin"}, Admin: true},
		broker.Client{ID: "limited", Certificate: broker.CertificateMatch{Subject: "CN=limited"}, Produce: []string{personType}, RateLimit: 2},
	)
	reg := broker.NewRegistry(old.Types, clients)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.node.ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	cat, err := gateway.NewCatalog(reg)
	if err != nil {
		t.Fatal(err)
	}
	e.api.SetCatalog(cat)

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(e.node.Collector())
	logs := &gatewaytest.LogBuffer{}
	api := e.pki.Serve(t, e.node, gateway.Config{TLS: e.pki.ServerFiles(t, "api2"), Metrics: gateway.NewMetrics(metrics),
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	ops := gateway.NewOps("127.0.0.1:0", e.node, nil)
	ops.ServeMetrics(metrics)
	if err := ops.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close(context.Background()) })

	// The env's own server stays up on the same node: a second "node" of
	// the API for the maintenance test.
	e2 := *e
	e2.url, e2.api = "https://"+api.Addr(), api
	return &opsEnv{env: &e2, api2: e.api, ops: ops, log: logs}
}

// do sends a request and returns the answer.
func (e *env) do(c *http.Client, method, path string, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: b}
}

func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func TestRateLimit(t *testing.T) {
	e := newOpsEnv(t)
	c := e.client("limited", nil, false)
	batch := "[" + person("r1", "2000000000001") + "," + person("r2", "2000000000001") + "]"
	if r := e.post(c, "/v1/events", "application/cloudevents-batch+json", []byte(batch)); r.status != http.StatusAccepted {
		t.Fatalf("first batch: status=%d: %s", r.status, r.body)
	}
	r := e.post(c, "/v1/events", "application/cloudevents+json", []byte(person("r3", "2000000000001")))
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("over the rate: status=%d, want 429: %s", r.status, r.body)
	}
	decodeProblem(t, r)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After=%q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
	}
	// Other clients have their own budget; the unlimited producer has none.
	for i := 0; i < 5; i++ {
		r := e.post(e.client("producer", nil, false), "/v1/events", "application/cloudevents+json", []byte(person("p"+strconv.Itoa(i), "2000000000001")))
		if r.status != http.StatusAccepted {
			t.Fatalf("unlimited producer: status=%d: %s", r.status, r.body)
		}
	}
}

func TestMaintenance(t *testing.T) {
	e := newOpsEnv(t)
	admin, producer := e.client("admin", nil, false), e.client("producer", nil, false)
	other := *e.env
	other.url = "https://" + e.api2.Addr() // the other API server on the node

	if r := e.do(producer, http.MethodPut, "/v1/admin/maintenance", `{"enabled":true}`); r.status != http.StatusForbidden {
		t.Fatalf("non-admin PUT: status=%d, want 403", r.status)
	}
	for _, body := range []string{`{"message":"x"}`, `{"enabled":"yes"}`, `nope`, `{"enabled":true,"extra":1}`} {
		if r := e.do(admin, http.MethodPut, "/v1/admin/maintenance", body); r.status != http.StatusBadRequest {
			t.Fatalf("PUT %s: status=%d, want 400", body, r.status)
		}
	}
	const msg = "upgrading storage until 14:00 UTC"
	r := e.do(admin, http.MethodPut, "/v1/admin/maintenance", `{"enabled":true,"message":"`+msg+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT: status=%d: %s", r.status, r.body)
	}
	var m broker.Maintenance
	decodeJSON(t, e.do(admin, http.MethodGet, "/v1/admin/maintenance", ""), &m)
	if !m.Enabled || m.Message != msg || m.By != "admin" {
		t.Fatalf("GET maintenance = %+v", m)
	}

	tests := []struct {
		name   string
		server *env
		client *http.Client
		method string
		path   string
		ct     string
		body   string
		status int
	}{
		{"produce", e.env, producer, http.MethodPost, "/v1/events", "application/cloudevents+json", person("m1", "2000000000001"), 503},
		{"test events", e.env, e.client("consumer", nil, false), http.MethodPost, "/v1/test-events", "application/cloudevents+json", person("m2", "2000000000001"), 503},
		{"produce on the other server", &other, producer, http.MethodPost, "/v1/events", "application/cloudevents+json", person("m3", "2000000000001"), 503},
		{"whoami stays", e.env, producer, http.MethodGet, "/v1/whoami", "", "", 200},
		{"event types stay", e.env, producer, http.MethodGet, "/v1/event-types", "", "", 200},
		{"admin stays", e.env, admin, http.MethodGet, "/v1/admin/cluster", "", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The other server learns the mode through its own watch: poll.
			deadline := time.Now().Add(5 * time.Second)
			for {
				var r response
				if tt.method == http.MethodPost {
					r = tt.server.post(tt.client, tt.path, tt.ct, []byte(tt.body))
				} else {
					r = tt.server.do(tt.client, tt.method, tt.path, "")
				}
				if r.status == tt.status {
					if r.status == 503 {
						p := decodeProblem(t, r)
						if p.Detail != msg || r.header.Get("Retry-After") != "30" {
							t.Fatalf("detail=%q Retry-After=%q", p.Detail, r.header.Get("Retry-After"))
						}
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("status=%d, want %d: %s", r.status, tt.status, r.body)
				}
			}
		})
	}

	if r := e.do(admin, http.MethodPut, "/v1/admin/maintenance", `{"enabled":false}`); r.status != http.StatusOK {
		t.Fatalf("PUT off: status=%d: %s", r.status, r.body)
	}
	if r := e.post(producer, "/v1/events", "application/cloudevents+json", []byte(person("m4", "2000000000001"))); r.status != http.StatusAccepted {
		t.Fatalf("after maintenance: status=%d: %s", r.status, r.body)
	}
	if n := e.stored(personType); n != 1 {
		t.Fatalf("stored %d events, want 1 (none during maintenance)", n)
	}
}

func TestMaintenanceState(t *testing.T) {
	e := newOpsEnv(t)
	m, changed := e.api2.MaintenanceState()
	if m.Enabled {
		t.Fatal("maintenance on at start")
	}
	if r := e.do(e.client("admin", nil, false), http.MethodPut, "/v1/admin/maintenance", `{"enabled":true,"message":"m"}`); r.status != http.StatusOK {
		t.Fatalf("PUT: status=%d", r.status)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the change channel was not closed within 5s")
	}
	if m, _ := e.api2.MaintenanceState(); !m.Enabled || m.Message != "m" {
		t.Fatalf("state %+v", m)
	}
}
