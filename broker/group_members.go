package broker

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	"github.com/mevents/mevents"
)

// Spreading a group over its instances. Every live instance of a (client,
// group), on any node, is a member with a random id and its types. Each
// instance orders the live members of each type by id and takes the
// partitions p with p mod len(members) == its index: 1, 2, 3, 4, 6 and 12
// instances share the 12 partitions evenly; instances beyond 12 stand by.
//
// The members are known through the nodes, not each instance by each
// other: a node keeps one hub per (client, group) that has instances on it
// (group_hub.go). The hub speaks for all of the node's instances of the
// group, and the node's beat for all of its hubs, so an idle group costs no
// message of its own. On the core NATS subject
//
//	_mevents.members.<client>.<group>
//
// each hub publishes JSON objects
//
//	{"hub": "<random id>", "node": "<server name>",
//	 "members": [{"id": "<member id>", "types": ["<type>", …]}, …],
//	 "hello": true, "bye": true}
//
// where members are the hub's local instances sorted by id, and "members"
// replaces the hub's previous list at every receiver. A hub publishes
//   - with "hello" when it is created (its node's first instance of the
//     group joins): every other hub answers with its list at once, so the
//     new instance knows the group within joinSettle;
//   - its new list at once when a local instance joins or leaves, at most
//     one message per announceGap (a burst of joins or leaves costs a few
//     messages, not one each);
//   - with "bye" and no members when its last local instance leaves; then
//     it unsubscribes and is gone.
//
// The heartbeats travel together: every heartbeatInterval a node that has
// hubs publishes on _mevents.beat
//
//	{"node": "<server name>", "hubs": [{"client": "…", "group": "…",
//	 "hub": "<hub id>", "members": [<as above>]}, …]}
//
// (in as many messages as NATS's payload limit needs), and each node hands
// every entry to its own hub of that group, if it has one, as that hub's
// heartbeat. Three nodes with hundreds of idle groups exchange a few
// messages a second, not one per group and node.
//
// A hub not heard of for memberTTL has vanished with all its members (its
// node died or was cut off). A node that shuts down with instances still
// open says nothing: they vanish too, as they released nothing. All nodes
// of a cluster must speak the same version of this format. (During a
// rolling upgrade from an earlier format — one message per instance, or
// per hub heartbeats — instances on old and new nodes do not see each
// other, or see each other vanish between announcements, and may claim the
// same partitions in turn; the cursor's single owner keeps the order.)
//
// Views of the membership differ for at most a heartbeat, so two instances
// may briefly want one partition, or none. Neither breaks the order: the
// partition's cursor has one owner at a time (consume_own.go): an instance
// claims it only once the previous owner gave it up or is no longer a
// member, and an owner whose conditional write fails drops the partition.
// An instance that closes gives its partitions up; one that vanishes (its
// node died) cannot, and the next owner claims each of them once the
// members forget it (memberTTL); its unsettled events go out again at once.

const (
	heartbeatInterval = time.Second
	memberTTL         = 3 * heartbeatInterval
	// joinSettle is how long a new instance listens before its first
	// assignment, so that it knows the members that answered its hello.
	joinSettle = 200 * time.Millisecond
	// announceGap is the least time between two announcements of a hub's
	// changes (heartbeats aside).
	announceGap = 50 * time.Millisecond
)

// memberState is what the group knows of one member.
type memberState struct {
	types []string
}

// membership is one instance's handle on its group's hub.
type membership struct {
	id      string
	types   []string
	hub     *hub
	changed chan struct{} // cap 1: the member's assignment changed, or members vanished
}

func membersSubject(client, group string) string {
	return "_mevents.members." + client + "." + group
}

func newMemberID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// join makes id a new member of the group, through the node's hub of the
// group, which it creates (subscribes and says hello) if there is none.
func (n *Node) join(id, client, group string, types []string) (*membership, error) {
	m := &membership{id: id, types: types, changed: make(chan struct{}, 1)}
	if err := n.hubs.join(n, hubKey{client, group}, m); err != nil {
		return nil, err
	}
	return m, nil
}

// signal tells the member that its assignment changed; it never blocks.
func (m *membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// alive says whether member id consumes type t in the group, as far as
// this node knows.
func (m *membership) alive(t, id string) bool {
	h := m.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	_, found := slices.BinarySearch(h.cur[t], id)
	return found
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

// view is the live members of each type sorted by id, kept up to date by
// the hub at each change, so that an instance's assignment is a binary
// search rather than owner's sort for each partition: a group with a
// thousand instances asks it a thousand times.
type view map[string][]string // by type

func newView(members map[string]memberState) view {
	v := view{}
	for id, st := range members {
		for _, t := range st.types {
			v[t] = append(v[t], id)
		}
	}
	for t, ids := range v {
		slices.Sort(ids)
		v[t] = slices.Compact(ids) // a type named twice
	}
	return v
}

// add adds a member; remove removes one.
func (v view) add(id string, types []string) {
	for _, t := range types {
		if i, found := slices.BinarySearch(v[t], id); !found {
			v[t] = slices.Insert(v[t], i, id)
		}
	}
}

func (v view) remove(id string, types []string) {
	for _, t := range types {
		if i, found := slices.BinarySearch(v[t], id); found {
			v[t] = slices.Delete(v[t], i, i+1)
		}
		if len(v[t]) == 0 {
			delete(v, t)
		}
	}
}

// assignment returns the partitions of type t that member id takes, the
// same as owner says.
func (v view) assignment(t, id string) []int {
	i, found := slices.BinarySearch(v[t], id)
	if !found {
		return nil
	}
	return partitionsOf(i, len(v[t]))
}

// partitionsOf returns the partitions of member i of n: p ≡ i (mod n).
func partitionsOf(i, n int) []int {
	var parts []int
	for p := i; p < mevents.Partitions; p += n {
		parts = append(parts, p)
	}
	return parts
}

// heads is what decides the assignments of a type: its first Partitions
// members (the others take nothing) and their number.
type heads map[string]head

type head struct {
	ids []string
	n   int
}

// heads returns the heads of types (every type when nil) for moved.
func (v view) heads(types []string) heads {
	if types == nil {
		types = slices.Collect(maps.Keys(v))
	}
	hs := make(heads, len(types))
	for _, t := range types {
		ids := v[t]
		hs[t] = head{ids: slices.Clone(ids[:min(len(ids), mevents.Partitions)]), n: len(ids)}
	}
	return hs
}

// moved calls f for each member of the types of before whose assignment
// differs between the view when before was taken and v: only members among
// the heads can differ. (A type new since before has no local member: a
// local member's types are in the view from its join.)
func (v view) moved(before heads, f func(id string)) {
	for t, old := range before {
		ids := v[t]
		n := len(ids)
		ids = ids[:min(n, mevents.Partitions)]
		for _, id := range slices.Concat(old.ids, ids) {
			i, j := slices.Index(old.ids, id), slices.Index(ids, id)
			if i == j && old.n == n {
				continue
			}
			var was, is []int
			if i >= 0 {
				was = partitionsOf(i, old.n)
			}
			if j >= 0 {
				is = partitionsOf(j, n)
			}
			if !slices.Equal(was, is) {
				f(id)
			}
		}
	}
}

// assignment returns the partitions of type t this member takes.
func (m *membership) assignment(t string) []int {
	h := m.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur.assignment(t, m.id)
}

// leave says goodbye, so that the others take over at once. When m was
// its hub's last member, the hub stops: leave waits for it.
func (m *membership) leave() {
	m.hub.n.hubs.leave(m)
}
