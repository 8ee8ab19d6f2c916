package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestWhoami(t *testing.T) {
	e := newOpsEnv(t)
	tests := []struct {
		client string
		status int
		want   string // the body, compacted
	}{
		{"producer", 200, `{"clientId":"producer","roles":[],"produce":["` + personType + `","` + smallType + `"],"consume":[],"rateLimit":0}`},
		{"consumer", 200, `{"clientId":"consumer","roles":[],"produce":[],"consume":["` + personType + `"],"rateLimit":0}`},
		{"admin", 200, `{"clientId":"admin","roles":["admin"],"produce":[],"consume":[],"rateLimit":0}`},
		{"limited", 200, `{"clientId":"limited","roles":[],"produce":["` + personType + `"],"consume":[],"rateLimit":2}`},
		{"stranger", 403, ""},
		{"off", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			r := e.do(e.client(tt.client, nil, false), http.MethodGet, "/v1/whoami", "")
			if r.status != tt.status {
				t.Fatalf("status=%d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				decodeProblem(t, r)
				return
			}
			if got := strings.TrimSpace(string(r.body)); got != tt.want {
				t.Fatalf("body %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEventTypes(t *testing.T) {
	e := newOpsEnv(t)
	type item struct {
		Type         string `json:"type"`
		Produce      bool   `json:"produce"`
		Consume      bool   `json:"consume"`
		Retention    string `json:"retention"`
		Replicas     int    `json:"replicas"`
		MaxEventSize int64  `json:"maxEventSize"`
		DedupWindow  string `json:"dedupWindow"`
		Partitions   int    `json:"partitions"`
		Stream       string `json:"stream"`
		Subjects     struct {
			Events     string `json:"events"`
			TestEvents string `json:"testEvents"`
		} `json:"subjects"`
		Schema string `json:"schema"`
	}
	tests := []struct {
		client string
		want   []string // type:produce:consume
	}{
		{"producer", []string{personType + ":true:false", smallType + ":true:false"}},
		{"consumer", []string{personType + ":false:true"}},
		{"admin", []string{personType + ":false:false", orderType + ":false:false", smallType + ":false:false"}},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			r := e.do(e.client(tt.client, nil, false), http.MethodGet, "/v1/event-types", "")
			if r.status != 200 {
				t.Fatalf("status=%d: %s", r.status, r.body)
			}
			var body struct{ Items []item }
			decodeJSON(t, r, &body)
			var got []string
			for _, it := range body.Items {
				got = append(got, fmt.Sprintf("%s:%v:%v", it.Type, it.Produce, it.Consume))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("types %v, want %v", got, tt.want)
			}
			it := body.Items[0]
			if it.Type == personType {
				want := item{Type: personType, Produce: it.Produce, Consume: it.Consume, Retention: "120h", Replicas: 1, MaxEventSize: 1 << 20,
					DedupWindow: "10m", Partitions: 12, Stream: "EV_md_gov_person_registered", Schema: "/v1/event-types/" + personType + "/schema"}
				want.Subjects.Events = "ev." + personType + ".*"
				want.Subjects.TestEvents = "evtest." + tt.client + "." + personType + ".*"
				if it != want {
					t.Fatalf("item %+v\nwant %+v", it, want)
				}
			}
		})
	}
}

func TestEventTypeSchema(t *testing.T) {
	e := newOpsEnv(t)
	tests := []struct {
		client, typ string
		status      int
	}{
		{"producer", personType, 200},
		{"consumer", personType, 200},
		{"admin", orderType, 200},
		{"consumer", orderType, 404}, // registered, not visible to the consumer
		{"producer", "no.such.type", 404},
		{"stranger", personType, 403},
	}
	for _, tt := range tests {
		t.Run(tt.client+" "+tt.typ, func(t *testing.T) {
			r := e.do(e.client(tt.client, nil, false), http.MethodGet, "/v1/event-types/"+tt.typ+"/schema", "")
			if r.status != tt.status {
				t.Fatalf("status=%d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				decodeProblem(t, r)
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/schema+json" {
				t.Fatalf("Content-Type=%q", ct)
			}
			if !json.Valid(r.body) {
				t.Fatalf("schema is not JSON: %s", r.body)
			}
			if tt.typ == personType && string(r.body) != personSchema {
				t.Fatalf("schema %s", r.body)
			}
		})
	}
}

func TestChangelog(t *testing.T) {
	e := newOpsEnv(t)
	// No registered client is needed, only a certificate of the client CA.
	r := e.do(e.client("stranger", nil, false), http.MethodGet, "/changelog", "")
	if r.status != 200 {
		t.Fatalf("status=%d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type=%q", ct)
	}
	for _, want := range []string{"<h1>mevents API changelog</h1>", "<h2>Unreleased</h2>", "<li>", "<code>/v1/openapi.json</code>"} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("changelog lacks %q:\n%s", want, r.body)
		}
	}
}
