package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// GroupLag is the backlog of one client's group on one event type, summed
// over the type's partitions, as the group's cursors and the stream say.
type GroupLag struct {
	Client string `json:"client"`
	Group  string `json:"group"`
	Type   string `json:"type"`
	// Pending are events not yet delivered to the group.
	Pending uint64 `json:"pending"`
	// AckPending are events delivered and not yet acknowledged.
	AckPending uint64 `json:"ackPending"`
	// Redelivering are events released with a delay that has not ended.
	Redelivering uint64 `json:"redelivering"`
	// OldestUnacked is the age (since it was accepted) of the oldest event
	// delivered and not acknowledged; 0 when there is none.
	OldestUnacked Duration `json:"oldestUnacked"`
}

// Duration is a time.Duration that marshals to JSON as "1.5s".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// CursorState is one cursor of a group (cursor.go) with the backlog of
// its partition.
type CursorState struct {
	Client    string `json:"client"`
	Group     string `json:"group"`
	Type      string `json:"type"`
	Partition int    `json:"partition"`
	// Floor is the sequence below which everything is settled; To the last
	// event delivered; Open the unsettled events up to To.
	Floor uint64 `json:"floor"`
	To    uint64 `json:"to"`
	Open  int    `json:"open"`
	// Owner is the instance that delivers the partition ("" when none),
	// on Node; Epoch counts the partition's owners.
	Owner string `json:"owner"`
	Node  string `json:"node,omitempty"`
	Epoch uint64 `json:"epoch"`
	// Pending, AckPending, Redelivering and OldestUnacked as in GroupLag.
	Pending       uint64   `json:"pending"`
	AckPending    uint64   `json:"ackPending"`
	Redelivering  uint64   `json:"redelivering"`
	OldestUnacked Duration `json:"oldestUnacked"`
}

// Cursors returns every group cursor of the registered event types with
// its backlog, sorted by client, group, type and partition. It reads the
// cursor store, the last event of each partition (one direct get per
// type), and for each cursor behind its partition two direct gets more.
func (n *Node) Cursors(ctx context.Context) ([]CursorState, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	reg := n.Registry()
	if reg == nil || !n.opened.Load() {
		return nil, mevents.Errorf(mevents.CodeUnavailable, "the node is starting")
	}
	types := map[string]string{} // by stream
	for _, t := range reg.Types {
		types[StreamName(t.Name)] = t.Name
	}
	entries, err := n.cursorEntries(ctx)
	if err != nil {
		return nil, err
	}
	cache := &n.lagCache
	cache.begin()
	defer cache.end()
	lasts := map[string]map[int]uint64{} // by stream, partition
	now := time.Now()
	var out []CursorState
	for _, e := range entries {
		client, group, stream, p, c := e.client, e.group, e.stream, e.p, e.c
		t := types[stream]
		if t == "" {
			continue
		}
		if lasts[stream] == nil {
			if lasts[stream], err = n.lastPerPartition(ctx, t); err != nil {
				return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "stream status unavailable", Err: err}
			}
		}
		st := CursorState{Client: client, Group: group, Type: t, Partition: p, Floor: c.floor(), To: c.to, Open: len(c.open),
			Owner: c.owner, Node: c.node, Epoch: c.epoch}
		oldest := uint64(0)
		for _, o := range c.open {
			switch {
			case o.count == 0:
				st.Pending++
			default:
				st.AckPending++
				if oldest == 0 {
					oldest = o.seq
				}
				if now.Before(o.notBefore) {
					st.Redelivering++
				}
			}
		}
		if last := lasts[stream][p]; last > c.to {
			// A count holds while the partition's last event is the same.
			after, err := cache.counts.get(pendingKey{stream, p, c.to + 1}, func(v pendingCount) bool { return v.last == last },
				func() (pendingCount, error) {
					k, err := n.countAfter(ctx, stream, Subject(t, p, ""), c.to+1)
					return pendingCount{last, k}, err
				})
			if err != nil {
				return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "stream status unavailable", Err: err}
			}
			st.Pending += after.n
		}
		if oldest > 0 {
			// Unknown (not kept: asked again next time) when the event is
			// gone or the stream did not answer.
			at, err := cache.stamps.get(stampKey{stream, oldest}, func(time.Time) bool { return true }, func() (time.Time, error) {
				return n.storedAt(ctx, stream, oldest)
			})
			if err == nil {
				st.OldestUnacked = Duration(now.Sub(at))
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Partition < b.Partition
	})
	return out, nil
}

