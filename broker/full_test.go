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

// TestFullStore: when JetStream's store is full, Publish fails with an
// "unavailable" error that says so, and the node keeps serving.
func TestFullStore(t *testing.T) {
	n := brokertest.Open(t, broker.NodeConfig{Name: "full", MaxStore: 256 << 10, SyncInterval: 60e9})
	const typ = "org.example.full"
	ctx := context.Background()
	if err := n.ApplyRegistry(ctx, testRegistry(typ)); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 8000)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		raw := fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/s","id":"%d","data":{"pad":%q}}`, typ, i, pad)
		e, _ := mevents.ParseEvent([]byte(raw), 0)
		err = n.Publish(ctx, broker.Publication{Producer: "p", Events: []mevents.Event{e}})
	}
	if err == nil {
		t.Fatal("1.6 MB went into a 256 KiB store")
	}
	if mevents.ErrorCode(err) != mevents.CodeUnavailable || !strings.Contains(mevents.ErrorMessage(err), "full") {
		t.Fatalf("err=%v (code %s, message %q), want unavailable: the event store is full", err, mevents.ErrorCode(err), mevents.ErrorMessage(err))
	}
	if err := n.Ready(); err != nil {
		t.Fatalf("node not ready after a full store: %v", err)
	}
}
