package gateway

import (
	"encoding/json"
	"testing"

	"github.com/mevents/mevents/broker"
)

// FuzzDecodeFrame: no client frame makes the server panic; a frame is
// either a valid settlement or answered by an error frame that is JSON.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"op":"ack","ackIds":["a"],"id":"1"}`,
		`{"op":"release","ackIds":["a","b"],"delay":"10s"}`,
		`{"op":"dead","ackIds":["a"],"reason":"why","id":7}`,
		`{"op":"ack","ackIds":[]}`,
		`{"op":"nope"}`,
		`{"op":"release","ackIds":["a"],"delay":"-1s"}`,
		`{"op":"ack","ackIds":["a"],"id":{"x":1}}`,
		`[1,2]`, `null`, ``, `{"op":"ack","ackIds":["a"],"unknown":true}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		st, id, bad := decodeFrame(msg)
		if bad != nil {
			if _, err := json.Marshal(bad); err != nil {
				t.Fatalf("error frame does not marshal: %v", err)
			}
			if bad.Op != "error" || bad.Message == "" {
				t.Fatalf("error frame %+v", bad)
			}
			return
		}
		switch st.Op {
		case broker.SettleAck, broker.SettleRelease, broker.SettleDead:
		default:
			t.Fatalf("accepted op %q", st.Op)
		}
		if len(st.AckIDs) == 0 || len(st.AckIDs) > maxMaxInFlight || st.Delay < 0 || st.Delay > maxRelease {
			t.Fatalf("accepted settlement %+v", st)
		}
		if len(id) > 0 && (id[0] == '{' || id[0] == '[') {
			t.Fatalf("accepted id %s", id)
		}
	})
}
