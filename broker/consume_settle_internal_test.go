package broker

import (
	"strings"
	"testing"
)

func TestParseAckID(t *testing.T) {
	consumer := consumerName("civil-registry", "billing_2", 7)
	tests := []struct {
		name  string
		reply string
		want  ackRef // zero: malformed
	}{
		{"v1 subject", "$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.5",
			ackRef{stream: "EV_a_b", consumer: consumer, client: "civil-registry", group: "billing_2", partition: 7, delivered: 3, seq: 42}},
		{"v2 subject", "$JS.ACK.hub.ACCHASH.EV_a_b." + consumer + ".1.9.9.1700000000.0.xyz",
			ackRef{stream: "EV_a_b", consumer: consumer, client: "civil-registry", group: "billing_2", partition: 7, delivered: 1, seq: 9}},
		{"v2 without the random token", "$JS.ACK.hub.ACCHASH.EV_a_b." + consumer + ".1.9.9.1700000000.0",
			ackRef{stream: "EV_a_b", consumer: consumer, client: "civil-registry", group: "billing_2", partition: 7, delivered: 1, seq: 9}},
		{"wildcard", "$JS.ACK.EV_a_b.*.3.42.40.1700000000.5", ackRef{}},
		{"full wildcard", "$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.>", ackRef{}},
		{"space", "$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.5 x", ackRef{}},
		{"empty token", "$JS.ACK.EV_a_b." + consumer + "..42.40.1700000000.5", ackRef{}},
		{"trailing dot", "$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.5.", ackRef{}},
		{"ten tokens", "$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.5.6", ackRef{}},
		{"thirteen tokens", "$JS.ACK.hub.ACCHASH.EV_a_b." + consumer + ".1.9.9.1700000000.0.xyz.more", ackRef{}},
		{"not an ack", "$JS.API.EV_a_b." + consumer + ".3.42.40.1700000000.5", ackRef{}},
		{"not a group's consumer", "$JS.ACK.EV_a_b.other.3.42.40.1700000000.5", ackRef{}},
		{"bad group", "$JS.ACK.EV_a_b." + consumerName("c", "bad+group", 1) + ".3.42.40.1700000000.5", ackRef{}},
		{"partition out of range", "$JS.ACK.EV_a_b." + consumerName("c", "g", 12) + ".3.42.40.1700000000.5", ackRef{}},
		{"sequence not a number", "$JS.ACK.EV_a_b." + consumer + ".3.x.40.1700000000.5", ackRef{}},
		{"too long", "$JS.ACK.EV_a_b." + strings.Repeat("a", 600) + ".3.42.40.1700000000.5", ackRef{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAckID(encodeAckID(tt.reply))
			if tt.want == (ackRef{}) {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			tt.want.reply = tt.reply
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := parseAckID("not base64!"); err == nil {
		t.Fatal("an id that is not base64url parsed")
	}
}

func TestStreamNameIs(t *testing.T) {
	for _, typ := range []string{"a", "md.gov.person.registered", "x_y.z", ""} {
		if !streamNameIs(typ, StreamName(typ)) {
			t.Errorf("streamNameIs(%q, %q) = false", typ, StreamName(typ))
		}
		for _, other := range []string{"md.gov.person.registered", "md_gov_person_registered", "a.b", "EV"} {
			if want := StreamName(typ) == StreamName(other); streamNameIs(typ, StreamName(other)) != want {
				t.Errorf("streamNameIs(%q, %q) != %v", typ, StreamName(other), want)
			}
		}
	}
	if streamNameIs("a", "XX_a") {
		t.Error(`streamNameIs("a", "XX_a")`)
	}
}

func BenchmarkParseAckID(b *testing.B) {
	id := encodeAckID("$JS.ACK.EV_org_mevents_bench." + consumerName("demo-consumer", "bench-4f74346e", 4) + ".1.123456.123456.1763860000000000000.17")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseAckID(id); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseAckID: ack ids come from clients. Parsing never panics, and what
// parses names a group's consumer and parses the same again from its
// subject.
func FuzzParseAckID(f *testing.F) {
	consumer := consumerName("civil-registry", "billing_2", 7)
	for _, reply := range []string{
		"$JS.ACK.EV_a_b." + consumer + ".3.42.40.1700000000.5",
		"$JS.ACK.hub.ACCHASH.EV_a_b." + consumer + ".1.9.9.1700000000.0.xyz",
		"$JS.ACK.EV_a_b.*.3.42.40.1700000000.5",
	} {
		f.Add(encodeAckID(reply))
	}
	f.Add("bm9wZQ")
	f.Fuzz(func(t *testing.T, id string) {
		r, err := parseAckID(id)
		if err != nil {
			return
		}
		if consumerName(r.client, r.group, r.partition) != r.consumer {
			t.Fatalf("consumer %q is not the name of (%q, %q, %d)", r.consumer, r.client, r.group, r.partition)
		}
		again, err := parseAckID(encodeAckID(r.reply))
		if err != nil || again != r {
			t.Fatalf("%q parsed as %+v, its subject as %+v, %v", id, r, again, err)
		}
	})
}
