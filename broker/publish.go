package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Attributes the service sets on stored events. Producer-supplied authtype,
// authid and testevent are replaced and the delivery attributes removed, so
// that nobody can pass off an event as another client's or as a delivery.
// recordedtime is set to the time of acceptance unless the producer gave
// one: the recordedtime extension forbids intermediaries to change it.
const (
	AttrRecordedTime  = "recordedtime"
	AttrAuthType      = "authtype"
	AttrAuthID        = "authid"
	AttrTestEvent     = "testevent"
	AttrPartitionKey  = "partitionkey"
	AttrAckID         = "ackid"
	AttrDeliveryCount = "deliverycount"

	// AuthTypeClient is the authtype of events published by a client
	// identified by its certificate (CloudEvents authcontext extension).
	AuthTypeClient = "service_account"
)

// DefaultPublishTimeout bounds Publish when ctx has no deadline.
const DefaultPublishTimeout = 10 * time.Second

// Publication is what a producer's request asks to store.
type Publication struct {
	// Producer is the id of the publishing client.
	Producer string
	// Test marks test events: they are stored so that only Producer can
	// receive them, with testevent=true.
	Test   bool
	Events []mevents.Event
}

// Publish stamps every event (recordedtime, authtype, authid, testevent),
// stores them in the streams of their types and returns when JetStream has
// acknowledged every one (stored on a quorum of replicas), or the first error.
//
// Events are deduplicated by source and id within the type's deduplication
// window: a repeated event is acknowledged and stored once.
//
// A request of 2 to maxAtomicBatch events of one type is stored as one
// JetStream atomic batch: whole or not at all. If it repeats an event
// already stored (a retry), JetStream refuses the batch, and the events are
// stored one by one, each deduplicated, as other requests are: if that, or
// a request spanning several types, fails, some events may have been
// stored; because of deduplication a retry of the whole request stores
// each event exactly once.
//
// Errors are *Error with CodeUnavailable: no quorum, a timeout, a missing
// stream, or a full store (its message says so). A node cut off from the
// majority of its cluster (no routes to enough peers) refuses at once.
func (n *Node) Publish(ctx context.Context, p Publication) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	if n.cutOff.Load() {
		return errCutOff
	}
	msgs := stamp(p)
	if n.atomicBatches() && oneType(p.Events) && len(msgs) > 1 && len(msgs) <= maxAtomicBatch {
		err := n.publishAtomic(ctx, msgs)
		if !errors.Is(err, errBatchRepeats) {
			return err
		}
	}
	return n.publishEach(ctx, msgs)
}

// atomicBatches says whether requests of one type are stored as atomic
// batches: on a cluster, and on a single node that fsyncs every write (one
// fsync per batch instead of per event: 3.9× the events/s). A single node
// with a sync interval stores event by event, 3× as fast there, and an R1
// batch is stored message by message anyway (BenchmarkPublish).
func (n *Node) atomicBatches() bool {
	return !n.cfg.PublishEach && (n.cfg.Clustered() || n.cfg.SyncInterval == 0)
}

// stamp sets the service's attributes on every event and returns the
// messages that store them.
func stamp(p Publication) []*nats.Msg {
	recorded := time.Now().UTC().Format(time.RFC3339Nano)
	msgs := make([]*nats.Msg, 0, len(p.Events))
	buf := make([]byte, 0, 2048)
	for i := range p.Events {
		e := &p.Events[i]
		e.DeleteAttr(AttrAckID)
		e.DeleteAttr(AttrDeliveryCount)
		if _, ok := e.Attr(AttrRecordedTime); !ok {
			e.SetStringAttr(AttrRecordedTime, recorded)
		}
		e.SetStringAttr(AttrAuthType, AuthTypeClient)
		e.SetStringAttr(AttrAuthID, p.Producer)
		testFor := ""
		if p.Test {
			e.SetAttr(AttrTestEvent, []byte("true"))
			testFor = p.Producer
		} else {
			e.DeleteAttr(AttrTestEvent)
		}
		key := e.PartitionKey
		if key == "" {
			key = e.ID
		}
		buf = e.AppendJSON(buf[:0])
		msgs = append(msgs, &nats.Msg{
			Subject: Subject(e.Type, mevents.Partition(key), testFor),
			Data:    append([]byte(nil), buf...),
			Header: nats.Header{jetstream.MsgIDHeader: []string{dedupID(testFor, e.Source, e.ID)},
				keyHeader: []string{orderKey(key)}},
		})
	}
	return msgs
}

func oneType(events []mevents.Event) bool {
	for i := 1; i < len(events); i++ {
		if events[i].Type != events[0].Type {
			return false
		}
	}
	return true
}

// publishEach stores msgs one by one, all in flight at once.
func (n *Node) publishEach(ctx context.Context, msgs []*nats.Msg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, msg := range msgs {
		f, err := n.js.PublishMsgAsync(msg)
		if err != nil {
			return publishError(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) && n.cutOff.Load() {
				return errCutOff
			}
			return publishError(err)
		case <-ctx.Done():
			return publishError(ctx.Err())
		}
	}
	return nil
}

// dedupID is the JetStream message id of an event: a hash of its source and
// id (and, for a test event, the client), so any source and id fit a header.
func dedupID(testFor, source, id string) string {
	h := sha256.New()
	if testFor != "" {
		h.Write([]byte("test\x00" + testFor + "\x00"))
	}
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil))
}

// JetStream API error codes (nats-server jetstream_errors_generated.go)
// that mean the store is full.
const (
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeStorageExceeded       jetstream.ErrorCode = 10047
)

// errCutOff is the error of a write refused because this node is cut off
// from the majority of its cluster.
var errCutOff = &mevents.Error{Code: mevents.CodeUnavailable,
	Message: "this node is cut off from the rest of the cluster; retry with the same event ids on another node",
	Err:     errors.New("publish: no routes to a majority of the cluster")}

func publishError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeStorageExceeded || apiErr.ErrorCode == errCodeInsufficientResources):
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the event store is full; try again later", Err: err}
	case errors.Is(err, context.Canceled):
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "request cancelled before the events were stored", Err: err}
	default:
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the event store is unavailable; retry with the same event ids", Err: fmt.Errorf("publish: %w", err)}
	}
}
