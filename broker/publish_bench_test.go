package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
)

// BenchmarkPublish measures storing batches of 100 events of ~1 KiB on a
// single node (fsync per write, the default) through Node.Publish.
func BenchmarkPublish(b *testing.B) {
	for _, sync := range []string{"always", "interval"} {
		b.Run("sync="+sync, func(b *testing.B) {
			cfg := broker.NodeConfig{Name: "bench"}
			if sync == "interval" {
				cfg.SyncInterval = 2 * 60e9
			}
			n := brokertest.Open(b, cfg)
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
		})
	}
}
