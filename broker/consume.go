package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consuming. A Subscription is one consumer instance (a WebSocket
// connection, one long poll) reading one client's group. For each (type,
// partition) it pulls, a goroutine fetches events from the partition's
// durable consumer (group.go) into a partState (consume_keys.go), which
// decides what may be handed out: an event is ready when every earlier
// event of its partition key is settled. Next hands out ready events while
// the client holds fewer than its credit (maxInFlight) unsettled.

// DefaultMaxInFlight is the credit of a subscription that asks for none.
const DefaultMaxInFlight = 100

const (
	// pullWait is how long one pull of a group member waits for events.
	// It bounds how long Close and a rebalance wait for a puller.
	pullWait = 2 * time.Second
	// pollPullWait is the same for a long poll, which leaves no pull
	// behind for long when it ends.
	pollPullWait = 100 * time.Millisecond
	// heldBytes bounds the events a subscription holds that the client
	// does not have yet (beyond it, pulls ask for one event).
	heldBytes = 8 << 20
	// tendEvery is how often a puller looks after what it holds.
	// A puller that waits for the events of earlier pullers reads the
	// consumer's state every safeRecheck, and again after tendEvery when
	// that found none (consume_keys.go).
	tendEvery   = 50 * time.Millisecond
	safeRecheck = 200 * time.Millisecond
	// staleCheck is how often a puller asks whether events it handed out
	// long ago were settled elsewhere.
	staleCheck = 5 * time.Second
	// skipsWait bounds how long Subscribe waits for the bucket of hidden
	// deliveries.
	skipsWait = 2 * time.Second
)

// ErrSubscriptionClosed is returned by Next after Close or Stop.
var ErrSubscriptionClosed = errors.New("subscription closed")

// SubscribeOptions says what to consume.
type SubscribeOptions struct {
	Client *Client
	// Group is the consumer group; "" means DefaultGroup.
	Group string
	// Types are the event types to receive; empty means all routed to Client.
	Types []string
	// Start applies when the group is first used (per type and partition).
	Start Start
	// MaxInFlight is the credit: at most this many delivered events are
	// unsettled at once; 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Spread makes the subscription a member of the group that takes only
	// its share of the partitions (group_members.go); otherwise it pulls
	// every partition (a long poll). The order holds either way.
	Spread bool
}

// Delivery is one delivery of one event.
type Delivery struct {
	// AckID is the opaque handle that settles this delivery (consume_settle.go).
	AckID string
	// Count is the delivery count, 1 on the first delivery.
	Count int
	// Type is the event's type.
	Type string
	// Event is the stored event (structured JSON) with the ackid and
	// deliverycount attributes added.
	Event []byte
}

// Subscription hands out the events of one client's group. It is safe for
// concurrent use. Close or Stop must be called to release it.
type Subscription struct {
	n           *Node
	client      *Client
	group       string
	maxDeliver  int
	maxInFlight int
	pullWait    time.Duration
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	types       []string
	consumers   map[partKey]jetstream.Consumer
	members     *membership // nil unless spread
	origin      string      // random: names s in its settlement announcements

	pullMu  sync.Mutex
	pullers map[partKey]*puller
	// announced receives settlements made elsewhere while a spread
	// subscription pulls partitions (standbys need none of them).
	announced *nats.Subscription
	lastDone  map[partKey]chan struct{} // closed when the partition's last puller is done

	mu      sync.Mutex
	parts   map[string]*partState // by partState.id
	pending map[string]*entry     // handed out, not settled: by ack key
	ready   []*entry              // in the order they became ready
	held    int                   // bytes of entries held (not handed out)
	heldN   int                   // their number
	redo    []*entry              // ready entries delivered again in place of handed ones
	wake    chan struct{}         // cap 1: something became ready, or credit came back
	unskip  []string              // hidden-delivery records of settled events, to delete
}

type puller struct {
	stop context.CancelFunc
	done chan struct{}
}

// Subscribe starts consuming. It creates the group's consumers on first use.
// Errors: CodeInvalid (group name), CodeForbidden (a type not routed to the
// client), CodeUnavailable.
func (n *Node) Subscribe(ctx context.Context, o SubscribeOptions) (*Subscription, error) {
	cl := o.Client
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if err := ValidGroup(o.Group); err != nil {
		return nil, err
	}
	types := o.Types
	if len(types) == 0 {
		types = cl.Consume
	}
	if len(types) == 0 {
		return nil, Errorf(CodeForbidden, "no event types are routed to client %s", cl.ID)
	}
	reg := n.Registry()
	for _, t := range types {
		if !cl.MayConsume(t) || reg == nil || reg.Type(t) == nil {
			return nil, Errorf(CodeForbidden, "event type %q is not routed to client %s", t, cl.ID)
		}
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	consumers := make(map[partKey]jetstream.Consumer, len(types)*Partitions)
	for _, t := range types {
		for p := 0; p < Partitions; p++ {
			c, err := n.groupConsumer(ctx, cl.ID, o.Group, t, p, o.Start)
			if err != nil {
				return nil, err
			}
			consumers[partKey{t, p}] = c
		}
	}
	// The bucket of hidden deliveries, made on first use, is made now: a
	// puller that stops needs it at once, and made then, on every node at
	// the same moment and under load (a failover), it took seconds. Once
	// made it is a lookup; while it cannot be made (the store is away),
	// a subscription waits for it a short while only: its pullers manage
	// without it (hidden deliveries then count).
	kctx, kcancel := context.WithTimeout(ctx, skipsWait)
	_, err := n.skipsKV(kctx)
	kcancel()
	if err != nil {
		n.log.Warn("open the bucket of hidden deliveries", "err", err)
	}
	maxDeliver := cl.MaxDeliver
	if maxDeliver <= 0 {
		maxDeliver = DefaultMaxDeliver
	}
	s := &Subscription{
		n: n, client: cl, group: o.Group, maxDeliver: maxDeliver, maxInFlight: o.MaxInFlight,
		pullWait: pollPullWait, origin: newMemberID(),
		types: types, consumers: consumers,
		pullers: make(map[partKey]*puller), lastDone: make(map[partKey]chan struct{}),
		parts: make(map[string]*partState), pending: make(map[string]*entry),
		wake: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if !o.Spread {
		s.pullOnly(nil)
		return s, nil
	}
	s.pullWait = pullWait
	m, err := n.join(cl.ID, o.Group, types)
	if err != nil {
		s.cancel()
		return nil, &Error{Code: CodeUnavailable, Message: "the event store is unavailable", Err: fmt.Errorf("join group: %w", err)}
	}
	s.members = m
	s.wg.Add(1)
	go s.balance()
	return s, nil
}

// partKey names one partition of one type.
type partKey struct {
	typ       string
	partition int
}

// pullOnly pulls the partitions in want (all when nil) and stops pulling
// the others. A puller that stops releases the events it holds and gives up
// its pin; one that starts on a partition waits for the previous puller of
// that partition in this subscription to be done.
func (s *Subscription) pullOnly(want map[partKey]bool) {
	s.pullMu.Lock()
	defer s.pullMu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	for k, pl := range s.pullers {
		if want != nil && !want[k] {
			pl.stop()
			delete(s.pullers, k)
		}
	}
	for k, c := range s.consumers {
		if _, ok := s.pullers[k]; ok || (want != nil && !want[k]) {
			continue
		}
		ctx, stop := context.WithCancel(s.ctx)
		pl := &puller{stop: stop, done: make(chan struct{})}
		prev := s.lastDone[k]
		s.pullers[k] = pl
		s.lastDone[k] = pl.done
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(pl.done)
			if prev != nil {
				select {
				case <-prev:
				case <-ctx.Done():
					return
				}
			}
			s.pull(ctx, k, c)
		}()
	}
	if s.members == nil {
		return
	}
	switch {
	case len(s.pullers) > 0 && s.announced == nil:
		sub, err := s.n.nc.Subscribe(settledSubject(s.client.ID, s.group), s.onSettled)
		if err != nil {
			// Settlements through other connections then let their
			// keys go on only when the ack floor passes them (tend).
			s.n.log.Warn("subscribe to settlements", "group", s.group, "err", err)
			return
		}
		s.announced = sub
	case len(s.pullers) == 0 && s.announced != nil:
		_ = s.announced.Unsubscribe()
		s.announced = nil
	}
}

// Partitions returns the partitions of each type the subscription pulls now.
func (s *Subscription) Partitions() map[string][]int {
	s.pullMu.Lock()
	defer s.pullMu.Unlock()
	out := map[string][]int{}
	for k := range s.pullers {
		out[k.typ] = append(out[k.typ], k.partition)
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}

// Group returns the subscription's group.
func (s *Subscription) Group() string { return s.group }

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns the next delivery. It blocks until one is ready and the
// client holds fewer unsettled deliveries than its credit, ctx ends
// (ctx.Err()) or the subscription is closed (ErrSubscriptionClosed).
func (s *Subscription) Next(ctx context.Context) (Delivery, error) {
	for {
		s.mu.Lock()
		if e := s.nextReady(); e != nil {
			e.state, e.again = handed, false
			s.unhold(e)
			s.pending[e.ackKey()] = e
			m, typ, count := e.msg, e.ps.k.typ, e.count
			more := len(s.ready)+len(s.redo) > 0
			s.mu.Unlock()
			if more {
				s.signal() // for another caller of Next
			}
			id := encodeAckID(m.Reply())
			return Delivery{AckID: id, Count: count, Type: typ, Event: withDeliveryAttrs(m.Data(), id, count)}, nil
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Delivery{}, ctx.Err()
		case <-s.ctx.Done():
			return Delivery{}, ErrSubscriptionClosed
		}
	}
}

// nextReady takes the first ready entry that may go out now: one delivered
// again in place of a handed one (it has its credit), or, while the client
// holds less than its credit, the first; s.mu is held.
func (s *Subscription) nextReady() *entry {
	valid := func(e *entry) bool { return e.state == held && !e.ps.gone && !e.ps.safe && e.head() }
	for len(s.redo) > 0 {
		e := s.redo[0]
		s.redo[0] = nil
		s.redo = s.redo[1:]
		e.queued = false
		if valid(e) && e.again {
			return e
		}
		if valid(e) {
			s.markReady(e) // no longer in place of a handed one
		}
	}
	for len(s.ready) > 0 && len(s.pending) < s.maxInFlight {
		e := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		e.queued = false
		if valid(e) {
			return e
		}
	}
	return nil
}

// hold and unhold count e in and out of the held entries; s.mu is held.
func (s *Subscription) hold(e *entry)   { s.held += e.size; s.heldN++ }
func (s *Subscription) unhold(e *entry) { s.held -= e.size; s.heldN-- }

// markReady queues e for Next if it may go out now; s.mu is held.
func (s *Subscription) markReady(e *entry) {
	if e == nil || e.queued || e.state != held || e.ps.safe || e.ps.gone || !e.head() {
		return
	}
	e.queued = true
	if e.again {
		s.redo = append(s.redo, e)
	} else {
		s.ready = append(s.ready, e)
	}
	s.signal()
}

// Settle settles deliveries (see Node.Settle) and lets the next events of
// their keys go.
func (s *Subscription) Settle(ctx context.Context, st Settlement) SettleResult {
	res, refs := s.n.settle(ctx, s.client, st)
	s.mu.Lock()
	for _, r := range refs {
		s.resolveRef(st.Op, r)
	}
	s.mu.Unlock()
	// Another instance may hold some of these events now (they timed
	// out, or the partition moved).
	s.n.announce(st.Op, res.Succeeded, refs, s.origin)
	return res
}

// onSettled learns of settlements made through another request, maybe on
// another node: "<op> <ack id> <ack id> …".
func (s *Subscription) onSettled(m *nats.Msg) {
	if m.Header.Get(originHeader) == s.origin {
		return // settled through s, which took note then
	}
	f := strings.Fields(string(m.Data))
	if len(f) < 2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range f[1:] {
		s.resolve(SettleOp(f[0]), id)
	}
}

// resolve records that the delivery id was settled with op; s.mu is held.
func (s *Subscription) resolve(op SettleOp, id string) {
	if r, err := parseAckID(id); err == nil {
		s.resolveRef(op, r)
	}
}

// resolveRef is resolve of a parsed ack id; s.mu is held.
func (s *Subscription) resolveRef(op SettleOp, r ackRef) {
	key := ackKeyFor(r.stream, r.consumer, r.seq)
	if _, ok := s.pending[key]; ok {
		delete(s.pending, key)
		s.signal() // credit came back
	}
	ps := s.parts[r.stream+" "+r.consumer]
	if ps == nil {
		return
	}
	e := ps.bySeq[r.seq]
	if e == nil || e.state == burying {
		return
	}
	e.again = false
	switch op {
	case SettleAck, SettleDead:
		if e.state == held {
			s.unhold(e)
		}
		s.settled(e)
	case SettleRelease:
		if e.state == held {
			s.unhold(e)
		}
		e.state = released // first in line until it comes again
	}
}

// Close ends the subscription and releases every unsettled event to be
// delivered again at once. It waits for the pulling goroutines (at most
// pullWait).
func (s *Subscription) Close() { s.end(true) }

// Stop ends the subscription but leaves the events handed out by Next
// pending: they can still be settled by their ack ids (long polling) and are
// delivered again after the ack timeout. Events not handed out are released.
func (s *Subscription) Stop() { s.end(false) }

func (s *Subscription) end(releaseHanded bool) {
	s.cancel()
	s.wg.Wait() // the pullers released what they held and gave up their pins
	s.pullMu.Lock()
	if s.announced != nil {
		_ = s.announced.Unsubscribe()
		s.announced = nil
	}
	s.pullMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.pending {
		if releaseHanded {
			_ = e.msg.Nak()
		}
		delete(s.pending, key)
	}
	_ = s.n.nc.Flush()
}

// pull fetches the events of one partition consumer while ctx lasts.
func (s *Subscription) pull(ctx context.Context, k partKey, c jetstream.Consumer) {
	info := c.CachedInfo()
	ps := newPartState(k, info.Stream, info.Name)
	var h jetstream.Consumer
	for h == nil {
		var err error
		if h, err = s.n.ownHandle(ctx, c); err != nil {
			if ctx.Err() != nil {
				return
			}
			_ = s.pullFailed(ctx, ps, err)
			s.pullMu.Lock()
			c = s.consumers[k]
			s.pullMu.Unlock()
		}
	}
	s.mu.Lock()
	s.parts[ps.id()] = ps
	s.mu.Unlock()
	defer func() { s.stopPart(ps, true) }()
	// Stopped: nothing more goes out from here. The pull under way may
	// still bring events (they are held, and released with the rest when
	// it ends: released at once, they would come straight back to it).
	defer context.AfterFunc(ctx, func() {
		s.mu.Lock()
		ps.gone = true
		s.mu.Unlock()
	})()
	// An idle puller (nothing held, not waiting) looks rarely.
	tick := time.NewTimer(tendEvery)
	defer tick.Stop()
	idle := false // tick set for an idle puller
	var lastTend time.Time
	leaderChanged := false // the last pull ended because the consumer's leader changed
	for ctx.Err() == nil {
		// No byte limit: the server ends such a pull with a status that
		// may overtake its last events, which the client then drops.
		b, err := h.Fetch(s.room(), jetstream.FetchMaxWait(s.pullWait), jetstream.FetchPriorityGroup(priorityGroup))
		if err != nil {
			h = s.rehandle(ctx, k, h, s.pullFailed(ctx, ps, err))
			continue
		}
		got := 0
		for ch := b.Messages(); ch != nil; {
			select {
			case m, ok := <-ch:
				if !ok {
					ch = nil
					continue
				}
				msgs := []jetstream.Msg{m}
			more:
				for {
					select {
					case m, ok := <-ch:
						if !ok {
							break more
						}
						msgs = append(msgs, m)
					default:
						break more
					}
				}
				got += len(msgs)
				s.receive(ctx, ps, msgs)
				if idle {
					tick.Reset(tendEvery)
					idle = false
				}
				s.mendGap(ctx, ps, h)
				if ps.safe {
					s.tend(ctx, ps, h) // the pin is this puller's now: check at once
				}
			case <-tick.C:
				s.tend(ctx, ps, h)
				lastTend = time.Now()
				next := s.tendAgain(ps)
				tick.Reset(next)
				idle = next > tendEvery
			}
		}
		berr := b.Error()
		if errors.Is(berr, jetstream.ErrPinIDMismatch) {
			// Another puller has the pin (this one stopped pulling for too
			// long), or the consumer's new leader does not know it: start
			// again as a new puller. A leader change is not always told
			// (no pull was waiting when it came): no pin at all says it.
			forgotten := leaderChanged || pinForgotten(ctx, h)
			s.stopPart(ps, false)
			ps = s.restartPart(ps, forgotten)
			s.mendGap(ctx, ps, h) // now: no more events may come
		} else if got == 0 && berr != nil && ctx.Err() == nil && !errors.Is(berr, jetstream.ErrNoMessages) &&
			!errors.Is(berr, nats.ErrTimeout) && !errors.Is(berr, context.DeadlineExceeded) &&
			!errors.Is(berr, jetstream.ErrConsumerLeadershipChanged) {
			// (A new leader answers the next pull at once.)
			h = s.rehandle(ctx, k, h, s.pullFailed(ctx, ps, berr))
		}
		if time.Since(lastTend) >= tendEvery {
			s.tend(ctx, ps, h)
			lastTend = time.Now()
		}
		leaderChanged = errors.Is(berr, jetstream.ErrConsumerLeadershipChanged)
	}
}

// pinForgotten says whether consumer h has no pinned puller: its new
// leader forgot the pin (or it was unpinned), and no other puller took it.
func pinForgotten(ctx context.Context, h jetstream.Consumer) bool {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := h.Info(ictx)
	if err != nil {
		return false
	}
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup && g.PinnedClientID != "" {
			return false
		}
	}
	return true
}

// restartPart returns the puller state that follows old, which stopped
// because the consumer no longer knew its pin. It starts in its safe start.
// When the pin was simply forgotten (forgotten: the consumer's leader
// changed) and old had it, deliveries made across the change may never
// have arrived: the new state keeps what old had handed out and is still
// unsettled (its client has it, and it still holds back the later events
// of its keys), and it starts with a gap, so that the partition's
// unsettled events it does not know of are released (mendGap) and come
// back to it; left alone, they would hold its safe start until their ack
// timeout. It numbers deliveries afresh: those released come back with
// numbers past old's last, which is no gap of its own. Otherwise (another
// puller has the pin) it starts afresh altogether.
func (s *Subscription) restartPart(old *partState, forgotten bool) *partState {
	ps := newPartState(old.k, old.stream, old.consumer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if forgotten && old.pinned {
		for _, e := range old.sorted() {
			// One settled since old stopped is no longer pending (it
			// found no puller state to leave): it stays behind.
			if e.state == handed && s.pending[e.ackKey()] == e {
				e.ps = ps
				ps.add(e)
			}
		}
		ps.gap = true
	}
	s.parts[ps.id()] = ps
	return ps
}

// rehandle returns a new handle on partition k's consumer when err says
// the consumer is gone (pullFailed made it again), else h.
func (s *Subscription) rehandle(ctx context.Context, k partKey, h jetstream.Consumer, err error) jetstream.Consumer {
	if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrConsumerDeleted) {
		return h
	}
	s.pullMu.Lock()
	c := s.consumers[k]
	s.pullMu.Unlock()
	if h2, err := s.n.ownHandle(ctx, c); err == nil {
		return h2
	}
	return h
}

// room is how many events a pull asks for. A long poll takes no more than
// it can hand out (what it releases at its end counts as a delivery); a
// member takes what JetStream lets it, or one while it holds heldBytes.
func (s *Subscription) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members != nil {
		if s.held >= heldBytes {
			return 1
		}
		return partitionWindow
	}
	return max(s.maxInFlight-len(s.pending)-s.heldN, 1)
}

func (s *Subscription) pullFailed(ctx context.Context, ps *partState, err error) error {
	s.n.log.Warn("pull", "consumer", ps.consumer, "stream", ps.stream, "err", err)
	pause := time.Second
	if errors.Is(err, nats.ErrNoResponders) {
		// A pull of a consumer that is gone finds nobody to answer; so
		// does one while the consumer elects a new leader, which soon
		// answers (and for which the question below may not be answered
		// either).
		pause = 200 * time.Millisecond
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		if _, ierr := s.n.js.Consumer(ictx, ps.stream, ps.consumer); errors.Is(ierr, jetstream.ErrConsumerNotFound) {
			err = ierr
		}
		cancel()
	}
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
		// Deleted (inactive for longer than the retention, or by an
		// operator): start it again.
		s.n.forgetConsumer(ps.stream, ps.consumer)
		if c, err := s.n.groupConsumer(ctx, s.client.ID, s.group, ps.k.typ, ps.k.partition, Start{}); err == nil {
			s.pullMu.Lock()
			s.consumers[ps.k] = c
			s.pullMu.Unlock()
		}
	}
	select {
	case <-time.After(pause):
	case <-ctx.Done():
	}
	return err
}

