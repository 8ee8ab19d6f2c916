package broker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Atomic batches (nats-server 2.12+, streams with allow_atomic). The
// messages of a batch carry Nats-Batch-Id (one id per batch) and
// Nats-Batch-Sequence (1, 2, …); the last also Nats-Batch-Commit: 1. The
// stream leader stages them and, on the commit, checks the whole batch
// and proposes it as one: it is stored whole, or not at all. The staged
// messages are sent without waiting for answers (one connection keeps
// their order); a message lost on the way leaves a gap, and the commit is
// refused as incomplete. Only the commit's answer counts.
//
// Deduplication: Nats-Msg-Id is kept, but a batch holding an id already
// stored (within the window) or twice is refused as a whole (code 10201,
// or 10158 while the other copy is being stored): there is no storing the
// new part alone. Publish then stores the events one by one, each
// deduplicated, as before.

// maxAtomicBatch is nats-server's limit of messages in an atomic batch.
const maxAtomicBatch = 1000

// maxBatchesInFlight is how many atomic batches a stream takes at once
// (nats-server's default is 50: fewer than a busy gateway's requests of
// one type) and maxBatchesTotal how many a server takes.
const (
	maxBatchesInFlight = 1000
	maxBatchesTotal    = 10000
)

// The headers of atomic batch publishing (nats.go v1.55 has no client for
// it; orbit.go's jetstreamext is not available here).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// JetStream API error codes (nats-server jetstream_errors_generated.go).
const (
	errCodeBatchDuplicate  jetstream.ErrorCode = 10201 // JSAtomicPublishContainsDuplicateMessageErr
	errCodeDuplicateInWork jetstream.ErrorCode = 10158 // JSStreamDuplicateMessageConflict
	errCodeAtomicDisabled  jetstream.ErrorCode = 10174 // JSAtomicPublishDisabledErr
)

// errBatchRepeats: JetStream refused an atomic batch because it repeats an
// event (or the stream does not take batches yet): store it event by event.
var errBatchRepeats = errors.New("atomic batch refused: store event by event")

// publishAtomic stores msgs, all of one stream, as one atomic batch. When
// nobody answers the commit (no stream leader at that moment, as right
// after a stream is made or while its leader changes), the whole batch is
// sent again under a new id every 250 ms while ctx lasts (a batch nobody
// committed is dropped by the server), unless this node is cut off from
// the majority of the cluster: then it fails at once.
func (n *Node) publishAtomic(ctx context.Context, msgs []*nats.Msg) error {
	var err error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(jetstream.DefaultPubRetryWait):
			case <-ctx.Done():
				return publishError(ctx.Err())
			}
		}
		err = n.sendBatch(ctx, msgs)
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			break
		}
		if n.cutOff.Load() {
			// No leader comes to this side of a split: the producer is
			// better served by another node at once than after its
			// timeout.
			return errCutOff
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeBatchDuplicate, errCodeDuplicateInWork, errCodeAtomicDisabled:
			return errBatchRepeats
		}
	}
	if err != nil {
		return publishError(err)
	}
	return nil
}

// sendBatch sends msgs as one batch and waits for the commit's answer.
func (n *Node) sendBatch(ctx context.Context, msgs []*nats.Msg) error {
	defer clearBatch(msgs)
	id := nuid.Next()
	last := len(msgs) - 1
	for i, m := range msgs {
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i == last {
			m.Header.Set(batchCommitHeader, "1")
			break
		}
		if err := n.nc.PublishMsg(m); err != nil {
			return err
		}
	}
	_, err := n.js.PublishMsg(ctx, msgs[last], jetstream.WithRetryAttempts(0))
	return err
}

// clearBatch removes the batch headers, for storing msgs one by one.
func clearBatch(msgs []*nats.Msg) {
	for _, m := range msgs {
		m.Header.Del(batchIDHeader)
		m.Header.Del(batchSeqHeader)
		m.Header.Del(batchCommitHeader)
	}
}
