package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

func TestAdminForbidden(t *testing.T) {
	e := newOpsEnv(t)
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/v1/admin/cluster", ""},
		{http.MethodGet, "/v1/admin/streams", ""},
		{http.MethodPost, "/v1/admin/reload", ""},
		{http.MethodGet, "/v1/admin/maintenance", ""},
		{http.MethodPut, "/v1/admin/maintenance", `{"enabled":true}`},
	}
	for _, client := range []string{"producer", "consumer", "stranger", "off"} {
		for _, rt := range routes {
			t.Run(client+" "+rt.method+" "+rt.path, func(t *testing.T) {
				r := e.do(e.client(client, nil, false), rt.method, rt.path, rt.body)
				if r.status != http.StatusForbidden {
					t.Fatalf("status=%d, want 403: %s", r.status, r.body)
				}
				decodeProblem(t, r)
			})
		}
	}
}

func TestAdminCluster(t *testing.T) {
	e := newOpsEnv(t)
	r := e.do(e.client("admin", nil, false), http.MethodGet, "/v1/admin/cluster", "")
	if r.status != 200 {
		t.Fatalf("status=%d: %s", r.status, r.body)
	}
	var st broker.ClusterStatus
	decodeJSON(t, r, &st)
	if st.Node != "n1" || st.MetaLeader != "n1" || len(st.Nodes) != 1 || !st.Nodes[0].Leader || st.Version == "" {
		t.Fatalf("cluster %+v", st)
	}
	// Three event streams and the admin bucket.
	if st.JetStream.Streams != 4 {
		t.Fatalf("jetstream usage %+v, want 4 streams", st.JetStream)
	}
}

func TestAdminStreams(t *testing.T) {
	e := newOpsEnv(t)
	if r := e.post(e.client("producer", nil, false), "/v1/events", "application/cloudevents-batch+json",
		[]byte("["+person("a1", "2000000000001")+","+person("a2", "2000000000002")+"]")); r.status != http.StatusAccepted {
		t.Fatalf("produce: status=%d: %s", r.status, r.body)
	}
	r := e.do(e.client("admin", nil, false), http.MethodGet, "/v1/admin/streams", "")
	if r.status != 200 {
		t.Fatalf("status=%d: %s", r.status, r.body)
	}
	var body struct{ Items []broker.StreamStatus }
	decodeJSON(t, r, &body)
	if len(body.Items) != 3 {
		t.Fatalf("streams %+v, want 3", body.Items)
	}
	tests := []struct {
		typ              string
		messages, last   uint64
		wantBytesNonZero bool
	}{
		{personType, 2, 2, true},
		{orderType, 0, 0, false},
		{smallType, 0, 0, false},
	}
	for i, tt := range tests {
		got := body.Items[i]
		if got.Type != tt.typ || got.Stream != broker.StreamName(tt.typ) || got.Messages != tt.messages || got.LastSeq != tt.last ||
			(got.Bytes > 0) != tt.wantBytesNonZero || got.Leader != "n1" || got.Replicas != 1 || got.Error != "" {
			t.Fatalf("stream %d: %+v, want %+v", i, got, tt)
		}
	}
}

func TestAdminReload(t *testing.T) {
	e := newOpsEnv(t)
	admin := e.client("admin", nil, false)
	if r := e.do(admin, http.MethodPost, "/v1/admin/reload", ""); r.status != http.StatusServiceUnavailable {
		t.Fatalf("without a reloader: status=%d, want 503", r.status)
	}
	calls := 0
	e.api.SetReloader(func(ctx context.Context) error {
		calls++
		if calls == 2 {
			return errors.New("registry.yaml: clients[0].id: empty")
		}
		return nil
	})
	tests := []struct {
		status int
		detail string
	}{
		{200, ""},
		{400, "registry not reloaded; the previous one stays in force: registry.yaml: clients[0].id: empty"},
	}
	for i, tt := range tests {
		r := e.do(admin, http.MethodPost, "/v1/admin/reload", "")
		if r.status != tt.status {
			t.Fatalf("call %d: status=%d, want %d: %s", i, r.status, tt.status, r.body)
		}
		if tt.status != 200 {
			if p := decodeProblem(t, r); p.Detail != tt.detail {
				t.Fatalf("detail %q, want %q", p.Detail, tt.detail)
			}
		}
	}
}

// TestAdminLagAndDeadEvents: an admin sees a group's backlog and another
// client's dead events; a non-admin gets neither.
func TestAdminLagAndDeadEvents(t *testing.T) {
	e := newConsumeEnv(t)
	e.produce(order("lag-1", "k1"), order("lag-2", "k2"), order("lag-3", "k3"))
	ws := e.mustDial("consumer", "types="+orderType+"&maxInFlight=10")
	first := ws.event()
	ws.send(map[string]any{"op": "dead", "ackIds": []string{first.AckID}, "reason": "cannot parse", "id": "1"})
	ws.control()

	admin := e.client("admin")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var lag struct{ Items []broker.GroupLag }
		r := e.do(admin, http.MethodGet, "/v1/admin/lag?client=consumer", nil)
		if r.status != http.StatusOK {
			t.Fatalf("lag: %d %s", r.status, r.body)
		}
		if err := json.Unmarshal(r.body, &lag); err != nil {
			t.Fatal(err)
		}
		if len(lag.Items) == 1 && lag.Items[0].Group == "default" && lag.Items[0].Type == orderType && lag.Items[0].AckPending >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag = %+v", lag.Items)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// The group's cursors: one per partition, owned by the open instance.
	var groups struct{ Items []broker.CursorState }
	r := e.do(admin, http.MethodGet, "/v1/admin/groups?client=consumer&group=default", nil)
	if err := json.Unmarshal(r.body, &groups); err != nil || r.status != http.StatusOK {
		t.Fatalf("groups: %d %s", r.status, r.body)
	}
	ackPending := uint64(0)
	for _, cs := range groups.Items {
		if cs.Client != "consumer" || cs.Group != "default" || cs.Type != orderType || cs.Owner == "" || cs.Epoch < 1 {
			t.Fatalf("cursor %+v", cs)
		}
		ackPending += cs.AckPending
	}
	if len(groups.Items) != mevents.Partitions || ackPending < 1 {
		t.Fatalf("groups = %+v", groups.Items)
	}
	r = e.do(admin, http.MethodGet, "/v1/admin/clients/consumer/dead-events", nil)
	var dead deadList
	if err := json.Unmarshal(r.body, &dead); err != nil || r.status != http.StatusOK {
		t.Fatalf("dead events: %d %s", r.status, r.body)
	}
	if len(dead.Items) != 1 || dead.Items[0].Reason != "cannot parse" {
		t.Fatalf("dead events = %+v", dead.Items)
	}
	for _, path := range []string{"/v1/admin/lag", "/v1/admin/groups", "/v1/admin/clients/consumer/dead-events"} {
		if r := e.do(e.client("consumer"), http.MethodGet, path, nil); r.status != http.StatusForbidden {
			t.Fatalf("GET %s as a non-admin: %d, want 403", path, r.status)
		}
	}
	if r := e.do(admin, http.MethodGet, "/v1/admin/clients/nobody/dead-events", nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown client: %d, want 404", r.status)
	}
}
