package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead events. JetStream has no dead-letter queue, so an event a consumer
// reports dead, or one delivered more than the client's maxDeliver times, is
// copied to the stream DEAD (acknowledged by a quorum) before the group's
// cursor settles it; its partition key then moves on.
//
//	stream   DEAD, file storage, 30 days, replicated like event streams
//	subject  dead.<client>.<group>
//	message  JSON deadRecord; its stream sequence is the dead event's id
//
// Redelivering publishes the event again to its type's stream under
// evredo.<client>.<group>.<type>.<partition>, a subject only that group's
// consumers filter, and removes it from DEAD.

// DeadStream is the name of the dead-event stream.
const DeadStream = "DEAD"

// DeadRetention is how long dead events are kept.
const DeadRetention = 30 * 24 * time.Hour

// Origins of dead events.
const (
	OriginConsumer   = "consumer"   // the consumer reported it dead
	OriginMaxDeliver = "maxDeliver" // delivered too often without an ack
)

// DeadEvent is one event in the dead-event store.
type DeadEvent struct {
	ID            string          `json:"id"`
	Group         string          `json:"group"`
	Reason        string          `json:"reason"`
	Origin        string          `json:"origin"`
	DeliveryCount int             `json:"deliveryCount"`
	DeadAt        time.Time       `json:"deadAt"`
	Event         json.RawMessage `json:"event"`
}

// DeadPage is one page of a client's dead events, oldest first. Next is
// the cursor of the following page, or "" on the last one.
type DeadPage struct {
	Items []DeadEvent
	Next  string
}

func deadSubject(client, group string) string { return "dead." + client + "." + group }

// deadStream returns the dead-event stream, creating it on first use.
func (n *Node) deadStream(ctx context.Context) (jetstream.Stream, error) {
	n.groups.mu.Lock()
	s := n.groups.dead
	n.groups.mu.Unlock()
	if s != nil {
		return s, nil
	}
	replicas := DefaultReplicas
	if !n.cfg.Clustered() {
		replicas = 1
	}
	s, err := n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadStream,
		Description: "mevents dead events",
		Subjects:    []string{"dead.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      DeadRetention,
		Discard:     jetstream.DiscardOld,
		Retention:   jetstream.LimitsPolicy,
		AllowDirect: true,
	})
	if err != nil {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the dead-event store is unavailable", Err: fmt.Errorf("dead-event stream: %w", err)}
	}
	n.groups.mu.Lock()
	n.groups.dead = s
	n.groups.mu.Unlock()
	return s, nil
}

type deadRecord struct {
	Group         string          `json:"group"`
	Reason        string          `json:"reason"`
	Origin        string          `json:"origin"`
	DeliveryCount int             `json:"deliveryCount"`
	DeadAt        time.Time       `json:"deadAt"`
	Event         json.RawMessage `json:"event"`
}

// storeDead copies the event at seq of stream, delivered count times to
// client's group, to the dead-event store.
func (n *Node) storeDead(ctx context.Context, client, group, stream string, seq uint64, event []byte, count int, origin, reason string) error {
	if _, err := n.deadStream(ctx); err != nil {
		return err
	}
	rec, err := json.Marshal(deadRecord{Group: group, Reason: reason, Origin: origin, DeliveryCount: count,
		DeadAt: time.Now().UTC(), Event: event})
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: deadSubject(client, group), Data: rec,
		// The same event is stored once even if burying is retried.
		Header: nats.Header{jetstream.MsgIDHeader: []string{client + ":" + group + ":" + stream + ":" + strconv.FormatUint(seq, 10)}}}
	if _, err := n.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("store dead event: %w", err)
	}
	return nil
}

