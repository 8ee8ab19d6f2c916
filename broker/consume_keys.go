package broker

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Order per partition key. A partition consumer lets up to partitionWindow
// events be out at once (group.go) and is pinned to one puller at a time,
// cluster-wide. The puller keeps, per partition key, the events of that key
// it holds, oldest first, and hands out only the oldest: a later event of a
// key waits (kept from the ack timeout by "in progress" acknowledgements)
// until every earlier one is settled; a released event stays first in line
// until the consumer delivers it again.
//
// A puller that starts — on a new subscription, a rebalance, a long poll,
// after losing its pin — cannot know which events earlier pullers left out
// and unsettled: those may be before the ones it gets. So it hands out
// nothing until the consumer has no unsettled events but the ones it holds
// itself: it reads the consumer's count of unsettled events after it got its
// pin (no other puller can receive events then) and compares it with what it
// holds of the events delivered up to that moment, twice in a row
// (deliveries still on their way to it are no verdict either way). The
// events the others left come back to it when they are released or time
// out, and it sorts them in with the rest; those settled elsewhere leave the
// count. A client may still settle an event it was handed before it came
// here: every settlement is announced to the group (settledSubject), and
// the second check leaves the announcement time to arrive.
//
// A pinned puller gets every delivery of its consumer, numbered in turn
// (the consumer sequence). A number skipped is a delivery lost on its way
// (its node went away, or the consumer's leader changed): the event is
// pending, and later events of its key must not overtake it. The puller
// goes back to (or stays in) the safe start and releases what it does not
// hold, so that the lost one comes back at once. A lost delivery that no
// later one follows is found by the safe start, which sees it on its way
// for too long.
//
// An event's partition key travels in the header keyHeader (a hash of the
// key, or of the id for an event without one, whose order is no one's
// business); events stored before it existed have theirs read from the
// event.

const keyHeader = "Mevents-Key"

// orderKey is the keyHeader value of a partition key.
func orderKey(key string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 16)
}

// keyOf returns the order key of a delivered event.
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

type entryState uint8

const (
	held     entryState = iota // here, not handed out
	handed                     // with the client
	released                   // released: JetStream will deliver it again
	burying                    // moving to the dead events
)

// entry is one unsettled event of a partition this puller knows of.
type entry struct {
	ps      *partState
	seq     uint64 // stream sequence
	key     string
	msg     jetstream.Msg // its latest delivery
	state   entryState
	queued  bool      // in Subscription.ready
	again   bool      // delivered again while handed: keeps its unit of credit
	touched time.Time // last delivery or in-progress acknowledgement
	size    int
	skips   int // deliveries that never reached the client
	count   int // the delivery count the client sees
}

// partState is what the puller of one partition holds.
type partState struct {
	k        partKey
	stream   string
	consumer string
	// safe: events of earlier pullers may be out; nothing is handed out.
	// calm counts the checks that found none since one found some.
	safe bool
	calm int
	// nextCheck, nextStale: when the consumer's state may be read again.
	nextCheck, nextStale time.Time
	// lastDelivery is the consumer sequence of the last delivery that
	// came; gap: one after it never came (lost in transit while a node
	// went away), and the others held must wait for it.
	lastDelivery uint64
	gap          bool
	// coming is the consumer's last delivery when the safe start last
	// found one on its way, since comingSince (tend).
	coming      uint64
	comingSince time.Time
	// pinned: an event came, so this puller holds the consumer's pin.
	pinned bool
	// gone: the puller stopped; nothing more is handed out. stopped: what
	// it held was released.
	gone    bool
	stopped bool
	keys    map[string][]*entry // by order key, oldest first
	bySeq   map[uint64]*entry
}

func newPartState(k partKey, stream, consumer string) *partState {
	return &partState{k: k, stream: stream, consumer: consumer, safe: true,
		keys: map[string][]*entry{}, bySeq: map[uint64]*entry{}}
}

func (ps *partState) id() string { return ps.stream + " " + ps.consumer }

func (e *entry) ackKey() string { return ackKeyFor(e.ps.stream, e.ps.consumer, e.seq) }

func ackKeyFor(stream, consumer string, seq uint64) string {
	return stream + " " + consumer + " " + strconv.FormatUint(seq, 10)
}

func (e *entry) head() bool {
	q := e.ps.keys[e.key]
	return len(q) > 0 && q[0] == e
}

