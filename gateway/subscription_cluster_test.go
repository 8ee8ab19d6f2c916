package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents"
)

// firstDeliveries checks, across instances, that every event's first
// delivery comes in the order of its key, and records which partitions each
// instance served per round.
type firstDeliveries struct {
	mu    sync.Mutex
	next  map[string]int
	seen  map[string]bool
	parts map[int]map[int]map[int]bool // round → instance → partitions
	err   error
}

func (f *firstDeliveries) record(inst int, raw []byte) {
	var ev frame
	if err := json.Unmarshal(raw, &ev); err != nil || ev.AckID == "" {
		return
	}
	var round, k, i int
	if _, err := fmt.Sscanf(ev.ID, "r%d-k%d-%d", &round, &k, &i); err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[round] == nil {
		f.parts[round] = map[int]map[int]bool{}
	}
	if f.parts[round][inst] == nil {
		f.parts[round][inst] = map[int]bool{}
	}
	f.parts[round][inst][mevents.Partition(ev.PartitionKey)] = true
	if f.seen[ev.ID] {
		return
	}
	seq := round*1000 + i
	if want := f.next[ev.PartitionKey]; seq < want && f.err == nil {
		f.err = fmt.Errorf("instance %d: first delivery of %s after a later event of %s", inst, ev.ID, ev.PartitionKey)
	}
	f.next[ev.PartitionKey] = seq + 1
	f.seen[ev.ID] = true
}

func (f *firstDeliveries) count() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen), f.err
}

func TestWebSocketGroupOverCluster(t *testing.T) {
	envs := newConsumeCluster(t, 3)
	check := &firstDeliveries{next: map[string]int{}, seen: map[string]bool{}, parts: map[int]map[int]map[int]bool{}}

	// One instance of the group connected to each node; each acknowledges
	// what it gets, except the victim, which stops acknowledging after
	// five events of round 2 and disconnects.
	var wg sync.WaitGroup
	conns := make([]*wsClient, 3)
	var victim atomic.Int32
	victim.Store(-1)
	for i, e := range envs {
		conns[i] = e.mustDial("patient", "group=spread&maxInFlight=50")
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, inRound2 := conns[i], 0
			for {
				var b []byte
				select {
				case b = <-w.frames:
				case <-w.err:
					return
				}
				check.record(i, b)
				var ev frame
				_ = json.Unmarshal(b, &ev)
				if strings.HasPrefix(ev.ID, "r2-") {
					inRound2++
				}
				if int(victim.Load()) == i && inRound2 >= 5 {
					w.conn.Close() // without acknowledging this one
					return
				}
				msg, _ := json.Marshal(ackFrame("", ev.AckID))
				if w.conn.WriteMessage(websocket.TextMessage, msg) != nil {
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, w := range conns {
			w.conn.Close()
		}
		wg.Wait()
	})

	const keys, perKey = 36, 20
	total := 0
	round := func(r int) {
		t.Helper()
		for i := 0; i < perKey; i++ {
			var batch []string
			for k := 0; k < keys; k++ {
				batch = append(batch, order(fmt.Sprintf("r%d-k%d-%d", r, k, i), fmt.Sprintf("key-%d", k)))
			}
			envs[r%3].produce(batch...)
		}
		t.Logf("round %d produced", r)
		total += keys * perKey
		deadline := time.Now().Add(60 * time.Second)
		for {
			n, err := check.count()
			if err != nil {
				t.Fatal(err)
			}
			if n == total {
				t.Logf("round %d done", r)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d events delivered", r, n, total)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition
		}
	}
	// Round 0 lets the membership settle; in round 1 every instance serves
	// exactly 4 partitions.
	round(0)
	round(1)
	check.mu.Lock()
	for i := 0; i < 3; i++ {
		if n := len(check.parts[1][i]); n != 4 {
			t.Errorf("instance %d served %d partitions, want 4: %v", i, n, check.parts[1])
		}
	}
	check.mu.Unlock()
	// Round 2: instance 2 disconnects mid-stream with events unacknowledged;
	// the others take over, nothing is lost, the order holds.
	victim.Store(2)
	round(2)
	round(3)
	check.mu.Lock()
	defer check.mu.Unlock()
	if n := len(check.parts[3][0]) + len(check.parts[3][1]); n != 12 || len(check.parts[3][2]) != 0 {
		t.Fatalf("after the departure the partitions were served %v", check.parts[3])
	}
}
