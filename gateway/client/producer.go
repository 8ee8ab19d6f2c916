package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ProducerOptions configures a Producer.
type ProducerOptions struct {
	// MaxAttempts bounds the tries of one request; 0 means 8. Publish
	// also stops when its context ends.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between tries (doubled
	// each time, with jitter; a longer Retry-After wins); defaults
	// 200 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Test publishes to /v1/test-events: the events are delivered only
	// to the calling client, marked testevent.
	Test bool
}

// Producer publishes events. It is safe for concurrent use.
type Producer struct {
	c *Client
	o ProducerOptions
}

// Producer returns a producer with options o.
func (c *Client) Producer(o ProducerOptions) *Producer {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	return &Producer{c: c, o: o}
}

// Result is the answer to a stored request.
type Result struct {
	// Count is the number of events stored; IDs their ids, in order.
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
	// Attempts is how many times the request was sent.
	Attempts int `json:"-"`
}

// Publish stores events: one is sent in structured mode, several as one
// batch (all or nothing). An event is a CloudEvents sdk-go event.Event
// (or *event.Event), or its JSON as json.RawMessage, []byte or string.
// Every event must carry its id: a retry sends the same bytes, so the
// service stores each event once.
//
// It retries on 429, 503 (and other 5xx) and network errors, waiting
// Retry-After or a growing backoff, until MaxAttempts or ctx ends. A 4xx
// answer is an *Error at once; a 400's Problems name each failing event.
func (p *Producer) Publish(ctx context.Context, events ...any) (Result, error) {
	if len(events) == 0 {
		return Result{}, errors.New("publish: no events")
	}
	parts := make([][]byte, len(events))
	for i, ev := range events {
		b, err := encodeEvent(ev)
		if err != nil {
			return Result{}, fmt.Errorf("publish: event %d: %w", i, err)
		}
		parts[i] = b
	}
	body, ctype := parts[0], "application/cloudevents+json"
	if len(parts) > 1 {
		body = append(append([]byte{'['}, bytes.Join(parts, []byte{','})...), ']')
		ctype = "application/cloudevents-batch+json"
	}
	path := "/v1/events"
	if p.o.Test {
		path = "/v1/test-events"
	}
	backoff := p.o.MinBackoff
	for attempt := 1; ; attempt++ {
		var res Result
		_, err := p.c.do(ctx, http.MethodPost, path, nil, ctype, body, 0, &res)
		if err == nil {
			res.Attempts = attempt
			return res, nil
		}
		var apiErr *Error
		isAPI := errors.As(err, &apiErr)
		if (isAPI && !apiErr.Temporary()) || ctx.Err() != nil || attempt >= p.o.MaxAttempts {
			return Result{Attempts: attempt}, fmt.Errorf("publish: %w", err)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if isAPI && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		backoff = min(2*backoff, p.o.MaxBackoff)
		if cerr := sleep(ctx, wait); cerr != nil {
			return Result{Attempts: attempt}, fmt.Errorf("publish: %w (last try: %v)", cerr, err)
		}
	}
}

// encodeEvent returns the structured JSON of one event.
func encodeEvent(ev any) ([]byte, error) {
	switch v := ev.(type) {
	case event.Event:
		return json.Marshal(v)
	case *event.Event:
		return json.Marshal(v)
	case json.RawMessage:
		return compactObject(v)
	case []byte:
		return compactObject(v)
	case string:
		return compactObject([]byte(v))
	default:
		return nil, fmt.Errorf("%T is not an event (event.Event, json.RawMessage, []byte or string)", ev)
	}
}

// compactObject checks that b is one JSON object; the bytes go as they are.
func compactObject(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
		return nil, errors.New("not a JSON object")
	}
	return b, nil
}
