package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Upgrading from consumer groups of durable consumers. Versions of mevents
// before the cursors kept each (client, group, type, partition) as a
// replicated durable pull consumer on the type's stream, named
//
//	g<len(client)>_<client>_<group>_<partition>     g8_consumer_default_7
//
// with explicit acks and the pinned priority group "mevents". The first
// time the new version claims such a partition and finds no cursor, it
// makes the cursor from the consumer and deletes the consumer: "to" is the
// consumer's last delivered event, and the events it had out and not
// acknowledged are found by releasing every event between its ack floor
// and its last delivery (JetStream ignores a release of what was
// acknowledged) and pulling them: they are the cursor's open events, with
// their delivery counts. Nothing acknowledged is delivered again, nothing
// is skipped. (Should that pull not bring them all within upgradeWait,
// the cursor starts at the ack floor instead: the acknowledged events
// after it are delivered again, none is lost.)

const (
	oldPriorityGroup = "mevents"
	upgradeWait      = 5 * time.Second
	// maxUpgradeRelease bounds the releases of one consumer's upgrade.
	maxUpgradeRelease = 100_000
)

func consumerName(client, group string, p int) string {
	return "g" + strconv.Itoa(len(client)) + "_" + client + "_" + group + "_" + strconv.Itoa(p)
}

// parseConsumerName is the inverse of consumerName; ok is false for names
// of other consumers.
func parseConsumerName(name string) (client, group string, p int, ok bool) {
	if !strings.HasPrefix(name, "g") {
		return "", "", 0, false
	}
	i := strings.IndexByte(name, '_')
	if i < 0 {
		return "", "", 0, false
	}
	n, err := strconv.Atoi(name[1:i])
	rest := name[i+1:]
	if err != nil || n <= 0 || len(rest) < n+1 || rest[n] != '_' {
		return "", "", 0, false
	}
	client, rest = rest[:n], rest[n+1:]
	j := strings.LastIndexByte(rest, '_')
	if j < 0 {
		return "", "", 0, false
	}
	group = rest[:j]
	p, err = strconv.Atoi(rest[j+1:])
	if err != nil || p < 0 || p >= mevents.Partitions || !validGroupName(group) {
		return "", "", 0, false
	}
	return client, group, p, true
}

// upgradeCursor makes the cursor of a partition from the durable consumer
// of an earlier version; ok is false when there is none. The caller
// deletes the consumer (dropOldConsumer) once the cursor is stored.
func (n *Node) upgradeCursor(ctx context.Context, client, group, t string, p int) (cursor, bool, error) {
	stream, name := StreamName(t), consumerName(client, group, p)
	c, err := n.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return cursor{}, false, nil
	}
	if err != nil {
		return cursor{}, false, fmt.Errorf("consumer %s of %s: %w", name, stream, err)
	}
	info := c.CachedInfo()
	cur := cursor{to: max(info.Delivered.Stream, info.AckFloor.Stream)}
	if info.NumAckPending > 0 {
		open, err := n.unacknowledged(ctx, c, info)
		if err != nil {
			n.log.Warn("upgrade a group: its unacknowledged events could not be listed; the group starts at its ack floor",
				"consumer", name, "stream", stream, "err", err)
			cur = cursor{to: info.AckFloor.Stream}
		} else {
			cur.open = open
		}
	}
	n.log.Info("group upgraded to a cursor", "client", client, "group", group, "type", t, "partition", p,
		"to", cur.to, "open", len(cur.open))
	return cur, true, nil
}

// dropOldConsumer deletes the durable consumer an earlier version kept for
// a partition of a group, if there is one.
func (n *Node) dropOldConsumer(ctx context.Context, client, group, t string, p int) {
	stream, name := StreamName(t), consumerName(client, group, p)
	err := n.js.DeleteConsumer(ctx, stream, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		n.log.Warn("delete the consumer of an earlier version", "consumer", name, "err", err)
		return
	}
	n.oldConsumers.forget(stream, name)
}

// oldConsumersTTL is how long a node trusts its list of a stream's
// consumers of an earlier version.
const oldConsumersTTL = time.Minute

// oldConsumers are the consumers of an earlier version on each stream, as
// a node last listed them. A claim of a partition that has no cursor yet
// asks whether the group had such a consumer; asking JetStream each time
// would cost a request per partition (12 per type and group) while groups
// join. Only old versions make such consumers (a cluster in a rolling
// upgrade), so a list a minute old is good enough.
type oldConsumers struct {
	mu       sync.Mutex
	byStream map[string]*oldConsumerList
}

type oldConsumerList struct {
	mu    sync.Mutex // held while listing
	at    time.Time
	names map[string]bool // nil until listed
}

