package broker

import (
	"cmp"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Pipelined order per partition key. The instance that owns a partition
// keeps, per partition key, the unsettled events of that key it has read,
// in stream order. An event goes out when every earlier event of its key
// is out (delivered and not yet settled) or being moved to the dead
// events: many events of a key may be out at once, in order, and keys
// never wait for each other. When an out event is to be delivered again
// (released, past its ack timeout), it and every later out event of its
// key go back to waiting: their deliveries are void (their ack ids are
// refused, and they do not count toward maxDeliver: the later events go
// out again with the same delivery count), and they go out again after
// it, in order. So a consumer that
// handles a key's events in the order it receives them, and acknowledges
// only what it handled, handles them in order.
//
// An event's partition key travels in the header keyHeader (a hash of the
// key, or of the id for an event without one); events stored before it
// existed have theirs read from the event.

const keyHeader = "Mevents-Key"

// orderKey is the keyHeader value of a partition key.
func orderKey(key string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 16)
}

// keyOf returns the order key of a stored event.
func keyOf(m jetstream.Msg) string {
	if k := m.Headers().Get(keyHeader); k != "" {
		return k
	}
	var ev struct {
		ID  string `json:"id"`
		Key string `json:"partitionkey"`
	}
	_ = json.Unmarshal(m.Data(), &ev)
	if ev.Key == "" {
		return orderKey(ev.ID)
	}
	return orderKey(ev.Key)
}

// entry is one unsettled event of an owned partition.
type entry struct {
	part  *part
	seq   uint64
	key   *keyQueue
	data  []byte
	count int  // deliveries so far; the current one when out
	out   bool // delivered, not settled, not void
	dead  bool // reported dead, being moved to the dead events
	// burying: delivered maxDeliver times, being moved to the dead events;
	// unlike a reported one it holds its key back until stored.
	burying   bool
	sentAt    time.Time // when it went out
	notBefore time.Time // released with a delay: not before then
	queued    bool      // in Subscription.ready
}

// keyQueue holds the unsettled events of one key, in stream order. The
// events before next are out or dead; next is the one to go out next.
type keyQueue struct {
	id   string
	q    []*entry
	next int
}

// part is what the owner of a partition knows of it.
type part struct {
	k     partKey
	key   string // cursor key
	epoch uint64
	rev   uint64 // revision of the cursor as last written or read

	// readFrom is the next stream sequence the partition wants from its
	// reader. to is the cursor's "to": it never goes back.
	readFrom uint64
	to       uint64
	// loaded are the open events of the cursor as taken over that were not
	// read again yet (they stay open in every write until read).
	loaded map[uint64]openEvent

	bySeq map[uint64]*entry
	keys  map[string]*keyQueue

	// Group commit (consume_own.go): dirty says the cursor changed since
	// the last write; next, when not nil, is the next write that
	// settlements wait for.
	dirty bool
	next  *commitWait
	// gone: no longer owned (released, or lost to another owner); nothing
	// more goes out and settlements are refused. releasing: the last write
	// gives the partition up.
	gone      bool
	releasing bool

	// The ownership lease (consume_own.go): confirmed is when the last
	// conditional write of this owner that succeeded was sent; past
	// ownLease, nothing of the partition goes out until a write (renew)
	// confirms the ownership again, and what would have gone out waits in
	// leaseWait.
	confirmed time.Time
	renew     bool
	leaseWait []*entry
}

func newPart(k partKey, key string, c cursor) *part {
	p := &part{k: k, key: key, epoch: c.epoch, to: c.to, readFrom: c.to + 1,
		loaded: make(map[uint64]openEvent, len(c.open)), bySeq: map[uint64]*entry{}, keys: map[string]*keyQueue{}}
	for _, o := range c.open {
		p.loaded[o.seq] = o
		p.readFrom = min(p.readFrom, o.seq)
	}
	return p
}

// commitWait is the outcome of a cursor write that settlements wait for,
// or of work before one (then: the write after it). err is set before done
// is closed; any number of waiters may wait.
type commitWait struct {
	done chan struct{}
	err  error
	then *commitWait
}

func newCommitWait() *commitWait { return &commitWait{done: make(chan struct{})} }

// finish gives the outcome, and then the wait that follows (or nil).
func (w *commitWait) finish(err error, then *commitWait) {
	w.err, w.then = err, then
	close(w.done)
}

