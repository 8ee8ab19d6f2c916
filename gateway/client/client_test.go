package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/client"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }

const (
	orderType  = "com.example.order.changed"
	personType = "md.gov.person.registered"
)

// startNodes starts size nodes with a producer and a consumer client.
func startNodes(t *testing.T, size int, logs *gatewaytest.LogBuffer) []*gatewaytest.Node {
	t.Helper()
	return startCluster(t, size, logs, nil)
}

// startNodesWith starts one node whose clients change passes over.
func startNodesWith(t *testing.T, change func(*broker.Client)) []*gatewaytest.Node {
	t.Helper()
	return startCluster(t, 1, nil, change)
}

func startCluster(t *testing.T, size int, logs *gatewaytest.LogBuffer, change func(*broker.Client)) []*gatewaytest.Node {
	t.Helper()
	o := gatewaytest.Options{Size: size, AckTimeout: 3 * time.Second,
		EventTypes: []broker.EventType{
			{Name: orderType, Schema: []byte(`{"type":"object"}`)},
			{Name: personType, Schema: []byte(`{"type":"object","required":["idnp"],"properties":{"idnp":{"type":"string","pattern":"^[0-9]{13}$"}}}`)},
		},
		Clients: []broker.Client{
			{ID: "producer", Certificate: broker.CertificateMatch{Subject: "CN=producer"}, Produce: []string{orderType, personType}},
			{ID: "consumer", Certificate: broker.CertificateMatch{Subject: "CN=consumer"}, Consume: []string{orderType, personType}, MaxDeliver: 50},
		}}
	if change != nil {
		for i := range o.Clients {
			change(&o.Clients[i])
		}
	}
	if logs != nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	return gatewaytest.NewCluster(t, o)
}

func newClient(t *testing.T, n *gatewaytest.Node, name string) *client.Client {
	t.Helper()
	cfg := client.Config{URL: n.URL, TLS: n.TLSConfig(name)}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func orderEvent(id, key string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/test","id":%q,"partitionkey":%q,"data":{"id":%q}}`, orderType, id, key, id)
}

// produceKeys publishes perKey events for each of keys keys, in batches.
func produceKeys(t *testing.T, p *client.Producer, prefix string, keys, perKey int) {
	t.Helper()
	for i := 0; i < perKey; i++ {
		var batch []any
		for k := 0; k < keys; k++ {
			batch = append(batch, orderEvent(fmt.Sprintf("%s-k%d-%04d", prefix, k, i), fmt.Sprintf("%s-k%d", prefix, k)))
		}
		if _, err := p.Publish(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
}

// orderCheck verifies that every key's events are handled in order, one
// at a time, none skipped.
type orderCheck struct {
	mu      sync.Mutex
	next    map[string]int // key → the sequence number due next
	running map[string]bool
	handled atomic.Int64
	err     error
}

func newOrderCheck() *orderCheck {
	return &orderCheck{next: map[string]int{}, running: map[string]bool{}}
}

// handle is the handler body: fail decides whether the attempt fails.
func (o *orderCheck) handle(e *client.Event, fail func(seq int) error) error {
	var k, seq int
	var prefix string
	if i := strings.LastIndex(e.ID, "-"); i > 0 {
		fmt.Sscanf(e.ID[i+1:], "%d", &seq)
		fmt.Sscanf(e.PartitionKey[strings.LastIndex(e.PartitionKey, "-k")+2:], "%d", &k)
		prefix = e.PartitionKey
	}
	o.mu.Lock()
	if o.running[prefix] && o.err == nil {
		o.err = fmt.Errorf("two handlers at once for key %s", prefix)
	}
	o.running[prefix] = true
	next := o.next[prefix]
	if seq > next && o.err == nil {
		o.err = fmt.Errorf("key %s: event %d handled before %d", prefix, seq, next)
	}
	o.mu.Unlock()
	err := fail(seq)
	o.mu.Lock()
	o.running[prefix] = false
	if err == nil && seq == next {
		o.next[prefix] = next + 1
		o.handled.Add(1)
	}
	o.mu.Unlock()
	return err
}

func (o *orderCheck) wait(t *testing.T, total int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		o.mu.Lock()
		err := o.err
		o.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if int(o.handled.Load()) >= total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events handled within %v", o.handled.Load(), total, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// consume runs a consumer until the test ends (or stop is called) and
// reports its protocols.
func consume(t *testing.T, c *client.Client, o client.ConsumerOptions, h client.Handler) (stop func() error, protos func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	o.OnConnect = func(p string) { mu.Lock(); seen = append(seen, p); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Consumer(o).Consume(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// TestOrderedUnderReleases: handlers fail some events on their first
// delivery; every key's events are still handled in order, over each way
// of consuming.
func TestOrderedUnderReleases(t *testing.T) {
	logs := &gatewaytest.LogBuffer{}
	n := startNodes(t, 1, logs)[0]
	p := newClient(t, n, "producer").Producer(client.ProducerOptions{})
	for _, tt := range []struct {
		name  string
		o     client.ConsumerOptions
		proto string
	}{
		{"websocket-h2", client.ConsumerOptions{}, "HTTP/2.0"},
		{"websocket-h1", client.ConsumerOptions{HTTP1: true}, "HTTP/1.1"},
		{"long-polling", client.ConsumerOptions{LongPolling: true, PollWait: time.Second}, "long-polling"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const keys, perKey = 6, 30
			produceKeys(t, p, tt.name, keys, perKey)
			check := newOrderCheck()
			var failed sync.Map
			tt.o.Group, tt.o.Types, tt.o.MaxInFlight, tt.o.ReleaseDelay = tt.name, []string{orderType}, 50, 50*time.Millisecond
			stop, protos := consume(t, newClient(t, n, "consumer"), tt.o, func(ctx context.Context, e *client.Event) error {
				if !strings.HasPrefix(e.ID, tt.name+"-") {
					return nil // an earlier subtest's
				}
				return check.handle(e, func(seq int) error {
					if seq%7 == 3 {
						if _, again := failed.LoadOrStore(e.ID, true); !again {
							return errors.New("not yet")
						}
					}
					return nil
				})
			})
			check.wait(t, keys*perKey, 60*time.Second)
			if err := stop(); err != nil {
				t.Fatalf("Consume: %v", err)
			}
			if got := protos(); len(got) == 0 || got[0] != tt.proto {
				t.Fatalf("connected over %v, want %s", got, tt.proto)
			}
		})
	}
	// The server saw the WebSocket over HTTP/2 (its access log line is
	// written when the session ends).
	waitFor(t, 10*time.Second, "the server's log of the HTTP/2 WebSocket", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"method":"CONNECT","path":"/v1/subscription/ws","status":200`) &&
				strings.Contains(line, `"proto":"HTTP/2.0"`) {
				return true
			}
		}
		return false
	})
}
