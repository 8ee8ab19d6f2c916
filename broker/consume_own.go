package broker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Owning partitions. The group's membership (group_members.go) says which
// partitions an instance takes; the cursor says who delivers a partition
// now. An instance that gains a partition waits until the cursor's owner
// gave it up (owner "") or is no longer a live member of the group, at most
// handoverWait, and then writes itself in as owner with the next epoch
// (a conditional write: of two instances that try at once, one wins). An
// instance that loses a partition stops handing its events out and writes
// the cursor once more with owner "": the events it had out are open in
// it, and the next owner delivers them again at once.
//
// Every cursor write of the owner is conditional on the revision it last
// wrote: one that finds another revision means another instance took the
// partition (the views of the membership differed, or this instance was
// taken for gone), and the owner drops it at once.
//
// An owner finds that out only at its next write, and hands events out
// until ownLease after its last successful one. So a new owner that took
// a partition from an owner that did not give it up (one taken for gone,
// or still live after handoverWait) delivers nothing until that owner's
// lease has run out: ownLease after the previous write, by the store's
// timestamp of it (with clockMargin for the nodes' clocks), at most
// ownLease after its own write. Else an event acknowledged through the
// new owner could still go out from the old one: a succeeded ack undone.
// An owner that died long before costs no wait; one taken over while it
// was writing costs its successor up to ownLease.

const (
	// handoverWait bounds how long a new owner waits for a live previous
	// owner to give a partition up.
	handoverWait = 5 * time.Second
	// lazyCommit is how long a cursor change that nobody waits for (a
	// delivery) may wait for its write, so that deliveries cost few writes.
	lazyCommit = 200 * time.Millisecond
	// commitGap is the least time between the starts of two commit rounds
	// of an instance that has deliveries out: settlements that come
	// meanwhile share the next round's writes. Every cursor write is a
	// replicated, fsynced write of its own, so under load the rounds, not
	// the events, make the cursor store's cost. Credit comes back when a
	// settlement is applied, not when it is stored, so the gap slows no
	// delivery; an instance with nothing out (its consumer waits for its
	// settlements, one at a time) commits at once.
	commitGap = 50 * time.Millisecond
	// commitTimeout bounds one commit round.
	commitTimeout = 10 * time.Second
	// ownLease is how long after its last successful conditional write an
	// owner hands events of a partition out without writing again. It is
	// shorter than the time the others take to count it gone (memberTTL
	// after its last heartbeat, which comes at most heartbeatInterval
	// before it is cut off), so that an owner cut off from the cluster
	// stops delivering before another instance takes its partitions, and
	// one that comes back writes — and finds out it lost them — before it
	// delivers anything again.
	ownLease = memberTTL - heartbeatInterval - 500*time.Millisecond
	// clockMargin is how far apart the nodes' clocks may be when a new
	// owner reads how long ago the previous owner last wrote.
	clockMargin = 500 * time.Millisecond
)

// Errors of settlements, as clients read them.
var (
	errMoved = errors.New("the delivery is no longer current: its partition moved to another instance; the event will be delivered again")
	errStale = errors.New("the delivery is no longer current: the event was delivered again since, or passed its ack timeout; it will be delivered again")
	errStore = errors.New("the group position store did not confirm; retry")
)

// balance keeps the subscription's share of the partitions up to date.
func (s *Subscription) balance() {
	defer s.wg.Done()
	defer s.members.leave()
	if s.n.cfg.Clustered() {
		select {
		case <-time.After(joinSettle):
		case <-s.ctx.Done():
			return
		}
	}
	s.rebalance()
	// The node's beat expires vanished members (hub.expireLocked) and
	// signals changed: an idle instance has no timer of its own.
	for {
		select {
		case <-s.members.changed:
			s.rebalance()
		case <-s.ctx.Done():
			return
		}
	}
}

