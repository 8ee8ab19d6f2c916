package gateway_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestControlFrameFlood: thousands of malformed and bogus settle frames
// get error or result frames; the connection and the service go on.
func TestControlFrameFlood(t *testing.T) {
	e := newConsumeEnv(t)
	w := e.mustDial("consumer", "types="+orderType)
	const flood = 3000
	for i := 0; i < flood; i++ {
		switch i % 3 {
		case 0:
			w.send(`{"op":`)
		case 1:
			w.send(ackFrame(fmt.Sprint(i), "not-an-ack-id"))
		default:
			w.send(map[string]any{"op": "release", "ackIds": []string{"x"}, "delay": "forever"})
		}
	}
	// Every frame was answered, in order, and the connection still works.
	for i := 0; i < flood; i++ {
		f := w.control()
		if f.Op != "error" && f.Op != "result" {
			t.Fatalf("frame %d answered %s", i, f.raw)
		}
	}
	e.produce(order("after-flood", "k1"))
	if f := w.event(); f.ID != "after-flood" {
		t.Fatalf("got %s", f.raw)
	}
}

// TestSlowConsumer: a consumer that never reads its WebSocket holds at
// most its credit; it neither blocks another client's consumer nor makes
// the server buffer without bound.
func TestSlowConsumer(t *testing.T) {
	e := newConsumeEnv(t)
	d := websocket.Dialer{TLSClientConfig: e.tlsConfig("other"), Subprotocols: []string{"cloudevents.json"}}
	u := "wss://" + strings.TrimPrefix(e.url, "https://") + "/v1/subscription/ws?maxInFlight=1000&types=" + personType
	stuck, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close() // never read

	fast := e.mustDial("consumer", "types="+personType+"&maxInFlight=100")
	const n = 600
	big := strings.Repeat("x", 4000)
	for i := 0; i < n; i += 100 {
		var batch []string
		for k := i; k < i+100; k++ {
			batch = append(batch, fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/s","id":"slow-%d","partitionkey":"k%d","data":{"idnp":"2000000000001","firstName":%q,"birthDate":"1990-05-17"}}`, personType, k, k%30, big))
		}
		e.produce(batch...)
	}
	for got := 0; got < n; got++ {
		f := fast.event()
		fast.send(ackFrame("", f.AckID))
	}
}
