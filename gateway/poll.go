package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Long polling (CONTRACT §5.2). Each GET takes up to `max` deliveries from
// the node's instance of the group that serves long polls (broker.Node.Poll):
// it waits up to `wait` for the first and answers. The events stay out until
// settled with POST /v1/subscription/ack|release|dead, from any request of
// the client on any node, or until the ack timeout.

// minWait keeps wait=0 from answering before the instance has started.
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
		s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "the service is shutting down"))
		return
	}
	defer s.consume.active.Done()
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	stop := context.AfterFunc(s.consume.ctx, cancel)
	defer stop()
	ds, err := s.broker.Poll(ctx, o, o.MaxInFlight, wait)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set(keyEvents, len(ds))
	if len(ds) == 0 {
		c.Status(http.StatusNoContent)
		return
	}
	batch := make([][]byte, len(ds))
	for i, d := range ds {
		batch[i] = d.Event
	}
	body := append(append([]byte{'['}, bytes.Join(batch, []byte{','})...), ']')
	c.Data(http.StatusOK, typeBatch, body)
}

// parseWait reads a duration ("30s") or a number of seconds.
func parseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		d, err = time.Duration(n)*time.Second, nerr
	}
	if err != nil || d < 0 || d > maxWait {
		return 0, mevents.Errorf(mevents.CodeInvalid, "wait %q must be a duration like \"30s\" of at most %s", v, maxWait)
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
			s.fail(c, &mevents.Error{Code: mevents.CodeInvalid, Message: "the body must be a JSON object {\"ackIds\": [...]}: " + err.Error()})
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