// lagCache keeps what the lag computation asked the event streams, so
// that a scrape asks again only about partitions that moved: how many
// events of a partition follow a position (valid while the partition's
// last event is the same), and when an event was stored. Many groups
// share positions (groups that joined together and then fell behind), and
// the groups of a system that is away stay where they are, so hundreds of
// groups behind cost a few direct gets a scrape, not one or two each.
// What one computation did not use is forgotten; all of it every
// cursorReread, as a removed event would otherwise go unnoticed.
type lagCache struct {
	mu     sync.Mutex // held by a computation, from begin to end
	since  time.Time
	counts reuse[pendingKey, pendingCount]
	stamps reuse[stampKey, time.Time]
}

type pendingKey struct {
	stream string
	p      int
	from   uint64
}

type pendingCount struct{ last, n uint64 }

type stampKey struct {
	stream string
	seq    uint64
}

// begin starts a computation with the cache; end ends it.
func (c *lagCache) begin() {
	c.mu.Lock()
	forget := time.Since(c.since) > cursorReread
	if forget {
		c.since = time.Now()
	}
	c.counts.begin(forget)
	c.stamps.begin(forget)
}

func (c *lagCache) end() {
	c.counts.end()
	c.stamps.end()
	c.mu.Unlock()
}

// reuse keeps the answers one computation used for the next: an answer
// asked or reused between begin and end is kept, the others forgotten.
type reuse[K comparable, V any] struct{ last, now map[K]V }

func (r *reuse[K, V]) begin(forget bool) {
	if forget {
		r.last = nil
	}
	r.now = map[K]V{}
}

func (r *reuse[K, V]) end() { r.last, r.now = r.now, nil }

// get returns k's answer: this computation's, else the last one's if
// valid says it still holds, else ask's, kept unless it failed.
func (r *reuse[K, V]) get(k K, valid func(V) bool, ask func() (V, error)) (V, error) {
	v, ok := r.now[k]
	if !ok {
		if v, ok = r.last[k]; !ok || !valid(v) {
			var err error
			if v, err = ask(); err != nil {
				return v, err
			}
		}
		r.now[k] = v
	}
	return v, nil
}

// cursorEntry is a cursor read from the store, with its key's parts.
type cursorEntry struct {
	client, group, stream string
	p                     int
	c                     cursor
}

// cursorSnapshot is the cursor store as last read: every cursor by key,
// and the sequence of the store's stream read up to.
type cursorSnapshot struct {
	mu      sync.Mutex // held while reading: one read at a time
	seq     uint64
	full    time.Time // when the store was last read from its start
	byKey   map[string]cursorEntry
	entries []cursorEntry // byKey's values in key order; nil after a change
}

const (
	// cursorReread bounds how long the snapshot follows the store by its
	// changes alone: a purge of the bucket's delete markers (nats kv purge
	// --deletes, or a stream purge) leaves no trace to follow.
	cursorReread = 5 * time.Minute
	// cursorReadBatch is the most cursors one direct get returns.
	cursorReadBatch = 10000
)

