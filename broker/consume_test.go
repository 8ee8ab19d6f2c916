package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/nats-io/nats.go/jetstream"
)

const consumeType = "t.orders"

// consumeNode is a single node with one type, a producer and two consumers.
func consumeNode(t *testing.T) (*broker.Node, *broker.Registry) {
	t.Helper()
	n := brokertest.Open(t, broker.NodeConfig{Name: "n1", SyncInterval: time.Minute, AckTimeout: time.Second})
	reg := broker.NewRegistry([]broker.EventType{{Name: consumeType, Schema: []byte(`true`), Replicas: 1}}, []broker.Client{
		{ID: "prod", Produce: []string{consumeType}},
		{ID: "c1", Consume: []string{consumeType}, MaxDeliver: 2},
		{ID: "c2", Consume: []string{consumeType}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	return n, reg
}

// consumerCount returns a count of the JetStream consumers of type typ's
// stream on n.
func consumerCount(t *testing.T, ctx context.Context, n *broker.Node, typ string) func() int {
	t.Helper()
	st, err := n.JetStream().Stream(ctx, broker.StreamName(typ))
	if err != nil {
		t.Fatal(err)
	}
	return func() int {
		c := 0
		for range st.ConsumerNames(ctx).Name() {
			c++
		}
		return c
	}
}

func publish(t *testing.T, n *broker.Node, producer string, test bool, events ...mevents.Event) {
	t.Helper()
	if err := n.Publish(context.Background(), broker.Publication{Producer: producer, Test: test, Events: events}); err != nil {
		t.Fatal(err)
	}
}

type delivered struct {
	ID            string `json:"id"`
	PartitionKey  string `json:"partitionkey"`
	AckID         string `json:"ackid"`
	DeliveryCount int    `json:"deliverycount"`
	TestEvent     bool   `json:"testevent"`
}

func next(t *testing.T, s *broker.Subscription, within time.Duration) (broker.Delivery, delivered) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	var ev delivered
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		t.Fatalf("delivered event %s: %v", d.Event, err)
	}
	if ev.AckID != d.AckID || ev.DeliveryCount != d.Count {
		t.Fatalf("event %s does not carry ackid %s and deliverycount %d", d.Event, d.AckID, d.Count)
	}
	return d, ev
}

func settle(t *testing.T, s *broker.Subscription, st broker.Settlement) {
	t.Helper()
	res := s.Settle(context.Background(), st)
	if len(res.Failed) > 0 || len(res.Succeeded) != len(st.AckIDs) {
		t.Fatalf("settle %s: %+v", st.Op, res)
	}
}

func TestConsumeOrderPerKey(t *testing.T) {
	n, reg := consumeNode(t)
	const keys, perKey = 25, 20
	var evs []mevents.Event
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("%d-%d", k, i), fmt.Sprintf("key-%d", k)))
		}
	}
	publish(t, n, "prod", false, evs...)

	s, err := n.Subscribe(context.Background(), broker.SubscribeOptions{Client: reg.Client("c2"), MaxInFlight: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The cursor store is there once a subscription is.
	if _, err := n.JetStream().KeyValue(context.Background(), broker.CursorBucket); err != nil {
		t.Fatalf("bucket %s after Subscribe: %v", broker.CursorBucket, err)
	}
	last := map[string]int{}
	for got := 0; got < keys*perKey; got++ {
		d, ev := next(t, s, 10*time.Second)
		var k, i int
		fmt.Sscanf(ev.ID, "%d-%d", &k, &i)
		if want := last[ev.PartitionKey]; d.Count != 1 || i != want {
			t.Fatalf("event %s (delivery %d) of %s, want sequence %d", ev.ID, d.Count, ev.PartitionKey, want)
		}
		last[ev.PartitionKey] = i + 1
		settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
}

// twoKeys returns two partition keys of one partition.
func twoKeys() (string, string) {
	a := "key-0"
	for i := 1; ; i++ {
		if k := fmt.Sprintf("key-%d", i); mevents.Partition(k) == mevents.Partition(a) {
			return a, k
		}
	}
}

// TestConsumePipelinesAKey: many events of one key are out at once, in
// order, up to the credit.
func TestConsumePipelinesAKey(t *testing.T) {
	n, reg := consumeNode(t)
	var evs []mevents.Event
	for i := range 10 {
		evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("e%d", i), "one-key"))
	}
	publish(t, n, "prod", false, evs...)
	s, err := n.Subscribe(context.Background(), broker.SubscribeOptions{Client: reg.Client("c2"), Group: "pipe", MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []broker.Delivery
	for i := range 5 {
		d, ev := next(t, s, 5*time.Second)
		if ev.ID != fmt.Sprintf("e%d", i) || d.Count != 1 {
			t.Fatalf("delivery %d is %s (count %d), want e%d", i, ev.ID, d.Count, i)
		}
		out = append(out, d)
	}
	if got := s.OutForTest(); got != 5 {
		t.Fatalf("%d out, want 5", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	if d, err := s.Next(ctx); err == nil {
		t.Fatalf("got %s beyond the credit", d.Event)
	}
	cancel()
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{out[0].AckID, out[1].AckID}})
	for i := 5; i < 7; i++ {
		if _, ev := next(t, s, 5*time.Second); ev.ID != fmt.Sprintf("e%d", i) {
			t.Fatalf("after two acks got %s, want e%d", ev.ID, i)
		}
	}
}

// TestConsumeReleaseRedeliversItsKeyOnly: a released event and the later
// out events of its key go out again, in order; their earlier deliveries
// can no longer be settled; other keys are not touched.
func TestConsumeReleaseRedeliversItsKeyOnly(t *testing.T) {
	n, reg := consumeNode(t)
	a, b := twoKeys()
	publish(t, n, "prod", false,
		event(t, consumeType, "/s", "a1", a), event(t, consumeType, "/s", "a2", a),
		event(t, consumeType, "/s", "b1", b), event(t, consumeType, "/s", "b2", b))
	s, err := n.Subscribe(context.Background(), broker.SubscribeOptions{Client: reg.Client("c2"), Group: "keys"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]broker.Delivery{}
	var order []string
	for range 4 {
		d, ev := next(t, s, 5*time.Second)
		got[ev.ID] = d
		order = append(order, ev.ID)
	}
	// Each key in stream order; the keys do not wait for each other, so
	// how they interleave depends on when the events were read.
	if pos := func(id string) int { return slices.Index(order, id) }; len(got) != 4 || pos("a1") > pos("a2") || pos("b1") > pos("b2") {
		t.Fatalf("first deliveries %v, want all four, each key in stream order", order)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleRelease, AckIDs: []string{got["a1"].AckID}})
	res := s.Settle(context.Background(), broker.Settlement{Op: broker.SettleAck, AckIDs: []string{got["a2"].AckID}})
	if len(res.Failed) != 1 {
		t.Fatalf("ack of a2's void delivery: %+v, want it refused", res)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{got["b1"].AckID, got["b2"].AckID}})
	// a2's void delivery does not count: it comes with the same number.
	for _, want := range []string{"a1/2", "a2/1"} {
		d, ev := next(t, s, 5*time.Second)
		if got := fmt.Sprintf("%s/%d", ev.ID, d.Count); got != want {
			t.Fatalf("after the release got %s, want %s", got, want)
		}
		settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
	// Settled again: still succeeds.
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{got["b1"].AckID}})
}

