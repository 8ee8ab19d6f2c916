package client

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Queued settlements go out as few frames as their order allows:
// consecutive ones of one kind share a frame (up to maxAckIDs ack ids),
// and while maxUnanswered frames wait for their answers the rest wait in
// the queue, to go out together when an answer comes.
func TestSettleFrames(t *testing.T) {
	ws := &wsSession{kick: make(chan struct{}, 1), pending: map[string]struct{}{}, idle: make(chan struct{})}
	type frame struct {
		Op     string   `json:"op"`
		AckIDs []string `json:"ackIds"`
		ID     string   `json:"id"`
		Delay  string   `json:"delay"`
		Reason string   `json:"reason"`
	}
	take := func() []frame {
		t.Helper()
		var out []frame
		for _, b := range ws.frames() {
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
		return out
	}

	for _, st := range []settlement{{opAck, "a", 0, ""}, {opAck, "b", 0, ""}, {opRelease, "c", 5 * time.Second, ""},
		{opRelease, "d", 0, ""}, {opDead, "e", 0, "bad"}, {opDead, "f", 0, "bad"}, {opAck, "g", 0, ""}} {
		ws.settle(st.op, st.ackID, st.delay, st.reason)
	}
	got := take()
	want := []frame{{"ack", []string{"a", "b"}, "1", "", ""}, {"release", []string{"c"}, "2", "5s", ""},
		{"release", []string{"d"}, "3", "", ""}, {"dead", []string{"e", "f"}, "4", "", "bad"}, {"ack", []string{"g"}, "5", "", ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames\n%v\nwant\n%v", got, want)
	}

	// More than a frame holds: split.
	for i := range maxAckIDs + 1 {
		ws.settle(opAck, fmt.Sprint("x", i), 0, "")
	}
	if got := take(); len(got) != 2 || len(got[0].AckIDs) != maxAckIDs || len(got[1].AckIDs) != 1 {
		t.Fatalf("%d acks: %d frames", maxAckIDs+1, len(got))
	}

	// With maxUnanswered frames unanswered, settlements wait, and go out
	// together after an answer.
	for len(ws.pending) < maxUnanswered {
		ws.settle(opAck, "y", 0, "")
		take()
	}
	ws.settle(opAck, "z1", 0, "")
	ws.settle(opAck, "z2", 0, "")
	if got := take(); len(got) != 0 || len(ws.queued) != 2 {
		t.Fatalf("with %d frames unanswered: %d frames written, %d queued", len(ws.pending), len(got), len(ws.queued))
	}
	<-ws.kick // from the settlements
	ws.control([]byte(`{"op":"result","id":"1","succeeded":["a","b"],"failed":[]}`))
	select {
	case <-ws.kick:
	default:
		t.Fatal("an answer with settlements queued did not wake the writer")
	}
	if got := take(); len(got) != 1 || fmt.Sprint(got[0].AckIDs) != "[z1 z2]" {
		t.Fatalf("after an answer: %v", got)
	}
}
