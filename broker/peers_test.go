package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// TestReaderFollowsNodeLoss: when the node a reader's consumer lives on is
// killed, the reader reads again from a live node within seconds, well
// before its pulls would miss two heartbeats (30 s).
func TestReaderFollowsNodeLoss(t *testing.T) {
	nodes, reg := groupCluster(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := reg.Client("c")
	// An instance on the first node whose reader's consumer lives on
	// another node (JetStream places it on a random stream peer).
	var s *broker.Subscription
	host := ""
	for i := 0; host == "" || host == nodes[0].Name(); i++ {
		if i == 10 {
			t.Fatal("every reader was placed on the instance's own node")
		}
		if s != nil {
			s.Close()
		}
		var err error
		s, err = nodes[0].Subscribe(ctx, broker.SubscribeOptions{Client: cl, Group: fmt.Sprintf("follow%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		publish(t, nodes[0], "prod", false, event(t, consumeType, "/s", fmt.Sprintf("before%d", i), "k"))
		for ev := (delivered{}); ev.ID != fmt.Sprintf("before%d", i); {
			var d broker.Delivery
			d, ev = next(t, s, 15*time.Second)
			settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
		}
		host = s.ReaderHostForTest(consumeType)
	}
	defer s.Close()
	for _, n := range nodes {
		if n.Name() == host {
			t.Logf("killing %s, where the reader's consumer lives", host)
			n.KillForTest()
		}
	}
	killed := time.Now()
	// Publishing waits out a stream leader election if the killed node led.
	for {
		err := nodes[0].Publish(ctx, broker.Publication{Producer: "prod", Events: []mevents.Event{event(t, consumeType, "/s", "after", "k")}})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("publish after the kill: %v", err)
		}
	}
	for {
		_, ev := next(t, s, 10*time.Second)
		if ev.ID == "after" {
			break
		}
	}
	t.Logf("delivered %v after the kill; the reader now reads from %s", time.Since(killed).Round(time.Millisecond), s.ReaderHostForTest(consumeType))
}

// TestCutOffNodeRefusesAtOnce: a node that has lost its routes to both of
// its peers cannot store anything: it refuses a request at once with a
// message saying so, not after the producer's timeout (an atomic batch
// would otherwise wait for a stream leader that never comes to its side).
func TestCutOffNodeRefusesAtOnce(t *testing.T) {
	nodes, _ := groupCluster(t, time.Minute)
	publish(t, nodes[0], "prod", false, event(t, consumeType, "/s", "before", "k"))
	for nodes[0].PeersKnownForTest() < 2 { // the peer watch has seen both
		time.Sleep(50 * time.Millisecond)
	}
	nodes[1].KillForTest()
	nodes[2].KillForTest()
	for _, c := range []struct {
		name   string
		events []mevents.Event
	}{
		{"one event", []mevents.Event{event(t, consumeType, "/s", "one", "k")}},
		{"atomic batch", []mevents.Event{event(t, consumeType, "/s", "b1", "k"), event(t, consumeType, "/s", "b2", "k")}},
	} {
		var err error
		for range 20 { // the peer watch sees the routes gone within a tick
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = nodes[0].Publish(ctx, broker.Publication{Producer: "prod", Events: c.events})
			cancel()
			if err != nil && strings.Contains(err.Error(), "cut off") {
				break
			}
		}
		var me *mevents.Error
		if !errors.As(err, &me) || me.Code != mevents.CodeUnavailable || !strings.Contains(me.Message, "cut off from the rest of the cluster") {
			t.Fatalf("%s on a node without peers: %v, want unavailable, cut off", c.name, err)
		}
	}
}