func TestConsumeRedelivery(t *testing.T) {
	n, reg := consumeNode(t)
	c2 := reg.Client("c2")
	publish(t, n, "prod", false, event(t, consumeType, "/s", "e1", "k"), event(t, consumeType, "/s", "e2", "k"))

	s, err := n.Subscribe(context.Background(), broker.SubscribeOptions{Client: c2})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(s *broker.Subscription, c1, c2 int) broker.Delivery {
		t.Helper()
		var first broker.Delivery
		for i, want := range []string{fmt.Sprintf("e1/%d", c1), fmt.Sprintf("e2/%d", c2)} {
			d, ev := next(t, s, 5*time.Second)
			if got := fmt.Sprintf("%s/%d", ev.ID, ev.DeliveryCount); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if i == 0 {
				first = d
			}
		}
		return first
	}
	expect(s, 1, 1)
	// Not acknowledged within the ack timeout: e1 delivered again, and e2
	// (same key, out after it) again after it; e2's void delivery does not
	// count.
	expect(s, 2, 1)
	// Closing gives them to the next instance of the group at once.
	s.Close()
	s, err = n.Subscribe(context.Background(), broker.SubscribeOptions{Client: c2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := expect(s, 3, 2)
	// Release with a delay: redelivered no sooner than the delay, e2 after it.
	released := time.Now()
	settle(t, s, broker.Settlement{Op: broker.SettleRelease, AckIDs: []string{d.AckID}, Delay: 300 * time.Millisecond})
	d, ev := next(t, s, 5*time.Second)
	if ev.ID != "e1" || ev.DeliveryCount != 4 || time.Since(released) < 300*time.Millisecond {
		t.Fatalf("after release got %+v after %v", ev, time.Since(released))
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	d, ev = next(t, s, 5*time.Second)
	if ev.ID != "e2" || ev.DeliveryCount != 2 {
		t.Fatalf("after ack got %+v, want e2 delivery 2", ev)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
}

func TestConsumeGroupsAndStart(t *testing.T) {
	n, reg := consumeNode(t)
	c2 := reg.Client("c2")
	publish(t, n, "prod", false, event(t, consumeType, "/s", "old", "k"))
	ctx := context.Background()

	latest, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c2, Group: "fresh", Start: broker.Start{Latest: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer latest.Close()
	history, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c2, Group: "replay"})
	if err != nil {
		t.Fatal(err)
	}
	defer history.Close()
	if _, ev := next(t, history, 5*time.Second); ev.ID != "old" {
		t.Fatalf("named group got %+v, want the old event", ev)
	}
	publish(t, n, "prod", false, event(t, consumeType, "/s", "new", "k"))
	if _, ev := next(t, latest, 5*time.Second); ev.ID != "new" {
		t.Fatalf("start=latest group got %+v, want the new event", ev)
	}

	for _, g := range []string{"a.b", "x y", "*", string(make([]byte, 65))} {
		if _, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c2, Group: g}); mevents.ErrorCode(err) != mevents.CodeInvalid {
			t.Fatalf("group %q: err=%v, want invalid", g, err)
		}
	}
	if _, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("prod")}); mevents.ErrorCode(err) != mevents.CodeForbidden {
		t.Fatalf("producer without routed types: err=%v, want forbidden", err)
	}
}

