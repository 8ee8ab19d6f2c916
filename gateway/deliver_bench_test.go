package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/client"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

// BenchmarkWebSocketDeliver measures delivery over one WebSocket (TLS) on
// one node: b.N events of ~1 KiB over 1,000 keys, stored before the timer
// starts, consumed by a new group through the Go client (credit 1,000, a
// handler that only counts, each event acknowledged as it returns), over
// HTTP/1.1 and over HTTP/2. It reports events/s; compare them, and a
// -cpuprofile, with the previous build's to see what a change to the
// delivery path does.
func BenchmarkWebSocketDeliver(b *testing.B) {
	b.Run("http1", func(b *testing.B) { benchDeliver(b, client.ConsumerOptions{HTTP1: true}) })
	b.Run("http2", func(b *testing.B) { benchDeliver(b, client.ConsumerOptions{}) })
}

// BenchmarkWebSocketFrameAcks is BenchmarkWebSocketDeliver for a client
// written the simplest way, not with the Go client: one WebSocket over
// HTTP/1.1 read in one loop that answers each event with an ack frame of
// its own, with an id (so the service answers it), and never waits for
// the answers. A settle frame is answered after the commit that stores
// it, so how many such frames a connection may have under way bounds what
// that client gets.
func BenchmarkWebSocketFrameAcks(b *testing.B) {
	n := benchStore(b)
	d := websocket.Dialer{TLSClientConfig: n.TLSConfig("consumer"), Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 10 * time.Second}
	b.ResetTimer()
	start := time.Now()
	conn, _, err := d.Dial("wss://"+strings.TrimPrefix(n.URL, "https://")+fmt.Sprintf("/v1/subscription/ws?group=frames%d&maxInFlight=1000", b.N), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for got := 0; got < b.N; {
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		var f struct {
			Op    string `json:"op"`
			AckID string `json:"ackid"`
		}
		if err := conn.ReadJSON(&f); err != nil {
			b.Fatalf("after %d of %d events: %v", got, b.N, err)
		}
		if f.AckID == "" {
			continue // an answer
		}
		got++
		if err := conn.WriteJSON(map[string]any{"op": "ack", "ackIds": []string{f.AckID}, "id": got}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkLongPollDeliver is BenchmarkWebSocketDeliver by long polling.
func BenchmarkLongPollDeliver(b *testing.B) {
	benchDeliver(b, client.ConsumerOptions{LongPolling: true})
}

// benchStore returns a node of a new cluster with b.N events of ~1 KiB over
// 1,000 keys stored.
func benchStore(b *testing.B) *gatewaytest.Node {
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
	return n
}

func benchDeliver(b *testing.B, o client.ConsumerOptions) {
	n := benchStore(b)
	c, err := client.New(client.Config{URL: n.URL, TLS: n.TLSConfig("consumer")})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	b.ResetTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var got atomic.Int64
	start := time.Now()
	o.Group, o.MaxInFlight = fmt.Sprintf("bench%d", b.N), 1000
	cs := c.Consumer(o)
	err = cs.Consume(ctx, func(context.Context, *client.Event) error {
		if got.Add(1) == int64(b.N) {
			cancel()
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil || got.Load() < int64(b.N) {
		b.Fatalf("consumed %d of %d events: %v", got.Load(), b.N, err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
