package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/nats-io/nats.go/jetstream"
)

// batchOf returns n events of typ with ids prefix-0…, each ~size bytes.
func batchOf(t *testing.T, typ, prefix string, from, to, size int) []mevents.Event {
	t.Helper()
	pad := strings.Repeat("x", size)
	var evs []mevents.Event
	for i := from; i < to; i++ {
		raw := fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/s","id":"%s%d","partitionkey":"k%d","data":{"pad":%q}}`, typ, prefix, i, i%7, pad)
		e, problems := mevents.ParseEvent([]byte(raw), i)
		if len(problems) > 0 {
			t.Fatalf("parse: %+v", problems)
		}
		evs = append(evs, e)
	}
	return evs
}

// TestPublishBatchAllOrNothing: on a cluster, requests of one type are
// stored whole or not at all when the store fills up under them; stored
// event by event (the earlier way, still that of requests of several
// types), the request that fills the store is stored in part. A single
// node (R1) stores a batch message by message (nats-server), so there too
// the last request may be stored in part: the README says so.
func TestPublishBatchAllOrNothing(t *testing.T) {
	for _, c := range []struct {
		nodes       int
		each, whole bool
	}{{3, false, true}, {3, true, false}, {1, true, false}} {
		t.Run(fmt.Sprintf("nodes=%d,each=%v", c.nodes, c.each), func(t *testing.T) {
			const maxStore = 512 << 10
			var n *broker.Node
			if c.nodes == 1 {
				n = brokertest.Open(t, broker.NodeConfig{Name: "full", MaxStore: maxStore, PublishEach: c.each})
			} else {
				n = brokertest.Cluster(t, 3, broker.NodeConfig{MaxStore: maxStore, PublishEach: c.each})[0]
			}
			const typ = "org.example.full"
			ctx := context.Background()
			if err := n.ApplyRegistry(ctx, testRegistry(typ)); err != nil {
				t.Fatal(err)
			}
			const per = 40
			var err error
			for b := 0; b < 30 && err == nil; b++ {
				err = n.Publish(ctx, broker.Publication{Producer: "p", Events: batchOf(t, typ, fmt.Sprintf("b%d-", b), 0, per, 900)})
			}
			var be *mevents.Error
			if !errors.As(err, &be) || be.Code != mevents.CodeUnavailable {
				t.Fatalf("filling the store: err=%v, want CodeUnavailable", err)
			}
			stored := streamInfo(t, n, typ).State.Msgs
			t.Logf("stored %d events, %v", stored, err)
			if c.whole && stored%per != 0 {
				t.Fatalf("stored %d events in requests of %d: one stored in part", stored, per)
			}
		})
	}
}

// TestPublishBatchRetry: a request repeating events already stored (a
// retry, whole or overlapping) is answered like the first and stores each
// event once; so is a request naming one event twice.
func TestPublishBatchRetry(t *testing.T) {
	n := brokertest.Open(t, broker.NodeConfig{Name: "retry"})
	const typ = "org.example.retry"
	ctx := context.Background()
	if err := n.ApplyRegistry(ctx, testRegistry(typ)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		events []mevents.Event
		want   uint64
	}{
		{"first", batchOf(t, typ, "e", 0, 5, 10), 5},
		{"the same again", batchOf(t, typ, "e", 0, 5, 10), 5},
		{"overlapping", batchOf(t, typ, "e", 3, 8, 10), 8},
		{"one event twice", append(batchOf(t, typ, "e", 8, 10, 10), batchOf(t, typ, "e", 9, 10, 10)...), 10},
	}
	for _, s := range steps {
		if err := n.Publish(ctx, broker.Publication{Producer: "p", Events: s.events}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := streamInfo(t, n, typ).State.Msgs; got != s.want {
			t.Fatalf("%s: stored %d, want %d", s.name, got, s.want)
		}
	}
}

// TestPublishBatchUpgrade: a stream made before atomic batches is given
// them when the registry is applied; until then requests are stored event
// by event.
func TestPublishBatchUpgrade(t *testing.T) {
	n := brokertest.Open(t, broker.NodeConfig{Name: "upgrade"})
	const typ = "org.example.old"
	ctx := context.Background()
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{
		Name: broker.StreamName(typ), Description: "mevents event type " + typ,
		Subjects: []string{"ev." + typ + ".*", "evtest.*." + typ + ".*", "evredo.*.*." + typ + ".*"},
		MaxAge:   broker.DefaultRetention, Duplicates: broker.DefaultDedupWindow, AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(ctx, broker.Publication{Producer: "p", Events: batchOf(t, typ, "e", 0, 3, 10)}); err != nil {
		t.Fatal(err)
	}
	reg := testRegistry(typ)
	if err := n.ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if !streamInfo(t, n, typ).Config.AllowAtomicPublish {
		t.Fatal("the stream does not take atomic batches after the registry was applied")
	}
	if err := n.Publish(ctx, broker.Publication{Producer: "p", Events: batchOf(t, typ, "e", 0, 6, 10)}); err != nil {
		t.Fatal(err)
	}
	if got := streamInfo(t, n, typ).State.Msgs; got != 6 {
		t.Fatalf("stored %d, want 6", got)
	}
}
