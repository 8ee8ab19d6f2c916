package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
)

func TestConsumerNames(t *testing.T) {
	tests := []struct {
		client, group string
		p             int
	}{
		{"consumer", "default", 0},
		{"a_b", "c", 11},
		{"a", "b_c", 3},
		{"x-1", "g_2_3", 7},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		name := consumerName(tt.client, tt.group, tt.p)
		if seen[name] {
			t.Fatalf("%q is the name of two groups", name)
		}
		seen[name] = true
		c, g, p, ok := parseConsumerName(name)
		if !ok || c != tt.client || g != tt.group || p != tt.p {
			t.Fatalf("parse %q = %q %q %d %v, want %+v", name, c, g, p, ok, tt)
		}
	}
	for _, bad := range []string{"", "g", "g8_consumer", "gx_a_b_1", "g1_a_b_12", "g1_a_b_-1", "g1_a__1", "g9_a_b_1"} {
		if _, _, _, ok := parseConsumerName(bad); ok {
			t.Fatalf("parseConsumerName(%q) accepted", bad)
		}
	}
}

func TestAckIDs(t *testing.T) {
	cl := &Client{ID: "c1", Consume: []string{"t.a"}}
	want := ackRef{member: "9f2c", epoch: 3, partition: 4, seq: 42, count: 2, client: "c1", group: "g_1", typ: "t.a"}
	r, err := ownAckID(cl, encodeAckID(want))
	if err != nil || r != want {
		t.Fatalf("parsed %+v, %v; want %+v", r, err, want)
	}
	other := func(f func(r *ackRef)) string {
		r := want
		f(&r)
		return encodeAckID(r)
	}
	for name, id := range map[string]string{
		"not base64":        "!!",
		"other client":      other(func(r *ackRef) { r.client = "c2" }),
		"type not routed":   other(func(r *ackRef) { r.typ = "t.b" }),
		"bad group":         other(func(r *ackRef) { r.group = "a+b" }),
		"partition too big": other(func(r *ackRef) { r.partition = 12 }),
		"count zero":        other(func(r *ackRef) { r.count = 0 }),
		"no member":         other(func(r *ackRef) { r.member = "" }),
		"wildcard member":   other(func(r *ackRef) { r.member = "*" }),
		"old format":        base64.RawURLEncoding.EncodeToString([]byte("$JS.ACK.EV_t_a.g2_c1_g_4.3.42.17.1795379424282877383.0")),
		"too long":          strings.Repeat("A", 2000),
	} {
		if _, err := ownAckID(cl, id); err == nil {
			t.Fatalf("%s: ack id accepted", name)
		}
	}
}

