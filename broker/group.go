package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumer groups. A group is an independent cursor of one client over the
// types routed to it. Every (client, group, type, partition) is one durable
// pull consumer on the type's stream:
//
//	name     g<len(client)>_<client>_<group>_<partition>   g8_consumer_default_7
//	filters  ev.<type>.<p>, evtest.<client>.<type>.<p>, evredo.<client>.<group>.<type>.<p>
//	acks     explicit; AckWait = the node's ack timeout; MaxAckPending partitionWindow; MaxDeliver unlimited
//	pulls    priority group "mevents", policy pinned_client
//
// Up to partitionWindow events of a partition may be out at once; the order
// per partition key is kept by the one puller JetStream pins the consumer
// to, which hands an event out only when every earlier event of its key is
// settled (consume_keys.go). MaxDeliver is enforced here, not by JetStream,
// so that an event delivered too often moves to the dead-event store
// instead of being dropped (dead.go).
//
// The length prefix makes the name injective: no two (client, group) pairs
// share a consumer, though both may contain "_".

// DefaultGroup is the group of a client that names none.
const DefaultGroup = "default"

// DefaultAckTimeout is how long a delivery may stay unacknowledged.
const DefaultAckTimeout = 30 * time.Second

const (
	// partitionWindow is how many events of one partition of a group may
	// be delivered and unsettled at once.
	partitionWindow = 128
	// priorityGroup is the priority group every pull names; pinnedTTL is
	// how long the pin outlives a puller that stopped pulling without
	// giving it up (its node died).
	priorityGroup = "mevents"
	pinnedTTL     = 10 * time.Second
)

// validGroupName reports whether g is 1 to 64 of A-Z a-z 0-9 _ -.
func validGroupName(g string) bool {
	if len(g) == 0 || len(g) > 64 {
		return false
	}
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidGroup returns an *Error (CodeInvalid) unless g is a valid group name.
func ValidGroup(g string) error {
	if !validGroupName(g) {
		return Errorf(CodeInvalid, "group %q is not valid: use 1 to 64 of A-Z a-z 0-9 _ -", g)
	}
	return nil
}

// Start says where a new group begins; the zero value is the oldest
// retained event. It applies only when the group is first used.
type Start struct {
	Latest bool      // only events accepted after the group was created
	Time   time.Time // events accepted at or after Time
}

func consumerName(client, group string, p int) string {
	return "g" + strconv.Itoa(len(client)) + "_" + client + "_" + group + "_" + strconv.Itoa(p)
}

// ConsumerGroup returns the client and group whose JetStream consumer is
// named name; ok is false for other consumers. Tools that delete a group
// through the operator port use it.
func ConsumerGroup(name string) (client, group string, ok bool) {
	client, group, _, ok = parseConsumerName(name)
	return client, group, ok
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
	if err != nil || p < 0 || p >= Partitions || !validGroupName(group) {
		return "", "", 0, false
	}
	return client, group, p, true
}

func redoSubject(client, group, t string, p int) string {
	return "evredo." + client + "." + group + "." + t + "." + strconv.Itoa(p)
}

// groupCache remembers the consumers this node has looked up or created,
// and the dead-event stream (dead.go).
type groupCache struct {
	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // by stream + " " + name
	dead      jetstream.Stream
}

func (n *Node) ackTimeout() time.Duration {
	if n.cfg.AckTimeout > 0 {
		return n.cfg.AckTimeout
	}
	return DefaultAckTimeout
}

func (n *Node) retention(t string) time.Duration {
	if reg := n.Registry(); reg != nil {
		if et := reg.Type(t); et != nil && et.Retention > 0 {
			return et.Retention
		}
	}
	return DefaultRetention
}

func (n *Node) consumerConfig(client, group, t string, p int, start Start) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:     consumerName(client, group, p),
		Description: fmt.Sprintf("mevents group %s of client %s, partition %d", group, client, p),
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     n.ackTimeout(),
		// MaxDeliver is enforced by the subscription (dead events).
		MaxDeliver:     -1,
		MaxAckPending:  partitionWindow,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      pinnedTTL,
		FilterSubjects: []string{
			Subject(t, p, ""), Subject(t, p, client), redoSubject(client, group, t, p),
		},
		Metadata: map[string]string{"mevents_client": client, "mevents_group": group, "mevents_partition": strconv.Itoa(p)},
		// A group unused for longer than the type's retention has no
		// position worth keeping: every retained event is newer than its
		// last pull, so a group created again from the oldest event misses
		// nothing and repeats nothing.
		InactiveThreshold: n.retention(t) + 24*time.Hour,
	}
	switch {
	case start.Latest:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	case !start.Time.IsZero():
		st := start.Time
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &st
	default:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	return cc
}

