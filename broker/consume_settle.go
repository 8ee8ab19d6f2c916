package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Ack ids. An ack id is the base64url (unpadded) form of the JetStream ack
// subject of the delivery:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
//
// (or its 12-token form with domain and account hash). It names the stream,
// the group's consumer (whose name holds the client and group, group.go) and the
// event, so any request of the client, on any node, can settle it: no
// per-connection state is needed. Settle refuses ack ids of consumers that
// are not the caller's.

// SettleOp is what a consumer does with deliveries.
type SettleOp string

// Settle operations.
const (
	SettleAck     SettleOp = "ack"     // processed: never deliver again
	SettleRelease SettleOp = "release" // deliver again, after Delay
	SettleDead    SettleOp = "dead"    // move to the dead-event store with Reason
)

// Settlement settles some deliveries.
type Settlement struct {
	Op     SettleOp
	AckIDs []string
	// Delay is how long a released event waits before it is delivered
	// again; the event's partition key stays blocked meanwhile.
	Delay time.Duration
	// Reason is kept with a dead event.
	Reason string
}

// SettleFailure says why one ack id was not settled.
type SettleFailure struct {
	AckID string `json:"ackId"`
	Error string `json:"error"`
}

// SettleResult lists the outcome per ack id.
type SettleResult struct {
	Succeeded []string        `json:"succeeded"`
	Failed    []SettleFailure `json:"failed"`
}

// settleTimeout bounds one settlement when ctx has no deadline; it covers
// the election of a new consumer leader after a node died.
const settleTimeout = 10 * time.Second

// settleConcurrency bounds the settlements of one request under way at once.
const settleConcurrency = 32

// ackRef is a parsed ack id.
type ackRef struct {
	reply     string
	stream    string
	consumer  string
	client    string
	group     string
	partition int
	delivered int
	seq       uint64 // stream sequence
}

func encodeAckID(reply string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(reply))
}

// ackKeyOf identifies the event (not the delivery) an ack id refers to; ""
// for malformed ids.
func ackKeyOf(id string) string {
	r, err := parseAckID(id)
	if err != nil {
		return ""
	}
	return r.stream + " " + r.consumer + " " + strconv.FormatUint(r.seq, 10)
}

var (
	errMalformedAckID = errors.New("malformed ack id")
	errUnknownAckID   = errors.New("unknown ack id")
)

// parseAckID parses an ack id: the base64url of a JetStream ack subject
// whose consumer is a group's. It runs several times per settled event
// (settling, and each instance that learns of it), so it splits the
// subject in place rather than through strings.Split.
func parseAckID(id string) (ackRef, error) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) > 512 {
		return ackRef{}, errMalformedAckID
	}
	reply := string(b)
	if strings.ContainsAny(reply, "*> \t\r\n") {
		return ackRef{}, errMalformedAckID
	}
	// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or
	// $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.… (12).
	var toks [12]string
	n := 0
	for rest := reply; ; n++ {
		i := strings.IndexByte(rest, '.')
		t := rest
		if i >= 0 {
			t = rest[:i]
		}
		if t == "" || n == len(toks) {
			return ackRef{}, errMalformedAckID
		}
		toks[n] = t
		if i < 0 {
			n++
			break
		}
		rest = rest[i+1:]
	}
	var r ackRef
	var rest []string
	switch {
	case n == 9 && toks[0] == "$JS" && toks[1] == "ACK":
		r.stream, r.consumer, rest = toks[2], toks[3], toks[4:n]
	case n >= 11 && toks[0] == "$JS" && toks[1] == "ACK":
		r.stream, r.consumer, rest = toks[4], toks[5], toks[6:n]
	default:
		return ackRef{}, errMalformedAckID
	}
	dc, err1 := strconv.Atoi(rest[0])
	seq, err2 := strconv.ParseUint(rest[1], 10, 64)
	if err1 != nil || err2 != nil {
		return ackRef{}, errMalformedAckID
	}
	client, group, p, ok := parseConsumerName(r.consumer)
	if !ok {
		return ackRef{}, errMalformedAckID
	}
	r.reply, r.client, r.group, r.partition, r.delivered, r.seq = reply, client, group, p, dc, seq
	return r, nil
}

// ownAckID parses id and checks that it is a delivery to cl.
func ownAckID(cl *Client, id string) (ackRef, error) {
	r, err := parseAckID(id)
	if err != nil {
		return r, err
	}
	if r.client != cl.ID {
		return r, errUnknownAckID
	}
	for _, t := range cl.Consume {
		if streamNameIs(t, r.stream) {
			return r, nil
		}
	}
	return r, errUnknownAckID
}

