package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
)

// orderCheck records first deliveries across instances: per key, events
// must first arrive in the order they were published.
type orderCheck struct {
	t    *testing.T
	mu   sync.Mutex
	next map[string]int            // key → next expected sequence
	seen map[string]bool           // event ids delivered at least once
	part map[int]map[int]bool      // instance → partitions it received
	ids  map[int]map[string]string // instance → unsettled ack id by event id
}

func newOrderCheck(t *testing.T) *orderCheck {
	return &orderCheck{t: t, next: map[string]int{}, seen: map[string]bool{}, part: map[int]map[int]bool{}, ids: map[int]map[string]string{}}
}

// deliver records a delivery; it returns an error for an order violation.
func (o *orderCheck) deliver(inst int, d broker.Delivery) error {
	var ev struct {
		ID  string `json:"id"`
		Key string `json:"partitionkey"`
	}
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		return err
	}
	var k, i int
	if _, err := fmt.Sscanf(ev.ID, "k%d-%d", &k, &i); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.part[inst] == nil {
		o.part[inst] = map[int]bool{}
	}
	o.part[inst][broker.Partition(ev.Key)] = true
	if o.seen[ev.ID] {
		return nil
	}
	if want := o.next[ev.Key]; i != want {
		return fmt.Errorf("instance %d: first delivery of %s, want sequence %d of %s", inst, ev.ID, want, ev.Key)
	}
	o.next[ev.Key] = i + 1
	o.seen[ev.ID] = true
	return nil
}

func (o *orderCheck) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

