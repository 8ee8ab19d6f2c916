package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDashboard checks that every metric the Grafana dashboard
// (scripts/grafana/mevents.json) queries is one a node exports: it runs
// the development system, produces (one event refused by its schema),
// consumes (releasing, acknowledging and reporting dead), so that every
// labelled metric has a series, and scrapes the ops listener's /metrics.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "scripts", "grafana", "mevents.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	metricName := regexp.MustCompile(`\b(?:mevents|go|process)_[a-z_]+\b`)
	queried := map[string]string{} // metric → panel
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				queried[m] = p.Title
			}
		}
	}
	if len(queried) < 15 {
		t.Fatalf("the dashboard queries only %d metrics: %v", len(queried), queried)
	}

	m, dir := runDevSystem(t)
	pki := filepath.Join(dir, "pki")
	api := "https://" + m.API.Addr()
	producer := mtlsClient(t, pki, "demo-producer")
	for _, name := range []string{"person-registered.json", "person-registered-invalid.json"} {
		body, err := os.ReadFile(filepath.Join(dir, "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := producer.Post(api+"/v1/events", "application/cloudevents+json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	batch, err := os.ReadFile(filepath.Join(dir, "examples", "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := producer.Post(api+"/v1/events", "application/cloudevents-batch+json", strings.NewReader(string(batch)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// One event is released and then acknowledged, another reported dead.
	d := websocket.Dialer{TLSClientConfig: clientTLS(t, pki, "demo-consumer"), Subprotocols: []string{"cloudevents.json"}}
	conn, _, err := d.Dial("wss://"+m.API.Addr()+"/v1/subscription/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	released, acked, dead := "", false, false
	for !acked || !dead {
		var ev struct {
			ID, AckID     string
			DeliveryCount int
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := conn.ReadJSON(&ev); err != nil {
			t.Fatal(err)
		}
		op := ""
		switch {
		case ev.AckID == "":
			continue
		case released == "":
			released, op = ev.ID, "release"
		case ev.ID == released && ev.DeliveryCount > 1:
			acked, op = true, "ack"
		case !dead && ev.ID != released:
			dead, op = true, "dead"
		default:
			continue
		}
		frame := map[string]any{"op": op, "ackIds": []string{ev.AckID}}
		if op == "dead" {
			frame["reason"] = "test"
		}
		if err := conn.WriteJSON(frame); err != nil {
			t.Fatal(err)
		}
	}

	// A family (# TYPE line) or a series of the metric is enough.
	exported := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + m.Ops.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
				exported[strings.Fields(f)[0]] = true
				continue
			}
			if name := metricName.FindString(line); name != "" && strings.HasPrefix(line, name) {
				exported[name] = true
			}
		}
		var missing []string
		for name := range queried {
			if !exported[name] && !exported[strings.TrimSuffix(name, "_bucket")] {
				missing = append(missing, name+" ("+queried[name]+")")
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("the dashboard queries metrics the node does not export:\n%s", strings.Join(missing, "\n"))
		}
		time.Sleep(200 * time.Millisecond) // the lag collector reads at scrape time
	}
}
