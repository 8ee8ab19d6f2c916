package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/gateway"
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

// TestIdleWebSockets (issue #6): thousands of idle WebSocket consumers on
// one node, most of them in one group, the rest spread over many groups,
// leave the node working: a separate consumer gets a new event, /healthz
// and /readyz answer; when they close, the node's goroutines come back to
// where they were. It logs what they cost (the test's process holds the
// client side too). 2,000 connections take about 20 s on 2 cores, most of
// it waiting for goroutines to settle.
func TestIdleWebSockets(t *testing.T) {
	const (
		crowd  = 1600 // one group of one client
		groups = 50   // groups of another client…
		each   = 8    // …with this many instances each
	)
	e := newConsumeEnv(t)
	ops := gateway.NewOps("127.0.0.1:0", e.node, nil)
	if err := ops.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.Close(context.Background()) })
	probe := e.mustDial("consumer", "types="+orderType)

	// One certificate per client, not per connection; the connections are
	// not read: idle.
	dialers := map[string]*websocket.Dialer{}
	for _, name := range []string{"patient", "other"} {
		dialers[name] = &websocket.Dialer{TLSClientConfig: e.tlsConfig(name), Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 30 * time.Second}
	}
	base := "wss://" + strings.TrimPrefix(e.url, "https://") + "/v1/subscription/ws?"
	type instance struct{ client, group string }
	var all []instance
	for i := 0; i < crowd; i++ {
		all = append(all, instance{"patient", "crowd"})
	}
	for i := 0; i < groups*each; i++ {
		all = append(all, instance{"other", fmt.Sprintf("g%d", i%groups)})
	}
	// The groups' consumers live on after the connections (JetStream runs
	// goroutines for them): one instance of each group creates them before
	// the baseline.
	var warm []instance
	for i := range all {
		if !slices.Contains(warm, all[i]) {
			warm = append(warm, all[i])
		}
	}
	var conns []*websocket.Conn
	var open sync.WaitGroup
	var failed atomic.Pointer[error]
	dial := func(insts []instance) {
		conns = make([]*websocket.Conn, len(insts))
		sem := make(chan struct{}, 32)
		for i, in := range insts {
			sem <- struct{}{}
			open.Go(func() {
				defer func() { <-sem }()
				c, _, err := dialers[in.client].Dial(base+"group="+in.group, nil)
				if err != nil {
					err = fmt.Errorf("dial %d (%s %s): %w", i, in.client, in.group, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			})
		}
		open.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(*err)
		}
	}
	closeAll := func() {
		var wg sync.WaitGroup
		for i, c := range conns {
			if c != nil {
				wg.Go(func() {
					_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
					c.Close()
				})
				conns[i] = nil
			}
		}
		wg.Wait()
	}
	t.Cleanup(closeAll)

	dial(warm)
	closeAll()
	baseline := settledGoroutines(t, 0)

	began := time.Now()
	dial(all)
	t.Logf("%d idle WebSockets open in %v", len(all), time.Since(began).Round(time.Millisecond))

	// The node still serves: a new event reaches another consumer, the
	// ops endpoints answer.
	e.produce(order("among-idle", "k1"))
	f := probe.event()
	if f.ID != "among-idle" {
		t.Fatalf("the probe got %s", f.raw)
	}
	probe.send(ackFrame("", f.AckID))
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ops.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s with %d idle WebSockets", code, body, len(all))
	}
	// nats-server's health check gives the server 1 ms to say it is ready
	// for connections: on a busy machine it sometimes says no.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, body := get("/readyz")
		if code == http.StatusOK {
			break
		}
		t.Logf("/readyz: %d %s", code, strings.TrimSpace(body))
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s with %d idle WebSockets", code, body, len(all))
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("with %d idle WebSockets: %d goroutines (%d before), heap in use %d MiB, %s (server and clients in one process)",
		len(all), runtime.NumGoroutine(), baseline, ms.HeapInuse>>20, residentSize())

	closeAll()
	after := settledGoroutines(t, baseline+25)
	t.Logf("after closing them: %d goroutines", after)
}

// settledGoroutines waits until the number of goroutines is at most limit
// (any when limit is 0) and has not changed for longer than a pull waits
// (a closed subscription's pullers end with their pull), and returns it.
func settledGoroutines(t *testing.T, limit int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, same := -1, 0
	for {
		n := runtime.NumGoroutine()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		if same >= 30 && (limit == 0 || n <= limit) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after 30s, want at most %d", n, limit)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}

// residentSize returns the process's resident set size as /proc says.
func residentSize() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "RSS unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return "RSS " + strings.Join(strings.Fields(strings.TrimPrefix(l, "VmRSS:")), " ")
		}
	}
	return "RSS unknown"
}
