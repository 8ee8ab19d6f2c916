package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Group cursors. A group's position in one partition of one type is a
// cursor, as Kafka's committed offsets and Pulsar's cursors are: every
// cursor of the cluster is one key of the key-value bucket CursorBucket
// (replicated like the event streams):
//
//	key    <client>.<group>.<stream>.<partition>     demo-consumer.default.EV_md_gov_person_registered.3
//	value  {"floor":1200,"to":1260,"open":[[1201,1201,2,0],[1210,1230,1,1764831600000]],
//	        "owner":"9f2c…","node":"n1","epoch":7}
//
// Stream sequences number the events of the whole stream; a cursor counts
// only those of its partition (ev.<type>.<p>, the client's test events
// evtest.<client>.<type>.<p> and the group's redelivered dead events
// evredo.<client>.<group>.<type>.<p>). Every event of the partition up to
// "to" is settled (acknowledged or moved to the dead events) except those
// listed in "open": [first stream sequence, last, deliveries so far, not
// before (Unix ms, 0 = now)] for a run of consecutive sequences; the
// events after "to" were never delivered. "floor" is
// the sequence below which everything is settled (the first open one less
// one, or "to"), for people reading the bucket.
//
// "owner" is the member id of the instance that delivers the partition now
// ("" when none does), "node" its node, and "epoch" counts the owners: ack
// ids carry it, so that a delivery made by an earlier owner is known stale.
// Writes are conditional on the key's revision (compare and set), so an
// owner that lost the partition finds out at its next write.
//
// The owner writes the cursor in group commits: one write per partition
// per round, whatever the number of settlements in it. A settlement is
// answered only once the write that holds it is stored on a quorum.

// CursorBucket is the key-value bucket of the group cursors.
const CursorBucket = "mevents_cursors"

// cursorKey returns the key of the cursor of (client, group, type, p).
func cursorKey(client, group, t string, p int) string {
	return client + "." + group + "." + StreamName(t) + "." + strconv.Itoa(p)
}

// parseCursorKey is the inverse of cursorKey (with the stream name for the
// type); ok is false for other keys.
func parseCursorKey(key string) (client, group, stream string, p int, ok bool) {
	f := strings.Split(key, ".")
	if len(f) != 4 {
		return "", "", "", 0, false
	}
	p, err := strconv.Atoi(f[3])
	if err != nil || p < 0 || p >= mevents.Partitions || !validGroupName(f[1]) || f[0] == "" || !strings.HasPrefix(f[2], "EV_") {
		return "", "", "", 0, false
	}
	return f[0], f[1], f[2], p, true
}

// CursorGroup returns the client and group of the cursor key key; ok is
// false for other keys. Tools that delete a group through the operator
// port (by purging its cursors) use it.
func CursorGroup(key string) (client, group string, ok bool) {
	client, group, _, _, ok = parseCursorKey(key)
	return client, group, ok
}

// openEvent is an unsettled event of a cursor at or before its "to".
type openEvent struct {
	seq       uint64
	count     int       // deliveries so far
	notBefore time.Time // zero: at once
}

// cursor is the decoded value of a cursor key.
type cursor struct {
	to    uint64
	open  []openEvent // by sequence
	owner string
	node  string
	epoch uint64
}

type cursorJSON struct {
	Floor uint64     `json:"floor"`
	To    uint64     `json:"to"`
	Open  [][4]int64 `json:"open"`
	Owner string     `json:"owner"`
	Node  string     `json:"node,omitempty"`
	Epoch uint64     `json:"epoch"`
}

// maxOpen bounds the open events of a cursor read from the store.
const maxOpen = 1 << 20

// floor is the sequence below which everything is settled.
func (c *cursor) floor() uint64 {
	if len(c.open) > 0 {
		return c.open[0].seq - 1
	}
	return c.to
}

func (c *cursor) marshal() []byte {
	j := cursorJSON{To: c.to, Floor: c.floor(), Owner: c.owner, Node: c.node, Epoch: c.epoch, Open: make([][4]int64, 0, 4)}
	for _, o := range c.open {
		var nb int64
		if !o.notBefore.IsZero() {
			nb = o.notBefore.UnixMilli()
		}
		// Events next to each other in the stream with the same count
		// and delay share a range: a key's events out at once often are.
		if n := len(j.Open); n > 0 && j.Open[n-1][1]+1 == int64(o.seq) && j.Open[n-1][2] == int64(o.count) && j.Open[n-1][3] == nb {
			j.Open[n-1][1]++
			continue
		}
		j.Open = append(j.Open, [4]int64{int64(o.seq), int64(o.seq), int64(o.count), nb})
	}
	b, _ := json.Marshal(j)
	return b
}