func TestConsumeTestEventsAndForeignAckIDs(t *testing.T) {
	n, reg := consumeNode(t)
	c1, c2 := reg.Client("c1"), reg.Client("c2")
	publish(t, n, "c1", true, event(t, consumeType, "/s", "test1", "k"))
	publish(t, n, "prod", false, event(t, consumeType, "/s", "real", "other"))
	ctx := context.Background()

	s2, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	d2, ev := next(t, s2, 5*time.Second)
	if ev.ID != "real" {
		t.Fatalf("c2 got %+v, want only the real event", ev)
	}
	s1, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c1})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		d, ev := next(t, s1, 5*time.Second)
		seen[ev.ID] = ev.TestEvent == (ev.ID == "test1")
		settle(t, s1, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
	if !seen["test1"] || !seen["real"] {
		t.Fatalf("c1 saw %v, want its test event and the real one", seen)
	}
	// c1 cannot settle c2's delivery.
	res := n.Settle(ctx, c1, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d2.AckID, "bm9wZQ"}})
	if len(res.Succeeded) != 0 || len(res.Failed) != 2 {
		t.Fatalf("foreign and malformed ack ids: %+v", res)
	}
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if d, err := s2.Next(ctx2); err == nil && d.Count == 1 {
		t.Fatalf("c2 got a new delivery %s after a foreign ack", d.Event)
	}
}