func TestWithDeliveryAttrs(t *testing.T) {
	for in, want := range map[string]string{
		`{"id":"x"}`: `{"ackid":"A","deliverycount":2,"id":"x"}`,
		`{ }`:        `{"ackid":"A","deliverycount":2 }`,
	} {
		if got := string(withDeliveryAttrs([]byte(in), "A", 2)); got != want {
			t.Fatalf("withDeliveryAttrs(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestAssignmentIsEven(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 6, 12, 13} {
		members := map[string]memberState{}
		for i := 0; i < n; i++ {
			members[newMemberID()] = memberState{types: []string{"t"}}
		}
		members["other-type"] = memberState{types: []string{"u"}}
		taken := map[int]int{}
		idle := 0
		for id := range members {
			if id == "other-type" {
				continue
			}
			parts := newView(members).assignment("t", id)
			for p := 0; p < mevents.Partitions; p++ {
				if mine := owner(members, "t", p) == id; mine != slices.Contains(parts, p) {
					t.Fatalf("%d members: owner of %d is %s, assignment of %s is %v", n, p, owner(members, "t", p), id, parts)
				}
			}
			if len(parts) == 0 {
				idle++
			} else if want := mevents.Partitions / min(n, mevents.Partitions); len(parts) != want {
				t.Fatalf("%d members: one takes %v, want %d partitions", n, parts, want)
			}
			for _, p := range parts {
				taken[p]++
			}
		}
		if len(taken) != mevents.Partitions || idle != max(0, n-mevents.Partitions) {
			t.Fatalf("%d members: partitions taken %v, %d idle", n, taken, idle)
		}
		for p, c := range taken {
			if c != 1 {
				t.Fatalf("%d members: partition %d taken %d times", n, p, c)
			}
		}
	}
}

// TestHubView: another node's heartbeat that repeats its list changes
// nothing; a change signals only the local members whose assignment it
// moves; a hub not heard of for memberTTL vanishes, and its expiry
// signals the local members once.
func TestHubView(t *testing.T) {
	h := &hub{id: "self", local: map[string]*membership{}, remote: map[string]*remoteHub{}, cur: view{}}
	m := &membership{id: "m1", types: []string{"t"}, changed: make(chan struct{}, 1)}
	h.addLocked(m)
	signalled := func() bool {
		select {
		case <-m.changed:
			return true
		default:
			return false
		}
	}
	if !signalled() {
		t.Fatal("the first member was not signalled")
	}
	now := time.Now()
	many := func(n int) string {
		var l []string
		for i := 0; i < n; i++ {
			l = append(l, fmt.Sprintf(`{"id":"z%02d","types":["t"]}`, i))
		}
		return "[" + strings.Join(l, ",") + "]"
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	steps := []struct {
		name, hub, members string
		bye, signalled     bool
		parts              []int
	}{
		{"first list", "a", `[{"id":"m0","types":["t"]}]`, false, true, []int{1, 3, 5, 7, 9, 11}},
		{"same list again", "a", `[{"id":"m0","types":["t"]}]`, false, false, []int{1, 3, 5, 7, 9, 11}},
		{"a member of another type", "b", `[{"id":"m2","types":["u"]}]`, false, false, []int{1, 3, 5, 7, 9, 11}},
		{"a new member", "a", `[{"id":"m0","types":["t"]},{"id":"m3","types":["t"]}]`, false, true, []int{1, 4, 7, 10}},
		{"members beyond 12", "c", many(20), false, true, []int{1}},
		{"one more beyond 12", "c", many(21), false, false, []int{1}},
		{"bye", "a", `[]`, true, true, []int{0}},
		{"bye again", "a", `[]`, true, false, []int{0}},
	}
	for _, s := range steps {
		h.mu.Lock()
		before := h.cur.heads(nil)
		if h.applyLocked(hubMsg{Hub: s.hub, Bye: s.bye, Members: json.RawMessage(s.members)}, now) {
			h.cur = newView(h.membersLocked())
			h.movedLocked(before)
		}
		h.mu.Unlock()
		if got := signalled(); got != s.signalled {
			t.Fatalf("%s: signalled %v, want %v", s.name, got, s.signalled)
		}
		if got := m.assignment("t"); !slices.Equal(got, s.parts) {
			t.Fatalf("%s: assignment %v, want %v", s.name, got, s.parts)
		}
	}
	if !m.alive("u", "m2") || !m.alive("t", "z20") {
		t.Fatal("members of another hub are not alive")
	}
	expire := func(at time.Time) {
		h.mu.Lock()
		h.expireLocked(at)
		h.mu.Unlock()
	}
	if expire(now.Add(memberTTL)); signalled() {
		t.Fatal("members vanished within memberTTL")
	}
	if expire(now.Add(memberTTL + time.Millisecond)); !signalled() {
		t.Fatal("after memberTTL: nothing vanished")
	}
	if m.alive("u", "m2") || m.alive("t", "z20") || !m.alive("t", m.id) {
		t.Fatal("after memberTTL: vanished members are alive")
	}
	if got := m.assignment("t"); !slices.Equal(got, all) {
		t.Fatalf("alone: assignment %v", got)
	}
	if expire(now.Add(memberTTL + 2*time.Millisecond)); signalled() {
		t.Fatal("vanished reported twice")
	}
}

// TestViewMoved: after any sequence of joins and leaves, the members the
// view says moved are exactly those whose assignment changed.
func TestViewMoved(t *testing.T) {
	members := map[string]memberState{}
	v := view{}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 1000; step++ {
		var id string
		if len(members) > 0 && rng.IntN(3) == 0 {
			ids := slices.Sorted(maps.Keys(members))
			id = ids[rng.IntN(len(ids))]
		} else {
			id = fmt.Sprintf("%04d", rng.IntN(10000))
		}
		st, leaving := members[id]
		if !leaving {
			st = memberState{types: [][]string{{"t"}, {"u"}, {"t", "u"}}[rng.IntN(3)]}
		}
		old := maps.Clone(members)
		before := v.heads(st.types)
		if leaving {
			delete(members, id)
			v.remove(id, st.types)
		} else {
			members[id] = st
			v.add(id, st.types)
		}
		got := map[string]bool{}
		v.moved(before, func(id string) { got[id] = true })
		was, is := newView(old), newView(members)
		for other := range maps.Keys(members) {
			moved := false
			for _, typ := range []string{"t", "u"} {
				moved = moved || !slices.Equal(was.assignment(typ, other), is.assignment(typ, other))
			}
			if moved != got[other] {
				t.Fatalf("step %d (%s %s leaving=%v): %s moved %v, signalled %v", step, id, st.types, leaving, other, moved, got[other])
			}
		}
		if !maps.EqualFunc(v, is, slices.Equal) {
			t.Fatalf("step %d: view %v, want %v", step, v, is)
		}
	}
}

// TestBeatHeardOnce: a beat repeating the previous one is not parsed again,
// a changed one is, and the beats not heard for memberTTL are forgotten.
func TestBeatHeardOnce(t *testing.T) {
	var hs hubs
	a := []byte(`{"node":"n2","hubs":[{"client":"c","group":"g","hub":"h1","members":[{"id":"m1","types":["t"]}]}]}`)
	b := []byte(`{"node":"n2","hubs":[{"client":"c","group":"g","hub":"h1","members":[]}]}`)
	now := time.Now()
	first, ok := hs.parseBeat(a, now)
	if !ok || first.Node != "n2" || len(first.Hubs) != 1 || string(first.Hubs[0].Members) != `[{"id":"m1","types":["t"]}]` {
		t.Fatalf("parsed %+v, %v", first, ok)
	}
	again, _ := hs.parseBeat(bytes.Clone(a), now.Add(time.Second))
	if &again.Hubs[0] != &first.Hubs[0] {
		t.Fatal("the same beat was parsed again")
	}
	if changed, _ := hs.parseBeat(b, now.Add(2*time.Second)); string(changed.Hubs[0].Members) != `[]` {
		t.Fatalf("a changed beat: %+v", changed)
	}
	if _, ok := hs.parseBeat([]byte(`{"node":`), now); ok {
		t.Fatal("a broken beat parsed")
	}
	c := []byte(`{"node":"n3","hubs":[]}`)
	hs.parseBeat(c, now.Add(2*time.Second+memberTTL+time.Millisecond))
	if len(hs.heard) != 1 {
		t.Fatalf("%d beats kept, want the one heard within memberTTL", len(hs.heard))
	}
}
