package broker

import (
	"strings"
	"testing"
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
	reply := "$JS.ACK.EV_t_a." + consumerName("c1", "g", 4) + ".3.42.17.1795379424282877383.0"
	r, err := ownAckID(cl, encodeAckID(reply))
	if err != nil {
		t.Fatal(err)
	}
	if r.stream != "EV_t_a" || r.group != "g" || r.partition != 4 || r.delivered != 3 || r.seq != 42 || r.reply != reply {
		t.Fatalf("parsed %+v", r)
	}
	v2 := "$JS.ACK._.ACCHASH.EV_t_a." + consumerName("c1", "g", 4) + ".3.42.17.1795379424282877383.0.tok"
	if r, err := ownAckID(cl, encodeAckID(v2)); err != nil || r.seq != 42 {
		t.Fatalf("12-token form: %+v %v", r, err)
	}
	for name, id := range map[string]string{
		"not base64":      "!!",
		"other subject":   encodeAckID("$JS.API.STREAM.DELETE.EV_t_a"),
		"wildcard":        encodeAckID("$JS.ACK.EV_t_a.*.3.42.17.1.0"),
		"other client":    encodeAckID(strings.Replace(reply, consumerName("c1", "g", 4), consumerName("c2", "g", 4), 1)),
		"type not routed": encodeAckID(strings.Replace(reply, "EV_t_a", "EV_t_b", 1)),
		"other consumer":  encodeAckID("$JS.ACK.EV_t_a.ops-debug.3.42.17.1.0"),
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
			m := &membership{self: heartbeat{ID: id}, members: members}
			parts := m.assignment("t")
			if len(parts) == 0 {
				idle++
			} else if want := Partitions / min(n, Partitions); len(parts) != want {
				t.Fatalf("%d members: one takes %v, want %d partitions", n, parts, want)
			}
			for _, p := range parts {
				taken[p]++
			}
		}
		if len(taken) != Partitions || idle != max(0, n-Partitions) {
			t.Fatalf("%d members: partitions taken %v, %d idle", n, taken, idle)
		}
		for p, c := range taken {
			if c != 1 {
				t.Fatalf("%d members: partition %d taken %d times", n, p, c)
			}
		}
	}
}
