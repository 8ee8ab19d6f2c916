package client_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/client"
	"github.com/mevents/mevents/gateway/gatewaytest"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// TestReconnectResumes: maintenance closes the WebSocket and refuses new
// ones; the consumer reconnects when it ends and goes on in order.
func TestReconnectResumes(t *testing.T) {
	logs := &gatewaytest.LogBuffer{}
	n := startNodes(t, 1, logs)[0]
	p := newClient(t, n, "producer").Producer(client.ProducerOptions{})
	const keys, perKey = 4, 50
	produceKeys(t, p, "re", keys, perKey)
	check := newOrderCheck()
	var maint atomic.Bool
	o := client.ConsumerOptions{Group: "re", MaxInFlight: 20, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	c := newClient(t, n, "consumer")
	started := make(chan struct{})
	stop, _ := consume(t, c, o, func(ctx context.Context, e *client.Event) error {
		return check.handle(e, func(seq int) error {
			if check.handled.Load() == 30 && maint.CompareAndSwap(false, true) {
				close(started)
			}
			return nil
		})
	})
	<-started
	ctx := context.Background()
	if err := n.Broker.SetMaintenance(ctx, broker.Maintenance{Enabled: true, Message: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a refused reconnection", func() bool {
		return strings.Contains(logs.String(), `"path":"/v1/subscription/ws","status":503`)
	})
	if err := n.Broker.SetMaintenance(ctx, broker.Maintenance{Enabled: false}); err != nil {
		t.Fatal(err)
	}
	check.wait(t, keys*perKey, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestOrderedOverNodeShutdown: a consumer on one node of three keeps
// every key in order while another node shuts down.
func TestOrderedOverNodeShutdown(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	p := newClient(t, nodes[1], "producer").Producer(client.ProducerOptions{})
	const keys, perKey = 6, 40
	produceKeys(t, p, "a", keys, perKey/2)
	check := newOrderCheck()
	var failed atomic.Int64
	stop, _ := consume(t, newClient(t, nodes[0], "consumer"), client.ConsumerOptions{Group: "shutdown", MaxInFlight: 30,
		ReleaseDelay: 20 * time.Millisecond, MaxBackoff: time.Second},
		func(ctx context.Context, e *client.Event) error {
			return check.handle(e, func(seq int) error {
				if seq%11 == 5 && e.DeliveryCount == 1 {
					failed.Add(1)
					return errors.New("not yet")
				}
				return nil
			})
		})
	check.wait(t, keys*perKey/4, 60*time.Second)
	nodes[2].API.Close(context.Background())
	nodes[2].Broker.Close()
	produceKeys(t, p, "b", keys, perKey/2)
	check.wait(t, keys*perKey, 120*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() == 0 {
		t.Fatal("no event was released")
	}
}

// TestProducerRetriesStoreOnce: a producer over its rate is answered 429
// and retries after Retry-After; the event is stored once, also when it
// is published again.
func TestProducerRetriesStoreOnce(t *testing.T) {
	nodes := startNodesWith(t, func(c *broker.Client) {
		if c.ID == "producer" {
			c.RateLimit = 1
		}
	})
	n := nodes[0]
	p := newClient(t, n, "producer").Producer(client.ProducerOptions{MinBackoff: 50 * time.Millisecond})
	ctx := context.Background()
	if _, err := p.Publish(ctx, orderEvent("once-1", "k")); err != nil {
		t.Fatal(err)
	}
	res, err := p.Publish(ctx, orderEvent("once-2", "k"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts < 2 || res.Count != 1 || res.IDs[0] != "once-2" {
		t.Fatalf("result %+v, want a retried store of once-2", res)
	}
	if _, err := p.Publish(ctx, orderEvent("once-2", "k")); err != nil {
		t.Fatal(err)
	}
	// Long polling reads everything there is: once-2 once, then once-3.
	var mu sync.Mutex
	seen := map[string]int{}
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return seen[id] }
	stop, _ := consume(t, newClient(t, n, "consumer"), client.ConsumerOptions{LongPolling: true, PollWait: 200 * time.Millisecond},
		func(ctx context.Context, e *client.Event) error {
			mu.Lock()
			seen[e.ID]++
			mu.Unlock()
			return nil
		})
	waitFor(t, 30*time.Second, "once-2", func() bool { return count("once-2") > 0 })
	if _, err := p.Publish(ctx, orderEvent("once-3", "k")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "once-3", func() bool { return count("once-3") > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := count("once-2"); n != 1 {
		t.Fatalf("once-2 delivered %d times, want 1", n)
	}
}
