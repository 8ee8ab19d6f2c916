package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go"
)

// Settling. An ack id names one delivery: the base64url (unpadded) form of
//
//	m1.<member>.<epoch>.<partition>.<stream seq>.<count>.<client>.<group>.<type>
//
// where member is the instance that delivered it and epoch the partition's
// owner count then (cursor.go). Only that instance can settle it, and only
// while it owns the partition in that epoch and the delivery is the
// event's current one: any request of the client, on any node, settles it
// by asking the instance on the core NATS subject
//
//	_mevents.settle.<member>    request {"op","ackIds","delay","reason"}, reply {"errors":["" or why, …]}
//
// (an instance on the same node is asked directly). A delivery whose
// instance is gone, whose partition moved, or that was delivered again
// since, cannot be settled: its event goes out again, and the answer says
// so. The instance applies settlements in the order they arrive and
// answers them once the cursor write that holds them is stored.

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
	// again; the later events of its key wait with it.
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

// settleTimeout bounds one settlement when ctx has no deadline.
const settleTimeout = 10 * time.Second

// ackRef is a parsed ack id.
type ackRef struct {
	member    string
	epoch     uint64
	partition int
	seq       uint64
	count     int
	client    string
	group     string
	typ       string
}

func encodeAckID(r ackRef) string {
	b := make([]byte, 0, 96)
	b = append(b, "m1."...)
	b = append(b, r.member...)
	b = append(b, '.')
	b = strconv.AppendUint(b, r.epoch, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.partition), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, r.seq, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.count), 10)
	b = append(b, '.')
	b = append(b, r.client...)
	b = append(b, '.')
	b = append(b, r.group...)
	b = append(b, '.')
	b = append(b, r.typ...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	errMalformedAckID = errors.New("malformed ack id")
	errUnknownAckID   = errors.New("unknown ack id")
)

// parseAckID parses an ack id.
func parseAckID(id string) (ackRef, error) {
	if len(id) > 1024 {
		return ackRef{}, errMalformedAckID
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return ackRef{}, errMalformedAckID
	}
	f := strings.SplitN(string(b), ".", 9)
	if len(f) != 9 || f[0] != "m1" || f[1] == "" || strings.ContainsAny(f[1], "*> ") {
		return ackRef{}, errMalformedAckID
	}
	var r ackRef
	var e1, e2, e3, e4 error
	r.member, r.client, r.group, r.typ = f[1], f[6], f[7], f[8]
	r.epoch, e1 = strconv.ParseUint(f[2], 10, 64)
	r.partition, e2 = strconv.Atoi(f[3])
	r.seq, e3 = strconv.ParseUint(f[4], 10, 64)
	r.count, e4 = strconv.Atoi(f[5])
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil || r.partition < 0 || r.partition >= mevents.Partitions ||
		r.count < 1 || r.client == "" || !validGroupName(r.group) || r.typ == "" {
		return ackRef{}, errMalformedAckID
	}
	return r, nil
}

// ownAckID parses id and checks that it is a delivery to cl of a type
// routed to it.
func ownAckID(cl *Client, id string) (ackRef, error) {
	r, err := parseAckID(id)
	if err != nil {
		return r, err
	}
	if r.client != cl.ID || !cl.MayConsume(r.typ) {
		return r, errUnknownAckID
	}
	return r, nil
}

func settleSubject(member string) string { return "_mevents.settle." + member }

// localSubs are a node's subscriptions by member id.
type localSubs struct {
	mu   sync.Mutex
	byID map[string]*Subscription
}

func (l *localSubs) add(s *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID == nil {
		l.byID = map[string]*Subscription{}
	}
	l.byID[s.id] = s
}

func (l *localSubs) remove(s *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byID, s.id)
}

func (l *localSubs) get(id string) *Subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byID[id]
}

// Settle settles deliveries (see Node.Settle).
func (s *Subscription) Settle(ctx context.Context, st Settlement) SettleResult {
	return s.SettleAsync(st)(ctx)
}

