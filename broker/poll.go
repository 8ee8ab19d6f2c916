package broker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mevents/mevents"
)

// Long polling. A long poll is not an instance of its own: each node keeps
// one instance (a Subscription) per client, group and set of types that
// its polls share, from the first poll until pollLinger after the last
// one ended. It is a member of the group like a WebSocket's instance, so
// it owns a share of the partitions, and the deliveries it hands out can
// be settled from any node until their ack timeout, as they can only be
// settled through the instance that made them (consume_settle.go).

// pollMaxInFlight is the credit of a node's poll instance.
const pollMaxInFlight = 1000

// pollGather is how long a poll that has events waits for more.
const pollGather = 50 * time.Millisecond

// polls are a node's poll instances.
type polls struct {
	mu     sync.Mutex
	closed bool
	byKey  map[string]*pollInstance
	wg     sync.WaitGroup
}

type pollInstance struct {
	sub    *Subscription
	key    string
	active int       // polls under way; polls.mu
	last   time.Time // when the last one ended; polls.mu
}

// pollLinger is how long a poll instance outlives its last poll: the
// deliveries it made can be settled until then.
func (n *Node) pollLinger() time.Duration { return n.ackTimeout() + 5*time.Second }

// Poll hands out up to max deliveries of a client's group: it waits up to
// wait for the first, and pollGather for each next. It returns none when
// nothing came. Errors are those of Subscribe.
func (n *Node) Poll(ctx context.Context, o SubscribeOptions, max int, wait time.Duration) ([]Delivery, error) {
	pi, err := n.polls.acquire(ctx, n, o)
	if err != nil {
		return nil, err
	}
	defer n.polls.release(pi)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out []Delivery
	for len(out) < max {
		c, cancel := wctx, context.CancelFunc(func() {})
		if len(out) > 0 {
			c, cancel = context.WithTimeout(wctx, pollGather)
		}
		d, err := pi.sub.Next(c)
		cancel()
		if err != nil {
			break
		}
		out = append(out, d)
	}
	return out, nil
}

func pollKey(o SubscribeOptions) string {
	types := o.Types
	if len(types) == 0 {
		types = o.Client.Consume
	}
	types = slices.Sorted(slices.Values(types))
	group := o.Group
	if group == "" {
		group = DefaultGroup
	}
	return o.Client.ID + " " + group + " " + strings.Join(types, ",")
}

// acquire returns the node's poll instance for o, starting it if needed.
func (ps *polls) acquire(ctx context.Context, n *Node, o SubscribeOptions) (*pollInstance, error) {
	key := pollKey(o)
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil, mevents.Errorf(mevents.CodeUnavailable, "the node is shutting down")
	}
	if pi := ps.byKey[key]; pi != nil {
		pi.active++
		ps.mu.Unlock()
		return pi, nil
	}
	ps.mu.Unlock()
	o.MaxInFlight = pollMaxInFlight
	sub, err := n.Subscribe(ctx, o)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	if pi := ps.byKey[key]; pi != nil || ps.closed {
		// Another poll started one meanwhile.
		if pi != nil {
			pi.active++
		}
		ps.mu.Unlock()
		sub.Close()
		if pi == nil {
			return nil, mevents.Errorf(mevents.CodeUnavailable, "the node is shutting down")
		}
		return pi, nil
	}
	defer ps.mu.Unlock()
	pi := &pollInstance{sub: sub, key: key, active: 1}
	if ps.byKey == nil {
		ps.byKey = map[string]*pollInstance{}
	}
	ps.byKey[key] = pi
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		ps.linger(n, pi)
	}()
	return pi, nil
}

func (ps *polls) release(pi *pollInstance) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pi.active--
	pi.last = time.Now()
}

// linger closes pi once it had no poll for the node's pollLinger.
func (ps *polls) linger(n *Node, pi *pollInstance) {
	linger := n.pollLinger()
	t := time.NewTimer(linger)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.bgCtx.Done():
		}
		ps.mu.Lock()
		idle := time.Since(pi.last)
		if ps.closed || (pi.active == 0 && idle >= linger) {
			if ps.byKey[pi.key] == pi {
				delete(ps.byKey, pi.key)
			}
			ps.mu.Unlock()
			pi.sub.Close()
			return
		}
		ps.mu.Unlock()
		t.Reset(max(linger-idle, time.Second))
	}
}

// close ends every poll instance and waits for them.
func (ps *polls) close() {
	ps.mu.Lock()
	ps.closed = true
	ps.mu.Unlock()
	ps.wg.Wait() // each instance's linger sees the node closing
}
