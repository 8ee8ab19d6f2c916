package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
)

// orderedConsumer is a consumer instance that handles each key's events
// strictly in the order it receives them, as the contract asks of one: it
// acknowledges only what it handled, and once it let an event of a key go
// (released it, or left it to its ack timeout) it handles nothing later of
// that key until that event comes again — or until the event's ack timeout
// has long passed (it went to another instance with its partition, which
// may have come back since). handled logs, per key, the events whose
// acknowledgement succeeded, in the order they were handled.
type orderedConsumer struct {
	mu         sync.Mutex
	ackTimeout time.Duration
	handled    map[string][]int           // by key: event numbers
	acked      map[string]bool            // event ids acknowledged
	blocked    map[int]map[string]blocked // instance → key → what it waits for
}

type blocked struct {
	event int
	until time.Time
}

func newOrderedConsumer(ackTimeout time.Duration) *orderedConsumer {
	return &orderedConsumer{ackTimeout: ackTimeout, handled: map[string][]int{}, acked: map[string]bool{}, blocked: map[int]map[string]blocked{}}
}

func (o *orderedConsumer) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.acked)
}

// run consumes with s until ctx ends; rng decides what to let go.
func (o *orderedConsumer) run(ctx context.Context, inst int, s *broker.Subscription, rng *rand.Rand, errs chan<- error) {
	o.mu.Lock()
	o.blocked[inst] = map[string]blocked{}
	waits := o.blocked[inst]
	o.mu.Unlock()
	block := func(key string, i int) { waits[key] = blocked{i, time.Now().Add(3 * o.ackTimeout)} }
	for ctx.Err() == nil {
		d, err := s.Next(ctx)
		if err != nil {
			return
		}
		var ev struct {
			ID  string `json:"id"`
			Key string `json:"partitionkey"`
		}
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			errs <- err
			return
		}
		var k, i int
		fmt.Sscanf(ev.ID, "k%d-%d", &k, &i)
		if w, ok := waits[ev.Key]; ok {
			if i > w.event && time.Now().Before(w.until) {
				continue // a later event of a key that waits: it comes again
			}
			delete(waits, ev.Key)
		}
		switch r := rng.IntN(100); {
		case r < 10:
			block(ev.Key, i)
			s.Settle(ctx, broker.Settlement{Op: broker.SettleRelease, AckIDs: []string{d.AckID}})
			continue
		case r < 12:
			block(ev.Key, i) // left to its ack timeout
			continue
		}
		res := s.Settle(ctx, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
		if len(res.Succeeded) != 1 {
			block(ev.Key, i) // not handled after all: it comes again
			continue
		}
		o.mu.Lock()
		if o.acked[ev.ID] {
			o.mu.Unlock()
			errs <- fmt.Errorf("instance %d: %s acknowledged a second time (delivery %d)", inst, ev.ID, d.Count)
			return
		}
		o.acked[ev.ID] = true
		o.handled[ev.Key] = append(o.handled[ev.Key], i)
		o.mu.Unlock()
	}
}