// cursorEntries returns every cursor in the store, in key order. It reads
// only what changed since the last call: the cursors written after the
// sequence it read up to, with batched direct gets (no consumer, so no
// write to the JetStream meta layer per scrape). The lag metrics, computed
// at each scrape, then cost a stream info and a few gets when few groups
// move, not a read of every cursor (18,000 for 300 groups of 5 types).
func (n *Node) cursorEntries(ctx context.Context) ([]cursorEntry, error) {
	unavailable := func(err error) error {
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the group position store is unavailable", Err: err}
	}
	kv, err := n.cursorsKV(ctx)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return nil, unavailable(errors.New("no stream status"))
	}
	last := bs.StreamInfo().State.LastSeq
	snap := &n.cursorSnap
	snap.mu.Lock()
	defer snap.mu.Unlock()
	if snap.byKey == nil || time.Since(snap.full) > cursorReread || last < snap.seq {
		snap.byKey, snap.seq, snap.full, snap.entries = map[string]cursorEntry{}, 0, time.Now(), nil
	}
	prefix := "$KV." + CursorBucket + "."
	for snap.seq < last {
		msgs, err := n.directBatch(ctx, bs.StreamInfo().Config.Name, directRequest{Seq: snap.seq + 1, Batch: cursorReadBatch, NextBySubj: prefix + ">"})
		if err != nil {
			// What was read counts: the next call goes on from there.
			return nil, unavailable(err)
		}
		if len(msgs) == 0 {
			break // the replica that answered has no more yet
		}
		for _, m := range msgs {
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return nil, unavailable(errors.New("cursor store: a message without its sequence"))
			}
			snap.seq, snap.entries = max(snap.seq, seq), nil
			key := strings.TrimPrefix(m.Header.Get(jetstream.SubjectHeader), prefix)
			if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
				delete(snap.byKey, key) // deleted or purged
				continue
			}
			client, group, stream, p, ok := parseCursorKey(key)
			if !ok {
				continue
			}
			c, err := parseCursor(m.Data)
			if err != nil {
				n.log.Warn("unreadable group cursor", "key", key, "err", err)
				delete(snap.byKey, key)
				continue
			}
			snap.byKey[key] = cursorEntry{client: client, group: group, stream: stream, p: p, c: c}
		}
	}
	if snap.entries == nil {
		snap.entries = make([]cursorEntry, 0, len(snap.byKey))
		for _, k := range slices.Sorted(maps.Keys(snap.byKey)) {
			snap.entries = append(snap.entries, snap.byKey[k])
		}
	}
	return snap.entries, nil
}

// Lag reports the backlog of every client's group on every registered
// event type, sorted by client, group and type (the sum of Cursors over
// partitions).
func (n *Node) Lag(ctx context.Context) ([]GroupLag, error) {
	cursors, err := n.Cursors(ctx)
	if err != nil {
		return nil, err
	}
	var out []GroupLag
	for _, c := range cursors {
		if len(out) == 0 || out[len(out)-1].Client != c.Client || out[len(out)-1].Group != c.Group || out[len(out)-1].Type != c.Type {
			out = append(out, GroupLag{Client: c.Client, Group: c.Group, Type: c.Type})
		}
		l := &out[len(out)-1]
		l.Pending += c.Pending
		l.AckPending += c.AckPending
		l.Redelivering += c.Redelivering
		l.OldestUnacked = max(l.OldestUnacked, c.OldestUnacked)
	}
	return out, nil
}

// lastPerPartition returns the sequence of the last event of each
// partition of type t.
func (n *Node) lastPerPartition(ctx context.Context, t string) (map[int]uint64, error) {
	msgs, err := n.directBatch(ctx, StreamName(t), directRequest{MultiLast: []string{"ev." + t + ".*"}, Batch: mevents.Partitions})
	if err != nil {
		return nil, err
	}
	out := map[int]uint64{}
	for _, m := range msgs {
		subj := m.Header.Get("Nats-Subject")
		p, err1 := strconv.Atoi(subj[strings.LastIndexByte(subj, '.')+1:])
		seq, err2 := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err1 == nil && err2 == nil {
			out[p] = seq
		}
	}
	return out, nil
}