// waitCount waits until want events were delivered, failing on the first
// order violation a consumer reports on errs.
func (o *orderCheck) waitCount(d time.Duration, what string, errs <-chan error, want int) {
	o.t.Helper()
	waitFor(o.t, d, what, func() bool {
		select {
		case err := <-errs:
			o.t.Fatal(err)
		default:
		}
		return o.count() == want
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising on time
	}
}

// openClusterConfigs is openCluster with an ack timeout; it also returns
// the nodes' configurations, so that a test can start a node again.
func openClusterConfigs(t *testing.T, size int, ackTimeout time.Duration) ([]*broker.Node, []broker.NodeConfig) {
	t.Helper()
	return openClusterTuned(t, size, func(c *broker.NodeConfig) { c.AckTimeout = ackTimeout })
}

// openClusterTuned is openClusterConfigs with settings of the test's own.
func openClusterTuned(t *testing.T, size int, tune func(*broker.NodeConfig)) ([]*broker.Node, []broker.NodeConfig) {
	t.Helper()
	routes := make([]string, size)
	listen := make([]string, size)
	for i := range routes {
		port := freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", port)
		listen[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	nodes := make([]*broker.Node, size)
	cfgs := make([]broker.NodeConfig, size)
	for i := range nodes {
		cfgs[i] = broker.NodeConfig{Name: fmt.Sprintf("grp%d", i+1), ClusterName: "group-test", StoreDir: t.TempDir(),
			ClusterListen: listen[i], Routes: routes, SyncInterval: time.Minute}
		tune(&cfgs[i])
		nodes[i] = broker.NewNode(cfgs[i])
		t.Cleanup(func() { nodes[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	errs := make(chan error, size)
	for _, n := range nodes {
		go func() { errs <- n.Open(ctx) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("open cluster: %v", err)
		}
	}
	for _, n := range nodes {
		for n.Ready() != nil {
			if ctx.Err() != nil {
				t.Fatalf("node not ready: %v", n.Ready())
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	return nodes, cfgs
}

// groupCluster opens a 3-node cluster with ackTimeout and applies the
// registry of the group tests: type consumeType, producer "prod" and
// consumer "c".
func groupCluster(t *testing.T, ackTimeout time.Duration) ([]*broker.Node, *broker.Registry) {
	t.Helper()
	nodes, _, reg := groupClusterConfigs(t, ackTimeout)
	return nodes, reg
}

// groupClusterConfigs is groupCluster that also returns the nodes'
// configurations, so that a test can start a node again.
func groupClusterConfigs(t *testing.T, ackTimeout time.Duration) ([]*broker.Node, []broker.NodeConfig, *broker.Registry) {
	t.Helper()
	nodes, cfgs := openClusterConfigs(t, 3, ackTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := broker.NewRegistry([]broker.EventType{{Name: consumeType, Schema: []byte(`true`)}}, []broker.Client{
		{ID: "prod", Produce: []string{consumeType}},
		{ID: "c", Consume: []string{consumeType}},
	})
	for _, n := range nodes {
		if err := n.ApplyRegistry(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	return nodes, cfgs, reg
}

func TestGroupSpreadsOverCluster(t *testing.T) {
	// The ack timeout is longer than the test waits for a takeover: events
	// of a vanished instance must be released by the one taking over.
	nodes, reg := groupCluster(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := reg.Client("c")

	// One instance of the group on each node.
	subs := make([]*broker.Subscription, 3)
	for i, n := range nodes {
		s, err := n.Subscribe(ctx, broker.SubscribeOptions{Client: cl, Group: "spread"})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
		defer s.Close()
	}
	share := func(live []int, each int) func() bool {
		return func() bool {
			all := map[int]bool{}
			for _, i := range live {
				ps := subs[i].Partitions()[consumeType]
				if len(ps) != each {
					return false
				}
				for _, p := range ps {
					all[p] = true
				}
			}
			return len(all) == broker.Partitions
		}
	}
	waitFor(t, 10*time.Second, "3 instances with 4 partitions each", share([]int{0, 1, 2}, 4))

	const keys, perKey = 60, 20
	publishRound := func(from int) {
		var evs []broker.Event
		for i := from; i < from+perKey/2; i++ {
			for k := 0; k < keys; k++ {
				evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("k%d-%d", k, i), fmt.Sprintf("key-%d", k)))
			}
		}
		if err := nodes[0].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	publishRound(0)

	check := newOrderCheck(t)
	errs := make(chan error, 3)
	// dropAfter: instance 2 stops acknowledging after that many events and
	// leaves the group with them unsettled.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	consume := func(i int, dropAfter int) {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			nctx, ncancel := context.WithTimeout(ctx, 200*time.Millisecond)
			d, err := subs[i].Next(nctx)
			ncancel()
			if err != nil {
				if err == broker.ErrSubscriptionClosed {
					return
				}
				continue
			}
			if err := check.deliver(i, d); err != nil {
				errs <- err
				return
			}
			if dropAfter > 0 && n >= dropAfter {
				subs[i].Close()
				return
			}
			subs[i].Settle(ctx, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
		}
	}
	wg.Add(3)
	go consume(0, 0)
	go consume(1, 0)
	go consume(2, 0)
	check.waitCount(30*time.Second, "the first round delivered", errs, keys*perKey/2)
	for i := 0; i < 3; i++ {
		if got := len(check.part[i]); got != 4 {
			t.Fatalf("instance %d received %d partitions, want 4", i, got)
		}
	}
	close(stop)
	wg.Wait()

	// Failover: instance 2 drops mid-stream without acknowledging; the
	// others take its partitions over and nothing is lost or reordered.
	stop = make(chan struct{})
	publishRound(perKey / 2)
	wg.Add(3)
	go consume(0, 0)
	go consume(1, 0)
	go consume(2, 5)
	waitFor(t, 5*time.Second+joinWait, "2 instances with 6 partitions each", share([]int{0, 1}, 6))
	check.waitCount(30*time.Second, "every event delivered", errs, keys*perKey)
	close(stop)
	wg.Wait()
	if !slices.Equal(subs[0].Partitions()[consumeType], []int{0, 2, 4, 6, 8, 10}) && !slices.Equal(subs[0].Partitions()[consumeType], []int{1, 3, 5, 7, 9, 11}) {
		t.Fatalf("instance 0 pulls %v", subs[0].Partitions())
	}

	// A new instance on node 3 joins; then node 3 shuts down with events
	// of the instance unacknowledged: they come again after the ack
	// timeout, its partitions resume on the others.
	s2, err := nodes[2].Subscribe(ctx, broker.SubscribeOptions{Client: cl, Group: "spread"})
	if err != nil {
		t.Fatal(err)
	}
	subs[2] = s2
	defer s2.Close()
	waitFor(t, 10*time.Second, "3 instances again", share([]int{0, 1, 2}, 4))
	stop = make(chan struct{})
	publishRound(perKey)
	wg.Add(3)
	go consume(0, 0)
	go consume(1, 0)
	go func() {
		defer wg.Done()
		// Without acknowledging, each of its 4 partitions delivers one.
		for n := 0; n < 3; n++ {
			d, err := subs[2].Next(ctx)
			if err != nil {
				return
			}
			if err := check.deliver(2, d); err != nil {
				errs <- err
				return
			}
		}
		nodes[2].Close()
	}()
	waitFor(t, 5*time.Second+memberTTL+time.Second, "2 instances after the node died", share([]int{0, 1}, 6))
	defer func() {
		if t.Failed() {
			for i, s := range subs[:2] {
				t.Logf("sub %d: %s", i, s.DebugState())
			}
			for p := 0; p < broker.Partitions; p++ {
				c, err := nodes[0].JetStream().Consumer(ctx, broker.StreamName(consumeType), fmt.Sprintf("g%d_%s_spread_%d", len(cl.ID), cl.ID, p))
				if err == nil {
					i := c.CachedInfo()
					t.Logf("p%d pending %d ackpending %d redelivered %d floor %d delivered %d waiting %d pins %+v", p, i.NumPending, i.NumAckPending, i.NumRedelivered, i.AckFloor.Stream, i.Delivered.Stream, i.NumWaiting, i.PriorityGroups)
				}
			}
		}
	}()
	check.waitCount(30*time.Second, "every event delivered after the node died", errs, keys*(perKey+perKey/2))
	close(stop)
	wg.Wait()
}

// memberTTL is how long the group takes to notice an instance that vanished.
const memberTTL = 3 * time.Second

// joinWait covers the time a departure takes to reach every member.
const joinWait = time.Second

// TestGroupSurvivesConsumerLeaderChange: when the leaders of a group's
// partition consumers change under load (what a node restart does to the
// leaders it held), each puller starts again without its pin, and
// deliveries made across the change that never reached it are released
// at once, not left to the ack timeout (a minute here, longer than the
// test waits); order per key holds throughout. With one instance, and with
// one on each node.
func TestGroupSurvivesConsumerLeaderChange(t *testing.T) {
	for _, instances := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d instances", instances), func(t *testing.T) {
			survivesLeaderChange(t, instances)
		})
	}
}

func survivesLeaderChange(t *testing.T, instances int) {
	nodes, reg := groupCluster(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	subs := make([]*broker.Subscription, instances)
	for i := range subs {
		s, err := nodes[i].Subscribe(ctx, broker.SubscribeOptions{Client: reg.Client("c"), Group: "leaders"})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
		defer s.Close()
	}
	waitFor(t, 10*time.Second, "the instances share every partition", func() bool {
		n := 0
		for _, s := range subs {
			ps := len(s.Partitions()[consumeType])
			if ps != broker.Partitions/instances {
				return false
			}
			n += ps
		}
		return n == broker.Partitions
	})

	check := newOrderCheck(t)
	errs := make(chan error, instances)
	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				d, err := s.Next(cctx)
				if err != nil {
					continue
				}
				if err := check.deliver(i, d); err != nil {
					errs <- err
					return
				}
				s.Settle(cctx, broker.Settlement{Op: broker.SettleAck, AckIDs: []string{d.AckID}})
			}
		}()
	}
	defer func() {
		if t.Failed() {
			for i, s := range subs {
				t.Logf("instance %d: %s", i, s.DebugState())
			}
		}
	}()

	// Publishing goes on while every partition consumer's leader steps
	// down, a third of the way through.
	const keys, rounds = 40, 150
	stream := broker.StreamName(consumeType)
	js := nodes[1].JetStream()
	for i := 0; i < rounds; i++ {
		evs := make([]broker.Event, 0, keys)
		for k := 0; k < keys; k++ {
			evs = append(evs, event(t, consumeType, "/s", fmt.Sprintf("k%d-%d", k, i), fmt.Sprintf("key-%d", k)))
		}
		if err := nodes[i%3].Publish(ctx, broker.Publication{Producer: "prod", Events: evs}); err != nil {
			t.Fatal(err)
		}
		if i == rounds/3 {
			// The leaders of the cursor store and of the event stream
			// step down.
			for _, name := range []string{"KV_" + broker.CursorBucket, stream} {
				if _, err := js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, nil, 5*time.Second); err != nil {
					t.Fatalf("step down %s: %v", name, err)
				}
			}
		}
		time.Sleep(5 * time.Millisecond) // a steady load, not a burst
	}
	check.waitCount(20*time.Second, "every event delivered", errs, keys*rounds)
	stop()
}