// TestOrderedProcessing: instances on three nodes that handle each key in
// order, release about 10 % of the events at random and leave some to
// their ack timeout, while one of them crashes mid-stream: per key, the
// events handled (acknowledged) are exactly the stream's, in its order,
// none twice.
func TestOrderedProcessing(t *testing.T) {
	nodes, reg := groupCluster(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const keys, perKey = 20, 30
	for i := range perKey {
		evs := make([]mevents.Event, 0, keys)
		for k := range keys {
			evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("k%d-%d", k, i), fmt.Sprintf("key-%d", k)))
		}
		if err := nodes[i%3].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	o := newOrderedConsumer(time.Second)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	subs := make([]*broker.Subscription, 4)
	for i := range subs {
		s, err := nodes[i%3].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "ordered", MaxInFlight: 20})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.run(cctx, i, s, rand.New(rand.NewPCG(uint64(i), 7)), errs)
		}()
	}
	defer func() {
		for _, s := range subs[1:] {
			s.Close()
		}
	}()
	defer func() {
		if t.Failed() {
			o.mu.Lock()
			t.Logf("handled %d; blocked %v", len(o.acked), o.blocked)
			for k, h := range o.handled {
				if len(h) != perKey {
					t.Logf("%s: %v", k, h)
				}
			}
			o.mu.Unlock()
			for i, s := range subs[1:] {
				t.Logf("instance %d: %s", i+1, s.DebugState())
			}
		}
	}()
	waitFor(t, 60*time.Second, "a third handled", func() bool { return o.total() >= keys*perKey/3 })
	subs[0].CrashForTest()
	waitFor(t, 90*time.Second, "every event handled", func() bool {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		return o.total() == keys*perKey
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range keys {
		got := o.handled[fmt.Sprintf("key-%d", k)]
		if len(got) != perKey {
			t.Fatalf("key-%d: handled %v, want 0…%d", k, got, perKey-1)
		}
		for i, n := range got {
			if n != i {
				t.Fatalf("key-%d: handled %v, want 0…%d in order", k, got, perKey-1)
			}
		}
	}
}

// TestCommittedAcksSurviveStoreLeaderLoss: the node that leads the cursor
// store goes away right after acknowledgements succeeded, and comes back:
// none of the acknowledged events is delivered to the group again.
func TestCommittedAcksSurviveStoreLeaderLoss(t *testing.T) {
	nodes, cfgs, reg := groupClusterConfigs(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// Who leads the cursor store: the subscription goes elsewhere.
	probe, err := nodes[0].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	info, err := nodes[0].JetStream().Stream(ctx, "KV_"+broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	leader := -1
	for i, c := range cfgs {
		if info.CachedInfo().Cluster.Leader == c.Name {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("cursor store leader %q is no node", info.CachedInfo().Cluster.Leader)
	}
	other := (leader + 1) % 3
	var evs []mevents.Event
	for i := range 60 {
		evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("e%d", i), fmt.Sprintf("key-%d", i%6)))
	}
	if err := nodes[other].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
		t.Fatal(err)
	}
	s, err := nodes[other].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "durable", MaxInFlight: 60})
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	var ids []string
	for range 60 {
		d, ev := next(t, s, 20*time.Second)
		if len(acked) < 40 {
			acked[ev.ID] = true
			ids = append(ids, d.AckID)
		}
	}
	if res := s.Settle(ctx, broker.Settlement{Op: broker.SettleAck, AckIDs: ids}); len(res.Succeeded) != 40 {
		t.Fatalf("acks: %+v", res)
	}
	// The store's leader goes at once, and comes back.
	nodes[leader].Close()
	s.CrashForTest()
	nodes[leader] = broker.NewNode(cfgs[leader])
	if err := nodes[leader].Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes[leader].ApplyRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	s2, err := nodes[(leader+2)%3].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "durable", MaxInFlight: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for range 20 {
		d, ev := next(t, s2, 30*time.Second)
		if acked[ev.ID] {
			t.Fatalf("%s delivered again (count %d) after its acknowledgement succeeded", ev.ID, d.Count)
		}
	}
	nctx, ncancel := context.WithTimeout(ctx, time.Second)
	defer ncancel()
	if d, err := s2.Next(nctx); err == nil {
		t.Fatalf("a 21st delivery: %s", d.Event)
	}
}