// add puts a new entry in line behind the earlier events of its key.
func (ps *partState) add(e *entry) {
	ps.bySeq[e.seq] = e
	q := append(ps.keys[e.key], e)
	for i := len(q) - 1; i > 0 && q[i-1].seq > q[i].seq; i-- {
		q[i-1], q[i] = q[i], q[i-1]
	}
	ps.keys[e.key] = q
}

// remove drops a settled entry and returns the new first of its key, or nil.
func (ps *partState) remove(e *entry) *entry {
	if ps.bySeq[e.seq] != e {
		return nil
	}
	delete(ps.bySeq, e.seq)
	q := ps.keys[e.key]
	if i := slices.Index(q, e); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(ps.keys, e.key)
		return nil
	}
	ps.keys[e.key] = q
	return q[0]
}

// sorted returns the entries in stream order.
func (ps *partState) sorted() []*entry {
	out := make([]*entry, 0, len(ps.bySeq))
	for _, e := range ps.bySeq {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return out
}

// ownUpTo counts the entries delivered up to stream sequence seq that
// are unsettled.
func (ps *partState) ownUpTo(seq uint64) int {
	n := 0
	for s, e := range ps.bySeq {
		if s <= seq && e.state != burying {
			n++
		}
	}
	return n
}

// Hidden deliveries. JetStream counts every delivery of an event, also
// those a puller held back and released unseen when it stopped. A puller
// records those in the bucket SkipsBucket (key <stream>.<consumer>.<seq>,
// value their number) before it releases the events, and the delivery
// count a client sees, and maxDeliver applies to, is JetStream's less them.
// Entries go when their event is settled, or after skipsMaxAge.

// SkipsBucket is the key-value bucket of hidden deliveries.
const SkipsBucket = "mevents_skips"

const skipsMaxAge = 30 * 24 * time.Hour

func (n *Node) skipsKV(ctx context.Context) (jetstream.KeyValue, error) {
	return n.bucket(ctx, &n.skips, jetstream.KeyValueConfig{Bucket: SkipsBucket,
		Description: "mevents deliveries held back unseen, per group consumer and event",
		History:     1, TTL: skipsMaxAge, Storage: jetstream.FileStorage}, "the delivery state store is unavailable")
}

func skipsKey(stream, consumer string, seq uint64) string {
	return stream + "." + consumer + "." + strconv.FormatUint(seq, 10)
}

// readSkips returns the hidden deliveries of an event (0 when unknown).
func (n *Node) readSkips(ctx context.Context, stream, consumer string, seq uint64) int {
	kv, err := n.skipsKV(ctx)
	if err != nil {
		return 0
	}
	v, err := kv.Get(ctx, skipsKey(stream, consumer, seq))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			n.log.Warn("read hidden deliveries", "consumer", consumer, "seq", seq, "err", err)
		}
		return 0
	}
	k, _ := strconv.Atoi(string(v.Value()))
	return k
}

// skipsConcurrency bounds the hidden-delivery records written or deleted
// at once: one at a time, a puller giving up 128 held events waited for
// 128 replicated writes before releasing them (seconds under load, past
// hide's deadline).
const skipsConcurrency = 32

// writeSkips records the hidden deliveries of events.
func (n *Node) writeSkips(ctx context.Context, stream, consumer string, counts map[uint64]int) {
	if len(counts) == 0 {
		return
	}
	kv, err := n.skipsKV(ctx)
	if err != nil {
		n.log.Warn("record hidden deliveries", "consumer", consumer, "err", err)
		return
	}
	seqs := slices.Collect(maps.Keys(counts))
	concurrently(len(seqs), skipsConcurrency, func(i int) {
		seq := seqs[i]
		if _, err := kv.Put(ctx, skipsKey(stream, consumer, seq), []byte(strconv.Itoa(counts[seq]))); err != nil {
			n.log.Warn("record hidden deliveries", "consumer", consumer, "seq", seq, "err", err)
		}
	})
}

// dropSkips forgets the hidden deliveries of settled events.
func (n *Node) dropSkips(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	kv, err := n.skipsKV(ctx)
	if err != nil {
		return
	}
	concurrently(len(keys), skipsConcurrency, func(i int) { _ = kv.Purge(ctx, keys[i]) })
}

// concurrently calls f(0) … f(n-1), at most limit at once, and returns
// when all calls have.
func concurrently(n, limit int, f func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}
