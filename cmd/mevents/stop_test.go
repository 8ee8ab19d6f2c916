package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
)

// stopGrace is what a stop may take beyond shutdownTimeout in this test:
// the process's own exit and the test's scheduling on a busy machine.
const stopGrace = 2 * time.Second

// stopWithin sends SIGTERM and reports how long the process took to end;
// it kills it, and fails the test, when it outlives shutdownTimeout by
// more than stopGrace.
func (n *faultNode) stopWithin(sent time.Time) time.Duration {
	n.t.Helper()
	bound := time.Duration(n.cfg.ShutdownTimeout) + stopGrace
	select {
	case <-n.done:
	case <-time.After(time.Until(sent.Add(bound))):
		_ = n.cmd.Process.Kill()
		<-n.done
		n.t.Errorf("%s still ran %s after SIGTERM (shutdownTimeout %s); see %s", n.cfg.Node.Name, bound, n.cfg.ShutdownTimeout, n.log.Name())
	}
	n.cmd = nil
	return time.Since(sent)
}

// TestStopWholeCluster stops all three nodes of a process cluster at the
// same moment, while a consumer holds unacknowledged events and idle
// groups exist: each process ends within shutdownTimeout. After a restart
// every event acknowledged to the producer is there (a new group receives
// them all), none that the consumer acknowledged (answered as succeeded)
// comes back to its group, and every one it held unacknowledged does.
// Then the nodes
// stop one after the other, the last one standing without a quorum, each
// within the bound too.
func TestStopWholeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("process cluster: not in -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	var nodes []*faultNode
	var apis []string
	for _, cfg := range clusterConfigs(t, dir, 3) {
		cfg.API.Listen, cfg.Ops.Listen, cfg.NATS.Listen = brokertest.FreeAddr(t), brokertest.FreeAddr(t), brokertest.FreeAddr(t)
		cfg.ShutdownTimeout = config.Duration(5 * time.Second)
		n := newFaultNode(t, bin, dir, cfg)
		nodes = append(nodes, n)
		apis = append(apis, cfg.API.Listen)
	}
	startAll := func() {
		for _, n := range nodes {
			n.start()
		}
		for _, n := range nodes {
			n.waitReady()
		}
	}
	startAll()

	pki := filepath.Join(dir, "pki")
	producer := mtlsClient(t, pki, "producer")
	consumer := mtlsClient(t, pki, "consumer")
	const total = 120
	for b := 0; b < total/20; b++ {
		var events []string
		for i := 0; i < 20; i++ {
			id := b*20 + i
			events = append(events, fmt.Sprintf(`{"specversion":"1.0","type":"org.example.order.changed","source":"/erp","id":"e%d","partitionkey":"o%d","data":{"orderId":"o%d"}}`, id, id%7, id))
		}
		resp, err := producer.Post("https://"+apis[b%3]+"/v1/events", "application/cloudevents-batch+json", strings.NewReader("["+strings.Join(events, ",")+"]"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("produce: status %d", resp.StatusCode)
		}
	}
	// Idle groups: each long poll makes a group whose instance the node
	// holds until its poll ends.
	for i := 0; i < 30; i++ {
		resp, err := consumer.Get(fmt.Sprintf("https://%s/v1/subscription/events?group=idle%d&start=latest&wait=1ms", apis[i%3], i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// The consumer acknowledges half, waiting for each answer, and holds
	// what else it was sent unacknowledged.
	tlsConfig := clientTLS(t, pki, "consumer")
	dial := func(api, group string) *websocket.Conn {
		d := websocket.Dialer{TLSClientConfig: tlsConfig, Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.Dial("wss://"+api+"/v1/subscription/ws?group="+group+"&maxInFlight=80", nil)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	acked, sentAck := map[string]bool{}, map[string]bool{}
	conn := dial(apis[0], "stop")
	for len(acked) < total/2 {
		var msg struct {
			Op        string   `json:"op"`
			ID        string   `json:"id"`
			AckID     string   `json:"ackid"`
			Succeeded []string `json:"succeeded"`
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := conn.ReadJSON(&msg); err != nil {
			t.Fatalf("consume: %v", err)
		}
		switch {
		case msg.Op == "result" && len(msg.Succeeded) == 1:
			acked[msg.ID] = true
		case msg.AckID != "" && len(sentAck) < total/2:
			sentAck[msg.ID] = true
			if err := conn.WriteJSON(map[string]any{"op": "ack", "ackIds": []string{msg.AckID}, "id": msg.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Log("SIGTERM to every node at once")
	sent := time.Now()
	for _, n := range nodes {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Logf("%s ended %s after SIGTERM", n.cfg.Node.Name, n.stopWithin(sent).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	conn.Close()
	if t.Failed() {
		return
	}

	startAll()
	// Every event acknowledged to the producer is there: a new group
	// receives all of them.
	all := map[string]bool{}
	consume(t, dial(apis[1], "after"), total, func(id string) { all[id] = true })
	if len(all) != total {
		t.Fatalf("after the restart a new group received %d distinct events, want %d", len(all), total)
	}
	// The group that was stopped with events out: none it acknowledged
	// comes again, and every one it held unacknowledged does.
	again := map[string]bool{}
	conn = dial(apis[2], "stop")
	for len(again) < total-len(acked) {
		var ev struct{ ID, AckID string }
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := conn.ReadJSON(&ev); err != nil {
			t.Fatalf("the stopped group received %d of its %d unacknowledged events: %v", len(again), total-len(acked), err)
		}
		if ev.AckID == "" {
			continue // a settlement's result
		}
		if acked[ev.ID] {
			t.Fatalf("event %s, acknowledged before the stop, was delivered again", ev.ID)
		}
		again[ev.ID] = true
		_ = conn.WriteJSON(map[string]any{"op": "ack", "ackIds": []string{ev.AckID}})
	}
	conn.Close()

	for _, n := range nodes {
		t.Logf("SIGTERM to %s", n.cfg.Node.Name)
		sent := time.Now()
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		t.Logf("%s ended %s after SIGTERM", n.cfg.Node.Name, n.stopWithin(sent).Round(time.Millisecond))
	}
}

// consume reads n events from conn, acknowledging each, and calls fn with
// each event's id; it fails the test when one does not come within 30s.
func consume(t *testing.T, conn *websocket.Conn, n int, fn func(id string)) {
	t.Helper()
	defer conn.Close()
	for i := 0; i < n; {
		var ev struct{ ID, AckID string }
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := conn.ReadJSON(&ev); err != nil {
			t.Fatalf("consume, %d of %d events: %v", i, n, err)
		}
		if ev.AckID == "" {
			continue
		}
		fn(ev.ID)
		i++
		if err := conn.WriteJSON(map[string]any{"op": "ack", "ackIds": []string{ev.AckID}}); err != nil {
			t.Fatal(err)
		}
	}
}