// Settle acknowledges, releases or kills the deliveries named by ack ids,
// in their order. Every id is reported as succeeded or failed (malformed,
// not the caller's, no longer current, or the store did not confirm). A
// succeeded settlement is stored on a quorum; settling again what is
// settled succeeds.
func (n *Node) Settle(ctx context.Context, cl *Client, st Settlement) SettleResult {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, settleTimeout)
		defer cancel()
	}
	errs := make([]error, len(st.AckIDs))
	refs := make([]ackRef, len(st.AckIDs))
	byMember := map[string][]int{}
	var members []string
	for i, id := range st.AckIDs {
		refs[i], errs[i] = ownAckID(cl, id)
		if errs[i] == nil {
			m := refs[i].member
			if byMember[m] == nil {
				members = append(members, m)
			}
			byMember[m] = append(byMember[m], i)
		}
	}
	if st.Op != SettleAck && st.Op != SettleRelease && st.Op != SettleDead {
		for i := range errs {
			errs[i] = errors.New("unknown operation")
		}
		members = nil
	}
	var wg sync.WaitGroup
	for _, m := range members {
		idx := byMember[m]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := make([]ackRef, len(idx))
			ids := make([]string, len(idx))
			for j, i := range idx {
				sub[j], ids[j] = refs[i], st.AckIDs[i]
			}
			var res []error
			if s := n.local.get(m); s != nil {
				res = s.settleLocal(ctx, st, sub)
			} else {
				res = n.settleRemote(ctx, m, st, ids)
			}
			for j, i := range idx {
				errs[i] = res[j]
			}
		}()
	}
	wg.Wait()
	return resultOf(st.AckIDs, errs)
}

// resultOf reports each of ids as succeeded or failed with its error.
func resultOf(ids []string, errs []error) SettleResult {
	res := SettleResult{Succeeded: []string{}, Failed: []SettleFailure{}}
	for i, id := range ids {
		if errs[i] != nil {
			res.Failed = append(res.Failed, SettleFailure{AckID: id, Error: errs[i].Error()})
		} else {
			res.Succeeded = append(res.Succeeded, id)
		}
	}
	return res
}

