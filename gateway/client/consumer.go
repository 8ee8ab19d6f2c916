package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Handler handles one event. It returns nil when the event is handled
// (the consumer acknowledges it), a PoisonError when it never can be (the
// event goes to the dead-event store), any other error when it may be
// later (the event is released, delivered again after ReleaseDelay). The
// handlers of one partition key run one at a time, in order; those of
// different keys run concurrently.
type Handler func(ctx context.Context, e *Event) error

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	// Group is the consumer group ("default" when empty): a cursor of its
	// own over the client's events, shared by the group's instances.
	Group string
	// Types restricts the event types; nil means all routed to the client.
	Types []string
	// Start is where a new group starts: "" (the oldest retained event),
	// "latest", or an RFC 3339 time.
	Start string
	// MaxInFlight is the credit: events held and unsettled at once;
	// default 100, at most 1000.
	MaxInFlight int
	// ReleaseDelay is how long a failed event waits before it is
	// delivered again; default 5 s.
	ReleaseDelay time.Duration
	// NoAck leaves handled events unsettled: they are delivered again
	// after the ack timeout, and the credit fills up (for looking, not
	// consuming).
	NoAck bool
	// LongPolling consumes with HTTP long polls instead of a WebSocket,
	// for networks that do not pass WebSockets.
	LongPolling bool
	// PollWait is how long one long poll waits for events; default 30 s.
	PollWait time.Duration
	// HTTP1 opens the WebSocket with the HTTP/1.1 upgrade only; by default
	// it opens over HTTP/2 (RFC 8441) when the server offers it.
	HTTP1 bool
	// MinBackoff and MaxBackoff bound the wait before reconnecting (a
	// server's Retry-After too); defaults 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout is how long running handlers may go on after Consume's
	// context ends; then their context ends too. Default 30 s.
	StopTimeout time.Duration
	// OnConnect, when set, is called after each (re)connection with the
	// protocol: "HTTP/2.0", "HTTP/1.1" or "long-polling".
	OnConnect func(proto string)
}

// Consumer consumes the events of one group.
type Consumer struct {
	c *Client
	o ConsumerOptions
}

// Consumer returns a consumer with options o.
func (c *Client) Consumer(o ConsumerOptions) *Consumer {
	if o.Group == "" {
		o.Group = "default"
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 100
	}
	if o.ReleaseDelay <= 0 {
		o.ReleaseDelay = 5 * time.Second
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	return &Consumer{c: c, o: o}
}

// query returns the subscription's query parameters; credit names the
// credit parameter (maxInFlight or max).
func (cs *Consumer) query(credit string, n int) url.Values {
	q := url.Values{"group": {cs.o.Group}, credit: {strconv.Itoa(n)}}
	if len(cs.o.Types) > 0 {
		q.Set("types", strings.Join(cs.o.Types, ","))
	}
	if cs.o.Start != "" {
		q.Set("start", cs.o.Start)
	}
	return q
}

// Consume delivers events to h until ctx ends, then stops gracefully: it
// takes no more events, releases those held and not started, lets running
// handlers finish (up to StopTimeout) and settles their results; then it
// returns nil. It reconnects with backoff after a lost connection, a 429
// or a 503. It returns an *Error at once when the service refuses the
// subscription for good (400, 403 …).
func (cs *Consumer) Consume(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("consume: nil handler")
	}
	// Handlers outlive ctx by StopTimeout, to finish what they hold.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopHandlers := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(cs.o.StopTimeout, hcancel)
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	defer stopHandlers()

	backoff := cs.o.MinBackoff
	for {
		var err error
		connected := false
		if cs.o.LongPolling {
			err = cs.poll(ctx, hctx, h, &connected)
		} else {
			err = cs.websocket(ctx, hctx, h, &connected)
		}
		if ctx.Err() != nil {
			return nil
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && !apiErr.Temporary() && apiErr.Status != http.StatusRequestTimeout {
			return fmt.Errorf("consume: %w", err)
		}
		if connected {
			backoff = cs.o.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if apiErr != nil && apiErr.RetryAfter > wait {
			wait = min(apiErr.RetryAfter, cs.o.MaxBackoff)
		}
		cs.c.log.Warn("consumer disconnected; reconnecting", "group", cs.o.Group, "err", err, "in", wait)
		backoff = min(2*backoff, cs.o.MaxBackoff)
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}
