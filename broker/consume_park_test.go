package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// parkingGroup starts three nodes whose readers park after a second idle
// and an instance of group on the first.
func parkingGroup(t *testing.T, group string) ([]*broker.Node, []broker.NodeConfig, context.Context, *broker.Subscription) {
	t.Helper()
	nodes, cfgs, reg := groupClusterConfigs(t, time.Minute)
	for _, n := range nodes {
		n.SetParkAfterForTest(time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	s, err := nodes[0].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: group})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return nodes, cfgs, ctx, s
}

// TestIdleReadersPark: an instance that has read nothing for its park
// delay gives its reader's JetStream consumer up, and an event published
// afterwards on any node is delivered all the same, each time.
func TestIdleReadersPark(t *testing.T) {
	nodes, _, ctx, s := parkingGroup(t, "park")
	readers := func() int {
		st, err := nodes[0].JetStream().Stream(ctx, broker.StreamName(consumeType))
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if strings.HasPrefix(name, "mevents_r_") {
				count++
			}
		}
		return count
	}
	for round := range 4 {
		waitFor(t, 60*time.Second, "the reader parked", func() bool {
			return nodes[0].ParkedForTest() == 1
		})
		waitFor(t, 10*time.Second, "no reader consumer while parked", func() bool { return readers() == 0 })
		// Published on each node in turn, one at the moment it parked.
		id := fmt.Sprintf("e%d", round)
		ev := event(t, consumeType, "/s", id, fmt.Sprintf("key-%d", round))
		sent := time.Now()
		if err := nodes[round%3].Publish(ctx, broker.Publication{Producer: "prod", Events: []mevents.Event{ev}}); err != nil {
			t.Fatal(err)
		}
		d, got := next(t, s, 10*time.Second)
		if got.ID != id {
			t.Fatalf("round %d: delivered %s, want %s", round, got.ID, id)
		}
		t.Logf("round %d: published on node %d, delivered %s later by the woken reader", round, round%3, time.Since(sent).Round(time.Millisecond))
		settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
}

// TestParkedReadersWakeWhenAPeerReturns: a peer that comes back may have
// had events published while its routes were down, which no tail heard:
// the parked readers of the other nodes wake and look.
func TestParkedReadersWakeWhenAPeerReturns(t *testing.T) {
	nodes, cfgs, ctx, s := parkingGroup(t, "peer")
	parked := nodes[0].ParkedForTest
	waitFor(t, 60*time.Second, "the reader parked", func() bool { return parked() == 1 })
	woken := nodes[0].WokenForTest()
	nodes[2].KillForTest()
	nodes[2] = broker.NewNode(cfgs[2])
	if err := nodes[2].Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nodes[2].Close() })
	waitFor(t, 30*time.Second, "the parked reader woken by the peer's return", func() bool { return nodes[0].WokenForTest() > woken })
	// It looked and parked again; it still wakes for an event.
	waitFor(t, 30*time.Second, "the reader parked again", func() bool { return parked() == 1 })
	if err := nodes[1].Publish(ctx, broker.Publication{Producer: "prod", Events: []mevents.Event{event(t, consumeType, "/s", "after", "k")}}); err != nil {
		t.Fatal(err)
	}
	if _, got := next(t, s, 10*time.Second); got.ID != "after" {
		t.Fatalf("delivered %s, want after", got.ID)
	}
}

// TestNewIdleGroupsMakeNoConsumer: the readers of new groups with nothing
// to read park at once, without making a JetStream consumer, and an event
// published afterwards reaches every group.
func TestNewIdleGroupsMakeNoConsumer(t *testing.T) {
	n, reg := consumeNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish(t, n, "prod", false, event(t, consumeType, "/s", "before", "k"))
	count, made := consumerCount(t, ctx, n, consumeType), 0
	consumers := func() { made = max(made, count()) }
	const groups = 20
	subs := make([]*broker.Subscription, groups)
	for i := range subs {
		s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: fmt.Sprintf("new-%d", i), Start: broker.Start{Latest: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}
	waitFor(t, 30*time.Second, "every group's readers parked", func() bool {
		consumers()
		for _, s := range subs {
			if len(s.Partitions()[consumeType]) != mevents.Partitions {
				return false
			}
		}
		return n.ParkedForTest() >= groups
	})
	if consumers(); made != 0 {
		t.Fatalf("%d consumers made by groups with nothing to read", made)
	}
	publish(t, n, "prod", false, event(t, consumeType, "/s", "after", "k"))
	for i, s := range subs {
		if _, got := next(t, s, 10*time.Second); got.ID != "after" {
			t.Fatalf("group %d: delivered %s, want after", i, got.ID)
		}
	}
}