// rebalance takes the partitions the membership gives this instance and
// gives up the others.
func (s *Subscription) rebalance() {
	want := map[partKey]bool{}
	for _, t := range s.types {
		for _, p := range s.members.assignment(t) {
			want[partKey{t, p}] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	for k := range s.parts {
		if !want[k] {
			s.releaseLocked(k)
		}
	}
	for k, cancel := range s.taking {
		if !want[k] {
			cancel()
			delete(s.taking, k)
		}
	}
	for k := range want {
		if s.parts[k] != nil || s.taking[k] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		s.taking[k] = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.takeover(ctx, k)
		}()
	}
}

// takeover claims partition k until it has it or ctx ends.
func (s *Subscription) takeover(ctx context.Context, k partKey) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		c, rev, sent, quiet, err := s.claim(ctx, k)
		if err == nil {
			if quiet > 0 { // the previous owner's lease runs out first
				select {
				case <-time.After(quiet):
				case <-ctx.Done():
				}
			}
			s.install(ctx, k, c, rev, sent)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.n.log.Warn("take a partition over", "client", s.client.ID, "group", s.group, "type", k.typ, "partition", k.partition, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// claim makes this instance the owner of partition k's cursor; sent is
// when the write that did it was sent, quiet how long the instance must
// wait before it delivers (the previous owner's lease).
func (s *Subscription) claim(ctx context.Context, k partKey) (c cursor, rev uint64, sent time.Time, quiet time.Duration, err error) {
	kv, err := s.n.cursorsKV(ctx)
	if err != nil {
		return cursor{}, 0, sent, 0, err
	}
	key := cursorKey(s.client.ID, s.group, k.typ, k.partition)
	deadline := time.Now().Add(handoverWait)
	for {
		var upgraded bool
		c, rev, quiet = cursor{}, 0, 0
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if c, upgraded, err = s.startCursor(ctx, k.typ, k.partition); err != nil {
				return cursor{}, 0, sent, 0, err
			}
		case err != nil:
			return cursor{}, 0, sent, 0, err
		default:
			if c, err = parseCursor(e.Value()); err != nil {
				return cursor{}, 0, sent, 0, err
			}
			rev = e.Revision()
			if c.owner != "" && c.owner != s.id {
				if s.members.alive(k.typ, c.owner) && time.Now().Before(deadline) {
					select { // the previous owner gives it up soon
					case <-time.After(50 * time.Millisecond):
					case <-ctx.Done():
						return cursor{}, 0, sent, 0, ctx.Err()
					}
					continue
				}
				// It did not give it up: what may be left of its lease.
				quiet = leaseLeft(time.Since(e.Created()))
			}
		}
		c.owner, c.node, c.epoch = s.id, s.n.cfg.Name, c.epoch+1
		sent = time.Now()
		f, err := s.n.casCursor(key, &c, rev)
		if err != nil {
			return cursor{}, 0, sent, 0, err
		}
		rev, err = awaitAck(ctx, f)
		if isLost(err) {
			continue // another instance wrote it meanwhile: read again
		}
		if err == nil && upgraded {
			s.n.dropOldConsumer(ctx, s.client.ID, s.group, k.typ, k.partition)
		}
		return c, rev, sent, quiet, err
	}
}

// leaseLeft is how long a new owner waits before it delivers, the
// previous owner (which did not give the partition up) having written
// its cursor since ago: what may be left of that owner's lease.
func leaseLeft(since time.Duration) time.Duration {
	return min(ownLease, max(0, ownLease+clockMargin-since))
}

// install makes a claimed partition owned, unless ctx ended meanwhile (the
// partition is no longer this instance's): then it gives it up again.
func (s *Subscription) install(ctx context.Context, k partKey, c cursor, rev uint64, sent time.Time) {
	p := newPart(k, cursorKey(s.client.ID, s.group, k.typ, k.partition), c)
	p.rev, p.confirmed = rev, sent
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil || s.closing {
		p.gone, p.releasing, p.dirty = true, true, true
		s.releasing[k] = p
		signal(s.commitKick)
		return
	}
	delete(s.taking, k)
	s.parts[k] = p
	s.readerFor(k.typ).restart()
}

// releaseLocked gives partition k up: nothing more of it goes out, and
// the next commit round writes it with owner "". s.mu is held.
func (s *Subscription) releaseLocked(k partKey) {
	p := s.parts[k]
	if p == nil {
		return
	}
	s.dropPartLocked(p)
	p.releasing, p.dirty = true, true
	s.releasing[k] = p
	signal(s.commitKick)
}

// dropPartLocked stops handing out p's events and forgets what it held.
func (s *Subscription) dropPartLocked(p *part) {
	p.gone = true
	if s.parts[p.k] == p {
		delete(s.parts, p.k)
	}
	for _, e := range p.bySeq {
		if e.out {
			s.outN--
		}
		s.heldN--
		s.held -= len(e.data)
	}
	if r := s.readers[p.k.typ]; r != nil {
		r.restart()
	}
	signal(s.room)
	signal(s.wake)
}

// commitLoop writes changed cursors: as soon as commitGap allows when a
// settlement waits for it, within lazyCommit otherwise.
func (s *Subscription) commitLoop() {
	defer s.wg.Done()
	var last time.Time // the start of the last round
	for {
		select {
		case <-s.commitKick:
		case <-s.ctx.Done():
			return
		}
		if !s.urgent() {
			t := time.NewTimer(lazyCommit)
		wait:
			for {
				select {
				case <-t.C:
					break wait
				case <-s.commitKick:
					if s.urgent() {
						t.Stop()
						break wait
					}
				case <-s.ctx.Done():
					t.Stop()
					return
				}
			}
		}
		if gap := commitGap - time.Since(last); gap > 0 && s.busy() {
			select {
			case <-time.After(gap):
			case <-s.ctx.Done():
				return
			}
		}
		last = time.Now()
		if !s.commitRound(s.ctx) {
			select { // the store did not answer: try again shortly
			case <-time.After(200 * time.Millisecond):
				signal(s.commitKick)
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// busy says whether the instance has deliveries out.
func (s *Subscription) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outN > 0
}

// urgent says whether a settlement or a release waits for a write.
func (s *Subscription) urgent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.releasing) > 0 {
		return true
	}
	for _, p := range s.parts {
		if p.next != nil || p.renew {
			return true
		}
	}
	return false
}

type pendingWrite struct {
	p    *part
	sent time.Time
	c    cursor
	f    jetstream.PubAckFuture
	err  error
	wait *commitWait
}

// commitRound writes every changed cursor once and answers the
// settlements that waited for it. It reports false when a write failed
// for another reason than a lost partition.
func (s *Subscription) commitRound(ctx context.Context) bool {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var writes []*pendingWrite
	s.mu.Lock()
	collect := func(p *part) {
		if !p.dirty && p.next == nil {
			return
		}
		w := &pendingWrite{p: p, sent: time.Now(), c: p.snapshot(s.id, s.n.cfg.Name), wait: p.next}
		p.dirty, p.next = false, nil
		w.f, w.err = s.n.casCursor(p.key, &w.c, p.rev)
		writes = append(writes, w)
	}
	for _, p := range s.parts {
		collect(p)
	}
	for _, p := range s.releasing {
		collect(p)
	}
	s.mu.Unlock()
	if len(writes) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	revs := make([]uint64, len(writes))
	for i, w := range writes {
		if w.err == nil {
			revs[i], w.err = awaitAck(ctx, w.f)
		}
	}
	ok := true
	s.mu.Lock()
	for i, w := range writes {
		p := w.p
		switch {
		case w.err == nil:
			p.rev, p.confirmed = revs[i], w.sent
			if p.releasing && s.releasing[p.k] == p {
				delete(s.releasing, p.k)
			}
			if p.renew && !p.gone {
				for _, e := range p.leaseWait {
					s.push(e)
				}
			}
			p.renew, p.leaseWait = false, nil
		case isLost(w.err):
			// Another instance owns it now: what was out here is void.
			s.n.log.Info("partition taken over by another instance", "client", s.client.ID, "group", s.group, "type", p.k.typ, "partition", p.k.partition)
			s.dropPartLocked(p)
			if s.releasing[p.k] == p {
				delete(s.releasing, p.k)
			}
			if !s.closing {
				s.rebalanceLater()
			}
		default:
			s.n.log.Warn("write group cursor", "key", p.key, "err", w.err)
			p.dirty = true
			ok = false
		}
	}
	s.mu.Unlock()
	for _, w := range writes {
		var err error
		switch {
		case w.err == nil:
		case isLost(w.err):
			err = errMoved
		default:
			err = errStore
		}
		if w.wait != nil {
			w.wait.finish(err, nil)
		}
	}
	return ok
}

// rebalanceLater asks the balancer to look at the assignment again (a
// partition lost to another instance may be this one's again later).
func (s *Subscription) rebalanceLater() { s.members.signal() }