// groupConsumer returns the consumer of (client, group, type t, partition
// p), creating it with start when it does not exist yet.
func (n *Node) groupConsumer(ctx context.Context, client, group, t string, p int, start Start) (jetstream.Consumer, error) {
	stream := StreamName(t)
	name := consumerName(client, group, p)
	key := stream + " " + name
	n.groups.mu.Lock()
	c := n.groups.consumers[key]
	n.groups.mu.Unlock()
	if c != nil {
		return c, nil
	}
	want := n.consumerConfig(client, group, t, p, start)
	err := attempts(ctx, func(ctx context.Context) error {
		var err error
		c, err = n.js.Consumer(ctx, stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = n.js.CreateConsumer(ctx, stream, want)
		} else if err == nil && outdated(c.CachedInfo().Config, want) {
			// The ack timeout changed, or the consumer was made by an
			// earlier version: its position stays.
			upd := c.CachedInfo().Config
			upd.AckWait, upd.MaxAckPending = want.AckWait, want.MaxAckPending
			upd.PriorityPolicy, upd.PriorityGroups, upd.PinnedTTL = want.PriorityPolicy, want.PriorityGroups, want.PinnedTTL
			c, err = n.js.UpdateConsumer(ctx, stream, upd)
		}
		return err
	})
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "the event store is unavailable", Err: fmt.Errorf("consumer %s on %s: %w", name, stream, err)}
	}
	n.groups.mu.Lock()
	if n.groups.consumers == nil {
		n.groups.consumers = make(map[string]jetstream.Consumer)
	}
	n.groups.consumers[key] = c
	n.groups.mu.Unlock()
	return c, nil
}

// outdated says whether a group consumer's settings differ from want in
// what may change.
func outdated(have, want jetstream.ConsumerConfig) bool {
	return have.AckWait != want.AckWait || have.MaxAckPending != want.MaxAckPending ||
		have.PriorityPolicy != want.PriorityPolicy || have.PinnedTTL != want.PinnedTTL
}

// ownHandle returns a handle of its own on consumer c: the pin JetStream
// gives a puller belongs to the handle, and two subscriptions on one node
// must not share it.
func (n *Node) ownHandle(ctx context.Context, c jetstream.Consumer) (jetstream.Consumer, error) {
	info := c.CachedInfo()
	return n.js.Consumer(ctx, info.Stream, info.Name)
}

// unpin takes the pin from whoever holds it, so that another puller of the
// consumer gets it at once. (jetstream.Stream.UnpinConsumer would need a
// stream handle: one more request.)
func (n *Node) unpin(ctx context.Context, stream, consumer string) error {
	req, _ := json.Marshal(map[string]string{"group": priorityGroup})
	msg, err := n.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.UNPIN."+stream+"."+consumer, req)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(msg.Data, &resp) == nil && resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	return nil
}

func (n *Node) forgetConsumer(stream, name string) {
	n.groups.mu.Lock()
	delete(n.groups.consumers, stream+" "+name)
	n.groups.mu.Unlock()
}