type settleRequest struct {
	Op     SettleOp `json:"op"`
	AckIDs []string `json:"ackIds"`
	Delay  int64    `json:"delay,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

type settleReply struct {
	Errors []string `json:"errors"`
}

// settleRemote asks the instance member, on another node, to settle ids.
func (n *Node) settleRemote(ctx context.Context, member string, st Settlement, ids []string) []error {
	errs := make([]error, len(ids))
	fill := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	req, _ := json.Marshal(settleRequest{Op: st.Op, AckIDs: ids, Delay: int64(st.Delay), Reason: st.Reason})
	msg, err := n.nc.RequestWithContext(ctx, settleSubject(member), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fill(errors.New("the delivery is no longer current: its instance is gone; the event will be delivered again"))
	case err != nil:
		n.log.Warn("settle through another node", "member", member, "err", err)
		return fill(errStore)
	}
	var rep settleReply
	if json.Unmarshal(msg.Data, &rep) != nil || len(rep.Errors) != len(ids) {
		return fill(errStore)
	}
	for i, e := range rep.Errors {
		if e != "" {
			errs[i] = errors.New(e)
		}
	}
	return errs
}

// onSettle answers another node's settle request.
func (s *Subscription) onSettle(m *nats.Msg) {
	var req settleRequest
	if json.Unmarshal(m.Data, &req) != nil {
		return
	}
	refs := make([]ackRef, len(req.AckIDs))
	errs := make([]error, len(req.AckIDs))
	var ok []int
	for i, id := range req.AckIDs {
		if refs[i], errs[i] = ownAckID(s.client, id); errs[i] == nil {
			ok = append(ok, i)
		}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		rep := settleReply{Errors: make([]string, len(errs))}
		for i, err := range errs {
			if err == nil {
				err = errMoved
			}
			rep.Errors[i] = err.Error()
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() { // not on the connection's dispatcher: it waits for a write
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		sub := make([]ackRef, len(ok))
		for j, i := range ok {
			sub[j] = refs[i]
		}
		res := s.settleLocal(ctx, Settlement{Op: req.Op, Delay: time.Duration(req.Delay), Reason: req.Reason}, sub)
		for j, i := range ok {
			errs[i] = res[j]
		}
		rep := settleReply{Errors: make([]string, len(errs))}
		for i, err := range errs {
			if err != nil {
				rep.Errors[i] = err.Error()
			}
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	}()
}

// settleLocal applies settlements of this instance's deliveries in order
// and waits until the cursor writes that hold them are stored.
func (s *Subscription) settleLocal(ctx context.Context, st Settlement, refs []ackRef) []error {
	errs, waits := s.apply(st, refs)
	return awaitSettled(ctx, errs, waits)
}

// awaitSettled waits for the outcomes of applied settlements.
func awaitSettled(ctx context.Context, errs []error, waits []*commitWait) []error {
	for i, w := range waits {
		for w != nil && errs[i] == nil {
			select {
			case <-w.done:
				errs[i], w = w.err, w.then
			case <-ctx.Done():
				errs[i] = errStore
			}
		}
	}
	return errs
}

// apply applies settlements of this instance's deliveries in order; the
// outcome of each that is not known yet comes on its channel once the
// cursor write that holds it is stored.
func (s *Subscription) apply(st Settlement, refs []ackRef) ([]error, []*commitWait) {
	errs := make([]error, len(refs))
	waits := make([]*commitWait, len(refs))
	now := time.Now()
	s.mu.Lock()
	for i, r := range refs {
		p := s.parts[partKey{r.typ, r.partition}]
		if p == nil || p.epoch != r.epoch || r.member != s.id {
			errs[i] = errMoved
			continue
		}
		e := p.bySeq[r.seq]
		if e == nil {
			if _, open := p.loaded[r.seq]; open || r.seq >= p.readFrom {
				errs[i] = errStale
				continue
			}
			waits[i] = p.wait() // settled already: answered once that is stored
			continue
		}
		if !e.out || e.count != r.count {
			errs[i] = errStale
			continue
		}
		switch st.Op {
		case SettleAck:
			s.dropEntry(e)
			waits[i] = p.wait()
		case SettleRelease:
			var nb time.Time
			if st.Delay > 0 {
				nb = now.Add(st.Delay)
			}
			s.outN -= e.again(nb)
			s.push(e)
			s.watch()
			signal(s.wake)
			waits[i] = p.wait()
		case SettleDead:
			reason := st.Reason
			if reason == "" {
				reason = "reported dead by the consumer"
			}
			e.out, e.dead = false, true
			s.outN--
			signal(s.wake)
			waits[i] = newCommitWait()
			s.wg.Add(1)
			go s.buryEntry(e, OriginConsumer, reason, e.count, waits[i])
		}
	}
	s.mu.Unlock()
	signal(s.commitKick)
	return errs, waits
}

// SettleAsync settles deliveries as Settle does, but applies those this
// instance made at once, in the order of the calls, and returns a function
// that waits for the outcome (and settles the others). A connection that
// reads settle frames one after another calls it from its read loop, so
// that its settlements apply in the order it sent them while their
// writes are waited for concurrently.
func (s *Subscription) SettleAsync(st Settlement) func(ctx context.Context) SettleResult {
	mine, others := []int{}, []int{}
	refs := make([]ackRef, len(st.AckIDs))
	errs := make([]error, len(st.AckIDs))
	for i, id := range st.AckIDs {
		refs[i], errs[i] = ownAckID(s.client, id)
		switch {
		case errs[i] != nil:
		case refs[i].member == s.id && (st.Op == SettleAck || st.Op == SettleRelease || st.Op == SettleDead):
			mine = append(mine, i)
		default:
			others = append(others, i)
		}
	}
	sub := make([]ackRef, len(mine))
	for j, i := range mine {
		sub[j] = refs[i]
	}
	applied, waits := s.apply(st, sub)
	return func(ctx context.Context) SettleResult {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, settleTimeout)
			defer cancel()
		}
		done := awaitSettled(ctx, applied, waits)
		for j, i := range mine {
			errs[i] = done[j]
		}
		if len(others) > 0 {
			rest := st
			rest.AckIDs = make([]string, len(others))
			for j, i := range others {
				rest.AckIDs[j] = st.AckIDs[i]
			}
			res := s.n.Settle(ctx, s.client, rest)
			failed := map[string]string{}
			for _, f := range res.Failed {
				failed[f.AckID] = f.Error
			}
			for _, i := range others {
				if e, ok := failed[st.AckIDs[i]]; ok {
					errs[i] = errors.New(e)
				}
			}
		}
		return resultOf(st.AckIDs, errs)
	}
}

// buryEntry moves e to the dead events and then settles it; when it cannot,
// e goes out again later. done, when not nil, is finished with the
// outcome (a success goes on to the cursor write that holds it).
func (s *Subscription) buryEntry(e *entry, origin, reason string, count int, done *commitWait) {
	defer s.wg.Done()
	p := e.part
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	err := s.n.storeDead(ctx, s.client.ID, s.group, StreamName(p.k.typ), e.seq, e.data, count, origin, reason)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case p.gone:
		// The partition moved meanwhile: its next owner delivers the event
		// again (and a dead event stored twice within two minutes is one).
		if done != nil {
			done.finish(errMoved, nil)
		}
	case err != nil:
		s.n.log.Error("move to dead events", "client", s.client.ID, "group", s.group, "type", p.k.typ, "seq", e.seq, "err", err)
		if e.burying { // still its key's candidate: it is buried again in a second
			e.burying, e.notBefore, p.dirty = false, time.Now().Add(time.Second), true
		} else {
			e.dead = false
			s.outN -= e.again(time.Now().Add(time.Second))
		}
		s.watch()
		if done != nil {
			done.finish(errors.New("the dead-event store is unavailable"), nil)
		}
	default:
		held := e.burying && e.key.candidate() == e
		s.dropEntry(e)
		if held {
			s.push(e.key.candidate())
		}
		if done != nil {
			done.finish(nil, p.wait())
		}
		signal(s.commitKick)
	}
}