// receive takes the events of one pull.
func (s *Subscription) receive(ctx context.Context, ps *partState, msgs []jetstream.Msg) {
	metas := make([]*jetstream.MsgMetadata, len(msgs))
	skips := make([]int, len(msgs))
	var unknown []int // redeliveries of events not held here: their hidden deliveries are in KV
	for i, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			s.n.log.Error("delivery metadata", "err", err)
			_ = m.Term()
			continue
		}
		metas[i] = meta
		if meta.NumDelivered > 1 {
			s.mu.Lock()
			e := ps.bySeq[meta.Sequence.Stream]
			s.mu.Unlock()
			if e == nil {
				unknown = append(unknown, i)
			}
		}
	}
	concurrently(len(unknown), skipsConcurrency, func(k int) {
		i := unknown[k]
		skips[i] = s.n.readSkips(ctx, ps.stream, ps.consumer, metas[i].Sequence.Stream)
	})
	now := time.Now()
	var bury []*entry
	s.mu.Lock()
	ps.pinned = true
	for i, m := range msgs {
		meta := metas[i]
		if meta == nil {
			continue
		}
		if d := meta.Sequence.Consumer; d > ps.lastDelivery {
			if ps.lastDelivery != 0 && d > ps.lastDelivery+1 {
				// A delivery missing: in the safe start as well, where
				// it would keep the count of unsettled events above
				// what this puller holds until its ack timeout.
				ps.safe, ps.calm, ps.gap = true, 0, true
			}
			ps.lastDelivery = d
		}
		e := ps.bySeq[meta.Sequence.Stream]
		switch {
		case e == nil:
			e = &entry{ps: ps, seq: meta.Sequence.Stream, key: keyOf(m), skips: skips[i]}
			ps.add(e)
		case e.state == burying:
			continue // delivered again while it moves to the dead events
		case e.state == handed:
			// Delivered again (its ack timeout passed): the client's
			// delivery is void, and this one goes out in its place, with
			// its unit of credit.
			e.again = s.pending[e.ackKey()] == e
		case e.state == held:
			// Its ack timeout passed while held: a delivery unseen.
			s.unhold(e)
			e.skips++
		}
		e.msg, e.touched, e.size = m, now, len(m.Data())
		e.count = max(int(meta.NumDelivered)-e.skips, 1)
		if e.count > s.maxDeliver {
			if e.again {
				delete(s.pending, e.ackKey())
				e.again = false
				s.signal()
			}
			e.state = burying // blocks its key while it is buried
			bury = append(bury, e)
			continue
		}
		e.state = held
		s.hold(e)
		s.markReady(e)
	}
	s.mu.Unlock()
	for _, e := range bury {
		err := s.n.buryDelivery(s.ctx, e.msg.Reply(), OriginMaxDeliver, "delivered "+strconv.Itoa(s.maxDeliver)+" times without acknowledgement", e.count-1)
		s.mu.Lock()
		if err != nil {
			// Still pending: it comes again after the ack timeout.
			s.n.log.Error("move to dead events", "consumer", ps.consumer, "seq", e.seq, "err", err)
			e.state = released
		} else {
			s.settled(e)
		}
		s.mu.Unlock()
	}
}

