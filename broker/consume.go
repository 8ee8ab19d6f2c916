package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
)

// Consuming. A Subscription is one consumer instance (a WebSocket
// connection, or the instance that serves a node's long polls of a group)
// and one member of its group (group_members.go): it owns its share of the
// group's partitions. For each partition it owns it holds the group's
// cursor (cursor.go) and reads the partition's unsettled events through a
// cheap reader (consume_read.go); it hands them out in pipelined order per
// key (consume_part.go) while the client holds fewer than its credit
// (maxInFlight) unsettled, and writes the cursor in group commits
// (consume_own.go).

// DefaultMaxInFlight is the credit of a subscription that asks for none.
const DefaultMaxInFlight = 100

const (
	// heldBytes and heldExtra bound the events a subscription holds
	// beyond those out: its readers wait while it holds more.
	heldBytes = 8 << 20
	heldExtra = 1024
	// tendEvery is how often an instance with deliveries out looks for
	// ack timeouts and for released events whose delay ended.
	tendEvery = 50 * time.Millisecond
)

// ErrSubscriptionClosed is returned by Next after Close.
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

// partKey names one partition of one type.
type partKey struct {
	typ       string
	partition int
}

// Subscription hands out the events of one client's group. It is safe for
// concurrent use. Close must be called to release it.
type Subscription struct {
	n           *Node
	client      *Client
	group       string
	types       []string
	start       Start
	maxDeliver  int
	maxInFlight int
	id          string // member id
	startMu     sync.Mutex
	startSeqs   map[string]uint64 // by type: where start is (startSeq)
	members     *membership
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	settleSub   *nats.Subscription
	commitMu    sync.Mutex // one commit round at a time
	closeOnce   sync.Once

	kick       chan struct{} // cap 1: the housekeeper has something to watch
	commitKick chan struct{} // cap 1: a cursor changed
	wake       chan struct{} // cap 1: something became ready, or credit came back
	room       chan struct{} // cap 1: the readers may read more

	mu        sync.Mutex
	closing   bool
	parts     map[partKey]*part              // owned
	releasing map[partKey]*part              // given up, last write under way
	taking    map[partKey]context.CancelFunc // takeovers under way
	readers   map[string]*reader             // by type
	ready     []*entry                       // candidates, in the order they became so
	redo      []*entry                       // candidates delivered before: they go first
	outN      int                            // deliveries out: the credit used
	heldN     int                            // entries held, out or not
	held      int                            // their bytes
	tending   bool                           // the housekeeper watches
}

