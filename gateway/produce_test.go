package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
	"github.com/mevents/mevents/gateway/gatewaytest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	personType = "md.gov.person.registered"
	orderType  = "com.example.mes.processorder.statuschanged"
	smallType  = "org.example.small"
)

const personSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["idnp", "firstName", "birthDate"],
  "properties": {
    "idnp": {"type": "string", "pattern": "^[0-9]{13}$"},
    "firstName": {"type": "string", "minLength": 1},
    "birthDate": {"type": "string", "format": "date"}
  }
}`

// env is a single node with the gateway in front, over real mTLS.
type env struct {
	t    testing.TB
	node *broker.Node
	api  *gateway.Server
	pki  *gatewaytest.PKI
	ca   *config.CA // pki.CA
	url  string
	// js inspects the streams through the operator port, as an operator would.
	js jetstream.JetStream
	// files are the API's TLS files.
	files gateway.TLSFiles
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

// newEnvTB is newEnv for tests and benchmarks.
func newEnvTB(t testing.TB) *env {
	t.Helper()
	pki := gatewaytest.NewPKI(t)
	opsCert, err := pki.CA.IssueTLS(config.IssueOptions{Name: "nats", Hosts: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	node := brokertest.Open(t, broker.NodeConfig{Name: "n1", SyncInterval: time.Minute,
		OperatorListen: "127.0.0.1:0", Operators: []broker.Operator{{User: "ops", Password: "pw"}},
		OperatorTLS: &tls.Config{Certificates: []tls.Certificate{opsCert}, MinVersion: tls.VersionTLS12}})
	reg := broker.NewRegistry([]broker.EventType{
		{Name: personType, Schema: []byte(personSchema), Replicas: 1, MaxEventSize: broker.MaxRequestSize},
		{Name: orderType, Schema: []byte(`{"type":"object"}`), Replicas: 1, MaxEventSize: broker.MaxRequestSize},
		{Name: smallType, Schema: []byte(`true`), Replicas: 1, MaxEventSize: 300},
	}, []broker.Client{
		{ID: "producer", Certificate: broker.CertificateMatch{Subject: "CN=producer"}, Produce: []string{personType, smallType}},
		{ID: "consumer", Certificate: broker.CertificateMatch{Subject: "CN=consumer"}, Consume: []string{personType}},
		{ID: "off", Certificate: broker.CertificateMatch{Subject: "CN=off"}, Produce: []string{personType}, Disabled: true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	api := pki.Serve(t, node, gateway.Config{})
	nc, err := nats.Connect("tls://"+node.OperatorAddr(), nats.UserInfo("ops", "pw"),
		nats.Secure(&tls.Config{RootCAs: pki.CA.Pool(), MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, node: node, api: api, pki: pki, ca: pki.CA, url: "https://" + api.Addr(), js: js, files: pki.Files}
}

// client returns an HTTP client presenting a certificate for name issued by
// ca (the env's CA when nil); name "" presents none.
func (e *env) client(name string, ca *config.CA, http2 bool) *http.Client {
	e.t.Helper()
	if ca == nil {
		return e.pki.Client(e.t, name, http2)
	}
	c := e.pki.Client(e.t, "", http2)
	cert, err := ca.IssueTLS(config.IssueOptions{Name: name, Client: true})
	if err != nil {
		e.t.Fatal(err)
	}
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	return c
}

type response struct {
	status int
	proto  int
	header http.Header
	body   []byte
}

func (e *env) post(c *http.Client, path, contentType string, body []byte, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: b}
}

// stored returns how many events the stream of typ holds.
func (e *env) stored(typ string) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, broker.StreamName(typ))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func person(id, idnp string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/civil-registry","id":%q,"partitionkey":%q,
		"data":{"idnp":%q,"firstName":"Ion","birthDate":"1990-05-17"}}`, personType, id, idnp, idnp)
}

type problemBody struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail"`
	RequestID string            `json:"requestId"`
	Errors    []mevents.Problem `json:"errors"`
}

func decodeProblem(t *testing.T, r response) problemBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type=%q, want application/problem+json (body %s)", ct, r.body)
	}
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status || p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("problem status=%d requestId=%q (header %q), response status %d", p.Status, p.RequestID, r.header.Get("X-Request-Id"), r.status)
	}
	return p
}

