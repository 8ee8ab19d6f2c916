package broker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestCursorEncoding(t *testing.T) {
	nb := time.UnixMilli(1764831600000)
	c := cursor{to: 40, owner: "m1", node: "n1", epoch: 3, open: []openEvent{
		{seq: 10, count: 1}, {seq: 11, count: 1}, {seq: 12, count: 1}, {seq: 14, count: 1},
		{seq: 15, count: 2}, {seq: 16, count: 2, notBefore: nb}, {seq: 17, count: 2, notBefore: nb},
	}}
	b := c.marshal()
	want := `{"floor":9,"to":40,"open":[[10,12,1,0],[14,14,1,0],[15,15,2,0],[16,17,2,1764831600000]],"owner":"m1","node":"n1","epoch":3}`
	if string(b) != want {
		t.Fatalf("marshal = %s, want %s", b, want)
	}
	got, err := parseCursor(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.to != c.to || got.owner != c.owner || got.epoch != c.epoch || !slices.EqualFunc(got.open, c.open, func(a, b openEvent) bool {
		return a.seq == b.seq && a.count == b.count && a.notBefore.Equal(b.notBefore)
	}) {
		t.Fatalf("parsed %+v, want %+v", got, c)
	}
	for _, bad := range []string{
		`{"to":5,"open":[[6,6,1,0]]}`, // after to
		`{"to":5,"open":[[3,2,1,0]]}`, // backwards
		`{"to":5,"open":[[0,1,1,0]]}`, // sequence 0
		`{"to":5,"open":[[1,1,-1,0]]}`,
		fmt.Sprintf(`{"to":%d,"open":[[1,%d,1,0]]}`, 1<<40, 1<<40), // too many
		`[]`,
	} {
		if _, err := parseCursor([]byte(bad)); err == nil {
			t.Fatalf("parseCursor(%s) accepted", bad)
		}
	}
}

func TestIsLost(t *testing.T) {
	for code, want := range map[jetstream.ErrorCode]bool{10071: true, 10164: true, 10077: false} {
		err := fmt.Errorf("write: %w", &jetstream.APIError{ErrorCode: code})
		if isLost(err) != want {
			t.Fatalf("isLost(code %d) = %v", code, !want)
		}
	}
}