// countAfter returns how many events of subject are stored from seq on
// (0 when none is).
func (n *Node) countAfter(ctx context.Context, stream, subject string, seq uint64) (uint64, error) {
	// Only a batched get reports what is pending after the message.
	m, err := n.directGet(ctx, stream, directRequest{Seq: seq, Batch: 1, NextBySubj: subject})
	if err != nil || m == nil {
		return 0, err
	}
	pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
	return pending + 1, nil
}

// storedAt returns when the first event stored from seq on was stored; an
// error when none is.
func (n *Node) storedAt(ctx context.Context, stream string, seq uint64) (time.Time, error) {
	m, err := n.directGet(ctx, stream, directRequest{Seq: seq, NextBySubj: ">"})
	if err == nil && m == nil {
		err = fmt.Errorf("direct get of %s: no event from %d on", stream, seq)
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
}

// directRequest is a JetStream direct get request.
type directRequest struct {
	Seq        uint64   `json:"seq,omitempty"`
	Batch      int      `json:"batch,omitempty"`
	NextBySubj string   `json:"next_by_subj,omitempty"`
	MultiLast  []string `json:"multi_last,omitempty"`
}

// directGet sends a direct get that answers one message through the
// connection's shared reply subscription, so that the thousands a lag
// computation may ask cost no subscription each (the end-of-batch answer
// that follows a batched get's message is dropped there). It returns nil
// when no message matched.
func (n *Node) directGet(ctx context.Context, stream string, req directRequest) (*nats.Msg, error) {
	b, _ := json.Marshal(req)
	m, err := n.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, b)
	if err != nil {
		return nil, fmt.Errorf("direct get of %s: %w", stream, err)
	}
	if found, err := directFound(stream, m); !found {
		return nil, err
	}
	return m, nil
}

// directBatch sends a batched direct get and returns the messages of its
// answer (none when nothing matched).
func (n *Node) directBatch(ctx context.Context, stream string, req directRequest) ([]*nats.Msg, error) {
	b, _ := json.Marshal(req)
	inbox := n.nc.NewRespInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, b); err != nil {
		return nil, err
	}
	var out []*nats.Msg
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("direct get of %s: %w", stream, err)
		}
		switch found, err := directFound(stream, m); {
		case err != nil:
			return nil, err
		case !found:
			return out, nil
		}
		out = append(out, m)
	}
}

// directFound says whether m, an answer to a direct get, is a message;
// the end of a batch or "no message" is not, another status an error.
func directFound(stream string, m *nats.Msg) (bool, error) {
	switch m.Header.Get("Status") {
	case "":
		return true, nil
	case "204", "404":
		return false, nil
	default:
		return false, fmt.Errorf("direct get of %s: %s %s", stream, m.Header.Get("Status"), m.Header.Get("Description"))
	}
}

var (
	descPending    = prometheus.NewDesc("mevents_pending_events", "Events not yet delivered to a group.", []string{"client", "group", "type"}, nil)
	descAckPending = prometheus.NewDesc("mevents_ack_pending_events", "Events delivered to a group and not yet acknowledged.", []string{"client", "group", "type"}, nil)
	descOldest     = prometheus.NewDesc("mevents_oldest_unacked_seconds", "Age since acceptance of a group's oldest unacknowledged event.", []string{"client", "group", "type"}, nil)
)

// LagCollector returns a Prometheus collector of Lag, read at each scrape
// (bounded to 5 s). Only the meta leader reports, so that summing over the
// nodes of a cluster counts each group once.
func (n *Node) LagCollector() prometheus.Collector { return lagCollector{n} }

type lagCollector struct{ n *Node }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPending
	ch <- descAckPending
	ch <- descOldest
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if !n.opened.Load() || n.closed.Load() || (n.cfg.Clustered() && !n.srv.JetStreamIsLeader()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lags, err := n.Lag(ctx)
	if err != nil {
		n.log.Warn("lag metrics", "err", err)
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(l.Pending), l.Client, l.Group, l.Type)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(l.AckPending), l.Client, l.Group, l.Type)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, time.Duration(l.OldestUnacked).Seconds(), l.Client, l.Group, l.Type)
	}
}