// TestIdleGroupsLeaveNoConsumers: 1,100 groups of one type (beyond
// JetStream's default of 1,000 consumers a stream) cost JetStream one
// reader per instance and type while connected, and nothing once their
// instances are gone; their cursors stay.
func TestIdleGroupsLeaveNoConsumers(t *testing.T) {
	n, reg := consumeNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	publish(t, n, "prod", false, event(t, consumeType, "/s", "one", "k"))
	const groups = 1100
	subs := make([]*broker.Subscription, groups)
	for i := range subs {
		// From the start: each group has an event to read, so each reader
		// makes a consumer (one with nothing to read parks without one).
		s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: fmt.Sprintf("idle-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	consumers := consumerCount(t, ctx, n, consumeType)
	waitFor(t, 60*time.Second, "every group's reader", func() bool {
		for _, s := range subs {
			if len(s.Partitions()[consumeType]) != mevents.Partitions {
				return false
			}
		}
		return consumers() == groups
	})
	for _, s := range subs {
		s.Close()
	}
	waitFor(t, 10*time.Second, "no consumer left", func() bool { return consumers() == 0 })
	kv, err := n.JetStream().KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cursors := 0
	for range keys.Keys() {
		cursors++
	}
	if cursors != groups*mevents.Partitions {
		t.Fatalf("%d cursors, want %d", cursors, groups*mevents.Partitions)
	}
}

// TestCursorRecord: a cursor reads as RELIABILITY.md documents it, with `nats
// kv get`: settled up to "to" but the open events, its owner and epoch.
func TestCursorRecord(t *testing.T) {
	n, reg := consumeNode(t)
	ctx := context.Background()
	a, b := twoKeys()
	publish(t, n, "prod", false, event(t, consumeType, "/s", "a1", a), event(t, consumeType, "/s", "b1", b))
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	next(t, s, 5*time.Second) // a1, left out
	d2, _ := next(t, s, 5*time.Second)
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d2.AckID}})
	kv, err := n.JetStream().KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("c2.rec.%s.%d", broker.StreamName(consumeType), mevents.Partition(a))
	var rec struct {
		Floor uint64     `json:"floor"`
		To    uint64     `json:"to"`
		Open  [][4]int64 `json:"open"`
		Owner string     `json:"owner"`
		Node  string     `json:"node"`
		Epoch uint64     `json:"epoch"`
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("cursor %s: %v", key, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Floor != 0 || rec.To != 2 || len(rec.Open) != 1 || rec.Open[0] != [4]int64{1, 1, 1, 0} || rec.Owner != s.MemberIDForTest() || rec.Node != "n1" || rec.Epoch != 1 {
		t.Fatalf("cursor %s", e.Value())
	}
	s.Close()
	e, err = kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Owner != "" || len(rec.Open) != 1 {
		t.Fatalf("cursor after Close %s", e.Value())
	}
	// The admin view reads the same.
	cs, err := n.Cursors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Group == "rec" && c.Partition == mevents.Partition(a) && (c.AckPending != 1 || c.Floor != 0 || c.To != 2 || c.OldestUnacked <= 0) {
			t.Fatalf("cursor state %+v", c)
		}
	}
	// Read again with the store unchanged (the snapshot of the last read),
	// then after a write: the write shows.
	again, err := n.Cursors(ctx)
	if err != nil || len(again) != len(cs) {
		t.Fatalf("cursors read again: %d, %v; want %d", len(again), err, len(cs))
	}
	if _, err := kv.Put(ctx, key, []byte(`{"floor":2,"to":2,"open":[],"owner":"","epoch":1}`)); err != nil {
		t.Fatal(err)
	}
	cs, err = n.Cursors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		if c.Group == "rec" && c.Partition == mevents.Partition(a) {
			found = true
			if c.AckPending != 0 || c.Floor != 2 || c.To != 2 {
				t.Fatalf("cursor state after a write %+v", c)
			}
		}
	}
	if !found {
		t.Fatal("the cursor is gone after a write")
	}
	// Read from where the last read ended: a deleted cursor goes, a new
	// one comes.
	other := fmt.Sprintf("c2.other.%s.%d", broker.StreamName(consumeType), 3)
	if _, err := kv.Put(ctx, other, []byte(`{"floor":1,"to":1,"open":[],"owner":"","epoch":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if cs, err = n.Cursors(ctx); err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, c := range cs {
		if c.Group == "rec" && c.Partition == mevents.Partition(a) {
			t.Fatalf("a deleted cursor is still read: %+v", c)
		}
		groups = append(groups, c.Group)
	}
	if !slices.Contains(groups, "other") {
		t.Fatalf("a new cursor is not read: groups %v", groups)
	}
}

// TestLagFollowsTheStream: the lag of groups behind follows new events of
// their partition and their cursors' moves, scrape after scrape (the lag
// computation keeps what it asked the stream while a partition stands
// still), for groups at the same position and at different ones.
func TestLagFollowsTheStream(t *testing.T) {
	n, _ := consumeNode(t)
	ctx := context.Background()
	if _, err := n.Lag(ctx); err != nil { // makes the store
		t.Fatal(err)
	}
	kv, err := n.JetStream().KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := twoKeys()
	put := func(group string, to uint64) {
		t.Helper()
		key := fmt.Sprintf("c2.%s.%s.%d", group, broker.StreamName(consumeType), mevents.Partition(a))
		if _, err := kv.Put(ctx, key, fmt.Appendf(nil, `{"floor":%d,"to":%d,"open":[],"owner":"","epoch":1}`, to, to)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want map[string]uint64) {
		t.Helper()
		for range 2 { // the second with nothing changed
			lags, err := n.Lag(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, l := range lags {
				got[l.Group] = l.Pending
			}
			if !maps.Equal(got, want) {
				t.Fatalf("pending by group %v, want %v", got, want)
			}
		}
	}
	put("one", 0)
	put("two", 0)
	publish(t, n, "prod", false, event(t, consumeType, "/s", "a1", a), event(t, consumeType, "/s", "a2", a))
	check(map[string]uint64{"one": 2, "two": 2})
	publish(t, n, "prod", false, event(t, consumeType, "/s", "a3", a))
	check(map[string]uint64{"one": 3, "two": 3})
	put("two", 2)
	check(map[string]uint64{"one": 3, "two": 1})
	put("one", 3)
	check(map[string]uint64{"one": 0, "two": 1})
}

// TestGroupResumesAfterWholeClusterStop: every node of the cluster stops
// at once while an instance of a group holds events unacknowledged; after
// the restart the group receives every event it had not acknowledged, and
// none it had.
func TestGroupResumesAfterWholeClusterStop(t *testing.T) {
	nodes, cfgs, reg := groupClusterConfigs(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var evs []mevents.Event
	for i := range 60 {
		evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("e%d", i), fmt.Sprintf("key-%d", i%7)))
	}
	if err := nodes[1].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
		t.Fatal(err)
	}
	s, err := nodes[0].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "stop", MaxInFlight: 80})
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for range 60 {
		d, ev := next(t, s, 20*time.Second)
		if len(acked) < 30 {
			acked[ev.ID] = true
			settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
		}
	}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				s.Close()
			}
			n.Close()
		}()
	}
	wg.Wait()
	nodes = brokertest.OpenAll(t, cfgs)
	for _, n := range nodes {
		if err := n.ApplyRegistry(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := nodes[2].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "stop", MaxInFlight: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for range 30 {
		d, ev := next(t, s2, 30*time.Second)
		if acked[ev.ID] {
			t.Fatalf("%s delivered again (count %d) after its acknowledgement succeeded", ev.ID, d.Count)
		}
		settle(t, s2, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	}
}

// TestTakeoverWaitsOutTheLease: an instance that takes a partition from an
// owner that did not give it up (here a member nobody knows, as one taken
// for gone) delivers nothing until that owner's lease has run out, counted
// from its last write: the old owner may still be handing events out, and
// one of them acknowledged through the new owner would go out again.
func TestTakeoverWaitsOutTheLease(t *testing.T) {
	n, reg := consumeNode(t)
	ctx := context.Background()
	a, _ := twoKeys()
	publish(t, n, "prod", false, event(t, consumeType, "/s", "a1", a))
	warm, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: "warm"}) // makes the bucket
	if err != nil {
		t.Fatal(err)
	}
	next(t, warm, 10*time.Second)
	warm.Close()
	kv, err := n.JetStream().KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("c2.lease.%s.%d", broker.StreamName(consumeType), mevents.Partition(a))
	written := time.Now()
	if _, err := kv.Put(ctx, key, []byte(`{"floor":0,"to":0,"open":[],"owner":"gone-but-writing","node":"n9","epoch":4}`)); err != nil {
		t.Fatal(err)
	}
	s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c2"), Group: "lease"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, ev := next(t, s, 10*time.Second)
	if after := time.Since(written); ev.ID != "a1" || after < broker.OwnLeaseForTest {
		t.Fatalf("delivered %s %v after the previous owner's write; want a1, not before its lease (%v) ran out", ev.ID, after, broker.OwnLeaseForTest)
	}
	settle(t, s, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Owner string `json:"owner"`
		Epoch uint64 `json:"epoch"`
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Owner != s.MemberIDForTest() || rec.Epoch != 5 {
		t.Fatalf("cursor after the takeover %s", e.Value())
	}
}
