package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

// BenchmarkWebSocketDeliver measures delivery over one WebSocket (TLS,
// HTTP/1.1) on one node: b.N events of ~1 KiB over 1,000 keys, stored
// before the timer starts, read by a new group's connection of credit
// 1,000 whose writer acknowledges what has arrived as fast as it can send
// (as `mevents bench`'s consumers do). It reports events/s; compare them,
// and a -cpuprofile, with the previous build's to see what a change to
// the delivery path does.
func BenchmarkWebSocketDeliver(b *testing.B) {
	nodes := gatewaytest.NewCluster(b, gatewaytest.Options{
		EventTypes: []broker.EventType{{Name: orderType, Schema: []byte(`{"type":"object"}`)}},
		Clients: []broker.Client{
			{ID: "producer", Certificate: broker.CertificateMatch{Subject: "CN=producer"}, Produce: []string{orderType}},
			{ID: "consumer", Certificate: broker.CertificateMatch{Subject: "CN=consumer"}, Consume: []string{orderType}},
		}})
	n := nodes[0]
	producer := n.PKI.Client(b, "producer", true)
	pad := strings.Repeat("x", 900)
	for sent := 0; sent < b.N; {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i := 0; i < 100 && sent < b.N; i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"specversion":"1.0","type":%q,"source":"/bench","id":"e%d","partitionkey":"k%d","data":{"pad":%q}}`, orderType, sent, sent%1000, pad)
			sent++
		}
		buf.WriteByte(']')
		resp, err := producer.Post(n.URL+"/v1/events", "application/cloudevents-batch+json", &buf)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("produce: status %d", resp.StatusCode)
		}
	}

	b.ResetTimer()
	d := websocket.Dialer{TLSClientConfig: n.TLSConfig("consumer"), Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial("wss://"+strings.TrimPrefix(n.URL, "https://")+fmt.Sprintf("/v1/subscription/ws?group=bench%d&maxInFlight=1000", b.N), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var (
		mu      sync.Mutex
		pending []string
		kick    = make(chan struct{}, 1)
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-kick:
			}
			mu.Lock()
			ids := pending
			pending = nil
			mu.Unlock()
			if len(ids) > 0 {
				frame, _ := json.Marshal(map[string]any{"op": "ack", "ackIds": ids})
				_ = conn.WriteMessage(websocket.TextMessage, frame)
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()
	start := time.Now()
	for got := 0; got < b.N; {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, msg, err := conn.ReadMessage()
		if err != nil {
			b.Fatalf("after %d events: %v", got, err)
		}
		var ev struct {
			AckID string `json:"ackid"`
		}
		if json.Unmarshal(msg, &ev) != nil || ev.AckID == "" {
			continue // a settlement's answer
		}
		got++
		mu.Lock()
		pending = append(pending, ev.AckID)
		mu.Unlock()
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
