package broker

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Membership hubs: a node's one voice per (client, group) in the group's
// membership protocol (group_members.go). A hub holds the node's instances
// of the group (local) and the lists other nodes' hubs announced (remote),
// keeps the view of them all up to date, and signals the local instances
// whose assignment a change moved: a few owners, not every instance. Its
// goroutine publishes the heartbeats and the announcements; its core NATS
// subscription receives the other hubs'. The node owns its hubs: a hub
// stops when its last instance leaves or the node closes.

// hubKey names a group.
type hubKey struct{ client, group string }

// hubs are a node's hubs.
type hubs struct {
	mu      sync.Mutex
	closed  bool
	byKey   map[hubKey]*hub
	beating bool               // the beat goroutine runs
	beatSub *nats.Subscription // the other nodes' beats
	stop    chan struct{}      // closed by close: the beat goroutine ends
	wg      sync.WaitGroup     // hub and beat goroutines

	// heard holds the other nodes' beats as last parsed, by the hash of
	// their bytes: a node's beat repeats itself while its groups' members
	// do not change (its hubs go out in order), and parsing it again every
	// second was most of what idle groups cost a node. Only the beat
	// subscription's callback uses it.
	heard     map[uint64]*heardBeat
	heardSeed maphash.Seed
}

// heardBeat is a beat as received and parsed.
type heardBeat struct {
	data []byte
	in   beatMsg
	used time.Time
}

// errNodeClosed is returned by join once the node is closing.
var errNodeClosed = errors.New("node closed")

// join adds m to the hub of key, creating it if there is none.
func (hs *hubs) join(n *Node, key hubKey, m *membership) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return errNodeClosed
	}
	if h := hs.byKey[key]; h != nil {
		h.mu.Lock()
		h.addLocked(m)
		h.mu.Unlock()
		h.nudge()
		return nil
	}
	h := &hub{
		n: n, key: key, id: newMemberID(), subject: membersSubject(key.client, key.group),
		announce: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		local: map[string]*membership{}, remote: map[string]*remoteHub{}, cur: view{},
	}
	h.addLocked(m) // not shared yet
	if err := hs.beatLocked(n); err != nil {
		return err
	}
	sub, err := n.nc.Subscribe(h.subject, h.receive)
	if err != nil {
		return err
	}
	h.sub = sub
	h.publish(true, false)
	if hs.byKey == nil {
		hs.byKey = map[hubKey]*hub{}
	}
	hs.byKey[key] = h
	hs.wg.Add(1)
	go func() {
		defer hs.wg.Done()
		h.run()
	}()
	return nil
}

// leave removes m from its hub, and the hub from the node when m was its
// last member; then it waits for the hub's goroutine to end.
func (hs *hubs) leave(m *membership) {
	h := m.hub
	hs.mu.Lock()
	h.mu.Lock()
	before := h.cur.heads(m.types)
	delete(h.local, m.id)
	h.localMsg = nil
	h.cur.remove(m.id, m.types)
	h.movedLocked(before)
	empty := len(h.local) == 0
	h.mu.Unlock()
	if empty && hs.byKey[h.key] == h {
		delete(hs.byKey, h.key)
	}
	hs.mu.Unlock()
	if !empty {
		h.nudge()
		return
	}
	h.halt(true)
	<-h.done
}

// close stops every hub without a bye (their instances vanish for the
// other nodes, as they released nothing) and the beat, and waits for them.
func (hs *hubs) close() {
	hs.mu.Lock()
	hs.closed = true
	all := slices.Collect(maps.Values(hs.byKey))
	clear(hs.byKey)
	if hs.beating {
		close(hs.stop)
		_ = hs.beatSub.Unsubscribe()
	}
	hs.mu.Unlock()
	for _, h := range all {
		h.halt(false)
	}
	hs.wg.Wait()
}

// beatLocked starts the node's beat when it does not run yet: every
// heartbeatInterval one message on beatSubject carries the lists of all
// the node's hubs (chunked to fit NATS's payload limit), and the other
// nodes' beats are applied to the hubs here. hs.mu is held.
func (hs *hubs) beatLocked(n *Node) error {
	if hs.beating {
		return nil
	}
	sub, err := n.nc.Subscribe(beatSubject, func(msg *nats.Msg) { hs.receiveBeat(n, msg) })
	if err != nil {
		return err
	}
	hs.beating, hs.beatSub, hs.stop = true, sub, make(chan struct{})
	hs.wg.Add(1)
	go func() {
		defer hs.wg.Done()
		tick := time.NewTicker(heartbeatInterval)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				hs.beat(n, now)
			case <-hs.stop:
				return
			}
		}
	}()
	return nil
}

// beatSubject is the core NATS subject of the nodes' beats.
const beatSubject = "_mevents.beat"

// beatMsg is one message of a node's beat.
type beatMsg struct {
	Node string      `json:"node"`
	Hubs []beatEntry `json:"hubs"`
}

