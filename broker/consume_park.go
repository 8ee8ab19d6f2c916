package broker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Parked readers. A reader that has read nothing for its park delay, and
// whose consumer holds nothing back, gives its consumer up and parks: an
// idle group then costs no JetStream consumer, no pull and no heartbeat,
// only its cursors and its entry in the node's beat. The node's tail of
// the type wakes it: one core NATS subscription on the type's subjects per
// node, which exists while a reader of the type is parked on the node and
// hears every event published to the type. When an event of one of its
// partitions is published, the reader makes a consumer again from the
// partitions' positions (the event is then stored, or will be).
//
// No event is missed between the last look and the parking: the reader
// parks on the tail before it asks its consumer for the last time whether
// anything is pending, and a tail hears events only once its interest has
// reached the other nodes (tailSettle), and remembers for tailRecent the
// partitions it heard of, for events published before a reader parked and
// stored after its last look. Should a tail miss something all the same
// (a peer whose routes were cut comes back, or NATS drops messages of a
// subscription that fell behind), the node wakes all its parked readers.
//
// A reader woken soon after it parked parks later the next time (its delay
// doubles, up to parkMax), so that a partition with an event every minute
// does not make and drop a consumer every minute.

const (
	parkAfter   = 30 * time.Second
	parkMax     = 10 * time.Minute
	tailSettle  = 2 * time.Second
	tailRecent  = 5 * time.Second
	parkLookout = time.Second // the last look's bound
)

// tails are a node's tails, by type.
type tails struct {
	mu     sync.Mutex
	byType map[string]*tail
	woken  int // readers woken by wakeAll (tests)
}

// tail wakes the readers of one type parked on the node.
type tail struct {
	subs   []*nats.Subscription
	since  time.Time                   // when subscribed
	parked map[string]map[*reader]bool // by subject
	heard  map[string]time.Time        // subject → when last heard of
	filter map[*reader][]string        // a parked reader's subjects
}

// park parks r on the tail of its type for the subjects filters; false
// when it cannot park (one of the subjects had an event a moment ago, or
// the tail is new and the caller cannot wait). While the tail is new, its
// interest may not have reached every node yet: wait says how long until
// it has, when the tail hears everything.
func (ts *tails) park(n *Node, r *reader, filters []string, canWait bool) (ok bool, wait time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.byType[r.typ]
	if t == nil {
		t = &tail{since: time.Now(), parked: map[string]map[*reader]bool{}, heard: map[string]time.Time{}, filter: map[*reader][]string{}}
		for _, subj := range streamSubjects(r.typ) {
			typ := r.typ
			sub, err := n.nc.Subscribe(subj, func(m *nats.Msg) { ts.hear(typ, m.Subject) })
			if err != nil {
				for _, s := range t.subs {
					_ = s.Unsubscribe()
				}
				return false, 0
			}
			t.subs = append(t.subs, sub)
		}
		// The node's own server hears the interest now, the others a
		// moment later: events published here are heard from now on.
		_ = n.nc.FlushTimeout(parkLookout)
		if ts.byType == nil {
			ts.byType = map[string]*tail{}
		}
		ts.byType[r.typ] = t
	}
	now := time.Now()
	wait = max(0, tailSettle-now.Sub(t.since))
	if wait > 0 && !canWait {
		return false, 0
	}
	for subj, at := range t.heard {
		if now.Sub(at) > tailRecent {
			delete(t.heard, subj)
		}
	}
	for _, f := range filters {
		if _, ok := t.heard[f]; ok {
			return false, 0
		}
	}
	for _, f := range filters {
		if t.parked[f] == nil {
			t.parked[f] = map[*reader]bool{}
		}
		t.parked[f][r] = true
	}
	t.filter[r] = filters
	return true, wait
}

// hear wakes the readers parked on subj.
func (ts *tails) hear(typ, subj string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.byType[typ]
	if t == nil {
		return
	}
	now := time.Now()
	t.heard[subj] = now
	for r := range t.parked[subj] {
		signal(r.again)
		ts.unparkLocked(t, r)
	}
	if len(t.filter) == 0 && now.Sub(t.since) > tailSettle+2*stallCheck {
		// Made for a reader that did not park after all: the type is not
		// idle, its events need not come twice.
		ts.dropLocked(typ, t)
	}
}

// unpark takes r off its tail; the tail goes when nobody is parked on it
// (a busy type then costs no second copy of its events).
func (ts *tails) unpark(r *reader) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.byType[r.typ]; t != nil {
		ts.unparkLocked(t, r)
	}
}

func (ts *tails) unparkLocked(t *tail, r *reader) {
	if _, ok := t.filter[r]; !ok {
		return
	}
	for _, f := range t.filter[r] {
		delete(t.parked[f], r)
		if len(t.parked[f]) == 0 {
			delete(t.parked, f)
		}
	}
	delete(t.filter, r)
	if len(t.filter) == 0 {
		ts.dropLocked(r.typ, t)
	}
}

// dropLocked unsubscribes a tail and forgets it.
func (ts *tails) dropLocked(typ string, t *tail) {
	for _, s := range t.subs {
		_ = s.Unsubscribe()
	}
	if ts.byType[typ] == t {
		delete(ts.byType, typ)
	}
}

// wakeAll wakes every parked reader of the node: a tail may not have
// heard everything (a peer came back after its routes were cut, so
// interest and events crossed in flight; or a subscription fell behind and
// NATS dropped messages for it), and a woken reader only looks.
func (ts *tails) wakeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.byType {
		for r := range t.filter {
			signal(r.again)
			ts.unparkLocked(t, r)
			ts.woken++
		}
	}
}

// parked returns the number of readers parked on the node.
func (ts *tails) parked() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, t := range ts.byType {
		n += len(t.filter)
	}
	return n
}

// tryPark parks the reader when its consumer holds nothing for it.
func (r *reader) tryPark(cons jetstream.Consumer, last uint64, filters []string) bool {
	n := r.s.n
	if ok, _ := n.tails.park(n, r, filters, false); !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(r.s.ctx, parkLookout)
	info, err := cons.Info(ctx)
	cancel()
	if err != nil || info.NumPending > 0 || info.Delivered.Consumer > last {
		n.tails.unpark(r)
		return false
	}
	n.memory.let(1)
	return true
}

// startParked parks a reader that has nothing to read (no event stored
// from start on) before it makes a consumer: the readers of a group that
// joins an idle type then make and drop no consumer at all. A new tail
// hears everything only after tailSettle: the reader waits for that,
// parked (an event heard meanwhile wakes it), then looks again. replan says
// that the reader's partitions changed or its subscription ended.
func (r *reader) startParked(filters []string, start uint64) (parked, replan bool) {
	n := r.s.n
	if r.stored(start) {
		return false, false
	}
	ok, wait := n.tails.park(n, r, filters, true)
	if !ok {
		return false, false
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.again:
			n.tails.unpark(r)
			return false, true
		case <-r.s.ctx.Done():
			n.tails.unpark(r)
			return false, true
		}
	}
	if r.stored(start) {
		n.tails.unpark(r)
		return false, false
	}
	n.memory.let(1) // hundreds at once are a burst of joins, now over
	return true, false
}

// stored says whether the type's stream holds an event at or after start
// (of any subject; also true when it cannot tell): one direct get, of
// which a burst of joins makes thousands.
func (r *reader) stored(start uint64) bool {
	ctx, cancel := context.WithTimeout(r.s.ctx, parkLookout)
	defer cancel()
	m, err := r.s.n.directGet(ctx, StreamName(r.typ), directRequest{Seq: start, NextBySubj: ">"})
	return err != nil || m != nil
}
