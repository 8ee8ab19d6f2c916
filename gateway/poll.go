package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents/broker"
)

// Long polling (CONTRACT §5.2). Each GET is one short-lived consumer
// instance of the group: it waits up to `wait` for the first event, takes
// what else arrives right after (up to `max`) and answers. The events stay
// pending until settled with POST /v1/subscription/ack|release|dead, from
// any request of the client, or until the ack timeout.

// pollLinger is how long a poll that has events waits for more.
const pollLinger = 50 * time.Millisecond

// minWait keeps wait=0 from answering before the pulls have started.
const minWait = 100 * time.Millisecond

// getEvents handles GET /v1/subscription/events?group=&types=&max=&wait=&start=.
func (s *Server) getEvents(c *gin.Context) {
	o, err := subscribeOptions(c, "max", defaultPollMax)
	if err != nil {
		s.fail(c, err)
		return
	}
	wait := defaultWait
	if v := c.Query("wait"); v != "" {
		wait, err = parseWait(v)
		if err != nil {
			s.fail(c, err)
			return
		}
	}
	wait = max(wait, minWait)
	if !s.begin() {
		s.fail(c, broker.Errorf(broker.CodeUnavailable, "the service is shutting down"))
		return
	}
	defer s.consume.active.Done()
	sub, err := s.broker.Subscribe(c.Request.Context(), o)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer func() {
		// Stop waits for the pulls under way (up to 2 s): not the client.
		// The handler's own count in active is held until this Add.
		s.consume.active.Add(1)
		go func() {
			defer s.consume.active.Done()
			sub.Stop()
		}()
	}()

	ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
	defer cancel()
	stop := context.AfterFunc(s.consume.ctx, cancel)
	defer stop()
	var batch [][]byte
	for len(batch) < o.MaxInFlight {
		d, err := nextEvent(ctx, sub, len(batch) > 0)
		if err != nil {
			break
		}
		batch = append(batch, d.Event)
	}
	c.Set(keyEvents, len(batch))
	if len(batch) == 0 {
		c.Status(http.StatusNoContent)
		return
	}
	body := append(append([]byte{'['}, bytes.Join(batch, []byte{','})...), ']')
	c.Data(http.StatusOK, typeBatch, body)
}

// nextEvent waits for the next delivery until ctx ends or, when linger is
// set, for pollLinger at most.
func nextEvent(ctx context.Context, sub *broker.Subscription, linger bool) (broker.Delivery, error) {
	if linger {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pollLinger)
		defer cancel()
	}
	return sub.Next(ctx)
}

// parseWait reads a duration ("30s") or a number of seconds.
func parseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		d, err = time.Duration(n)*time.Second, nerr
	}
	if err != nil || d < 0 || d > maxWait {
		return 0, broker.Errorf(broker.CodeInvalid, "wait %q must be a duration like \"30s\" of at most %s", v, maxWait)
	}
	return d, nil
}

// postSettle handles POST /v1/subscription/ack, /release and /dead.
func (s *Server) postSettle(op broker.SettleOp) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := readBody(c.Request)
		if err != nil {
			s.fail(c, err)
			return
		}
		var req settleRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(c, &broker.Error{Code: broker.CodeInvalid, Message: "the body must be a JSON object {\"ackIds\": [...]}: " + err.Error()})
			return
		}
		st, err := req.settlement(op)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, s.broker.Settle(c.Request.Context(), clientOf(c), st))
	}
}
