package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
)

// BenchmarkLag measures the lag computation (a /metrics scrape on the
// meta leader) over 1,500 groups of one type, 18,000 cursors: "cold"
// reads every cursor and asks the stream about each position (the first
// scrape after every group moved), "warm" a scrape after one in which
// nothing moved. With "backlog" the type holds 120 events none of the
// groups has read, so that every cursor is behind.
func BenchmarkLag(b *testing.B) {
	for _, backlog := range []bool{false, true} {
		n := brokertest.Open(b, broker.NodeConfig{Name: "bench", SyncInterval: time.Minute})
		reg := broker.NewRegistry([]broker.EventType{{Name: consumeType, Schema: []byte(`true`), Replicas: 1}},
			[]broker.Client{{ID: "prod", Produce: []string{consumeType}}, {ID: "c", Consume: []string{consumeType}}})
		ctx := context.Background()
		if err := n.ApplyRegistry(ctx, reg); err != nil {
			b.Fatal(err)
		}
		want := uint64(0)
		if backlog {
			var evs []mevents.Event
			for i := range 120 {
				evs = append(evs, event(b, consumeType, "/s", fmt.Sprintf("e%d", i), fmt.Sprintf("key-%d", i)))
			}
			if err := n.Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
				b.Fatal(err)
			}
			want = 120
		}
		if _, err := n.Lag(ctx); err != nil { // makes the cursor store
			b.Fatal(err)
		}
		js := n.JetStream()
		for g := range 1500 {
			for p := range mevents.Partitions {
				key := fmt.Sprintf("c.g%d.%s.%d", g, broker.StreamName(consumeType), p)
				if _, err := js.PublishAsync("$KV."+broker.CursorBucket+"."+key, []byte(`{"floor":0,"to":0,"open":[],"owner":"","epoch":1}`)); err != nil {
					b.Fatal(err)
				}
			}
		}
		<-js.PublishAsyncComplete()
		for _, cold := range []bool{true, false} {
			b.Run(fmt.Sprintf("backlog=%v/cold=%v", backlog, cold), func(b *testing.B) {
				for b.Loop() {
					if cold {
						n.ForgetLagForTest()
					}
					l, err := n.Lag(ctx)
					if err != nil || len(l) != 1500 || l[0].Pending != want {
						b.Fatal(err, len(l), l[0])
					}
				}
			})
		}
	}
}