// settled drops a settled entry and lets the next of its key go; s.mu is
// held.
func (s *Subscription) settled(e *entry) {
	if e.skips > 0 {
		s.unskip = append(s.unskip, skipsKey(e.ps.stream, e.ps.consumer, e.seq))
	}
	s.markReady(e.ps.remove(e))
}

// hide releases deliveries the client never saw, recording them as hidden
// first so that the next puller counts them out.
func (s *Subscription) hide(ps *partState, msgs []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seqs := make([]uint64, 0, len(msgs))
	known := make([]int, 0, len(msgs))
	var unknown []int // indexes in seqs of redeliveries whose hidden deliveries are in KV
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		s.mu.Lock()
		k := 0
		if e := ps.bySeq[meta.Sequence.Stream]; e != nil {
			k = e.skips
		}
		s.mu.Unlock()
		if k == 0 && meta.NumDelivered > 1 {
			unknown = append(unknown, len(seqs))
		}
		seqs, known = append(seqs, meta.Sequence.Stream), append(known, k)
	}
	concurrently(len(unknown), skipsConcurrency, func(j int) {
		i := unknown[j]
		known[i] = s.n.readSkips(ctx, ps.stream, ps.consumer, seqs[i])
	})
	counts := make(map[uint64]int, len(seqs))
	for i, seq := range seqs {
		counts[seq] = known[i] + 1
	}
	s.n.writeSkips(ctx, ps.stream, ps.consumer, counts)
	for _, m := range msgs {
		_ = m.Nak()
	}
}

