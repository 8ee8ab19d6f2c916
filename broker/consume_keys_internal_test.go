package broker

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestCheckSafe: the safe start ends after two checks that find no
// unsettled events but the puller's own, whatever checks in between find
// only deliveries on their way to it; one that finds others starts the
// count again; deliveries on their way for lostAfter are taken for lost.
func TestCheckSafe(t *testing.T) {
	s := &Subscription{wake: make(chan struct{}, 1)}
	ps := newPartState(partKey{"t", 0}, "EV_t", "g1_c_g_0")
	ps.pinned = true
	hold := func(seq uint64) {
		e := &entry{ps: ps, seq: seq, key: "k", state: held}
		ps.add(e)
		ps.lastDelivery = seq
	}
	hold(1)
	hold(2)
	info := func(pending int, delivered uint64) *jetstream.ConsumerInfo {
		return &jetstream.ConsumerInfo{NumAckPending: pending,
			Delivered: jetstream.SequenceInfo{Consumer: delivered, Stream: delivered}}
	}
	type want struct {
		safe bool
		calm int
		gap  bool
	}
	check := func(step string, i *jetstream.ConsumerInfo, w want) {
		t.Helper()
		s.checkSafe(ps, i)
		if got := (want{ps.safe, ps.calm, ps.gap}); got != w {
			t.Fatalf("%s: got %+v, want %+v", step, got, w)
		}
	}

	check("others' event pending", info(3, 2), want{safe: true})
	check("none but its own", info(2, 2), want{safe: true, calm: 1})
	check("one delivery on its way", info(3, 3), want{safe: true, calm: 1})
	check("on its way and another's", info(4, 3), want{safe: true})
	check("none but its own again", info(2, 2), want{safe: true, calm: 1})
	hold(3) // the one on its way came
	check("and again", info(3, 3), want{safe: false, calm: 1})
	if len(s.ready) != 1 || s.ready[0].seq != 1 {
		t.Fatalf("ready after the safe start: %d entries, want the key's first", len(s.ready))
	}

	// A delivery that does not come.
	ps.safe, ps.calm = true, 0
	check("on its way", info(4, 4), want{safe: true})
	ps.comingSince = ps.comingSince.Add(-lostAfter)
	check("on its way for lostAfter", info(4, 4), want{safe: true, gap: true})
}

// TestRestartPart: after a forgotten pin the new puller state keeps the
// events handed out and unsettled, not those settled since the old one
// stopped, nor what it held (released when it stopped), and starts with a
// gap, numbering afresh; after another puller took the pin it starts
// afresh altogether.
func TestRestartPart(t *testing.T) {
	s := &Subscription{wake: make(chan struct{}, 1), parts: map[string]*partState{}, pending: map[string]*entry{}}
	old := func() *partState {
		ps := newPartState(partKey{"t", 0}, "EV_t", "g1_c_g_0")
		ps.pinned, ps.safe, ps.lastDelivery = true, false, 9
		for seq, st := range map[uint64]entryState{1: handed, 2: handed, 3: held} {
			e := &entry{ps: ps, seq: seq, key: "k", state: st}
			ps.add(e)
			if seq == 1 {
				s.pending[e.ackKey()] = e // seq 2 was settled after ps stopped
			}
		}
		return ps
	}

	ps := s.restartPart(old(), true)
	if !ps.safe || !ps.gap || ps.lastDelivery != 0 || len(ps.bySeq) != 1 || ps.bySeq[1] == nil || ps.bySeq[1].ps != ps {
		t.Fatalf("after a forgotten pin: safe %v gap %v last %d entries %v, want safe, a gap, no last delivery, entry 1 only",
			ps.safe, ps.gap, ps.lastDelivery, ps.bySeq)
	}
	if s.parts[ps.id()] != ps {
		t.Fatal("the new state is not the partition's")
	}
	ps = s.restartPart(old(), false)
	if !ps.safe || ps.gap || ps.lastDelivery != 0 || len(ps.bySeq) != 0 {
		t.Fatalf("after another took the pin: safe %v gap %v last %d entries %d, want a fresh safe start",
			ps.safe, ps.gap, ps.lastDelivery, len(ps.bySeq))
	}
}
