package broker_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/nats-io/nats.go"
)

// TestGroupMembershipScales: a thousand idle instances of one group on one
// node and a few on another cost messages per node, not per instance; the
// partitions still go to the first 12 members by id, and departures are
// noticed at once.
func TestGroupMembershipScales(t *testing.T) {
	nodes, reg := groupCluster(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := reg.Client("c")

	const many, few = 1000, 3
	var mu sync.Mutex
	subs := map[string]*broker.Subscription{} // by member id
	node := map[string]int{}                  // member id → node index
	subscribe := func(i int) {
		s, err := nodes[i].Subscribe(ctx, broker.SubscribeOptions{Client: cl, Group: "crowd"})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		subs[s.MemberIDForTest()] = s
		node[s.MemberIDForTest()] = i
	}
	closeAll := func(ids []string) {
		var wg sync.WaitGroup
		for _, id := range ids {
			mu.Lock()
			s := subs[id]
			delete(subs, id)
			mu.Unlock()
			wg.Go(s.Close)
		}
		wg.Wait()
	}
	t.Cleanup(func() {
		mu.Lock()
		rest := slices.Collect(maps.Keys(subs))
		mu.Unlock()
		closeAll(rest)
	})
	// The first instance creates the group's consumers; the rest join at
	// once, 16 at a time.
	subscribe(0)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for k := 1; k < many+few; k++ {
		i := 0
		if k >= many {
			i = 1
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			subscribe(i)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// spread says whether the first 12 live members by id each pull
	// exactly partition i and nobody else pulls anything.
	spread := func() bool {
		mu.Lock()
		defer mu.Unlock()
		ids := slices.Sorted(maps.Keys(subs))
		for i, id := range ids {
			got := subs[id].Partitions()[consumeType]
			if i < mevents.Partitions && !slices.Equal(got, []int{i}) || i >= mevents.Partitions && len(got) != 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, 30*time.Second, "the first 12 members by id pulling one partition each", spread)

	// An idle group costs a heartbeat per node and second, not per instance.
	msgs := countMembership(t, nodes[2])
	start := time.Now()
	waitFor(t, 10*time.Second, "3 seconds of heartbeats", func() bool { return time.Since(start) >= 3*time.Second })
	counted, seconds := msgs.Load(), time.Since(start).Seconds()
	// Two nodes have instances: about 2 messages per second.
	if max := int64(2 * 2 * (seconds + 1)); counted > max || counted == 0 {
		t.Fatalf("%d membership messages in %.1fs from 2 nodes with %d instances, want 1 to %d", counted, seconds, many+few, max)
	}
	t.Logf("%d membership messages in %.1fs, %d instances on 2 nodes", counted, seconds, many+few)
	for i, n := range nodes {
		if got, want := n.HubsForTest(), []int{1, 1, 0}[i]; got != want {
			t.Fatalf("node %d has %d hubs, want %d", i, got, want)
		}
	}

	// Departures are announced: the owner of partition 0 leaves, and all
	// of node 2's instances; the others move up at once.
	mu.Lock()
	ids := slices.Sorted(maps.Keys(subs))
	leaving := []string{ids[0]}
	for id, i := range node {
		if i == 1 && id != ids[0] {
			leaving = append(leaving, id)
		}
	}
	mu.Unlock()
	closeAll(leaving)
	// Announced, not found missing after memberTTL.
	waitFor(t, memberTTL, "the partitions moved up after the departures", spread)
	if got := nodes[1].HubsForTest(); got != 0 {
		t.Fatalf("node 2 keeps %d hubs after its instances left", got)
	}

	// When the last instance leaves, the hub is gone.
	mu.Lock()
	rest := slices.Collect(maps.Keys(subs))
	mu.Unlock()
	closeAll(rest)
	if got := nodes[0].HubsForTest(); got != 0 {
		t.Fatalf("node 1 keeps %d hubs after its instances left", got)
	}
}

// TestIdleGroupsShareHeartbeats: many groups with an instance on each of
// two nodes cost a heartbeat message per node and second, not per group,
// and those heartbeats keep every instance a member: nobody's partitions
// move while they are idle.
func TestIdleGroupsShareHeartbeats(t *testing.T) {
	nodes, reg := groupCluster(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := reg.Client("c")
	const groups = 150
	var subs []*broker.Subscription
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Go(s.Close)
		}
		wg.Wait()
	})
	for g := range groups {
		for _, n := range nodes[:2] {
			s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: cl, Group: fmt.Sprintf("idle%d", g)})
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
	}
	halves := func() bool {
		for _, s := range subs {
			if len(s.Partitions()[consumeType]) != mevents.Partitions/2 {
				return false
			}
		}
		return true
	}
	waitFor(t, 60*time.Second, "every instance owning half of its group's partitions", halves)

	msgs := countMembership(t, nodes[2])
	// Longer than memberTTL: without the beats each instance would find
	// the other vanished and take all 12 partitions.
	start := time.Now()
	for time.Since(start) < 2*memberTTL {
		if !halves() {
			t.Fatalf("after %s idle, an instance's partitions moved", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	counted, seconds := msgs.Load(), time.Since(start).Seconds()
	if max := int64(2 * (seconds + 1)); counted > max || counted == 0 {
		t.Fatalf("%d membership messages in %.1fs from 2 nodes with %d idle groups, want 1 to %d", counted, seconds, groups, max)
	}
	t.Logf("%d membership messages in %.1fs, %d idle groups on 2 nodes", counted, seconds, groups)
}

// countMembership counts the membership messages (announcements and
// beats) that reach node n from now until the test ends.
func countMembership(t *testing.T, n *broker.Node) *atomic.Int64 {
	t.Helper()
	nc := n.JetStream().Conn()
	var msgs atomic.Int64
	counter, err := nc.Subscribe("_mevents.>", func(*nats.Msg) { msgs.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = counter.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &msgs
}