func TestProduceModes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		http2       bool
		contentType string
		body        string
		headers     []string
		ids         []string
	}{
		{"structured", false, "application/cloudevents+json", person("s1", "2000000000001"), nil, []string{"s1"}},
		{"structured with parameters", false, "Application/CloudEvents+JSON; charset=utf-8", person("s2", "2000000000001"), nil, []string{"s2"}},
		{"structured over HTTP/2", true, "application/cloudevents+json", person("s3", "2000000000002"), nil, []string{"s3"}},
		{"batch", true, "application/cloudevents-batch+json", "[" + person("b1", "2000000000003") + "," + person("b2", "2000000000003") + "]", nil, []string{"b1", "b2"}},
		{"empty batch", false, "application/cloudevents-batch+json", "[]", nil, []string{}},
		{"binary", false, "application/json; charset=utf-8", `{"idnp":"2000000000004","firstName":"Ana","birthDate":"2001-01-02"}`,
			[]string{"ce-specversion", "1.0", "ce-id", "bin1", "ce-source", "/civil%2Dregistry", "ce-type", personType, "ce-partitionkey", "2000000000004"}, []string{"bin1"}},
	}
	want := uint64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(e.client("producer", nil, tt.http2), "/v1/events", tt.contentType, []byte(tt.body), tt.headers...)
			if r.status != http.StatusAccepted {
				t.Fatalf("status=%d, want 202: %s", r.status, r.body)
			}
			if tt.http2 && r.proto != 2 {
				t.Fatalf("answered over HTTP/%d, want HTTP/2", r.proto)
			}
			var got struct {
				Count int      `json:"count"`
				IDs   []string `json:"ids"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Count != len(tt.ids) || fmt.Sprint(got.IDs) != fmt.Sprint(tt.ids) {
				t.Fatalf("answer %s, want ids %v", r.body, tt.ids)
			}
			want += uint64(len(tt.ids))
			if n := e.stored(personType); n != want {
				t.Fatalf("stream holds %d events, want %d", n, want)
			}
		})
	}
}

func TestProduceDeduplicates(t *testing.T) {
	e := newEnv(t)
	c := e.client("producer", nil, false)
	for i := 0; i < 3; i++ {
		r := e.post(c, "/v1/events", "application/cloudevents+json", []byte(person("same", "2000000000001")))
		if r.status != http.StatusAccepted {
			t.Fatalf("attempt %d: status=%d: %s", i, r.status, r.body)
		}
	}
	if n := e.stored(personType); n != 1 {
		t.Fatalf("stored %d events, want 1", n)
	}
}

func TestProduceRejects(t *testing.T) {
	e := newEnv(t)
	big := `{"specversion":"1.0","type":"` + smallType + `","source":"/s","id":"big","data":"` + strings.Repeat("x", 400) + `"}`
	// A batch large enough to be checked in parallel, with violations
	// spread over it: they are reported in event order all the same.
	var large []string
	for i := range 40 {
		idnp := "2000000000001"
		if i == 5 || i == 22 || i == 39 {
			idnp = "123"
		}
		large = append(large, person("l"+strconv.Itoa(i), idnp))
	}
	tests := []struct {
		name        string
		client      string
		contentType string
		body        string
		status      int
		errors      []mevents.Problem // index, id, pointer, keyword are compared
	}{
		{"schema violations in a batch", "producer", "application/cloudevents-batch+json",
			"[" + person("ok", "2000000000001") + "," + person("bad", "123") + `,{"specversion":"1.0","type":"` + personType + `","source":"/s","id":"nodata","data":{"idnp":"2000000000001","birthDate":"17.05.1990"}}]`,
			400, []mevents.Problem{
				{Index: 1, ID: "bad", Pointer: "/data/idnp", Keyword: "pattern"},
				{Index: 2, ID: "nodata", Pointer: "/data/birthDate", Keyword: "format"},
				{Index: 2, ID: "nodata", Pointer: "/data/firstName", Keyword: "required"},
			}},
		{"schema violations in a large batch", "producer", "application/cloudevents-batch+json", "[" + strings.Join(large, ",") + "]",
			400, []mevents.Problem{
				{Index: 5, ID: "l5", Pointer: "/data/idnp", Keyword: "pattern"},
				{Index: 22, ID: "l22", Pointer: "/data/idnp", Keyword: "pattern"},
				{Index: 39, ID: "l39", Pointer: "/data/idnp", Keyword: "pattern"},
			}},
		{"malformed event", "producer", "application/cloudevents+json", `{"specversion":"0.3","type":"` + personType + `","source":"/s","id":"x","data":{}}`,
			400, []mevents.Problem{{Index: 0, ID: "x", Pointer: "/specversion", Keyword: "specversion"}}},
		{"malformed JSON", "producer", "application/cloudevents+json", `{"specversion":`, 400, nil},
		{"type not allowed", "producer", "application/cloudevents+json",
			`{"specversion":"1.0","type":"` + orderType + `","source":"/s","id":"o1","data":{}}`,
			403, []mevents.Problem{{Index: 0, ID: "o1", Pointer: "/type", Keyword: "produce"}}},
		{"unknown type", "producer", "application/cloudevents+json",
			`{"specversion":"1.0","type":"no.such.type","source":"/s","id":"u1","data":{}}`,
			403, []mevents.Problem{{Index: 0, ID: "u1", Pointer: "/type", Keyword: "type"}}},
		{"event over its type's limit", "producer", "application/cloudevents+json", big,
			413, []mevents.Problem{{Index: 0, ID: "big", Pointer: "", Keyword: "maxEventSize"}}},
		{"request over 1 MiB", "producer", "application/cloudevents+json", `{"data":"` + strings.Repeat("x", broker.MaxRequestSize) + `"}`, 413, nil},
		{"unsupported media type", "producer", "text/plain", "hello", 415, nil},
		{"unsupported event format", "producer", "application/cloudevents+xml", "<event/>", 415, nil},
		{"binary data", "producer", "application/cloudevents+json",
			`{"specversion":"1.0","type":"` + personType + `","source":"/s","id":"b64","data_base64":"aGVsbG8="}`,
			415, []mevents.Problem{{Index: 0, ID: "b64", Pointer: "/datacontenttype", Keyword: "datacontenttype"}}},
		{"unregistered client", "stranger", "application/cloudevents+json", person("x", "2000000000001"), 403, nil},
		{"disabled client", "off", "application/cloudevents+json", person("x", "2000000000001"), 403, nil},
		{"test event of a type not routed to the caller", "producer", "", "", 403, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/v1/events"
			if tt.contentType == "" {
				path, tt.contentType, tt.body = "/v1/test-events", "application/cloudevents+json", person("t1", "2000000000001")
			}
			r := e.post(e.client(tt.client, nil, false), path, tt.contentType, []byte(tt.body))
			if r.status != tt.status {
				t.Fatalf("status=%d, want %d: %s", r.status, tt.status, r.body)
			}
			p := decodeProblem(t, r)
			if tt.errors != nil {
				if len(p.Errors) != len(tt.errors) {
					t.Fatalf("errors=%+v, want %d", p.Errors, len(tt.errors))
				}
				for i, w := range tt.errors {
					g := p.Errors[i]
					if g.Index != w.Index || g.ID != w.ID || g.Pointer != w.Pointer || g.Keyword != w.Keyword || g.Message == "" {
						t.Fatalf("errors[%d]=%+v, want %+v (all: %+v)", i, g, w, p.Errors)
					}
				}
			}
			if strings.Contains(string(r.body), "nats") || strings.Contains(string(r.body), "goroutine") {
				t.Fatalf("body leaks internals: %s", r.body)
			}
		})
	}
	if n := e.stored(personType); n != 0 {
		t.Fatalf("rejected requests stored %d events", n)
	}
}

func TestTLS(t *testing.T) {
	e := newEnv(t)
	other, err := config.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no certificate", func(t *testing.T) {
		_, err := e.client("", nil, false).Get(e.url + "/v1/events")
		if err == nil {
			t.Fatal("request without a client certificate succeeded")
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		_, err := e.client("producer", other, false).Get(e.url + "/v1/events")
		if err == nil {
			t.Fatal("request with a certificate of another CA succeeded")
		}
	})
	t.Run("TLS 1.1", func(t *testing.T) {
		cert, _ := e.ca.IssueTLS(config.IssueOptions{Name: "producer", Client: true})
		conn, err := tls.Dial("tcp", e.api.Addr(), &tls.Config{RootCAs: e.ca.Pool(), Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
}

func TestTestEvents(t *testing.T) {
	e := newEnv(t)
	r := e.post(e.client("consumer", nil, false), "/v1/test-events", "application/cloudevents+json", []byte(person("t1", "2000000000001")))
	if r.status != http.StatusAccepted {
		t.Fatalf("status=%d: %s", r.status, r.body)
	}
	ctx := context.Background()
	s, err := e.js.Stream(ctx, broker.StreamName(personType))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "evtest.consumer."+personType+".*")
	if err != nil {
		t.Fatalf("test event not stored for the consumer: %v", err)
	}
	ev, _ := mevents.ParseEvent(m.Data, 0)
	if v, _ := ev.Attr("testevent"); string(v) != "true" || ev.StringAttr("authid") != "consumer" {
		t.Fatalf("stored test event %s", m.Data)
	}
	// The consumer may not produce real events of the type.
	r = e.post(e.client("consumer", nil, false), "/v1/events", "application/cloudevents+json", []byte(person("t2", "2000000000001")))
	if r.status != http.StatusForbidden {
		t.Fatalf("status=%d, want 403", r.status)
	}
}
