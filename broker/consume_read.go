package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Readers. An instance reads the partitions it owns of one type through
// one JetStream consumer that exists only while it reads: unreplicated,
// in memory, without acknowledgements (the cursor keeps the group's
// position, not the consumer), filtering the subjects of those partitions
// and starting at the first event any of them still needs. Such a consumer
// is no Raft group: it costs the cluster no heartbeats, and an instance
// that owns nothing has none. When the partitions it owns change, or the
// consumer is lost (its node went away: the node's routes to it closed,
// see peers.go, or missed heartbeats, or a gap in its delivery numbers) or
// holds events back (stalled), the reader makes a new one from the
// positions the partitions have reached; each partition ignores what it
// has read.
//
//	name         mevents_r_<member id>_<n>
//	filters      ev.<type>.<p>, evtest.<client>.<type>.<p>, evredo.<client>.<group>.<type>.<p> per owned p
//	settings     replicas 1, memory storage, ack none, inactive threshold readerInactive

const (
	// readBatch is how many events a reader's pulls ask for.
	readBatch = 256
	// readerInactive is how long JetStream keeps a reader whose instance
	// vanished without deleting it (its node died).
	readerInactive = time.Minute
	// restartGather is how long a reader that must start again waits for
	// more partitions to come or go.
	restartGather = 25 * time.Millisecond
	// stallCheck is how long a reader that read something within
	// stallWindow waits for its next event before it asks its consumer
	// whether events are held up: a pull's accounting can go wrong (a
	// delivery dropped by a full iterator, whose pull then seems to be
	// outstanding), and nats.go notices only after two missed heartbeats.
	stallCheck  = 5 * time.Second
	stallWindow = time.Minute
	// firstCheck is how long a new consumer's reader waits for its first
	// event before it asks, once: a reader is made when there is
	// something to read (or its partitions changed), so a first pull lost
	// on its way (seen under load: a partition's share of a group stood
	// still for the whole stallCheck) costs this, not stallCheck. A new
	// reader asks once either way: one consumer info request.
	firstCheck = time.Second
)

// reader is the reader of one type of one instance.
type reader struct {
	s     *Subscription
	typ   string
	again chan struct{} // cap 1: the owned partitions changed

	mu   sync.Mutex
	it   jetstream.MessagesContext // the current iterator, to interrupt
	host string                    // the node the current consumer lives on

	// parkDelay is how long the reader reads nothing before it parks
	// (consume_park.go); only its goroutine uses it.
	parkDelay time.Duration
}

// readerFor returns the reader of type t, starting it if needed; s.mu is held.
func (s *Subscription) readerFor(t string) *reader {
	r := s.readers[t]
	if r == nil {
		r = &reader{s: s, typ: t, again: make(chan struct{}, 1), parkDelay: s.n.parkAfter}
		s.readers[t] = r
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.run()
		}()
	}
	return r
}

// restart makes the reader start again from the owned partitions' positions.
func (r *reader) restart() {
	signal(r.again)
	r.mu.Lock()
	if r.it != nil {
		r.it.Stop()
	}
	r.mu.Unlock()
}

// livesOn reports whether the reader's current consumer lives on the node.
func (r *reader) livesOn(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.it != nil && r.host == node
}

// plan returns the subjects to read and where to start; no subjects when
// the instance owns no partition of the type.
func (r *reader) plan() (filters []string, start uint64) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.parts {
		if k.typ != r.typ {
			continue
		}
		filters = append(filters, Subject(r.typ, k.partition, ""), Subject(r.typ, k.partition, s.client.ID),
			redoSubject(s.client.ID, s.group, r.typ, k.partition))
		if start == 0 || p.readFrom < start {
			start = p.readFrom
		}
	}
	return filters, max(start, 1)
}

