package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

// consumeEnv is a single node with a short ack timeout and the gateway in
// front, over real mTLS, with a producer and two consumers.
type consumeEnv struct {
	t    *testing.T
	node *broker.Node
	api  *gateway.Server
	pki  *gatewaytest.PKI
	ca   *config.CA // pki.CA
	url  string
}

const consumeAckTimeout = time.Second

func newConsumeEnv(t *testing.T) *consumeEnv { return newConsumeCluster(t, 1)[0] }

// newConsumeCluster starts size nodes (clustered when size > 1), each with
// its gateway; all trust one CA.
func newConsumeCluster(t *testing.T, size int) []*consumeEnv {
	t.Helper()
	nodes := gatewaytest.NewCluster(t, gatewaytest.Options{Size: size, AckTimeout: consumeAckTimeout,
		EventTypes: []broker.EventType{
			{Name: personType, Schema: []byte(personSchema)},
			{Name: orderType, Schema: []byte(`{"type":"object"}`)},
		},
		Clients: []broker.Client{
			{ID: "producer", Certificate: broker.CertificateMatch{Subject: "CN=producer"}, Produce: []string{personType, orderType}},
			{ID: "consumer", Certificate: broker.CertificateMatch{Subject: "CN=consumer"}, Consume: []string{personType, orderType}, MaxDeliver: 2},
			{ID: "other", Certificate: broker.CertificateMatch{Subject: "CN=other"}, Consume: []string{personType}},
			{ID: "patient", Certificate: broker.CertificateMatch{Subject: "CN=patient"}, Consume: []string{orderType}},
			{ID: "admin", Certificate: broker.CertificateMatch{Subject: "CN=admin"}, Admin: true},
		}})
	envs := make([]*consumeEnv, len(nodes))
	for i, n := range nodes {
		envs[i] = &consumeEnv{t: t, node: n.Broker, api: n.API, pki: n.PKI, ca: n.CA, url: n.URL}
	}
	return envs
}

func (e *consumeEnv) tlsConfig(name string) *tls.Config { return e.pki.ClientTLS(e.t, name) }

func (e *consumeEnv) client(name string) *http.Client { return e.pki.Client(e.t, name, true) }

func (e *consumeEnv) do(c *http.Client, method, path string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: b}
}

// produce stores events (JSON objects) as the producer, in one batch.
func (e *consumeEnv) produce(events ...string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/events", strings.NewReader("["+strings.Join(events, ",")+"]"))
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := e.client("producer").Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("produce: status %d: %s", resp.StatusCode, b)
	}
}

func order(id, key string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/mes","id":%q,"partitionkey":%q,"data":{"n":1}}`, orderType, id, key)
}

// wsClient is a real WebSocket consumer. A goroutine reads frames into
// frames, so that waiting for a frame can time out without breaking the
// connection (gorilla fails every read after a timed-out one).
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan []byte
	err    chan error
}

func (e *consumeEnv) dial(name, query string, header http.Header) (*wsClient, *http.Response, error) {
	d := websocket.Dialer{TLSClientConfig: e.tlsConfig(name), Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 10 * time.Second}
	u := "wss://" + strings.TrimPrefix(e.url, "https://") + "/v1/subscription/ws?" + query
	conn, resp, err := d.Dial(u, header)
	if err != nil {
		return nil, resp, err
	}
	e.t.Cleanup(func() { conn.Close() })
	w := &wsClient{t: e.t, conn: conn, frames: make(chan []byte, 10000), err: make(chan error, 1)}
	go func() {
		for {
			typ, b, err := conn.ReadMessage()
			if err != nil {
				w.err <- err
				return
			}
			if typ != websocket.TextMessage {
				b = []byte("non-text frame")
			}
			w.frames <- b
		}
	}()
	return w, resp, nil
}

// closed waits until the connection fails and returns why.
func (w *wsClient) closed(d time.Duration) error {
	w.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-w.frames:
		case err := <-w.err:
			return err
		case <-timer.C:
			w.t.Fatalf("connection still open after %v", d)
		}
	}
}

