package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
)

// BenchmarkPublish measures storing requests of 100 events of ~1 KiB of one
// type through Node.Publish: on one node and on a 3-node cluster (R3),
// with fsync per write (the default) or every 2 minutes, as one atomic
// batch (the default) or event by event (NodeConfig.PublishEach, the way
// of requests of several types).
func BenchmarkPublish(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		for _, sync := range []string{"always", "interval"} {
			for _, path := range []string{"atomic", "each"} {
				b.Run(fmt.Sprintf("nodes=%d/sync=%s/path=%s", nodes, sync, path), func(b *testing.B) {
					benchPublish(b, nodes, sync == "interval", path == "each")
				})
			}
		}
	}
}

func benchPublish(b *testing.B, nodes int, interval, each bool) {
	var n *broker.Node
	if nodes == 1 {
		cfg := broker.NodeConfig{Name: "bench", PublishEach: each}
		if interval {
			cfg.SyncInterval = 2 * time.Minute
		}
		n = brokertest.Open(b, cfg)
	} else {
		cfgs := brokertest.Configs(b, nodes, broker.NodeConfig{PublishEach: each})
		for i := range cfgs {
			cfgs[i].SyncInterval = 0 // fsync per write, unless:
			if interval {
				cfgs[i].SyncInterval = 2 * time.Minute
			}
		}
		n = brokertest.OpenAll(b, cfgs)[0]
	}
	const typ = "org.example.bench"
	if err := n.ApplyRegistry(context.Background(), testRegistry(typ)); err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 900)
	b.ReportAllocs()
	b.SetBytes(100 * 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		events := make([]mevents.Event, 100)
		for k := range events {
			raw := fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/bench","id":"%d-%d","partitionkey":"k%d","data":{"pad":%q}}`, typ, i, k, k%50, pad)
			e, _ := mevents.ParseEvent([]byte(raw), k)
			events[k] = e
		}
		if err := n.Publish(context.Background(), broker.Publication{Producer: "bench", Events: events}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
