package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Spreading a group over its instances. The live instances of a (client,
// group), on any node, announce themselves on a core NATS subject
//
//	_mevents.members.<client>.<group>   {"id": "<random>", "types": [...]}
//
// every heartbeatInterval; an instance not heard of for memberTTL has
// departed (its node may be dead), one that closes says so at once. Every
// instance orders the live members of each type by id and takes the
// partitions p with p mod len(members) == its index: 1, 2, 3, 4, 6 and 12
// instances share the 12 partitions evenly; instances beyond 12 stand by.
//
// Views of the membership differ for at most a heartbeat, so two instances
// may briefly pull one partition, or none. Neither breaks the order: a
// partition consumer is pinned to one puller at a time (group.go), and a
// puller that starts hands out nothing while events others left are
// unsettled (consume_keys.go). An instance that closes releases its
// unsettled events and gives up its pins. One that vanishes (its node died)
// cannot: the instance that takes over one of its partitions takes the pin
// and releases the partition's unsettled events, so the partition resumes
// at once instead of after the ack timeout.

const (
	heartbeatInterval = time.Second
	memberTTL         = 3 * heartbeatInterval
	// joinSettle is how long a new instance listens before its first
	// assignment, so that it knows the members that answered its hello.
	joinSettle = 200 * time.Millisecond
)

type heartbeat struct {
	ID    string   `json:"id"`
	Types []string `json:"types,omitempty"`
	Hello bool     `json:"hello,omitempty"` // a new member: answer at once
	Leave bool     `json:"leave,omitempty"`
}

type memberState struct {
	types []string
	seen  time.Time
}

// membership is one instance's view of its group.
type membership struct {
	nc      *nats.Conn
	subject string
	self    heartbeat
	sub     *nats.Subscription
	changed chan struct{} // cap 1: the view changed

	mu      sync.Mutex
	members map[string]memberState
}

func membersSubject(client, group string) string {
	return "_mevents.members." + client + "." + group
}

func newMemberID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// join subscribes to the group's heartbeats and says hello.
func (n *Node) join(client, group string, types []string) (*membership, error) {
	m := &membership{
		nc: n.nc, subject: membersSubject(client, group),
		self:    heartbeat{ID: newMemberID(), Types: types},
		changed: make(chan struct{}, 1),
		members: map[string]memberState{},
	}
	m.members[m.self.ID] = memberState{types: types, seen: time.Now()}
	sub, err := n.nc.Subscribe(m.subject, m.receive)
	if err != nil {
		return nil, err
	}
	m.sub = sub
	hello := m.self
	hello.Hello = true
	m.publish(hello)
	return m, nil
}

func (m *membership) publish(h heartbeat) {
	b, _ := json.Marshal(h)
	_ = m.nc.Publish(m.subject, b)
}

func (m *membership) receive(msg *nats.Msg) {
	var h heartbeat
	if json.Unmarshal(msg.Data, &h) != nil || h.ID == "" || h.ID == m.self.ID {
		return
	}
	m.mu.Lock()
	_, known := m.members[h.ID]
	if h.Leave {
		delete(m.members, h.ID)
	} else {
		m.members[h.ID] = memberState{types: h.Types, seen: time.Now()}
	}
	m.mu.Unlock()
	if h.Hello {
		m.publish(m.self)
	}
	if known == h.Leave {
		m.signal()
	}
}

func (m *membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// beat announces this member and forgets the ones not heard of for
// memberTTL. It returns those and the members before they were forgotten.
func (m *membership) beat(now time.Time) (vanished map[string]bool, before map[string]memberState) {
	m.publish(m.self)
	m.mu.Lock()
	defer m.mu.Unlock()
	before = maps.Clone(m.members)
	for id, st := range m.members {
		if id != m.self.ID && now.Sub(st.seen) > memberTTL {
			delete(m.members, id)
			if vanished == nil {
				vanished = map[string]bool{}
			}
			vanished[id] = true
		}
	}
	m.members[m.self.ID] = memberState{types: m.self.Types, seen: now}
	return vanished, before
}

// owner returns the member of members that takes partition p of type t:
// member i of those consuming t, ordered by id, takes the partitions
// p ≡ i (mod their number).
func owner(members map[string]memberState, t string, p int) string {
	var ids []string
	for id, st := range members {
		if slices.Contains(st.types, t) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	slices.Sort(ids)
	return ids[p%len(ids)]
}

// assignment returns the partitions of type t this member takes.
func (m *membership) assignment(t string) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []int
	for p := 0; p < Partitions; p++ {
		if owner(m.members, t, p) == m.self.ID {
			parts = append(parts, p)
		}
	}
	return parts
}

// leave says goodbye, so that the others take over at once.
func (m *membership) leave() {
	_ = m.sub.Unsubscribe()
	bye := m.self
	bye.Leave = true
	m.publish(bye)
}

// balance keeps the subscription's share of the partitions up to date.
func (s *Subscription) balance() {
	defer s.wg.Done()
	defer s.members.leave()
	select {
	case <-time.After(joinSettle):
	case <-s.ctx.Done():
		return
	}
	s.rebalance()
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			if vanished, before := s.members.beat(now); len(vanished) > 0 {
				s.rebalance()
				s.adopt(vanished, before)
			}
		case <-s.members.changed:
			s.rebalance()
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Subscription) rebalance() {
	want := map[partKey]bool{}
	for _, t := range s.types {
		for _, p := range s.members.assignment(t) {
			want[partKey{t, p}] = true
		}
	}
	s.pullOnly(want)
}

// adopt releases the unsettled events of each partition this subscription
// pulls now that a vanished member owned (among the members before). It
// retries in the background while the consumers' leaders move (the
// vanished node may have led them).
func (s *Subscription) adopt(vanished map[string]bool, before map[string]memberState) {
	var gained []jetstream.Consumer
	s.pullMu.Lock()
	for k := range s.pullers {
		if vanished[owner(before, k.typ, k.partition)] {
			gained = append(gained, s.consumers[k])
		}
	}
	s.pullMu.Unlock()
	if len(gained) == 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, c := range gained {
			for attempt := 0; attempt < 10 && s.ctx.Err() == nil; attempt++ {
				if s.releaseVanished(c) == nil {
					break
				}
				select {
				case <-time.After(500 * time.Millisecond):
				case <-s.ctx.Done():
				}
			}
		}
	}()
}

// releaseVanished takes the pin of partition consumer c and releases its
// unsettled events, except those this subscription holds: every event
// between the consumer's ack floor and its last delivery is released (an
// ack subject can be made from the consumer's state; JetStream ignores
// those not pending). Beyond maxRelease of them it leaves the rest to
// their ack timeout.
func (s *Subscription) releaseVanished(c jetstream.Consumer) error {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumAckPending == 0 {
		return nil
	}
	s.mu.Lock()
	mine := map[uint64]bool{}
	pinned := false
	if ps := s.parts[info.Stream+" "+info.Name]; ps != nil {
		pinned = ps.pinned
		for seq := range ps.bySeq {
			mine[seq] = true
		}
	}
	s.mu.Unlock()
	if !pinned {
		if err := s.n.unpin(ctx, info.Stream, info.Name); err != nil {
			return err
		}
	}
	from, to := info.AckFloor.Stream+1, info.Delivered.Stream
	if to-from >= maxRelease {
		to = from + maxRelease - 1
	}
	for seq := from; seq <= to; seq++ {
		if mine[seq] {
			continue
		}
		reply := fmt.Sprintf("$JS.ACK.%s.%s.1.%d.%d.0.0", info.Stream, info.Name, seq, info.Delivered.Consumer)
		if err := s.n.nc.Publish(reply, []byte("-NAK")); err != nil {
			return err
		}
	}
	return s.n.nc.FlushWithContext(ctx)
}

// maxRelease bounds the releases of one vanished partition.
const maxRelease = 100_000
