package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Event is one delivered event.
type Event struct {
	// The CloudEvents attributes most handlers need.
	ID, Source, Type, Subject string
	// PartitionKey orders the events of one key; "" for none.
	PartitionKey string `json:"partitionkey"`
	// AckID is the opaque handle of this delivery.
	AckID string `json:"ackid"`
	// DeliveryCount is 1 on the first delivery.
	DeliveryCount int `json:"deliverycount"`
	// TestEvent marks an event published with ProducerOptions.Test.
	TestEvent bool `json:"testevent"`
	// Data is the event's data as JSON (nil when it has data_base64 or none).
	Data json.RawMessage `json:"data"`
	// Raw is the whole delivered CloudEvent (structured JSON).
	Raw json.RawMessage `json:"-"`
}

// parseEvent reads a delivered event.
func parseEvent(raw []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	if e.AckID == "" {
		return nil, errors.New("an event without ackid")
	}
	e.Raw = append(json.RawMessage(nil), raw...)
	return &e, nil
}

// CloudEvent decodes the event with the CloudEvents sdk-go; the ackid,
// deliverycount and other extensions are among its extensions.
func (e *Event) CloudEvent() (event.Event, error) {
	ev := event.New()
	if err := json.Unmarshal(e.Raw, &ev); err != nil {
		return ev, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return ev, nil
}

// PoisonError is the error a handler returns for an event it can never
// handle: the consumer reports it dead (CONTRACT §5.3) instead of
// releasing it.
type PoisonError struct {
	Reason string
	Err    error
}

func (e *PoisonError) Error() string {
	if e.Err != nil {
		return "poison event: " + e.Reason + ": " + e.Err.Error()
	}
	return "poison event: " + e.Reason
}

func (e *PoisonError) Unwrap() error { return e.Err }

// Poison returns a *PoisonError: a handler returns it to have the event
// moved to the dead-event store with reason.
func Poison(reason string, err error) error { return &PoisonError{Reason: reason, Err: err} }