// wait returns the outcome of the next write of p.
func (p *part) wait() *commitWait {
	if p.next == nil {
		p.next = newCommitWait()
	}
	return p.next
}

// wants says whether the event at seq is one the partition has not read
// and is not settled; it consumes the cursor's knowledge of it.
func (p *part) wants(seq uint64) (openEvent, bool) {
	if seq < p.readFrom {
		return openEvent{}, false
	}
	p.readFrom = seq + 1
	if seq > p.to {
		return openEvent{seq: seq}, true
	}
	o, ok := p.loaded[seq]
	delete(p.loaded, seq)
	return o, ok
}

// add appends a read event to its key's queue; it returns the entry and
// whether it may go out now (the first waiting one of its key).
func (p *part) add(seq uint64, key string, data []byte, o openEvent) (*entry, bool) {
	kq := p.keys[key]
	if kq == nil {
		kq = &keyQueue{id: key}
		p.keys[key] = kq
	}
	e := &entry{part: p, seq: seq, key: kq, data: data, count: o.count, notBefore: o.notBefore}
	p.bySeq[seq] = e
	kq.q = append(kq.q, e)
	return e, kq.candidate() == e
}

// candidate returns the event of kq that may go out next, or nil.
func (kq *keyQueue) candidate() *entry {
	for kq.next < len(kq.q) && kq.q[kq.next].dead {
		kq.next++ // moved to the dead events meanwhile: it holds nothing back
	}
	if kq.next < len(kq.q) {
		return kq.q[kq.next]
	}
	return nil
}

// index returns the position of e in its queue (-1 if settled).
func (kq *keyQueue) index(e *entry) int {
	// Settlements come mostly in order: look from the front.
	for i, x := range kq.q {
		if x == e {
			return i
		}
	}
	return -1
}

// sendOut marks the candidate e out (delivery count+1) and returns the
// key's next candidate, if any.
func (e *entry) sendOut(now time.Time) *entry {
	e.count++
	e.out, e.sentAt, e.notBefore = true, now, time.Time{}
	return e.pass()
}

// pass moves its key past the candidate e and returns the next candidate.
func (e *entry) pass() *entry {
	e.key.next++
	e.part.to = max(e.part.to, e.seq)
	return e.key.candidate()
}

// settle drops e, acknowledged or dead. It returns how many out
// deliveries that ended (0 or 1).
func (e *entry) settle() int {
	kq, p := e.key, e.part
	i := kq.index(e)
	if i < 0 {
		return 0
	}
	if i == 0 {
		kq.q[0] = nil
		kq.q = kq.q[1:]
	} else {
		kq.q = slices.Delete(kq.q, i, i+1)
	}
	if i < kq.next {
		kq.next--
	}
	if len(kq.q) == 0 {
		delete(p.keys, kq.id)
	}
	delete(p.bySeq, e.seq)
	p.dirty = true
	wasOut := 0
	if e.out {
		wasOut = 1
	}
	e.out = false
	return wasOut
}

// again sends e back to waiting, to go out again not before notBefore,
// with every later out event of its key (their deliveries are void). It
// returns how many out deliveries that voided.
func (e *entry) again(notBefore time.Time) int {
	kq := e.key
	i := kq.index(e)
	if i < 0 || i >= kq.next {
		return 0 // settled, or waiting already
	}
	void := 0
	for _, x := range kq.q[i:kq.next] {
		if x.out {
			void++
			if x != e {
				// Void through no fault of its own: that delivery does
				// not count (toward maxDeliver either); the next one
				// has its number again.
				x.count--
			}
		}
		x.out = false
		x.dead = x.dead && x != e // a later one being buried stays so
	}
	// The later ones being buried are settled soon; they stay behind the
	// waiting ones in the queue and are skipped as they are dropped.
	kq.next = i
	e.notBefore = notBefore
	e.part.dirty = true
	return void
}

// snapshot returns the cursor to write for p.
func (p *part) snapshot(owner, node string) cursor {
	c := cursor{to: p.to, epoch: p.epoch, node: node}
	if !p.releasing {
		c.owner = owner
	}
	for _, o := range p.loaded {
		c.open = append(c.open, o)
	}
	for _, e := range p.bySeq {
		if e.seq <= p.to {
			c.open = append(c.open, openEvent{seq: e.seq, count: e.count, notBefore: e.notBefore})
		}
	}
	slices.SortFunc(c.open, func(a, b openEvent) int { return cmp.Compare(a.seq, b.seq) })
	return c
}
