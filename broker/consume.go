package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consuming. A Subscription is one consumer instance (a WebSocket
// connection, one long poll) reading one client's group: a goroutine per
// (type, partition) it pulls pulls one event at a time from the partition's
// durable consumer (group.go), and only with a unit of the subscription's
// credit, which it keeps until the delivery is settled: an event is never
// pulled that cannot be handed to the client at once, and a client never
// holds more than its credit.

// DefaultMaxInFlight is the credit of a subscription that asks for none.
const DefaultMaxInFlight = 100

// How long one pull request waits for an event. It bounds how long Close
// and a rebalance wait for a puller. A waiting pull holds one unit of
// credit, so when the credit is smaller than the number of partitions
// pulled, pulls are shorter and the credit rotates over them.
const (
	pullWait       = 2 * time.Second
	pullWaitScarce = time.Second
	// noWaitPause is the pause between pulls of a long poll that found nothing.
	noWaitPause = 100 * time.Millisecond
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
	n          *Node
	client     *Client
	group      string
	maxDeliver int
	pullWait   time.Duration
	sem        chan struct{} // credit: one unit per pull or unsettled delivery
	out        chan Delivery
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	types      []string
	consumers  map[partKey]jetstream.Consumer
	members    *membership // nil unless spread

	pullMu  sync.Mutex
	pullers map[partKey]context.CancelFunc

	mu      sync.Mutex
	pending map[string]*inFlight // by ackKey
}

type inFlight struct {
	part    partKey
	reply   string
	handed  bool          // returned by Next
	settled chan struct{} // cap 1: signalled when settled through s
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
	maxDeliver := cl.MaxDeliver
	if maxDeliver <= 0 {
		maxDeliver = DefaultMaxDeliver
	}
	s := &Subscription{
		n: n, client: cl, group: o.Group, maxDeliver: maxDeliver,
		sem:     make(chan struct{}, o.MaxInFlight),
		out:     make(chan Delivery, o.MaxInFlight),
		pending: make(map[string]*inFlight),
		types:   types, consumers: consumers,
		pullers: make(map[partKey]context.CancelFunc),
	}
	s.pullWait = pullWait
	if o.MaxInFlight < len(consumers) {
		s.pullWait = pullWaitScarce
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if !o.Spread {
		s.pullOnly(nil)
		return s, nil
	}
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
// the others. Events delivered from a partition that is given up stay
// pending here until settled or the ack timeout.
func (s *Subscription) pullOnly(want map[partKey]bool) {
	s.pullMu.Lock()
	defer s.pullMu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	for k, stop := range s.pullers {
		if want != nil && !want[k] {
			stop()
			delete(s.pullers, k)
			s.releaseUnhanded(k)
		}
	}
	for k, c := range s.consumers {
		if _, ok := s.pullers[k]; ok || (want != nil && !want[k]) {
			continue
		}
		ctx, stop := context.WithCancel(s.ctx)
		s.pullers[k] = stop
		s.wg.Add(1)
		go s.pull(ctx, k, c)
	}
}

// releaseUnhanded releases the deliveries of partition k that Next has not
// handed out yet, so that the partition's new owner gets them at once.
func (s *Subscription) releaseUnhanded(k partKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, p := range s.pending {
		if p.part == k && !p.handed {
			_ = s.n.nc.Publish(p.reply, []byte("-NAK"))
			delete(s.pending, key) // Next skips it
		}
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

// Next returns the next delivery. It blocks until one is available, ctx
// ends (ctx.Err()) or the subscription is closed (ErrSubscriptionClosed).
func (s *Subscription) Next(ctx context.Context) (Delivery, error) {
	for {
		select {
		case d := <-s.out:
			s.mu.Lock()
			p := s.pending[ackKeyOf(d.AckID)]
			if p != nil {
				p.handed = true
			}
			s.mu.Unlock()
			if p == nil {
				continue // released when its partition moved on
			}
			return d, nil
		case <-ctx.Done():
			return Delivery{}, ctx.Err()
		case <-s.ctx.Done():
			return Delivery{}, ErrSubscriptionClosed
		}
	}
}

// Settle settles deliveries (see Node.Settle) and returns the credit of
// those that succeeded. (Deliveries settled through another request, or
// not at all, return their credit after the ack timeout.)
func (s *Subscription) Settle(ctx context.Context, st Settlement) SettleResult {
	res := s.n.Settle(ctx, s.client, st)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range res.Succeeded {
		s.forget(ackKeyOf(id))
	}
	return res
}

// forget drops a settled delivery and tells its puller; s.mu is held.
func (s *Subscription) forget(key string) {
	if p, ok := s.pending[key]; ok {
		delete(s.pending, key)
		select {
		case p.settled <- struct{}{}:
		default:
		}
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
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, p := range s.pending {
		if releaseHanded || !p.handed {
			_ = s.n.nc.Publish(p.reply, []byte("-NAK"))
		}
		delete(s.pending, key)
	}
	_ = s.n.nc.Flush()
}

// pull delivers the events of one partition consumer while ctx lasts.
//
// The consumer hands out one event at a time (MaxAckPending 1), so the
// puller holds one unit of credit from a pull until its delivery is settled.
// When the ack timeout passes first, the delivery is void and JetStream will
// deliver the event again: the puller keeps the credit for that (a client
// that never acknowledges keeps getting the same events, never more), or
// for the next event if the delivery was settled by another request.
func (s *Subscription) pull(ctx context.Context, k partKey, c jetstream.Consumer) {
	defer s.wg.Done()
	credit := false // holding one unit of s.sem
	defer func() {
		if credit {
			<-s.sem
		}
	}()
	prev := "" // pending key of this puller's last delivery
	ackWait := s.n.ackTimeout()
	for ctx.Err() == nil {
		if !credit {
			select {
			case s.sem <- struct{}{}:
				credit = true
			case <-ctx.Done():
				return
			}
		}
		m, err := s.fetch(ctx, c)
		if m == nil {
			// Nothing to deliver: let another partition use the credit.
			<-s.sem
			credit = false
			if err != nil {
				s.n.log.Warn("pull", "consumer", c.CachedInfo().Name, "stream", c.CachedInfo().Stream, "err", err)
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					// Deleted (inactive for longer than the retention, or
					// by an operator): start it again.
					s.n.forgetConsumer(c.CachedInfo().Stream, c.CachedInfo().Name)
					if c2, err := s.n.groupConsumer(ctx, s.client.ID, s.group, k.typ, k.partition, Start{}); err == nil {
						c = c2
					}
				}
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
			}
			continue
		}
		if ctx.Err() != nil {
			// Stopped while the pull was under way.
			_ = m.Nak()
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			s.n.log.Error("delivery metadata", "err", err)
			_ = m.Term()
			continue
		}
		if int(meta.NumDelivered) > s.maxDeliver {
			if err := s.n.buryDelivery(s.ctx, m.Reply(), OriginMaxDeliver, "delivered "+strconv.Itoa(s.maxDeliver)+" times without acknowledgement"); err != nil {
				s.n.log.Error("move to dead events", "consumer", meta.Consumer, "seq", meta.Sequence.Stream, "err", err)
			}
			continue
		}
		id := encodeAckID(m.Reply())
		d := Delivery{AckID: id, Count: int(meta.NumDelivered), Type: k.typ, Event: withDeliveryAttrs(m.Data(), id, int(meta.NumDelivered))}
		key := ackKeyOf(id)
		p := &inFlight{part: k, reply: m.Reply(), settled: make(chan struct{}, 1)}
		s.mu.Lock()
		if prev != key {
			// The previous delivery was settled elsewhere or is void.
			delete(s.pending, prev)
		}
		s.pending[key] = p
		s.mu.Unlock()
		prev = key
		s.out <- d // never blocks: len(out) ≤ credit ≤ cap(out)

		timer := time.NewTimer(ackWait)
		select {
		case <-p.settled:
			<-s.sem
			credit = false
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}

// fetch pulls at most one event, waiting up to s.pullWait.
func (s *Subscription) fetch(pctx context.Context, c jetstream.Consumer) (jetstream.Msg, error) {
	// A pull is not cancelled when the puller stops: an event already on
	// its way to a cancelled pull would be lost until the ack timeout.
	// Pulls are short instead, and what arrives after the stop is released
	// (which counts as a delivery). A short-lived subscription (a long
	// poll) leaves no pull behind at all: it asks without waiting, and
	// asks again after a pause.
	if s.members == nil {
		b, err := c.FetchNoWait(1)
		if err != nil {
			return nil, err
		}
		var got jetstream.Msg
		for m := range b.Messages() {
			got = m
		}
		if got == nil {
			select {
			case <-time.After(noWaitPause):
			case <-pctx.Done():
			}
		}
		return got, nil
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(s.pullWait))
	if err != nil {
		if pctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	var got jetstream.Msg
	for m := range b.Messages() {
		got = m
	}
	if got == nil && b.Error() != nil && pctx.Err() == nil && !errors.Is(b.Error(), jetstream.ErrNoMessages) &&
		!errors.Is(b.Error(), nats.ErrTimeout) && !errors.Is(b.Error(), context.DeadlineExceeded) {
		return nil, b.Error()
	}
	return got, nil
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