func TestConsumeDeadEvents(t *testing.T) {
	n, reg := consumeNode(t)
	c1 := reg.Client("c1") // maxDeliver 2
	publish(t, n, "prod", false,
		event(t, consumeType, "/s", "bad", "k1"),
		event(t, consumeType, "/s", "poison", "k2"),
		event(t, consumeType, "/s", "after", "k2"))
	ctx := context.Background()
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c1, Group: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	deadline := time.Now().Add(20 * time.Second)
	gotAfter := false
	for !gotAfter && time.Now().Before(deadline) {
		d, ev := next(t, s, 10*time.Second)
		switch ev.ID {
		case "bad":
			settle(t, s, broker.Settlement{Op: broker.SettleDead, AckIDs: []string{d.AckID}, Reason: "cannot parse"})
		case "poison":
			if d.Count > 2 {
				t.Fatalf("poison delivered %d times, maxDeliver is 2", d.Count)
			}
			settle(t, s, broker.Settlement{Op: broker.SettleRelease, AckIDs: []string{d.AckID}})
		case "after":
			gotAfter = true
			settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
		}
	}
	if !gotAfter {
		t.Fatal("the key behind the poison event never moved on")
	}

	page, err := n.ListDead(ctx, c1, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Next == "" {
		t.Fatalf("first page %+v", page)
	}
	first := page.Items[0]
	page, err = n.ListDead(ctx, c1, page.Next, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Next != "" {
		t.Fatalf("second page %+v", page)
	}
	second := page.Items[0]
	byOrigin := map[string]broker.DeadEvent{first.Origin: first, second.Origin: second}
	if c := byOrigin[broker.OriginConsumer]; c.Reason != "cannot parse" || c.Group != "g1" || c.DeliveryCount != 1 || !jsonHasID(c.Event, "bad") {
		t.Fatalf("consumer-reported dead event %+v", c)
	}
	if m := byOrigin[broker.OriginMaxDeliver]; m.DeliveryCount != 2 || !jsonHasID(m.Event, "poison") {
		t.Fatalf("maxDeliver dead event %+v", m)
	}
	// Another client sees none of them and cannot touch them.
	if p, err := n.ListDead(ctx, reg.Client("c2"), "", 10); err != nil || len(p.Items) != 0 {
		t.Fatalf("c2 lists %+v, %v", p, err)
	}
	if err := n.DeleteDead(ctx, reg.Client("c2"), first.ID); mevents.ErrorCode(err) != mevents.CodeNotFound {
		t.Fatalf("c2 deletes c1's dead event: %v", err)
	}

	// Redeliver one to the same group; delete the other.
	redo := byOrigin[broker.OriginConsumer]
	if err := n.RedeliverDead(ctx, c1, redo.ID); err != nil {
		t.Fatal(err)
	}
	d, ev := next(t, s, 10*time.Second)
	if ev.ID != "bad" || d.Count != 1 {
		t.Fatalf("after redeliver got %+v", ev)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	if err := n.DeleteDead(ctx, c1, byOrigin[broker.OriginMaxDeliver].ID); err != nil {
		t.Fatal(err)
	}
	if p, err := n.ListDead(ctx, c1, "", 10); err != nil || len(p.Items) != 0 {
		t.Fatalf("after redeliver and delete: %+v, %v", p, err)
	}
	// Another group of the same client does not get the redelivered event.
	other, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: c1, Group: "g2"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ids := map[string]int{}
	for i := 0; i < 3; i++ {
		d, ev := next(t, other, 5*time.Second)
		ids[ev.ID]++
		settle(t, other, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
	if ids["bad"] != 1 || ids["poison"] != 1 || ids["after"] != 1 {
		t.Fatalf("group g2 got %v, want each original once", ids)
	}
}

func jsonHasID(raw json.RawMessage, id string) bool {
	var ev struct {
		ID string `json:"id"`
	}
	return json.Unmarshal(raw, &ev) == nil && ev.ID == id
}

// TestConsumeReaderLost: a reader's consumer deleted under a subscription
// (by an operator) is made again, and delivery goes on where it was.
func TestConsumeReaderLost(t *testing.T) {
	n, reg := consumeNode(t)
	ctx := context.Background()
	publish(t, n, "prod", false, event(t, consumeType, "/s", "one", "k"))
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, ev := next(t, s, 5*time.Second)
	if ev.ID != "one" {
		t.Fatalf("got %s, want one", ev.ID)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	st, err := n.JetStream().Stream(ctx, broker.StreamName(consumeType))
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.ConsumerNames(ctx).Name() {
		if err := n.JetStream().DeleteConsumer(ctx, broker.StreamName(consumeType), name); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, n, "prod", false, event(t, consumeType, "/s", "two", "k"))
	d, ev = next(t, s, 15*time.Second)
	if ev.ID != "two" || d.Count != 1 {
		t.Fatalf("after the reader was deleted got %s (count %d), want two", ev.ID, d.Count)
	}
}

// TestConsumeUpgradesEarlierGroups: a group kept by an earlier version as
// durable consumers (pinned priority group, explicit acks) keeps its
// position: what it acknowledged is not delivered again, what it had out
// unacknowledged is, and the consumer is removed.
func TestConsumeUpgradesEarlierGroups(t *testing.T) {
	n, reg := consumeNode(t)
	ctx := context.Background()
	// Applying the registry looked for earlier groups: none yet.
	n.WaitBackgroundForTest()
	a, b := twoKeys()
	publish(t, n, "prod", false,
		event(t, consumeType, "/s", "a1", a), event(t, consumeType, "/s", "b1", b),
		event(t, consumeType, "/s", "a2", a), event(t, consumeType, "/s", "b2", b),
		event(t, consumeType, "/s", "a3", a))
	p := mevents.Partition(a)
	name := fmt.Sprintf("g%d_c2_up_%d", len("c2"), p)
	c, err := n.JetStream().CreateConsumer(ctx, broker.StreamName(consumeType), jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 128, MaxDeliver: -1,
		AckWait: time.Minute, PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{"mevents"}, PinnedTTL: 10 * time.Second,
		FilterSubjects: []string{broker.Subject(consumeType, p, ""), broker.Subject(consumeType, p, "c2"), fmt.Sprintf("evredo.c2.up.%s.%d", consumeType, p)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The earlier version delivered a1 b1 a2 b2, and b1 and a1 were
	// acknowledged (b1 above the ack floor).
	batch, err := c.Fetch(4, jetstream.FetchMaxWait(5*time.Second), jetstream.FetchPriorityGroup("mevents"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("the old consumer delivered %d events, want 4", len(msgs))
	}
	for _, i := range []int{1, 0} {
		if err := msgs[i].DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: "up"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	for range 3 {
		d, ev := next(t, s, 15*time.Second)
		got = append(got, fmt.Sprintf("%s/%d", ev.ID, d.Count))
		settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
	if fmt.Sprint(got) != "[a2/2 b2/2 a3/1]" {
		t.Fatalf("after the upgrade got %v, want a2 and b2 again and a3 new", got)
	}
	if _, err := n.JetStream().Consumer(ctx, broker.StreamName(consumeType), name); err == nil {
		t.Fatal("the earlier version's consumer is still there")
	}

	// A group nobody consumes any more is upgraded when the registry is
	// applied: its cursor stands where its consumer was, which is gone.
	idle := fmt.Sprintf("g%d_c2_idle_%d", len("c2"), p)
	if _, err := n.JetStream().CreateConsumer(ctx, broker.StreamName(consumeType), jetstream.ConsumerConfig{
		Durable: idle, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubjects: []string{broker.Subject(consumeType, p, "")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := n.ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	kv, err := n.JetStream().KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the idle group upgraded", func() bool {
		_, gone := n.JetStream().Consumer(ctx, broker.StreamName(consumeType), idle)
		e, err := kv.Get(ctx, fmt.Sprintf("c2.idle.%s.%d", broker.StreamName(consumeType), p))
		return gone != nil && err == nil && strings.Contains(string(e.Value()), `"to":5`)
	})
}