func (e *consumeEnv) mustDial(name, query string) *wsClient {
	e.t.Helper()
	c, resp, err := e.dial(name, query, nil)
	if err != nil {
		e.t.Fatalf("dial %s: %v", query, err)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "cloudevents.json" {
		e.t.Fatalf("subprotocol %q, want cloudevents.json", p)
	}
	return c
}

// frame is any server frame: an event or a control frame.
type frame struct {
	// event
	ID            string `json:"id"`
	PartitionKey  string `json:"partitionkey"`
	AckID         string `json:"ackid"`
	DeliveryCount int    `json:"deliverycount"`
	TestEvent     bool   `json:"testevent"`
	// control
	Op        string                 `json:"op"`
	Message   string                 `json:"message"`
	Succeeded []string               `json:"succeeded"`
	Failed    []broker.SettleFailure `json:"failed"`
	raw       []byte
}

// read returns the next frame, or ok=false when none came within d.
func (w *wsClient) read(d time.Duration) (frame, bool) {
	w.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var b []byte
	select {
	case b = <-w.frames:
	case err := <-w.err:
		w.t.Fatalf("read: %v", err)
	case <-timer.C:
		return frame{}, false
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("frame %s: %v", b, err)
	}
	f.raw = b
	return f, true
}

// event reads the next frame, which must be an event.
func (w *wsClient) event() frame {
	w.t.Helper()
	f, ok := w.read(10 * time.Second)
	if !ok {
		w.t.Fatal("no event within 10s")
	}
	if f.AckID == "" || f.Op != "" {
		w.t.Fatalf("got %s, want an event", f.raw)
	}
	return f
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	if err := w.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		w.t.Fatal(err)
	}
}

// control reads frames until a control frame, skipping events.
func (w *wsClient) control() frame {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, ok := w.read(time.Until(deadline))
		if ok && f.Op != "" {
			return f
		}
	}
	w.t.Fatal("no control frame within 10s")
	return frame{}
}

func ackFrame(id string, ackIDs ...string) map[string]any {
	m := map[string]any{"op": "ack", "ackIds": ackIDs}
	if id != "" {
		m["id"] = id
	}
	return m
}

func TestWebSocketOrderPerKey(t *testing.T) {
	e := newConsumeEnv(t)
	const keys, perKey = 30, 20
	for i := 0; i < perKey; i++ {
		var batch []string
		for k := 0; k < keys; k++ {
			batch = append(batch, order(fmt.Sprintf("%d-%d", k, i), fmt.Sprintf("key-%d", k)))
		}
		e.produce(batch...)
	}
	w := e.mustDial("consumer", "types="+orderType+"&maxInFlight=40")
	last := map[string]int{}
	for n := 0; n < keys*perKey; n++ {
		f := w.event()
		var k, i int
		fmt.Sscanf(f.ID, "%d-%d", &k, &i)
		if f.DeliveryCount != 1 || i != last[f.PartitionKey] {
			t.Fatalf("got %s (delivery %d), want sequence %d of %s", f.ID, f.DeliveryCount, last[f.PartitionKey], f.PartitionKey)
		}
		last[f.PartitionKey] = i + 1
		w.send(ackFrame("", f.AckID))
	}
}

