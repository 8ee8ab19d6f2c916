package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
)

// BenchmarkDeliver measures delivery throughput of one type and group:
// b.N keyed events (many keys over the 12 partitions) consumed by one
// group member (as over a WebSocket) of credit 100 that acknowledges every
// event from a few goroutines, as a client with a processing pipeline does.
// Use a large -benchtime (30000x): joining the group takes a moment.
func BenchmarkDeliver(b *testing.B) {
	n := brokertest.Open(b, broker.NodeConfig{Name: "bench", SyncInterval: time.Minute})
	reg := deliverBenchEvents(b, []*broker.Node{n}, 1)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: fmt.Sprintf("bench%d", b.N), MaxInFlight: 100})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	acks := make(chan string, 100)
	var wg sync.WaitGroup
	ackFrom(s, acks, &wg)
	seen := map[string]bool{}
	for len(seen) < b.N {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d, err := s.Next(nctx)
		cancel()
		if err != nil {
			b.Fatalf("after %d events: %v", len(seen), err)
		}
		seen[d.AckID] = true
		acks <- d.AckID
	}
	close(acks)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDeliverCluster measures delivery of one type and group on an
// in-process 3-node cluster (R3): b.N keyed events consumed by three group
// members, one per node, each acknowledging every event at once, a few
// acknowledgements under way at a time, as a WebSocket client does. It
// shows the cost of the round trips of one partition's cycle (deliver,
// acknowledge, replicate, pull again).
func BenchmarkDeliverCluster(b *testing.B) {
	nodes := brokertest.Cluster(b, 3, broker.NodeConfig{})
	reg := deliverBenchEvents(b, nodes, 3)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	group := fmt.Sprintf("bench%d", b.N)
	var (
		mu     sync.Mutex
		seen   = map[string]bool{}
		all    = make(chan struct{})
		closed bool
		wg     sync.WaitGroup
		subs   []*broker.Subscription
	)
	defer func() {
		for _, s := range subs {
			s.Close()
		}
		wg.Wait()
	}()
	for _, n := range nodes {
		s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: group, MaxInFlight: 100})
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, s)
		acks := make(chan string, 100)
		ackFrom(s, acks, &wg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(acks)
			for {
				d, err := s.Next(ctx)
				if err != nil {
					return
				}
				acks <- d.AckID
				mu.Lock()
				var ev delivered
				_ = json.Unmarshal(d.Event, &ev)
				seen[ev.ID] = true
				if len(seen) == b.N && !closed {
					closed = true
					close(all)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		b.Fatalf("delivered %d of %d events", got, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// deliverBenchEvents applies a registry of one type (with replicas) and a
// producer and consumer to nodes and publishes b.N events over 1,200 keys.
func deliverBenchEvents(b *testing.B, nodes []*broker.Node, replicas int) *broker.Registry {
	b.Helper()
	reg := broker.NewRegistry([]broker.EventType{{Name: consumeType, Schema: []byte(`true`), Replicas: replicas}}, []broker.Client{
		{ID: "prod", Produce: []string{consumeType}},
		{ID: "c", Consume: []string{consumeType}},
	})
	ctx := context.Background()
	for _, n := range nodes {
		if err := n.ApplyRegistry(ctx, reg); err != nil {
			b.Fatal(err)
		}
	}
	const keys = 1200
	for from := 0; from < b.N; from += 500 {
		var evs []mevents.Event
		for i := from; i < min(from+500, b.N); i++ {
			evs = append(evs, event(b, consumeType, "/s", fmt.Sprintf("e%d", i), fmt.Sprintf("key-%d", i%keys)))
		}
		if err := nodes[0].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	return reg
}

// ackFrom acknowledges the ack ids sent on acks through s from four
// goroutines (acknowledgements under way at once, as over a WebSocket)
// until acks is closed.
func ackFrom(s *broker.Subscription, acks <-chan string, wg *sync.WaitGroup) {
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range acks {
				s.Settle(context.Background(), broker.Settlement{Op: broker.SettleAck, AckIDs: []string{id}})
			}
		}()
	}
}