func (r *reader) run() {
	s := r.s
	defer s.n.tails.unpark(r)
	serial := 0
	pause := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		if serial > 0 {
			// Partitions are taken a few at a time (each a claim):
			// gather them into one new consumer rather than one each.
			select {
			case <-time.After(restartGather):
			case <-s.ctx.Done():
				return
			}
		}
		select {
		case <-r.again:
		default:
		}
		filters, start := r.plan()
		if len(filters) == 0 {
			select {
			case <-r.again:
			case <-s.ctx.Done():
			}
			continue
		}
		if serial == 0 { // a new reader: is there anything to read?
			if parked, replan := r.startParked(filters, start); parked {
				r.sleep()
				continue
			} else if replan {
				continue
			}
		}
		serial++
		name := "mevents_r_" + s.id + "_" + strconv.Itoa(serial)
		ok, parked := r.read(name, filters, start)
		if parked {
			r.sleep()
			continue
		}
		if !ok && s.ctx.Err() == nil {
			select {
			case <-time.After(pause):
			case <-s.ctx.Done():
			case <-r.again:
				signal(r.again)
			}
			pause = min(2*pause, 2*time.Second)
		} else {
			pause = 100 * time.Millisecond
		}
	}
}

// sleep waits, parked, until an event of the reader's partitions is
// published or its partitions change; the next park delay is longer when
// that came soon.
func (r *reader) sleep() {
	s := r.s
	since := time.Now()
	select {
	case <-r.again:
		signal(r.again) // run reads the partitions again
	case <-s.ctx.Done():
	}
	s.n.tails.unpark(r)
	if time.Since(since) < r.parkDelay {
		r.parkDelay = min(2*r.parkDelay, parkMax)
	} else {
		r.parkDelay = s.n.parkAfter
	}
}

// read reads through one consumer until it is interrupted or lost (ok
// false when it could not be made), or parks (consume_park.go).
func (r *reader) read(name string, filters []string, start uint64) (ok, parked bool) {
	s := r.s
	stream := StreamName(r.typ)
	timeout := apiAttempt
	if s.n.peerMissing.Load() {
		timeout = createWhilePeerMissing
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	cons, err := s.n.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Name:              name,
		Description:       "mevents reader of group " + s.group + " of client " + s.client.ID,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubjects:    filters,
		Replicas:          1,
		MemoryStorage:     true,
		InactiveThreshold: readerInactive,
		Metadata:          map[string]string{"mevents_client": s.client.ID, "mevents_group": s.group},
	})
	cancel()
	// The reader's consumer goes with it (a vanished node's goes after
	// readerInactive), also when its making was given up: JetStream may
	// have made it all the same. The next one need not wait for that.
	defer func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.n.js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				s.n.log.Debug("delete reader", "consumer", name, "err", err)
			}
		}()
	}()
	if err != nil {
		if s.ctx.Err() == nil {
			s.n.log.Warn("create reader", "stream", stream, "err", err)
		}
		return false, false
	}
	// A pull sent before the consumer's node has made it is lost, and
	// found out only by missing heartbeats: its info, which that node
	// answers, says it is there.
	host := ""
	if ci := cons.CachedInfo(); ci != nil && ci.Cluster != nil {
		host = ci.Cluster.Leader
	}
	for attempt := 0; attempt < 5 && s.ctx.Err() == nil; attempt++ {
		ictx, cancel := context.WithTimeout(s.ctx, time.Second)
		ci, err := cons.Info(ictx)
		cancel()
		if err == nil {
			if ci.Cluster != nil && ci.Cluster.Leader != "" {
				host = ci.Cluster.Leader
			}
			break
		}
	}
	// The node restarts the reader when the consumer's node goes away
	// (peers.go). Pulls also hear from the consumer every 15 s (nats.go's
	// default): two missed, the reader makes a new one. Shorter is no
	// good: a reader that waits for room takes nothing from its pulls,
	// which then stop, and their heartbeats with them.
	it, err := cons.Messages(jetstream.PullMaxMessages(readBatch), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		s.n.log.Warn("read", "consumer", name, "err", err)
		return false, false
	}
	r.mu.Lock()
	r.it, r.host = it, host
	r.mu.Unlock()
	defer context.AfterFunc(s.ctx, it.Stop)()
	defer func() {
		r.mu.Lock()
		r.it = nil
		r.mu.Unlock()
		it.Stop()
	}()
	select {
	case <-r.again: // changed while it was made
		signal(r.again)
		return true, false
	default:
	}
	var last uint64       // the consumer's last delivery number
	var lastAt time.Time  // when it came; zero until the first
	checkedFirst := false // a reader that has read nothing asks once
	since := time.Now()   // of the last event read, or of the start
	for {
		if !r.waitRoom() {
			return true, false
		}
		m, err := it.Next(jetstream.NextMaxWait(nextWait(lastAt.IsZero() && !checkedFirst, r.parkDelay)))
		if errors.Is(err, nats.ErrTimeout) {
			// Only readers that read a moment ago ask, and a new one once:
			// every idle reader asking every stallCheck would cost the
			// cluster hundreds of requests a second with hundreds of groups.
			ask := !lastAt.IsZero() && time.Since(lastAt) < stallWindow || lastAt.IsZero() && !checkedFirst
			checkedFirst = true
			if ask && r.stalled(cons, last) {
				s.n.log.Info("reader stalled: reading again", "consumer", name)
				return true, false
			}
			if time.Since(since) >= r.parkDelay && r.tryPark(cons, last, filters) {
				return true, true
			}
			continue
		}
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && s.ctx.Err() == nil {
				s.n.log.Info("reader interrupted", "consumer", name, "err", err)
			}
			return true, false
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		if meta.Sequence.Consumer != last+1 {
			// A delivery lost on its way: read again from the positions.
			return true, false
		}
		last, lastAt = meta.Sequence.Consumer, time.Now()
		since = lastAt
		s.ingest(r.typ, m, meta.Sequence.Stream)
	}
}