func parseCursor(b []byte) (cursor, error) {
	var j cursorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return cursor{}, fmt.Errorf("cursor %q: %w", b, err)
	}
	c := cursor{to: j.To, owner: j.Owner, node: j.Node, epoch: j.Epoch}
	for _, o := range j.Open {
		if o[0] <= 0 || o[1] < o[0] || uint64(o[1]) > j.To || o[2] < 0 || len(c.open)+int(o[1]-o[0]) >= maxOpen {
			return cursor{}, fmt.Errorf("cursor %q: open events %v out of range", b, o)
		}
		for seq := o[0]; seq <= o[1]; seq++ {
			e := openEvent{seq: uint64(seq), count: int(o[2])}
			if o[3] > 0 {
				e.notBefore = time.UnixMilli(o[3])
			}
			c.open = append(c.open, e)
		}
	}
	slices.SortFunc(c.open, func(a, b openEvent) int { return cmp.Compare(a.seq, b.seq) })
	return c, nil
}

// cursorsKV returns the cursor bucket, creating it on first use.
func (n *Node) cursorsKV(ctx context.Context) (jetstream.KeyValue, error) {
	return n.bucket(ctx, &n.cursors, jetstream.KeyValueConfig{Bucket: CursorBucket,
		Description: "mevents group cursors: one key per client, group, event type and partition",
		History:     1, Storage: jetstream.FileStorage}, "the group position store is unavailable")
}

// startCursor returns the cursor of a group's partition that was never
// used: it starts at the instance's start, or where the group's consumer
// of an earlier version of mevents was (upgrade.go); upgraded says which.
func (s *Subscription) startCursor(ctx context.Context, t string, p int) (c cursor, upgraded bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*upgradeWait)
	defer cancel()
	n := s.n
	old, err := n.hasOldConsumer(ctx, StreamName(t), consumerName(s.client.ID, s.group, p))
	if err != nil {
		return cursor{}, false, err
	}
	if old {
		if c, ok, err := n.upgradeCursor(ctx, s.client.ID, s.group, t, p); err != nil || ok {
			return c, ok, err
		}
	}
	if s.start.Time.IsZero() {
		return cursor{}, false, nil
	}
	seq, err := s.startSeq(ctx, t)
	return cursor{to: seq - 1}, false, err
}

// startSeq returns the first stream sequence of type t at or after the
// instance's start time. It is the same for every partition, so it is
// asked once per type and instance, not once per partition: hundreds of
// groups joining at once would flood the JetStream API otherwise.
func (s *Subscription) startSeq(ctx context.Context, t string) (uint64, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if seq, ok := s.startSeqs[t]; ok {
		return seq, nil
	}
	seq, err := s.n.seqAtTime(ctx, StreamName(t), s.start.Time)
	if err != nil {
		return 0, err
	}
	if s.startSeqs == nil {
		s.startSeqs = map[string]uint64{}
	}
	s.startSeqs[t] = seq
	return seq, nil
}

// seqAtTime returns the sequence of the first event stored at or after
// at, or the stream's last sequence + 1 when there is none.
func (n *Node) seqAtTime(ctx context.Context, stream string, at time.Time) (uint64, error) {
	req, _ := json.Marshal(map[string]any{"start_time": at.UTC()})
	msg, err := n.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("direct get of %s at %s: %w", stream, at, err)
	}
	if msg.Header.Get("Status") == "404" || (len(msg.Data) == 0 && msg.Header.Get(jetstream.SequenceHeader) == "") {
		s, err := n.js.Stream(ctx, stream)
		if err != nil {
			return 0, fmt.Errorf("stream %s: %w", stream, err)
		}
		return s.CachedInfo().State.LastSeq + 1, nil
	}
	seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("direct get of %s at %s: %s", stream, at, msg.Header.Get("Description"))
	}
	return seq, nil
}

// errLostCursor says that another instance wrote a cursor since it was read.
var errLostCursor = errors.New("the cursor was written by another instance")

// JetStream's "wrong last sequence" error codes: the conditional write of
// a key found another revision (nats-server answers a write that expects a
// subject's last sequence with the second).
const (
	wrongLastSeq      jetstream.ErrorCode = 10071
	wrongLastSeqConst jetstream.ErrorCode = 10164
)

// casCursor writes c under key if its revision is still rev (0: the key must
// not exist) and returns the new revision. It publishes asynchronously so
// that the writes of one commit round go out together.
func (n *Node) casCursor(key string, c *cursor, rev uint64) (jetstream.PubAckFuture, error) {
	msg := nats.NewMsg("$KV." + CursorBucket + "." + key)
	msg.Data = c.marshal()
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	return n.js.PublishMsgAsync(msg)
}

// isLost says whether err is a conditional write that found another revision.
func isLost(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == wrongLastSeq || apiErr.ErrorCode == wrongLastSeqConst) ||
		errors.Is(err, jetstream.ErrKeyExists)
}

// awaitAck waits for a write's acknowledgement.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) (uint64, error) {
	select {
	case ack := <-f.Ok():
		return ack.Sequence, nil
	case err := <-f.Err():
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