func (oc *oldConsumers) list(stream string) *oldConsumerList {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	l := oc.byStream[stream]
	if l == nil {
		if oc.byStream == nil {
			oc.byStream = map[string]*oldConsumerList{}
		}
		l = &oldConsumerList{}
		oc.byStream[stream] = l
	}
	return l
}

// forget removes a consumer that was deleted.
func (oc *oldConsumers) forget(stream, name string) {
	l := oc.list(stream)
	l.mu.Lock()
	delete(l.names, name)
	l.mu.Unlock()
}

// hasOldConsumer says whether stream has the consumer of an earlier
// version named name, listing the stream's consumers when the node's list
// is older than oldConsumersTTL.
func (n *Node) hasOldConsumer(ctx context.Context, stream, name string) (bool, error) {
	l := n.oldConsumers.list(stream)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil || time.Since(l.at) > oldConsumersTTL {
		st, err := n.js.Stream(ctx, stream)
		if err != nil {
			return false, fmt.Errorf("stream %s: %w", stream, err)
		}
		names := map[string]bool{}
		lister := st.ConsumerNames(ctx)
		for c := range lister.Name() {
			if _, _, _, ok := parseConsumerName(c); ok {
				names[c] = true
			}
		}
		if err := lister.Err(); err != nil {
			return false, fmt.Errorf("consumers of %s: %w", stream, err)
		}
		l.names, l.at = names, time.Now()
	}
	return l.names[name], nil
}

// upgradeGroups gives every group consumer of an earlier version on the
// streams of reg a cursor, unless its group has one already, and deletes
// it: groups that nobody consumes now cost no Raft group either. Only the
// meta leader (or a single node) does it, so that two nodes do not pull
// the same consumer's events at once.
func (n *Node) upgradeGroups(ctx context.Context, reg *Registry) {
	if n.cfg.Clustered() && !n.srv.JetStreamIsLeader() {
		return
	}
	var kv jetstream.KeyValue
	for _, t := range reg.Types {
		st, err := n.js.Stream(ctx, StreamName(t.Name))
		if err != nil {
			continue
		}
		var old []string
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if _, _, _, ok := parseConsumerName(name); ok {
				old = append(old, name)
			}
		}
		if len(old) > 0 && kv == nil {
			var err error
			if kv, err = n.cursorsKV(ctx); err != nil {
				return
			}
		}
		for _, name := range old {
			client, group, p, _ := parseConsumerName(name)
			key := cursorKey(client, group, t.Name, p)
			if _, err := kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
				c, ok, err := n.upgradeCursor(ctx, client, group, t.Name, p)
				if err != nil || !ok {
					continue
				}
				if _, err := kv.Create(ctx, key, c.marshal()); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
					n.log.Warn("store an upgraded cursor", "key", key, "err", err)
					continue
				}
			} else if err != nil {
				continue
			}
			n.dropOldConsumer(ctx, client, group, t.Name, p)
		}
	}
}

// unacknowledged returns the events consumer c has out and not acknowledged.
func (n *Node) unacknowledged(ctx context.Context, c jetstream.Consumer, info *jetstream.ConsumerInfo) ([]openEvent, error) {
	from, to := info.AckFloor.Stream+1, info.Delivered.Stream
	if to-from >= maxUpgradeRelease {
		return nil, fmt.Errorf("%d events between the ack floor and the last delivery", to-from+1)
	}
	req := []byte(`{"group":"` + oldPriorityGroup + `"}`)
	_, _ = n.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.UNPIN."+info.Stream+"."+info.Name, req)
	for seq := from; seq <= to; seq++ {
		reply := fmt.Sprintf("$JS.ACK.%s.%s.1.%d.%d.0.0", info.Stream, info.Name, seq, info.Delivered.Consumer)
		if err := n.nc.Publish(reply, []byte("-NAK")); err != nil {
			return nil, err
		}
	}
	if err := n.nc.FlushWithContext(ctx); err != nil {
		return nil, err
	}
	want := info.NumAckPending
	var open []openEvent
	seen := map[uint64]bool{}
	deadline := time.Now().Add(upgradeWait)
	for len(open) < want && time.Now().Before(deadline) {
		opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(time.Until(deadline))}
		if info.Config.PriorityPolicy == jetstream.PriorityPolicyPinned {
			opts = append(opts, jetstream.FetchPriorityGroup(oldPriorityGroup))
		}
		b, err := c.Fetch(want-len(open), opts...)
		if err != nil {
			return nil, err
		}
		for m := range b.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if !seen[meta.Sequence.Stream] {
				seen[meta.Sequence.Stream] = true
				open = append(open, openEvent{seq: meta.Sequence.Stream, count: max(int(meta.NumDelivered)-1, 1)})
			}
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
	}
	if len(open) < want {
		return nil, fmt.Errorf("%d of %d unacknowledged events came back", len(open), want)
	}
	return open, nil
}