func TestWebSocketRedelivery(t *testing.T) {
	e := newConsumeEnv(t)
	e.produce(order("e1", "k"), order("e2", "k"))
	w := e.mustDial("patient", "")
	// Both events of the key go out at once, in order.
	pair := func(c1, c2 int) frame {
		t.Helper()
		f, g := w.event(), w.event()
		if f.ID != "e1" || g.ID != "e2" || f.DeliveryCount != c1 || g.DeliveryCount != c2 {
			t.Fatalf("got %s then %s, want e1 delivery %d and e2 delivery %d", f.raw, g.raw, c1, c2)
		}
		return f
	}
	pair(1, 1)
	// Disconnect without acknowledging: the next connection gets them again.
	w.conn.Close()
	w = e.mustDial("patient", "")
	pair(2, 2)
	// Not acknowledged within the ack timeout: delivered again, e2 after
	// e1; e2's void delivery does not count.
	g := pair(3, 2)
	// Released with a delay: result, then both delivered again after the delay.
	released := time.Now()
	w.send(map[string]any{"op": "release", "ackIds": []string{g.AckID}, "delay": "300ms", "id": "r7"})
	if r := w.control(); r.Op != "result" || len(r.Succeeded) != 1 || len(r.Failed) != 0 || !strings.Contains(string(r.raw), `"id":"r7"`) {
		t.Fatalf("release result %s", r.raw)
	}
	h, k := w.event(), w.event()
	if h.ID != "e1" || h.DeliveryCount != 4 || time.Since(released) < 300*time.Millisecond || k.ID != "e2" || k.DeliveryCount != 2 {
		t.Fatalf("after release %s and %s after %v", h.raw, k.raw, time.Since(released))
	}
	w.send(ackFrame("a", h.AckID, k.AckID))
	if r := w.control(); len(r.Succeeded) != 2 {
		t.Fatalf("ack result %s", r.raw)
	}
	if f, ok := w.read(500 * time.Millisecond); ok {
		t.Fatalf("after the acks got %s", f.raw)
	}
}

func TestWebSocketCredit(t *testing.T) {
	e := newConsumeEnv(t)
	var evs []string
	for i := 0; i < 24; i++ {
		evs = append(evs, order(fmt.Sprintf("c%d", i), fmt.Sprintf("key-%d", i)))
	}
	e.produce(evs...)
	w := e.mustDial("other", "") // other consumes only personType: nothing
	if f, ok := w.read(500 * time.Millisecond); ok {
		t.Fatalf("client without events got %s", f.raw)
	}
	w = e.mustDial("patient", "maxInFlight=3")
	held := map[string]string{}
	// Over several ack timeouts the client holds at most 3 distinct
	// events: they are delivered again, and nothing else is.
	redelivered := false
	deadline := time.Now().Add(3 * consumeAckTimeout)
	for time.Now().Before(deadline) {
		f, ok := w.read(time.Until(deadline))
		if !ok {
			break
		}
		held[f.ID] = f.AckID
		redelivered = redelivered || f.DeliveryCount > 1
		if len(held) > 3 {
			t.Fatalf("holds %d unacknowledged events with maxInFlight 3: %v", len(held), held)
		}
	}
	if len(held) != 3 || !redelivered {
		t.Fatalf("holds %d events (want 3), redelivered after the ack timeout: %v", len(held), redelivered)
	}
	for id, ack := range held {
		w.send(ackFrame("a1", ack))
		if r := w.control(); len(r.Succeeded) != 1 {
			t.Fatalf("ack result %s", r.raw)
		}
		delete(held, id)
		break
	}
	if f := w.event(); held[f.ID] != "" && f.DeliveryCount == 1 {
		t.Fatalf("after an ack got %s, want a new event", f.raw)
	}
}