type beatEntry struct {
	Client  string          `json:"client"`
	Group   string          `json:"group"`
	Hub     string          `json:"hub"`
	Members json.RawMessage `json:"members"`
}

// beat forgets the remote hubs not heard of for memberTTL and publishes
// the node's hubs' lists.
func (hs *hubs) beat(n *Node, now time.Time) {
	hs.mu.Lock()
	all := slices.SortedFunc(maps.Values(hs.byKey), func(a, b *hub) int {
		return cmp.Or(strings.Compare(a.key.client, b.key.client), strings.Compare(a.key.group, b.key.group))
	})
	hs.mu.Unlock()
	limit := int(n.nc.MaxPayload()) / 2
	var b []byte
	flush := func() {
		if len(b) > 0 {
			b = append(b, "]}"...)
			_ = n.nc.Publish(beatSubject, b)
		}
		b = nil
	}
	for _, h := range all {
		h.mu.Lock()
		h.expireLocked(now)
		members := h.localListLocked()
		h.mu.Unlock()
		entry, _ := json.Marshal(beatEntry{Client: h.key.client, Group: h.key.group, Hub: h.id, Members: members})
		if len(b) > 0 && len(b)+len(entry) > limit {
			flush()
		}
		if len(b) == 0 {
			head, _ := json.Marshal(n.cfg.Name)
			b = append(append(append(b, `{"node":`...), head...), `,"hubs":[`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, entry...)
	}
	flush()
}

// receiveBeat applies another node's beat to the hubs of the groups this
// node has instances of.
func (hs *hubs) receiveBeat(n *Node, msg *nats.Msg) {
	now := time.Now()
	in, ok := hs.parseBeat(msg.Data, now)
	if !ok || in.Node == n.cfg.Name {
		return
	}
	for _, e := range in.Hubs {
		hs.mu.Lock()
		h := hs.byKey[hubKey{e.Client, e.Group}]
		hs.mu.Unlock()
		if h != nil {
			h.apply(hubMsg{Hub: e.Hub, Node: in.Node, Members: e.Members}, now)
		}
	}
}

// parseBeat parses a beat, or finds it among those heard before.
func (hs *hubs) parseBeat(data []byte, now time.Time) (beatMsg, bool) {
	if hs.heard == nil {
		hs.heard, hs.heardSeed = map[uint64]*heardBeat{}, maphash.MakeSeed()
	}
	sum := maphash.Bytes(hs.heardSeed, data)
	if b := hs.heard[sum]; b != nil && bytes.Equal(b.data, data) {
		b.used = now
		return b.in, true
	}
	var in beatMsg
	if json.Unmarshal(data, &in) != nil {
		return beatMsg{}, false
	}
	for k, b := range hs.heard {
		if now.Sub(b.used) > memberTTL {
			delete(hs.heard, k) // a beat since replaced
		}
	}
	hs.heard[sum] = &heardBeat{data: bytes.Clone(data), in: in, used: now}
	return in, true
}

// count returns the number of hubs (tests).
func (hs *hubs) count() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.byKey)
}

// hub is a node's voice in one group's membership.
type hub struct {
	n        *Node
	key      hubKey
	id       string
	subject  string
	sub      *nats.Subscription
	announce chan struct{} // cap 1: the local members changed, or a hello came
	stop     chan struct{} // closed by halt
	halting  sync.Once
	bye      bool // say bye when stopping; set by halt before stop closes
	done     chan struct{}

	mu       sync.Mutex
	local    map[string]*membership // by member id
	localMsg json.RawMessage        // the local members as published; nil after a change
	remote   map[string]*remoteHub  // by hub id
	cur      view                   // every member, local and remote
}

// remoteHub is what a hub knows of another.
type remoteHub struct {
	raw     json.RawMessage // its members as it published them
	members map[string]memberState
	seen    time.Time
}

// hubMsg is a message of the protocol (group_members.go).
type hubMsg struct {
	Hub     string          `json:"hub"`
	Node    string          `json:"node,omitempty"`
	Hello   bool            `json:"hello,omitempty"`
	Bye     bool            `json:"bye,omitempty"`
	Members json.RawMessage `json:"members,omitempty"` // spliced in by publish
}

type wireMember struct {
	ID    string   `json:"id"`
	Types []string `json:"types"`
}

// run publishes the announcements until halt (the node's beat carries the
// heartbeats).
func (h *hub) run() {
	defer close(h.done)
	var gap <-chan time.Time // while set, an announcement waits for it
	waiting := false
	for {
		select {
		case <-h.announce:
			if gap != nil {
				waiting = true
				continue
			}
			h.publish(false, false)
			gap = time.After(announceGap)
		case <-gap:
			gap = nil
			if waiting {
				waiting = false
				h.publish(false, false)
				gap = time.After(announceGap)
			}
		case <-h.stop:
			if h.bye {
				h.publish(false, true)
			}
			_ = h.sub.Unsubscribe()
			return
		}
	}
}

