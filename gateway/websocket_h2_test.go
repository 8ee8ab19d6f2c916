package gateway_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/browsertest"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

// TestMain enables WebSockets over HTTP/2 in Go's server (see
// gatewaytest.Main).
func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }

// TestBrowserWebSocketOverHTTP2: Chromium opens the consumer's WebSocket
// with new WebSocket(…) on a page served over HTTP/2, with a client
// certificate; the server sees an extended CONNECT over HTTP/2 and the
// session works as over HTTP/1.1: subprotocol, credit, events, results.
func TestBrowserWebSocketOverHTTP2(t *testing.T) {
	b := browsertest.New(t)
	logs := &gatewaytest.LogBuffer{}
	n := gatewaytest.NewCluster(t, gatewaytest.Options{
		Logger:     slog.New(slog.NewJSONHandler(logs, nil)),
		EventTypes: []broker.EventType{{Name: orderType, Schema: []byte(`{"type":"object"}`)}},
		Clients: []broker.Client{
			{ID: "producer", Certificate: broker.CertificateMatch{Subject: "CN=producer"}, Produce: []string{orderType}},
			{ID: "consumer", Certificate: broker.CertificateMatch{Subject: "CN=consumer"}, Consume: []string{orderType}},
		}})[0]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	e := &consumeEnv{t: t, node: n.Broker, api: n.API, pki: n.PKI, ca: n.CA, url: n.URL}
	e.produce(order("b1", "k"), order("b2", "k"), order("b3", "k"))
	cert, key, _ := n.ClientFiles("consumer")
	out := b.Run(t, browsertest.Page{URL: n.URL + "/v1/whoami", Origin: n.URL, CertFile: cert, KeyFile: key, Script: `
return await page.evaluate(() => new Promise((resolve, reject) => {
  const ws = new WebSocket('wss://' + location.host + '/v1/subscription/ws?group=browser&maxInFlight=2', 'cloudevents.json');
  const events = [], results = [];
  let acked = false;
  const timer = setTimeout(() => reject(new Error('timeout: ' + JSON.stringify({events, results}))), 30000);
  ws.onerror = () => reject(new Error('websocket error'));
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.op) { results.push(f); } else { events.push({id: f.id, ackid: f.ackid}); }
    if (events.length === 2 && !acked) {
      acked = true; // the credit is used up: the third comes after an ack
      ws.send(JSON.stringify({op: 'ack', ackIds: [events[0].ackid], id: 'a1'}));
    }
    if (events.length === 3 && results.length === 1) {
      clearTimeout(timer);
      ws.close(1000);
      resolve({protocol: ws.protocol, ids: events.map((e) => e.id), result: results[0],
        pageProto: performance.getEntriesByType('navigation')[0].nextHopProtocol, firstAck: events[0].ackid});
    }
  };
}));`})
	var got struct {
		Protocol, PageProto, FirstAck string
		IDs                           []string
		Result                        struct {
			Op, ID    string
			Succeeded []string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Protocol != "cloudevents.json" || strings.Join(got.IDs, ",") != "b1,b2,b3" || got.PageProto != "h2" {
		t.Fatalf("browser got %s", out)
	}
	if got.Result.Op != "result" || got.Result.ID != "a1" || len(got.Result.Succeeded) != 1 || got.Result.Succeeded[0] != got.FirstAck {
		t.Fatalf("result frame %+v", got.Result)
	}
	// The server's access log: the session was a CONNECT over HTTP/2.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"method":"CONNECT","path":"/v1/subscription/ws","status":200`) ||
		!strings.Contains(logs.String(), `"proto":"HTTP/2.0","client":"consumer"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no WebSocket over HTTP/2 in the server's log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