func TestWebSocketFrames(t *testing.T) {
	e := newConsumeEnv(t)
	e.produce(order("f1", "k"))
	w := e.mustDial("consumer", "types="+orderType+"&group=frames")
	ev := w.event()
	tests := []struct {
		name  string
		frame string
		want  string // op of the answer
	}{
		{"not JSON", `hello`, "error"},
		{"unknown op", `{"op":"nope","ackIds":["x"],"id":"1"}`, "error"},
		{"no ack ids", `{"op":"ack","id":"2"}`, "error"},
		{"bad delay", `{"op":"release","ackIds":["x"],"delay":"soon","id":"3"}`, "error"},
		{"unknown ack id", `{"op":"ack","ackIds":["bm9wZQ"],"id":"4"}`, "result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.send(tt.frame)
			r := w.control()
			if r.Op != tt.want || (r.Op == "error" && r.Message == "") {
				t.Fatalf("answer %s, want op %s", r.raw, tt.want)
			}
			if r.Op == "result" && (len(r.Failed) != 1 || r.Failed[0].AckID != "bm9wZQ" || r.Failed[0].Error == "") {
				t.Fatalf("result %s", r.raw)
			}
		})
	}
	if err := w.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if r := w.control(); r.Op != "error" {
		t.Fatalf("binary frame answered %s", r.raw)
	}
	// The connection still works.
	w.send(map[string]any{"op": "ack", "ackIds": []string{ev.AckID}, "id": "last"})
	if r := w.control(); r.Op != "result" || len(r.Succeeded) != 1 || r.Succeeded[0] != ev.AckID {
		t.Fatalf("ack result %s", r.raw)
	}
	// Frames over the size limit (1 MiB) close the connection.
	// (The write itself may fail: the server closes while it reads.)
	_ = w.conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"ack","ackIds":["`+strings.Repeat("x", 1<<20+1)+`"]}`))
	_ = w.closed(10 * time.Second)
}

func TestWebSocketRefusals(t *testing.T) {
	e := newConsumeEnv(t)
	tests := []struct {
		name   string
		client string
		query  string
		header http.Header
		status int
	}{
		{"type not routed", "other", "types=" + orderType, nil, 403},
		{"unknown type", "consumer", "types=no.such.type", nil, 403},
		{"bad group", "consumer", "group=a.b", nil, 400},
		{"bad maxInFlight", "consumer", "maxInFlight=0", nil, 400},
		{"bad start", "consumer", "start=yesterday", nil, 400},
		{"foreign origin", "consumer", "", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"no events routed", "producer", "", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := e.dial(tt.client, tt.query, tt.header)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("dial: %v (response %v), want status %d", err, resp, tt.status)
			}
		})
	}
	t.Run("same origin", func(t *testing.T) {
		host := strings.TrimPrefix(e.url, "https://")
		if _, _, err := e.dial("consumer", "", http.Header{"Origin": {"https://" + host}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("plain GET", func(t *testing.T) {
		r := e.do(e.client("consumer"), http.MethodGet, "/v1/subscription/ws", nil)
		if r.status != http.StatusBadRequest {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
}

func TestWebSocketEndsOnClose(t *testing.T) {
	e := newConsumeEnv(t)
	w := e.mustDial("consumer", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.api.Close(ctx); err != nil {
		t.Fatalf("close with an open WebSocket: %v", err)
	}
	_ = w.closed(5 * time.Second)
}

// poll is one long poll; it returns the status and the events.
func (e *consumeEnv) poll(c *http.Client, query string) (int, []frame) {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/v1/subscription/events?"+query, nil)
	if r.status != http.StatusOK {
		return r.status, nil
	}
	if ct := r.header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	var fs []frame
	if err := json.Unmarshal(r.body, &fs); err != nil {
		e.t.Fatalf("batch %s: %v", r.body, err)
	}
	return r.status, fs
}

func (e *consumeEnv) settle(c *http.Client, op string, body any) (int, broker.SettleResult) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	r := e.do(c, http.MethodPost, "/v1/subscription/"+op, b)
	var res broker.SettleResult
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &res); err != nil {
			e.t.Fatal(err)
		}
	}
	return r.status, res
}

func TestLongPolling(t *testing.T) {
	e := newConsumeEnv(t)
	c := e.client("consumer")
	if st, _ := e.poll(c, "types="+orderType+"&wait=200ms"); st != http.StatusNoContent {
		t.Fatalf("empty poll: status %d, want 204", st)
	}
	e.produce(order("p1", "a"), order("p2", "b"), order("p3", "c"))
	var got []frame
	for len(got) < 3 {
		st, fs := e.poll(c, "types="+orderType+"&wait=5s&max=10")
		if st != http.StatusOK {
			t.Fatalf("poll: status %d, want 200", st)
		}
		got = append(got, fs...)
	}
	byID := map[string]frame{}
	for _, f := range got {
		byID[f.ID] = f
	}
	// Settled from other requests (a new connection, HTTP/2).
	c2 := e.client("consumer")
	st, res := e.settle(c2, "ack", map[string]any{"ackIds": []string{byID["p1"].AckID, byID["p2"].AckID, "bm9wZQ"}})
	if st != 200 || len(res.Succeeded) != 2 || len(res.Failed) != 1 || res.Failed[0].AckID != "bm9wZQ" {
		t.Fatalf("ack: %d %+v", st, res)
	}
	// Another client cannot settle the consumer's deliveries.
	st, res = e.settle(e.client("other"), "ack", map[string]any{"ackIds": []string{byID["p3"].AckID}})
	if st != 200 || len(res.Failed) != 1 {
		t.Fatalf("foreign ack: %d %+v", st, res)
	}
	st, res = e.settle(c2, "release", map[string]any{"ackIds": []string{byID["p3"].AckID}, "delay": "100ms"})
	if st != 200 || len(res.Succeeded) != 1 {
		t.Fatalf("release: %d %+v", st, res)
	}
	st, fs := e.poll(c, "types="+orderType+"&wait=5s")
	if st != http.StatusOK || len(fs) != 1 || fs[0].ID != "p3" || fs[0].DeliveryCount != 2 {
		t.Fatalf("after release: %d %+v", st, fs)
	}
	for _, tt := range []struct{ op, body string }{
		{"ack", `{"ackIds":[]}`},
		{"ack", `not json`},
		{"ack", `{"ackIds":["x"],"delay":"1s"}`},
		{"release", `{"ackIds":["x"],"delay":"-1s"}`},
		{"dead", `{"ackIds":["x"],"unknown":1}`},
	} {
		r := e.do(c, http.MethodPost, "/v1/subscription/"+tt.op, []byte(tt.body))
		if r.status != http.StatusBadRequest {
			t.Fatalf("%s %s: status %d, want 400", tt.op, tt.body, r.status)
		}
		decodeProblem(t, r)
	}
}

func TestGroupsAndStart(t *testing.T) {
	e := newConsumeEnv(t)
	c := e.client("consumer")
	e.produce(order("old", "k"))
	if st, fs := e.poll(c, "types="+orderType+"&group=replay&wait=5s"); st != 200 || fs[0].ID != "old" {
		t.Fatalf("named group: %d %+v", st, fs)
	}
	if st, _ := e.poll(c, "types="+orderType+"&group=fresh&start=latest&wait=300ms"); st != http.StatusNoContent {
		t.Fatalf("start=latest: status %d, want 204", st)
	}
	e.produce(order("new", "k2"))
	if st, fs := e.poll(c, "types="+orderType+"&group=fresh&wait=5s"); st != 200 || fs[0].ID != "new" {
		t.Fatalf("start=latest after a new event: %d %+v", st, fs)
	}
	since := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	if st, _ := e.poll(c, "types="+orderType+"&group=future&start="+url.QueryEscape(since)+"&wait=300ms"); st != http.StatusNoContent {
		t.Fatalf("start in the future: status %d, want 204", st)
	}
}

func TestTestEventIsolation(t *testing.T) {
	e := newConsumeEnv(t)
	c := e.client("consumer")
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/test-events", strings.NewReader(person("t1", "2000000000001")))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("test event: status %d", resp.StatusCode)
	}
	if st, fs := e.poll(e.client("other"), "wait=1s"); st != http.StatusNoContent {
		t.Fatalf("another client got %d %+v", st, fs)
	}
	for _, g := range []string{"default", "second"} {
		st, fs := e.poll(c, "types="+personType+"&group="+g+"&wait=5s")
		if st != 200 || len(fs) != 1 || fs[0].ID != "t1" || !fs[0].TestEvent {
			t.Fatalf("group %s of the sender: %d %+v", g, st, fs)
		}
	}
}

type deadList struct {
	Items []broker.DeadEvent `json:"items"`
	Next  *string            `json:"next"`
}

func (e *consumeEnv) deadEvents(c *http.Client, query string) deadList {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/v1/dead-events?"+query, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("dead events: %d %s", r.status, r.body)
	}
	var l deadList
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

func TestDeadEvents(t *testing.T) {
	e := newConsumeEnv(t)
	c := e.client("consumer")
	e.produce(order("reported", "k1"), order("poison", "k2"), order("behind", "k2"))
	w := e.mustDial("consumer", "types="+orderType+"&group=g1")
	// "behind" goes out with "poison" (pipelined), and again after each
	// release of it: its acknowledgement succeeds once poison is dead.
	for done := false; !done; {
		f, ok := w.read(10 * time.Second)
		if !ok {
			t.Fatal("nothing within 10s")
		}
		switch {
		case f.Op == "result" && strings.Contains(string(f.raw), `"id":"d"`):
			if len(f.Succeeded) != 1 {
				t.Fatalf("dead result %s", f.raw)
			}
		case f.Op == "result" && strings.Contains(string(f.raw), `"id":"b"`):
			done = len(f.Succeeded) == 1
		case f.ID == "reported":
			w.send(map[string]any{"op": "dead", "ackIds": []string{f.AckID}, "reason": "unparseable", "id": "d"})
		case f.ID == "poison":
			w.send(map[string]any{"op": "release", "ackIds": []string{f.AckID}})
		case f.ID == "behind":
			w.send(ackFrame("b", f.AckID))
		}
	}
	// The results of earlier frames may come after (they are answered
	// concurrently); nothing else comes.
	for {
		f, ok := w.read(300 * time.Millisecond)
		if !ok {
			break
		}
		if f.Op != "result" {
			t.Fatalf("after the key moved on got %s", f.raw)
		}
	}
	first := e.deadEvents(c, "limit=1")
	if len(first.Items) != 1 || first.Next == nil {
		t.Fatalf("first page %+v", first)
	}
	rest := e.deadEvents(c, "limit=10&cursor="+*first.Next)
	if len(rest.Items) != 1 || rest.Next != nil {
		t.Fatalf("second page %+v", rest)
	}
	items := map[string]broker.DeadEvent{}
	for _, d := range append(first.Items, rest.Items...) {
		items[d.Origin] = d
	}
	if d := items["consumer"]; d.Reason != "unparseable" || d.Group != "g1" || d.DeliveryCount != 1 || d.DeadAt.IsZero() || !strings.Contains(string(d.Event), `"reported"`) {
		t.Fatalf("consumer-reported dead event %+v", d)
	}
	if d := items["maxDeliver"]; d.DeliveryCount != 2 || !strings.Contains(string(d.Event), `"poison"`) || strings.Contains(string(d.Event), "ackid") {
		t.Fatalf("maxDeliver dead event %+v %s", d, d.Event)
	}
	// Another client neither sees nor touches them.
	o := e.client("other")
	if l := e.deadEvents(o, ""); len(l.Items) != 0 {
		t.Fatalf("other client lists %+v", l)
	}
	if r := e.do(o, http.MethodDelete, "/v1/dead-events/"+items["consumer"].ID, nil); r.status != http.StatusNotFound {
		t.Fatalf("other client deletes: %d", r.status)
	}
	// Redeliver one to its group; delete the other.
	if r := e.do(c, http.MethodPost, "/v1/dead-events/"+items["consumer"].ID+"/redeliver", nil); r.status != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	if f := w.event(); f.ID != "reported" || f.DeliveryCount != 1 {
		t.Fatalf("after redeliver got %s", f.raw)
	}
	if r := e.do(c, http.MethodDelete, "/v1/dead-events/"+items["maxDeliver"].ID, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do(c, http.MethodDelete, "/v1/dead-events/"+items["maxDeliver"].ID, nil); r.status != http.StatusNotFound {
		t.Fatalf("delete again: %d", r.status)
	}
	if l := e.deadEvents(c, ""); len(l.Items) != 0 || l.Next != nil {
		t.Fatalf("after redeliver and delete: %+v", l)
	}
	if r := e.do(c, http.MethodGet, "/v1/dead-events?cursor=x", nil); r.status != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d", r.status)
	}
}