// halt stops the hub's goroutine; bye says whether it says goodbye.
func (h *hub) halt(bye bool) {
	h.halting.Do(func() {
		h.bye = bye
		close(h.stop)
	})
}

// nudge asks the goroutine to announce the local members.
func (h *hub) nudge() {
	select {
	case h.announce <- struct{}{}:
	default:
	}
}

// localListLocked returns the local members as published.
func (h *hub) localListLocked() json.RawMessage {
	if h.localMsg == nil {
		list := make([]wireMember, 0, len(h.local))
		for id, m := range h.local {
			list = append(list, wireMember{ID: id, Types: m.types})
		}
		slices.SortFunc(list, func(a, b wireMember) int { return strings.Compare(a.ID, b.ID) })
		h.localMsg, _ = json.Marshal(list)
	}
	return h.localMsg
}

// publish sends the local members (none with bye).
func (h *hub) publish(hello, bye bool) {
	members := json.RawMessage("[]")
	if !bye {
		h.mu.Lock()
		members = h.localListLocked()
		h.mu.Unlock()
	}
	// The list is spliced in rather than marshalled again each heartbeat.
	head, _ := json.Marshal(hubMsg{Hub: h.id, Node: h.n.cfg.Name, Hello: hello, Bye: bye})
	b := make([]byte, 0, len(head)+len(members)+12)
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"members":`...)
	b = append(b, members...)
	b = append(b, '}')
	_ = h.n.nc.Publish(h.subject, b)
}

// receive applies another hub's message.
func (h *hub) receive(msg *nats.Msg) {
	var in hubMsg
	if json.Unmarshal(msg.Data, &in) != nil {
		return
	}
	h.apply(in, time.Now())
	if in.Hello && in.Hub != h.id {
		h.nudge() // answered once per node
	}
}

// apply applies another hub's list (an announcement or a beat).
func (h *hub) apply(in hubMsg, now time.Time) {
	if in.Hub == "" || in.Hub == h.id {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	before := h.cur.heads(nil)
	if h.applyLocked(in, now) {
		h.cur = newView(h.membersLocked())
		h.movedLocked(before)
	}
}

// applyLocked records a remote hub's list and reports whether the members
// changed. A heartbeat repeating the previous list changes nothing.
func (h *hub) applyLocked(in hubMsg, now time.Time) bool {
	r := h.remote[in.Hub]
	if in.Bye {
		delete(h.remote, in.Hub)
		return r != nil && len(r.members) > 0
	}
	if r != nil && bytes.Equal(r.raw, in.Members) {
		r.seen = now
		return false
	}
	var list []wireMember
	if json.Unmarshal(in.Members, &list) != nil {
		return false
	}
	members := make(map[string]memberState, len(list))
	for _, w := range list {
		members[w.ID] = memberState{types: w.Types}
	}
	h.remote[in.Hub] = &remoteHub{raw: in.Members, members: members, seen: now}
	if r == nil {
		return len(members) > 0
	}
	return !maps.EqualFunc(r.members, members, func(a, b memberState) bool { return slices.Equal(a.types, b.types) })
}

// expireLocked forgets the remote hubs not heard of for memberTTL. When
// members went with them, it signals every local member: besides the
// assignments that moved, a partition the vanished owned may now be
// claimed. The node's beat calls it for every hub each heartbeatInterval,
// so instances need no timer of their own.
func (h *hub) expireLocked(now time.Time) {
	var gone []string
	members := false
	for id, r := range h.remote {
		if now.Sub(r.seen) > memberTTL {
			gone = append(gone, id)
			members = members || len(r.members) > 0
		}
	}
	if !members {
		for _, id := range gone {
			delete(h.remote, id)
		}
		return
	}
	for _, id := range gone {
		delete(h.remote, id)
	}
	h.cur = newView(h.membersLocked())
	for _, m := range h.local {
		m.signal()
	}
}

// addLocked adds a local member.
func (h *hub) addLocked(m *membership) {
	m.hub = h
	before := h.cur.heads(m.types)
	h.local[m.id] = m
	h.localMsg = nil
	h.cur.add(m.id, m.types)
	h.movedLocked(before)
}

// movedLocked signals the local members whose assignment differs from
// what before says.
func (h *hub) movedLocked(before heads) {
	h.cur.moved(before, func(id string) {
		if m := h.local[id]; m != nil {
			m.signal()
		}
	})
}

// membersLocked returns every member the hub knows, local and remote.
func (h *hub) membersLocked() map[string]memberState {
	all := make(map[string]memberState, len(h.local))
	for id, m := range h.local {
		all[id] = memberState{types: m.types}
	}
	for _, r := range h.remote {
		maps.Copy(all, r.members)
	}
	return all
}