// Subscribe starts one consumer instance of a group; it takes its share of
// the group's partitions in the background. Errors: CodeInvalid (group
// name), CodeForbidden (a type not routed to the client), CodeUnavailable.
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
		return nil, mevents.Errorf(mevents.CodeForbidden, "no event types are routed to client %s", cl.ID)
	}
	reg := n.Registry()
	for _, t := range types {
		if !cl.MayConsume(t) || reg == nil || reg.Type(t) == nil {
			return nil, mevents.Errorf(mevents.CodeForbidden, "event type %q is not routed to client %s", t, cl.ID)
		}
	}
	types = slices.Compact(slices.Sorted(slices.Values(types)))
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if _, err := n.cursorsKV(ctx); err != nil {
		return nil, err
	}
	maxDeliver := cl.MaxDeliver
	if maxDeliver <= 0 {
		maxDeliver = DefaultMaxDeliver
	}
	s := &Subscription{
		n: n, client: cl, group: o.Group, types: types, start: startOf(o.Start, time.Now()), maxDeliver: maxDeliver, maxInFlight: o.MaxInFlight,
		id:   newMemberID(),
		kick: make(chan struct{}, 1), commitKick: make(chan struct{}, 1), wake: make(chan struct{}, 1), room: make(chan struct{}, 1),
		parts: map[partKey]*part{}, releasing: map[partKey]*part{}, taking: map[partKey]context.CancelFunc{}, readers: map[string]*reader{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sub, err := n.nc.Subscribe(settleSubject(s.id), s.onSettle)
	if err != nil {
		s.cancel()
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the event store is unavailable", Err: err}
	}
	s.settleSub = sub
	n.local.add(s)
	m, err := n.join(s.id, cl.ID, o.Group, types)
	if err != nil {
		n.local.remove(s)
		_ = sub.Unsubscribe()
		s.cancel()
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the event store is unavailable", Err: err}
	}
	s.members = m
	s.wg.Add(3)
	go s.balance()
	go s.housekeep()
	go s.commitLoop()
	return s, nil
}

// startOf fixes where a new group starts when it subscribes: "latest"
// is the moment of subscribing, not the later moment each of its
// partitions is claimed, so that nothing accepted after the subscription
// was answered is skipped by a partition claimed a little later.
func startOf(s Start, now time.Time) Start {
	if s.Latest {
		return Start{Time: now}
	}
	return s
}

// Partitions returns the partitions of each type the subscription owns now.
func (s *Subscription) Partitions() map[string][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]int{}
	for k := range s.parts {
		out[k.typ] = append(out[k.typ], k.partition)
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}

// Group returns the subscription's group.
func (s *Subscription) Group() string { return s.group }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push queues a candidate for Next; one delivered before goes before the
// others. s.mu is held.
func (s *Subscription) push(e *entry) {
	if e == nil || e.queued {
		return
	}
	e.queued = true
	if e.count > 0 {
		s.redo = append(s.redo, e)
	} else {
		s.ready = append(s.ready, e)
	}
	signal(s.wake)
}

// watch tells the housekeeper there is something to watch; s.mu is held.
func (s *Subscription) watch() {
	if !s.tending {
		s.tending = true
		signal(s.kick)
	}
}

// Next returns the next delivery. It blocks until one is ready and the
// client holds fewer unsettled deliveries than its credit, ctx ends
// (ctx.Err()) or the subscription is closed (ErrSubscriptionClosed).
func (s *Subscription) Next(ctx context.Context) (Delivery, error) {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return Delivery{}, ErrSubscriptionClosed
		}
		if d, ok := s.nextLocked(time.Now()); ok {
			more := len(s.ready)+len(s.redo) > 0 && s.outN < s.maxInFlight
			s.mu.Unlock()
			if more {
				signal(s.wake) // for another caller of Next
			}
			return d, nil
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

// nextLocked hands out the first ready candidate, if the credit allows.
func (s *Subscription) nextLocked(now time.Time) (Delivery, bool) {
	for len(s.ready)+len(s.redo) > 0 && s.outN < s.maxInFlight {
		q := &s.ready
		if len(s.redo) > 0 {
			q = &s.redo
		}
		e := (*q)[0]
		(*q)[0] = nil
		*q = (*q)[1:]
		e.queued = false
		p := e.part
		if p.gone || e.out || e.dead || e.burying || p.bySeq[e.seq] != e || e.key.candidate() != e {
			continue
		}
		if now.Before(e.notBefore) {
			s.watch() // the housekeeper queues it again when its delay ends
			continue
		}
		if now.Sub(p.confirmed) > ownLease {
			// Another instance may own the partition by now: it goes out
			// once a write confirms this one still does.
			p.leaseWait = append(p.leaseWait, e)
			if !p.renew {
				p.renew, p.dirty = true, true
				signal(s.commitKick)
			}
			continue
		}
		if e.count >= s.maxDeliver {
			// Its key moves on once it is stored (buryEntry): whoever sees
			// the next event of the key finds this one in the dead events.
			e.burying = true
			s.wg.Add(1)
			go s.buryEntry(e, OriginMaxDeliver, "delivered "+strconv.Itoa(s.maxDeliver)+" times without acknowledgement", e.count, nil)
			continue
		}
		s.push(e.sendOut(now))
		s.outN++
		if !p.dirty { // one wake-up of the committer per round, not per delivery
			p.dirty = true
			signal(s.commitKick)
		}
		s.watch()
		id := encodeAckID(ackRef{client: s.client.ID, group: s.group, typ: p.k.typ, partition: p.k.partition,
			seq: e.seq, count: e.count, epoch: p.epoch, member: s.id})
		return Delivery{AckID: id, Count: e.count, Type: p.k.typ, Event: withDeliveryAttrs(e.data, id, e.count)}, true
	}
	return Delivery{}, false
}

// dropEntry forgets a settled entry's memory; s.mu is held.
func (s *Subscription) dropEntry(e *entry) {
	s.outN -= e.settle()
	s.heldN--
	s.held -= len(e.data)
	signal(s.room)
	signal(s.wake)
}

// housekeep delivers again what passed its ack timeout and queues the
// released events whose delay ended, while there are any.
func (s *Subscription) housekeep() {
	defer s.wg.Done()
	t := time.NewTimer(tendEvery)
	defer t.Stop()
	for {
		if !s.tend(time.Now()) {
			select {
			case <-s.kick:
			case <-s.ctx.Done():
				return
			}
			continue
		}
		t.Reset(tendEvery)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// tend does one round of housekeeping; false when there is nothing to watch.
func (s *Subscription) tend(now time.Time) bool {
	ackTimeout := s.n.ackTimeout()
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := false
	var late []*entry
	for _, p := range s.parts {
		for _, e := range p.bySeq {
			switch {
			case e.out && now.Sub(e.sentAt) >= ackTimeout:
				late = append(late, e)
				busy = true
			case e.out:
				busy = true
			case !e.notBefore.IsZero() && !e.dead:
				if now.Before(e.notBefore) {
					busy = true
					break
				}
				// Its delay is over: from now on it is like any other.
				e.notBefore = time.Time{}
				if e.key.candidate() == e {
					s.push(e)
				}
			}
		}
	}
	// In stream order: the first late event of a key sends the later ones
	// back with it (their deliveries void, not counted).
	slices.SortFunc(late, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	for _, e := range late {
		if e.out {
			s.outN -= e.again(time.Time{})
			s.push(e)
			signal(s.commitKick)
		}
	}
	if !busy {
		s.tending = false
	}
	return busy
}

// Close ends the subscription: nothing more goes out, its partitions are
// given up (their unsettled events go out again from the next owner at
// once) and its goroutines stop. It waits for the last cursor writes, a
// few seconds at most.
func (s *Subscription) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.closing = true
	for _, cancel := range s.taking {
		cancel()
	}
	for k := range s.parts {
		s.releaseLocked(k)
	}
	s.mu.Unlock()
	signal(s.wake)
	// The last writes give the partitions up; the other instances take
	// them over as soon as they see it (or when this member is gone).
	deadline := time.Now().Add(releaseWait)
	for time.Now().Before(deadline) {
		s.commitRound(s.ctx)
		s.mu.Lock()
		left := len(s.releasing)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.n.bgCtx.Done():
			deadline = time.Now() // one attempt: the node is going
		}
	}
	s.cancel()
	s.wg.Wait()
	_ = s.settleSub.Unsubscribe()
	s.n.local.remove(s)
	s.mu.Lock()
	s.n.memory.let(len(s.readers))
	s.mu.Unlock()
}

// releaseWait bounds how long Close tries to write the cursors it gives up.
const releaseWait = 3 * time.Second

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
