package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/gateway"
)

func TestMetrics(t *testing.T) {
	e := newOpsEnv(t)
	producer := e.client("producer", nil, false)
	e.post(producer, "/v1/events", "application/cloudevents+json", []byte(person("ok1", "2000000000001")))
	e.post(producer, "/v1/events", "application/cloudevents-batch+json", []byte("["+person("ok2", "2000000000001")+","+person("bad", "123")+"]"))
	e.post(producer, "/v1/events", "application/cloudevents+json", []byte(`{"specversion":"1.0","type":"no.such","source":"/s","id":"u"}`))
	e.do(producer, http.MethodGet, "/v1/whoami", "")

	resp, err := http.Get("http://" + e.ops.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`mevents_produce_requests_total{client="producer",status="202"} 1`,
		`mevents_produce_requests_total{client="producer",status="400"} 1`,
		`mevents_produce_requests_total{client="producer",status="403"} 1`,
		`mevents_produced_events_total{client="producer",status="202",type="` + personType + `"} 1`,
		`mevents_produced_events_total{client="producer",status="400",type="` + personType + `"} 2`,
		`mevents_produced_events_total{client="producer",status="403",type="other"} 1`,
		`mevents_validation_failures_total{keyword="pattern"} 1`,
		`mevents_validation_failures_total{keyword="type"} 1`,
		`mevents_http_request_duration_seconds_count{method="POST",route="/v1/events"} 3`,
		`mevents_http_requests_total{method="GET",route="/v1/whoami",status="200"} 1`,
		`mevents_jetstream_ready 1`,
		`mevents_jetstream_meta_leader 1`,
		`mevents_cluster_peers{state="current"} 1`,
		`mevents_maintenance 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

func TestAccessLog(t *testing.T) {
	e := newOpsEnv(t)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.post(e.client("producer", nil, false), "/v1/events", "application/cloudevents-batch+json",
		[]byte("["+person("l1", "2000000000001")+","+person("l2", "2000000000001")+"]"),
		"traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	if r.status != http.StatusAccepted {
		t.Fatalf("status=%d: %s", r.status, r.body)
	}
	id := r.header.Get("X-Request-Id")
	var line map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for line == nil {
		for _, l := range strings.Split(e.log.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["requestId"] == id {
				line = m
			}
		}
		if line == nil && time.Now().After(deadline) {
			t.Fatalf("no access line for request %s in\n%s", id, e.log.String())
		}
	}
	want := map[string]any{"client": "producer", "status": 202.0, "events": 2.0, "traceId": trace, "method": "POST", "path": "/v1/events"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s=%v, want %v (line %v)", k, line[k], v, line)
		}
	}
	if lat, ok := line["latency"].(float64); !ok || lat <= 0 {
		t.Errorf("latency=%v", line["latency"])
	}
}

// TestProfiles: Go's profiles are served on the ops listener only when
// asked for.
func TestProfiles(t *testing.T) {
	e := newOpsEnv(t)
	get := func(addr string) int {
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := get(e.ops.Addr()); code != http.StatusNotFound {
		t.Fatalf("profiles without ops.pprof: %d, want 404", code)
	}
	ops := gateway.NewOps("127.0.0.1:0", e.node, nil)
	ops.ServeProfiles()
	if err := ops.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer ops.Close(t.Context())
	if code := get(ops.Addr()); code != http.StatusOK {
		t.Fatalf("profiles with ops.pprof: %d, want 200", code)
	}
}
