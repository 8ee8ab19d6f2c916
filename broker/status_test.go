package broker_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMaintenanceAcrossCluster: a change made on one node reaches the
// watches of all three.
func TestMaintenanceAcrossCluster(t *testing.T) {
	nodes := brokertest.Cluster(t, 3, broker.NodeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := make([]broker.Maintenance, len(nodes))
	changed := make([]chan struct{}, len(nodes))
	for i, n := range nodes {
		changed[i] = make(chan struct{}, 1)
		w, err := n.WatchMaintenance(ctx, func(m broker.Maintenance) {
			mu.Lock()
			defer mu.Unlock()
			seen[i] = m
			select {
			case changed[i] <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatalf("watch on %s: %v", n.Name(), err)
		}
		t.Cleanup(w.Stop)
	}
	tests := []broker.Maintenance{
		{Enabled: true, Message: "upgrade", By: "admin", Since: time.Now().UTC()},
		{Enabled: false, By: "admin", Since: time.Now().UTC().Add(time.Second)},
	}
	for i, want := range tests {
		if err := nodes[i%len(nodes)].SetMaintenance(ctx, want); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
		for node := range nodes {
			for {
				mu.Lock()
				got := seen[node]
				mu.Unlock()
				if got.Enabled == want.Enabled && got.Message == want.Message && got.Since.Equal(want.Since) {
					break
				}
				select {
				case <-changed[node]:
				case <-deadline:
					t.Fatalf("change %d: node %d has %+v, want %+v", i, node+1, got, want)
				}
			}
		}
	}
	st, err := nodes[0].ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 3 || st.MetaLeader == "" || st.Cluster != "mevents" {
		t.Fatalf("cluster status %+v", st)
	}
	leaders := 0
	for _, p := range st.Nodes {
		if p.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in %+v", leaders, st.Nodes)
	}
}

func TestStreamStatus(t *testing.T) {
	n, _ := operatorNode(t)
	ctx := context.Background()
	const typ = "md.gov.person.registered"
	if err := n.ApplyRegistry(ctx, testRegistry(typ)); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, broker.Publication{Producer: "p", Events: []mevents.Event{event(t, typ, "/s", "1", "k")}}); err != nil {
		t.Fatal(err)
	}
	st, err := n.StreamStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Type != typ || st[0].Messages != 1 || st[0].LastSeq != 1 || st[0].Leader != "n1" || st[0].Replicas != 1 {
		t.Fatalf("stream status %+v", st)
	}
}

// TestSystemOperator: the "-sys" operator answers what `nats server report
// jetstream` asks: $SYS.REQ.SERVER.PING.JSZ.
func TestSystemOperator(t *testing.T) {
	n, ca := operatorNode(t)
	if err := n.ApplyRegistry(context.Background(), testRegistry("a.b")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("tls://"+n.OperatorAddr(), nats.UserInfo("ops-sys", "s3cret"),
		nats.Secure(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request("$SYS.REQ.SERVER.PING.JSZ", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("JSZ ping: %v", err)
	}
	var resp struct {
		Server struct {
			Name string `json:"name"`
		} `json:"server"`
		Data struct {
			Streams int `json:"streams"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatalf("JSZ answer %s: %v", msg.Data, err)
	}
	if resp.Server.Name != "n1" || resp.Data.Streams != 1 {
		t.Fatalf("JSZ answer %s", msg.Data)
	}
}

func TestCollector(t *testing.T) {
	n, _ := operatorNode(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collector())
	tests := []struct {
		name        string
		before      func()
		ready, lead int
	}{
		{"running", func() {}, 1, 1},
		{"closed", func() { n.Close() }, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.before()
			want := fmt.Sprintf(`
# HELP mevents_jetstream_ready 1 when JetStream is current, a meta leader is known and this node's streams are healthy.
# TYPE mevents_jetstream_ready gauge
mevents_jetstream_ready %d
`, tt.ready)
			names := []string{"mevents_jetstream_ready"}
			if tt.lead >= 0 {
				want += fmt.Sprintf(`# HELP mevents_jetstream_meta_leader 1 when the JetStream meta group has a leader.
# TYPE mevents_jetstream_meta_leader gauge
mevents_jetstream_meta_leader %d
`, tt.lead)
				names = append(names, "mevents_jetstream_meta_leader")
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
				t.Fatal(err)
			}
		})
	}
}
