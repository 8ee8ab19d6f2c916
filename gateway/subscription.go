package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/olahol/melody"
)

// Subscriber delivers events to consumers and keeps their dead events; see
// broker.Node for the semantics of each method.
type Subscriber interface {
	// Subscribe starts one consumer instance of a client's group.
	Subscribe(ctx context.Context, o broker.SubscribeOptions) (*broker.Subscription, error)
	// Poll hands out up to max deliveries of a client's group, waiting up to wait.
	Poll(ctx context.Context, o broker.SubscribeOptions, max int, wait time.Duration) ([]broker.Delivery, error)
	// Settle acknowledges, releases or kills deliveries by ack id.
	Settle(ctx context.Context, cl *broker.Client, st broker.Settlement) broker.SettleResult
	ListDead(ctx context.Context, cl *broker.Client, cursor string, limit int) (broker.DeadPage, error)
	RedeliverDead(ctx context.Context, cl *broker.Client, id string) error
	DeleteDead(ctx context.Context, cl *broker.Client, id string) error
}

// Limits of the subscription endpoints.
const (
	maxMaxInFlight = 1000
	defaultPollMax = 100
	defaultWait    = 30 * time.Second
	maxWait        = 120 * time.Second
	maxRelease     = 24 * time.Hour
)

// consumeState is the state of the subscription endpoints.
type consumeState struct {
	ws *melody.Melody
	// ctx ends when the server closes: long polls return at once.
	ctx    context.Context
	cancel context.CancelFunc
	// active counts WebSocket sessions and long polls, so that closeConsume
	// can wait until their subscriptions have released their events.
	active sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

func (s *Server) initConsume() {
	s.consume.ctx, s.consume.cancel = context.WithCancel(context.Background())
	s.consume.ws = s.newMelody()
}

// closeConsume ends every WebSocket session and long poll and waits until
// their unsettled events are released.
func (s *Server) closeConsume(ctx context.Context) error {
	s.consume.mu.Lock()
	s.consume.closed = true
	s.consume.mu.Unlock()
	s.consume.cancel()
	_ = s.consume.ws.Close()
	ended := make(chan struct{})
	go func() { s.consume.active.Wait(); close(ended) }() // ends with the last subscription
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscriptions still ending: %w", ctx.Err())
	}
}

// begin registers a long-lived request; false when the server is closing.
func (s *Server) begin() bool {
	s.consume.mu.Lock()
	defer s.consume.mu.Unlock()
	if s.consume.closed {
		return false
	}
	s.consume.active.Add(1)
	return true
}

// subscriptionRoutes registers /v1/subscription/….
func (s *Server) subscriptionRoutes(v1 *gin.RouterGroup) {
	v1.GET("/subscription/ws", s.getWebSocket)
	v1.Handle(http.MethodConnect, "/subscription/ws", s.getWebSocket) // RFC 8441
	v1.GET("/subscription/events", s.getEvents)
	v1.POST("/subscription/ack", s.postSettle(broker.SettleAck))
	v1.POST("/subscription/release", s.postSettle(broker.SettleRelease))
	v1.POST("/subscription/dead", s.postSettle(broker.SettleDead))
}

// subscribeOptions reads group, types, start and maxInFlight (or, for a long
// poll, max) from the query. Types must be routed to the client.
func subscribeOptions(c *gin.Context, creditParam string, creditDefault int) (broker.SubscribeOptions, error) {
	cl := clientOf(c)
	o := broker.SubscribeOptions{Client: cl, Group: c.Query("group")}
	if o.Group == "" {
		o.Group = broker.DefaultGroup
	}
	if err := broker.ValidGroup(o.Group); err != nil {
		return o, err
	}
	if v := c.Query("types"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !cl.MayConsume(t) || catalogOf(c).reg.Type(t) == nil {
				return o, mevents.Errorf(mevents.CodeForbidden, "event type %q is not routed to client %s", t, cl.ID)
			}
			o.Types = append(o.Types, t)
		}
	}
	if len(o.Types) == 0 {
		if len(cl.Consume) == 0 {
			return o, mevents.Errorf(mevents.CodeForbidden, "no event types are routed to client %s", cl.ID)
		}
		o.Types = cl.Consume
	}
	switch v := c.Query("start"); v {
	case "", "earliest", "oldest":
	case "latest":
		o.Start.Latest = true
	default:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, mevents.Errorf(mevents.CodeInvalid, "start %q is not \"latest\" or an RFC 3339 time", v)
		}
		o.Start.Time = t
	}
	o.MaxInFlight = creditDefault
	if v := c.Query(creditParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMaxInFlight {
			return o, mevents.Errorf(mevents.CodeInvalid, "%s must be an integer from 1 to %d", creditParam, maxMaxInFlight)
		}
		o.MaxInFlight = n
	}
	return o, nil
}

// settleRequest is the body of the settle endpoints and the WebSocket
// frames that settle.
type settleRequest struct {
	AckIDs []string `json:"ackIds"`
	Delay  string   `json:"delay"`
	Reason string   `json:"reason"`
}

// settlement checks a settle request.
func (r settleRequest) settlement(op broker.SettleOp) (broker.Settlement, error) {
	st := broker.Settlement{Op: op, AckIDs: r.AckIDs, Reason: r.Reason}
	if len(r.AckIDs) == 0 {
		return st, mevents.Errorf(mevents.CodeInvalid, "ackIds must list at least one ack id")
	}
	if len(r.AckIDs) > maxMaxInFlight {
		return st, mevents.Errorf(mevents.CodeInvalid, "at most %d ack ids at once", maxMaxInFlight)
	}
	if r.Delay != "" {
		if op != broker.SettleRelease {
			return st, mevents.Errorf(mevents.CodeInvalid, "delay applies only to release")
		}
		d, err := time.ParseDuration(r.Delay)
		if err != nil || d < 0 || d > maxRelease {
			return st, mevents.Errorf(mevents.CodeInvalid, "delay %q must be a duration like \"10s\", at most %s", r.Delay, maxRelease)
		}
		st.Delay = d
	}
	if r.Reason != "" && op != broker.SettleDead {
		return st, mevents.Errorf(mevents.CodeInvalid, "reason applies only to dead")
	}
	if len(r.Reason) > 1024 {
		return st, mevents.Errorf(mevents.CodeInvalid, "reason is over 1024 bytes")
	}
	return st, nil
}