// Settle acknowledges, releases or kills the deliveries named by ack ids.
// Every id is reported as succeeded or failed (malformed, not the caller's,
// or the store did not answer). Settling an event that was settled already
// or redelivered since succeeds or is a no-op: JetStream keeps the state.
func (n *Node) Settle(ctx context.Context, cl *Client, st Settlement) SettleResult {
	res, refs := n.settle(ctx, cl, st)
	n.announce(st.Op, res.Succeeded, refs, "")
	return res
}

// settledSubject carries "<op> <ack id> …" for settlements of a group made
// through another request than the subscription that handed the events
// out, so that it lets the next events of their keys go (consume_keys.go).
func settledSubject(client, group string) string {
	return "_mevents.settled." + client + "." + group
}

// originHeader of an announcement names the subscription that settled the
// events (when one did): it has taken note of them already.
const originHeader = "Mevents-Origin"

// announce publishes settled ack ids (refs, their parsed forms) on their
// groups' settledSubject; origin is the settling subscription or "".
func (n *Node) announce(op SettleOp, ids []string, refs []ackRef, origin string) {
	byGroup := map[string][]string{}
	for i, id := range ids {
		subj := settledSubject(refs[i].client, refs[i].group)
		byGroup[subj] = append(byGroup[subj], id)
	}
	for subj, ids := range byGroup {
		m := &nats.Msg{Subject: subj, Data: []byte(string(op) + " " + strings.Join(ids, " "))}
		if origin != "" {
			m.Header = nats.Header{originHeader: {origin}}
		}
		_ = n.nc.PublishMsg(m)
	}
}

// settle settles st's ids and returns the result with the parsed forms of
// the succeeded ids, in their order.
func (n *Node) settle(ctx context.Context, cl *Client, st Settlement) (SettleResult, []ackRef) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, settleTimeout)
		defer cancel()
	}
	// The ids are settled concurrently: each waits for the consumer's
	// leader to confirm (a replicated write), so one after the other a
	// frame of a hundred acks would take a hundred round trips.
	errs := make([]error, len(st.AckIDs))
	parsed := make([]ackRef, len(st.AckIDs))
	concurrently(len(st.AckIDs), settleConcurrency, func(i int) {
		parsed[i], errs[i] = n.settleOne(ctx, cl, st, st.AckIDs[i])
	})
	res := SettleResult{Succeeded: []string{}, Failed: []SettleFailure{}}
	refs := make([]ackRef, 0, len(st.AckIDs))
	for i, id := range st.AckIDs {
		if errs[i] != nil {
			res.Failed = append(res.Failed, SettleFailure{AckID: id, Error: errs[i].Error()})
			continue
		}
		res.Succeeded = append(res.Succeeded, id)
		refs = append(refs, parsed[i])
	}
	return res, refs
}

func (n *Node) settleOne(ctx context.Context, cl *Client, st Settlement, id string) (ackRef, error) {
	r, err := ownAckID(cl, id)
	if err != nil {
		return r, err
	}
	var body string
	switch st.Op {
	case SettleAck:
		body = "+ACK"
	case SettleRelease:
		body = "-NAK"
		if st.Delay > 0 {
			body = fmt.Sprintf(`-NAK {"delay":%d}`, st.Delay.Nanoseconds())
		}
	case SettleDead:
		reason := st.Reason
		if reason == "" {
			reason = "reported dead by the consumer"
		}
		if err := n.buryDelivery(ctx, r.reply, OriginConsumer, reason, -1); err != nil {
			n.log.Error("move to dead events", "consumer", r.consumer, "seq", r.seq, "err", err)
			return r, fmt.Errorf("the event store is unavailable")
		}
		return r, nil
	default:
		return r, fmt.Errorf("unknown operation %q", st.Op)
	}
	if err := n.ackRequest(ctx, r.reply, body); err != nil {
		n.log.Warn("settle", "op", st.Op, "consumer", r.consumer, "seq", r.seq, "err", err)
		return r, fmt.Errorf("the event store did not confirm")
	}
	return r, nil
}

// ackRequest sends an acknowledgement (ACK, NAK, TERM) and waits for
// JetStream to confirm it. While a consumer's leader moves (a node died)
// nobody answers for a few seconds: it retries until ctx ends.
func (n *Node) ackRequest(ctx context.Context, reply, body string) error {
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.nc.RequestWithContext(actx, reply, []byte(body))
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}