// mendGap releases the partition's unsettled events that ps does not
// hold, once, when ps found a delivery missing: the missing one comes back.
func (s *Subscription) mendGap(ctx context.Context, ps *partState, h jetstream.Consumer) {
	s.mu.Lock()
	gap := ps.gap
	ps.gap = false
	s.mu.Unlock()
	if gap {
		s.n.log.Warn("a delivery may not have arrived (a gap, or the consumer's leader changed); releasing the partition's others", "consumer", ps.consumer)
		_ = s.releaseOthers(ctx, h)
	}
}

// tendAgain is when a puller should tend ps again.
func (s *Subscription) tendAgain(ps *partState) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ps.bySeq) == 0 && !(ps.safe && ps.pinned) && len(s.unskip) == 0 {
		return pullWait
	}
	return tendEvery
}

// tend looks after what a puller holds: it ends the safe start once the
// consumer has no unsettled events but these, keeps held events from their
// ack timeout, and forgets handed events that were settled elsewhere
// without a word reaching here.
func (s *Subscription) tend(ctx context.Context, ps *partState, h jetstream.Consumer) {
	ackWait := s.n.ackTimeout()
	now := time.Now()
	var progress []jetstream.Msg
	s.mu.Lock()
	check := ps.safe && ps.pinned && !now.Before(ps.nextCheck)
	stale := false
	for _, e := range ps.bySeq {
		switch {
		case e.state == held && now.Sub(e.touched) > ackWait/3:
			progress = append(progress, e.msg)
			e.touched = now
		case e.state == handed && now.Sub(e.touched) > ackWait+staleCheck:
			stale = true
		}
	}
	if stale && !now.Before(ps.nextStale) {
		check, ps.nextStale = true, now.Add(staleCheck)
	}
	unskip := s.unskip
	s.unskip = nil
	s.mu.Unlock()
	for _, m := range progress {
		_ = m.InProgress()
	}
	s.n.dropSkips(ctx, unskip)
	if !check {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := h.Info(ictx)
	if err != nil {
		return
	}
	s.mu.Lock()
	if ps.gone {
		s.mu.Unlock()
		return
	}
	if ps.safe && ps.pinned {
		s.checkSafe(ps, info)
	}
	for _, e := range ps.bySeq {
		if e.state == handed && e.seq <= info.AckFloor.Stream {
			delete(s.pending, e.ackKey())
			s.signal()
			s.settled(e)
		}
	}
	s.mu.Unlock()
	s.mendGap(ctx, ps, h)
}

// lostAfter is how long a delivery may be on its way before a puller in
// its safe start takes it for lost.
const lostAfter = time.Second

// checkSafe ends the safe start of ps when the consumer's state, info,
// has shown no unsettled events but those ps holds twice with none of
// others in between; s.mu is held.
func (s *Subscription) checkSafe(ps *partState, info *jetstream.ConsumerInfo) {
	now := time.Now()
	own := ps.ownUpTo(info.Delivered.Stream)
	// Deliveries made after the last that came are on their way here
	// (this puller has the pin) or lost. Under a steady flow there often
	// are some: they are no verdict either way, until the same ones have
	// been on their way for lostAfter. A lost one is found when a later
	// one comes (a gap); when none comes, it is found here.
	var coming int
	if info.Delivered.Consumer > ps.lastDelivery {
		coming = int(info.Delivered.Consumer - ps.lastDelivery)
		if ps.coming != info.Delivered.Consumer {
			ps.coming, ps.comingSince = info.Delivered.Consumer, now
		} else if now.Sub(ps.comingSince) >= lostAfter {
			ps.gap, ps.comingSince = true, now
		}
	}
	switch {
	case info.NumAckPending > own+coming:
		ps.calm, ps.nextCheck = 0, now.Add(safeRecheck)
	case info.NumAckPending > own:
		ps.nextCheck = now.Add(tendEvery)
	case ps.calm < 1:
		ps.calm++
		ps.nextCheck = now.Add(tendEvery)
	default:
		ps.safe = false
		for _, e := range ps.sorted() {
			s.markReady(e)
		}
	}
}

// stopPart ends a puller's hold on its partition: the events it holds are
// released (in stream order; the next puller sorts them anyway) and the pin
// is given up (unless another puller has it already) so that the next
// puller starts at once. Handed events stay with the client until settled.
func (s *Subscription) stopPart(ps *partState, unpin bool) {
	s.mu.Lock()
	if ps.stopped {
		s.mu.Unlock()
		return
	}
	ps.stopped, ps.gone = true, true
	if s.parts[ps.id()] == ps {
		delete(s.parts, ps.id())
	}
	var nak []jetstream.Msg
	for _, e := range ps.sorted() {
		if e.state == held {
			nak = append(nak, e.msg)
			s.unhold(e)
		}
	}
	pinned := ps.pinned && unpin
	s.mu.Unlock()
	s.hide(ps, nak)
	if pinned {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.n.nc.Flush()
		if err := s.n.unpin(ctx, ps.stream, ps.consumer); err != nil {
			s.n.log.Debug("unpin", "consumer", ps.consumer, "err", err)
		}
	}
}

// withDeliveryAttrs inserts "ackid" and "deliverycount" as the first members
// of the stored event object.
func withDeliveryAttrs(event []byte, ackID string, count int) []byte {
	out := make([]byte, 0, len(event)+len(ackID)+40)
	out = append(out, `{"ackid":"`...)
	out = append(out, ackID...) // base64url: nothing to escape
	out = append(out, `","deliverycount":`...)
	out = strconv.AppendInt(out, int64(count), 10)
	rest := event[1:]
	i := 0
	for i < len(rest) && (rest[i] == ' ' || rest[i] == '\n' || rest[i] == '\t' || rest[i] == '\r') {
		i++
	}
	if i < len(rest) && rest[i] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
