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

// pollSettler POSTs each settlement in the background.
type pollSettler struct {
	c  *Client
	wg sync.WaitGroup
}

func (ps *pollSettler) settle(op settleOp, ackID string, delay time.Duration, reason string) {
	body := map[string]any{"ackIds": []string{ackID}}
	if delay > 0 {
		body["delay"] = delay.String()
	}
	if reason != "" {
		body["reason"] = reason
	}
	b, _ := json.Marshal(body)
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
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
	}()
}

// wait waits for the settlements under way.
func (ps *pollSettler) wait() { ps.wg.Wait() }