// nextWait is how long a reader waits for its next event before it looks
// into why none came: firstCheck for a new consumer that has read nothing
// and not asked yet, stallCheck otherwise, and never beyond the delay
// after which it parks.
func nextWait(first bool, parkDelay time.Duration) time.Duration {
	if first {
		return min(firstCheck, parkDelay)
	}
	return min(stallCheck, parkDelay)
}

// stalled says whether the reader's consumer holds events back from it:
// it delivered more than the reader received (deliveries were lost), or has
// events for it but no pull to send them on. It costs a consumer info
// request, so only readers that were busy a moment ago ask.
func (r *reader) stalled(cons jetstream.Consumer, last uint64) bool {
	ctx, cancel := context.WithTimeout(r.s.ctx, time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	}
	return info.Delivered.Consumer > last || info.NumPending > 0
}

// waitRoom waits while the instance holds too much; false when the reader
// must restart or stop.
func (r *reader) waitRoom() bool {
	s := r.s
	for {
		s.mu.Lock()
		full := s.heldN >= s.maxInFlight+heldExtra || s.held >= heldBytes
		s.mu.Unlock()
		if !full {
			return true
		}
		select {
		case <-s.room:
		case <-r.again:
			signal(r.again)
			return false
		case <-s.ctx.Done():
			return false
		}
	}
}

// ingest takes one event read from the stream.
func (s *Subscription) ingest(t string, m jetstream.Msg, seq uint64) {
	subj := m.Subject()
	p, err := strconv.Atoi(subj[strings.LastIndexByte(subj, '.')+1:])
	if err != nil {
		return
	}
	key := keyOf(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.parts[partKey{t, p}]
	if ps == nil {
		return
	}
	o, ok := ps.wants(seq)
	if !ok {
		return
	}
	e, first := ps.add(seq, key, m.Data(), o)
	s.heldN++
	s.held += len(e.data)
	if first {
		s.push(e)
		if !e.notBefore.IsZero() {
			s.watch()
		}
	}
}
