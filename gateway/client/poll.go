package client

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// poll consumes with long polls (CONTRACT §5.2) until one fails or ctx
// ends (then nil). It asks only for as many events as its credit has
// room for; settlements are POSTed as the handlers finish.
func (cs *Consumer) poll(ctx, hctx context.Context, h Handler, connected *bool) error {
	ps := &pollSettler{c: cs.c}
	d := newDispatcher(hctx, h, ps, cs.o.ReleaseDelay)
	d.noAck = cs.o.NoAck
	defer func() {
		d.stop()
		ps.wait()
	}()
	first := true
	for {
		held, changed := d.room()
		if held >= cs.o.MaxInFlight {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		q := cs.query("max", cs.o.MaxInFlight-held)
		q.Set("wait", cs.o.PollWait.String())
		var events []json.RawMessage
		status, err := cs.c.do(ctx, http.MethodGet, "/v1/subscription/events", q, "", nil, cs.o.PollWait+30*time.Second, &events)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if first {
			first, *connected = false, true
			if cs.o.OnConnect != nil {
				cs.o.OnConnect("long-polling")
			}
		}
		if status == http.StatusNoContent {
			continue
		}
		for _, raw := range events {
			e, err := parseEvent(raw)
			if err != nil {
				cs.c.log.Warn("unreadable event", "err", err)
				continue
			}
			d.add(e)
		}
	}
}

// pollSettler POSTs settlements in the background, one request at a time
// and in order: what is settled while a request is under way goes in the
// next, a request per run of settlements of one kind (at most maxAckIDs
// ack ids). The service answers a request once what it settles is stored,
// so one request per event would cost a commit round each. A goroutine
// sends while settlements are queued; wait waits for it.
type pollSettler struct {
	c  *Client
	wg sync.WaitGroup

	mu      sync.Mutex
	queued  []settlement
	sending bool
}

func (ps *pollSettler) settle(op settleOp, ackID string, delay time.Duration, reason string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.queued = append(ps.queued, settlement{op: op, ackID: ackID, delay: delay, reason: reason})
	if !ps.sending {
		ps.sending = true
		ps.wg.Add(1)
		go ps.send()
	}
}

// send POSTs what is queued until nothing is.
func (ps *pollSettler) send() {
	defer ps.wg.Done()
	for {
		ps.mu.Lock()
		q := ps.queued
		ps.queued = nil
		if len(q) == 0 {
			ps.sending = false
			ps.mu.Unlock()
			return
		}
		ps.mu.Unlock()
		for len(q) > 0 {
			n := runLen(q)
			ps.post(q[0].op, request(q[:n]))
			q = q[n:]
		}
	}
}

// post sends one settle request; a failure is logged: the events come
// again.
func (ps *pollSettler) post(op settleOp, body map[string]any) {
	b, _ := json.Marshal(body)
	var res struct {
		Failed []struct {
			AckID string `json:"ackId"`
			Error string `json:"error"`
		} `json:"failed"`
	}
	if _, err := ps.c.do(context.Background(), http.MethodPost, "/v1/subscription/"+string(op), nil, "application/json", b, 15*time.Second, &res); err != nil {
		ps.c.log.Warn("settlement failed; the event comes again", "op", op, "err", err)
		return
	}
	for _, f := range res.Failed {
		ps.c.log.Warn("settlement failed; the event comes again", "op", op, "ackId", f.AckID, "err", f.Error)
	}
}

// wait waits for the settlements under way.
func (ps *pollSettler) wait() { ps.wg.Wait() }