// ListDead returns up to limit dead events of cl from cursor ("" is the
// start), oldest first. Errors: CodeInvalid (cursor), CodeUnavailable.
func (n *Node) ListDead(ctx context.Context, cl *Client, cursor string, limit int) (DeadPage, error) {
	seq := uint64(1)
	if cursor != "" {
		v, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil || v == 0 {
			return DeadPage{}, mevents.Errorf(mevents.CodeInvalid, "cursor %q is not valid", cursor)
		}
		seq = v
	}
	ds, err := n.deadStream(ctx)
	if err != nil {
		return DeadPage{}, err
	}
	page := DeadPage{Items: []DeadEvent{}}
	for {
		m, err := ds.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("dead."+cl.ID+".*"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return page, nil
		}
		if err != nil {
			return DeadPage{}, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the dead-event store is unavailable", Err: err}
		}
		if len(page.Items) == limit {
			page.Next = strconv.FormatUint(m.Sequence, 10)
			return page, nil
		}
		page.Items = append(page.Items, deadEventOf(m))
		seq = m.Sequence + 1
	}
}

func deadEventOf(m *jetstream.RawStreamMsg) DeadEvent {
	var rec deadRecord
	_ = json.Unmarshal(m.Data, &rec)
	return DeadEvent{ID: strconv.FormatUint(m.Sequence, 10), Group: rec.Group, Reason: rec.Reason, Origin: rec.Origin,
		DeliveryCount: rec.DeliveryCount, DeadAt: rec.DeadAt, Event: rec.Event}
}

// ownDead reads the dead event id of cl. Errors: CodeNotFound, CodeUnavailable.
func (n *Node) ownDead(ctx context.Context, cl *Client, id string) (jetstream.Stream, *jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	notFound := mevents.Errorf(mevents.CodeNotFound, "no dead event %q", id)
	if err != nil || seq == 0 {
		return nil, nil, notFound
	}
	ds, err := n.deadStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := ds.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, notFound
	}
	if err != nil {
		return nil, nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the dead-event store is unavailable", Err: err}
	}
	if !strings.HasPrefix(m.Subject, "dead."+cl.ID+".") {
		return nil, nil, notFound
	}
	return ds, m, nil
}

// RedeliverDead sends dead event id of cl back to its group and removes it
// from the store. Errors: CodeNotFound, CodeConflict (the type is no longer
// routed to cl), CodeUnavailable.
func (n *Node) RedeliverDead(ctx context.Context, cl *Client, id string) error {
	ds, m, err := n.ownDead(ctx, cl, id)
	if err != nil {
		return err
	}
	d := deadEventOf(m)
	var ev struct {
		ID           string `json:"id"`
		Type         string `json:"type"`
		PartitionKey string `json:"partitionkey"`
	}
	if err := json.Unmarshal(d.Event, &ev); err != nil || ev.Type == "" {
		return &mevents.Error{Code: mevents.CodeInternal, Message: "internal error", Err: fmt.Errorf("dead event %s: unreadable event", id)}
	}
	if !cl.MayConsume(ev.Type) {
		return mevents.Errorf(mevents.CodeConflict, "event type %q is no longer routed to client %s", ev.Type, cl.ID)
	}
	key := ev.PartitionKey
	if key == "" {
		key = ev.ID
	}
	msg := &nats.Msg{Subject: redoSubject(cl.ID, d.Group, ev.Type, mevents.Partition(key)), Data: d.Event,
		Header: nats.Header{jetstream.MsgIDHeader: []string{"redo:" + id}, keyHeader: []string{orderKey(key)}}}
	if _, err := n.js.PublishMsg(ctx, msg); err != nil {
		return publishError(err)
	}
	if err := ds.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the dead-event store is unavailable", Err: err}
	}
	return nil
}

// DeleteDead discards dead event id of cl. Errors: CodeNotFound, CodeUnavailable.
func (n *Node) DeleteDead(ctx context.Context, cl *Client, id string) error {
	ds, m, err := n.ownDead(ctx, cl, id)
	if err != nil {
		return err
	}
	if err := ds.DeleteMsg(ctx, m.Sequence); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return mevents.Errorf(mevents.CodeNotFound, "no dead event %q", id)
		}
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the dead-event store is unavailable", Err: err}
	}
	return nil
}
