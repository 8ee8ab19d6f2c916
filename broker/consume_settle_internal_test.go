package broker

import (
	"testing"
)

var sampleAckRef = ackRef{member: "4f74346e9a1b2c3d", epoch: 7, partition: 4, seq: 123456, count: 1,
	client: "demo-consumer", group: "bench-4f74346e", typ: "org.mevents.bench"}

func BenchmarkParseAckID(b *testing.B) {
	id := encodeAckID(sampleAckRef)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseAckID(id); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseAckID: ack ids come from clients. Parsing never panics, and what
// parses encodes to an id that parses the same again.
func FuzzParseAckID(f *testing.F) {
	f.Add(encodeAckID(sampleAckRef))
	r := sampleAckRef
	r.typ = "a.b.c"
	f.Add(encodeAckID(r))
	f.Add("bm9wZQ")
	f.Fuzz(func(t *testing.T, id string) {
		r, err := parseAckID(id)
		if err != nil {
			return
		}
		again, err := parseAckID(encodeAckID(r))
		if err != nil || again != r {
			t.Fatalf("%q parsed as %+v, its encoding as %+v, %v", id, r, again, err)
		}
	})
}
