package client

import (
	"context"
	"errors"
	"sync"
	"time"
)

// settleOp is what a consumer tells the service about one delivery.
type settleOp string

const (
	opAck     settleOp = "ack"
	opRelease settleOp = "release"
	opDead    settleOp = "dead"
)

// settler sends settlements of one connection; send does not wait for
// the answer.
type settler interface {
	settle(op settleOp, ackID string, delay time.Duration, reason string)
}

// settlement is one event's settlement, queued to be sent.
type settlement struct {
	op     settleOp
	ackID  string
	delay  time.Duration
	reason string
}

// maxAckIDs is the most ack ids the service takes in one settlement
// frame or request.
const maxAckIDs = 1000

// runLen is how many settlements from the start of q (not empty) go in
// one frame or request: those of the first's kind (op, delay, reason), at
// most maxAckIDs, so that settlements still apply in the order made.
func runLen(q []settlement) int {
	n := 1
	for n < len(q) && n < maxAckIDs && q[n].op == q[0].op && q[n].delay == q[0].delay && q[n].reason == q[0].reason {
		n++
	}
	return n
}

// request is the body of a settle request of run (settlements of one
// kind): its ack ids, delay and reason.
func request(run []settlement) map[string]any {
	ids := make([]string, len(run))
	for i, st := range run {
		ids[i] = st.ackID
	}
	f := map[string]any{"ackIds": ids}
	if run[0].delay > 0 {
		f["delay"] = run[0].delay.String()
	}
	if run[0].reason != "" {
		f["reason"] = run[0].reason
	}
	return f
}

// dispatcher runs the handler over the events of one connection:
// concurrently across partition keys, in order within a key (CONTRACT §5,
// pipelined order). The service delivers many events of a key at once;
// when one of them is delivered again, every later one it had delivered
// and not seen acknowledged comes again after it. So:
//
//   - when the handler fails an event, the dispatcher releases it and
//     drops the later events of its key it holds, and every event of the
//     key that arrives until the released one comes back: all of them come
//     again after it;
//   - when an event it holds arrives again (its ack timeout passed), it
//     drops the held copy and the later ones not started, which come again.
type dispatcher struct {
	h            Handler
	ctx          context.Context // the handlers' context
	s            settler
	releaseDelay time.Duration
	noAck        bool
	// waitLimit bounds how long a key waits for its released event: one
	// that died meanwhile never comes back.
	waitLimit time.Duration

	mu      sync.Mutex
	keys    map[string]*keyQueue
	held    int
	changed chan struct{} // closed and replaced when held drops
	stopped bool
	wg      sync.WaitGroup
}

// keyQueue holds the events of one key; queue[0] runs when running.
type keyQueue struct {
	queue   []*Event
	running bool
	// waitFor is the identity of the released event the key waits for,
	// until waitUntil.
	waitFor   string
	waitUntil time.Time
}

func newDispatcher(ctx context.Context, h Handler, s settler, releaseDelay time.Duration) *dispatcher {
	return &dispatcher{h: h, ctx: ctx, s: s, releaseDelay: releaseDelay, waitLimit: releaseDelay + time.Minute,
		keys: map[string]*keyQueue{}, changed: make(chan struct{})}
}

func identity(e *Event) string { return e.Source + "\x00" + e.ID }

func keyOf(e *Event) string {
	if e.PartitionKey == "" {
		return "\x00" + e.AckID // unkeyed events are independent
	}
	return e.PartitionKey
}

// add takes one delivered event.
func (d *dispatcher) add(e *Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return // delivered again after the connection closes
	}
	k := keyOf(e)
	q := d.keys[k]
	if q == nil {
		q = &keyQueue{}
		d.keys[k] = q
	}
	id := identity(e)
	if q.waitFor != "" {
		if id != q.waitFor && time.Now().Before(q.waitUntil) {
			return // comes again after the released event
		}
		q.waitFor = ""
	}
	if e.DeliveryCount > 1 {
		for i, h := range q.queue {
			if identity(h) == id {
				d.dropFrom(q, i)
				break
			}
		}
	}
	q.queue = append(q.queue, e)
	d.held++
	if !q.running {
		q.running = true
		d.wg.Add(1)
		go d.run(k, q)
	}
}

// dropFrom forgets the held events of q from index i on, except one
// that runs. Called with d.mu held.
func (d *dispatcher) dropFrom(q *keyQueue, i int) {
	if q.running && i == 0 {
		i = 1
	}
	if i >= len(q.queue) {
		return
	}
	d.held -= len(q.queue) - i
	q.queue = q.queue[:i]
	d.signal()
}

func (d *dispatcher) signal() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// run handles the events of key k in order until its queue is empty.
func (d *dispatcher) run(k string, q *keyQueue) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(q.queue) == 0 || d.stopped {
			q.running = false
			if len(q.queue) == 0 && q.waitFor == "" {
				delete(d.keys, k)
			}
			d.mu.Unlock()
			return
		}
		e := q.queue[0]
		d.mu.Unlock()

		err := d.call(e)

		d.mu.Lock()
		q.queue = q.queue[1:]
		d.held--
		d.signal()
		var poison *PoisonError
		switch {
		case err == nil:
			if !d.noAck {
				d.s.settle(opAck, e.AckID, 0, "")
			}
		case errors.As(err, &poison):
			d.s.settle(opDead, e.AckID, 0, poison.Reason)
		default:
			d.s.settle(opRelease, e.AckID, d.releaseDelay, "")
			q.waitFor, q.waitUntil = identity(e), time.Now().Add(d.waitLimit)
			d.held -= len(q.queue) // all later than e: they come again
			q.queue = q.queue[:0]
		}
		d.mu.Unlock()
	}
}

// call runs the handler; a panic is an error (the event is released).
func (d *dispatcher) call(e *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return d.h(d.ctx, e)
}

type panicError struct{ v any }

func (p *panicError) Error() string { return "handler panicked" }

// room returns how many events are held, and a channel closed when that
// number drops.
func (d *dispatcher) room() (int, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held, d.changed
}

// stop takes no more events, releases the held ones that have not
// started, and waits for the running handlers, whose results are settled.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	for _, q := range d.keys {
		start := 0
		if q.running {
			start = 1
		}
		for _, e := range q.queue[min(start, len(q.queue)):] {
			d.s.settle(opRelease, e.AckID, 0, "")
		}
		d.dropFrom(q, start)
	}
	d.mu.Unlock()
	d.wg.Wait()
}
