package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

func TestOpenAPI(t *testing.T) {
	e := newOpsEnv(t)
	// Served without a registered client.
	r := e.do(e.client("stranger", nil, false), http.MethodGet, "/v1/openapi.json", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status=%d Content-Type=%q", r.status, r.header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}

	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	ginParam := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	routed := map[string]bool{}
	for _, rt := range e.api.Handler().(*gin.Engine).Routes() {
		routed[rt.Method+" "+ginParam.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	for _, op := range sorted(routed) {
		// OpenAPI 3.0 has no CONNECT operation: the RFC 8441 CONNECT of a
		// WebSocket is described with the GET of its path.
		if path, ok := strings.CutPrefix(op, http.MethodConnect+" "); ok && documented[http.MethodGet+" "+path] {
			continue
		}
		if !documented[op] {
			t.Errorf("%s is routed but not in the OpenAPI document", op)
		}
	}
	for _, op := range sorted(documented) {
		if !routed[op] {
			t.Errorf("%s is in the OpenAPI document but not routed", op)
		}
	}
}

func sorted(set map[string]bool) []string {
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIResponses checks real answers against the schemas the document
// gives for their path, method, status and media type.
func TestOpenAPIResponses(t *testing.T) {
	e := newOpsEnv(t)
	doc, err := openapi3.NewLoader().LoadFromData(e.do(e.client("stranger", nil, false), http.MethodGet, "/v1/openapi.json", "").body)
	if err != nil {
		t.Fatal(err)
	}
	admin, producer := e.client("admin", nil, false), e.client("producer", nil, false)
	tests := []struct {
		name        string
		client      *http.Client
		method      string
		path, route string // route: the documented path, when it differs
		ct, body    string
		status      int
	}{
		{"produce", producer, http.MethodPost, "/v1/events", "", "application/cloudevents+json", person("o1", "2000000000001"), 202},
		{"produce invalid", producer, http.MethodPost, "/v1/events", "", "application/cloudevents-batch+json", "[" + person("o2", "1") + "]", 400},
		{"produce forbidden", producer, http.MethodPost, "/v1/events", "", "application/cloudevents+json", `{"specversion":"1.0","type":"` + orderType + `","source":"/s","id":"x","data":{}}`, 403},
		{"whoami", producer, http.MethodGet, "/v1/whoami", "", "", "", 200},
		{"event types", producer, http.MethodGet, "/v1/event-types", "", "", "", 200},
		{"schema not found", producer, http.MethodGet, "/v1/event-types/x.y/schema", "/v1/event-types/{type}/schema", "", "", 404},
		{"cluster", admin, http.MethodGet, "/v1/admin/cluster", "", "", "", 200},
		{"cluster forbidden", producer, http.MethodGet, "/v1/admin/cluster", "", "", "", 403},
		{"streams", admin, http.MethodGet, "/v1/admin/streams", "", "", "", 200},
		{"maintenance", admin, http.MethodGet, "/v1/admin/maintenance", "", "", "", 200},
		{"set maintenance", admin, http.MethodPut, "/v1/admin/maintenance", "", "application/json", `{"enabled":false,"message":""}`, 200},
		{"bad maintenance", admin, http.MethodPut, "/v1/admin/maintenance", "", "application/json", `{}`, 400},
		{"reload unavailable", admin, http.MethodPost, "/v1/admin/reload", "", "", "", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.ct != "" {
				r = e.post(tt.client, tt.path, tt.ct, []byte(tt.body))
				if tt.method != http.MethodPost {
					r = e.do(tt.client, tt.method, tt.path, tt.body)
				}
			} else {
				r = e.do(tt.client, tt.method, tt.path, "")
			}
			if r.status != tt.status {
				t.Fatalf("status=%d, want %d: %s", r.status, tt.status, r.body)
			}
			route := tt.route
			if route == "" {
				route = tt.path
			}
			item := doc.Paths.Value(route)
			if item == nil {
				t.Fatalf("%s is not documented", route)
			}
			op := item.GetOperation(tt.method)
			if op == nil {
				t.Fatalf("%s %s is not documented", tt.method, route)
			}
			ref := op.Responses.Status(tt.status)
			if ref == nil || ref.Value == nil {
				t.Fatalf("%s %s: status %d is not documented", tt.method, route, tt.status)
			}
			mt := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
			media := ref.Value.Content.Get(mt)
			if media == nil || media.Schema == nil {
				t.Fatalf("%s %s %d: media type %q is not documented", tt.method, route, tt.status, mt)
			}
			var v any
			if err := json.Unmarshal(r.body, &v); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if err := media.Schema.Value.VisitJSON(v); err != nil {
				t.Fatalf("answer does not match the document: %v\nbody %s", err, r.body)
			}
		})
	}
}
