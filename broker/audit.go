package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go/jetstream"
)

// The audit trail: who did what to what, and when, for the actions that
// change the cluster's state or another client's data (maintenance mode,
// registry reloads, dead events redelivered or deleted).
//
//	stream   AUDIT, file storage, AuditRetention, replicated like event
//	         streams (R3 in a cluster, R1 on a single node)
//	subject  audit.<action>
//	message  JSON AuditEntry; its stream sequence is the entry's id

// AuditStream is the name of the audit stream.
const AuditStream = "AUDIT"

// AuditRetention is how long audit entries are kept.
const AuditRetention = 365 * 24 * time.Hour

// Audited actions.
const (
	AuditMaintenance   = "maintenance"    // target: "on" or "off"; detail: the message
	AuditReload        = "reload"         // target: the node that reloaded
	AuditDeadRedeliver = "dead.redeliver" // target: <client>/<dead event id>
	AuditDeadDelete    = "dead.delete"    // target: <client>/<dead event id>
)

// AuditEntry is one recorded action.
type AuditEntry struct {
	// ID is the entry's sequence in the trail; Record sets it.
	ID string `json:"id"`
	// Time is when the action was done; Actor the client that did it.
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	// Detail is free text (a maintenance message, a reason).
	Detail string `json:"detail,omitempty"`
	// Node is the node that served the request.
	Node string `json:"node"`
}

// AuditPage is one page of the trail, newest first. Next is the cursor of
// the following (older) page, or "" on the last one.
type AuditPage struct {
	Items []AuditEntry
	Next  string
}

// auditTrail holds the audit stream once it is known.
type auditTrail struct {
	mu     sync.Mutex
	stream jetstream.Stream
}

func (n *Node) auditStream(ctx context.Context) (jetstream.Stream, error) {
	n.audit.mu.Lock()
	s := n.audit.stream
	n.audit.mu.Unlock()
	if s != nil {
		return s, nil
	}
	replicas := DefaultReplicas
	if !n.cfg.Clustered() {
		replicas = 1
	}
	err := attempts(ctx, func(ctx context.Context) error {
		var err error
		s, err = n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: AuditStream, Description: "mevents audit trail", Subjects: []string{"audit.>"},
			Storage: jetstream.FileStorage, Replicas: replicas, MaxAge: AuditRetention,
			Discard: jetstream.DiscardOld, Retention: jetstream.LimitsPolicy, AllowDirect: true,
		})
		return err
	})
	if err != nil {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the audit trail is unavailable", Err: fmt.Errorf("audit stream: %w", err)}
	}
	n.audit.mu.Lock()
	n.audit.stream = s
	n.audit.mu.Unlock()
	return s, nil
}

// Record appends e to the audit trail (Time and Node filled in when
// unset) and returns once a quorum has it. Errors: CodeUnavailable.
func (n *Node) Record(ctx context.Context, e AuditEntry) error {
	if !n.opened.Load() || n.closed.Load() {
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the node is not running", Err: ErrNotRunning}
	}
	if _, err := n.auditStream(ctx); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Node == "" {
		e.Node = n.cfg.Name
	}
	e.ID = ""
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := n.js.Publish(ctx, "audit."+e.Action, data); err != nil {
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the audit trail is unavailable", Err: fmt.Errorf("record audit entry: %w", err)}
	}
	return nil
}

// ListAudit returns up to limit entries of the trail, newest first, from
// cursor ("" is the newest). Errors: CodeInvalid (cursor), CodeUnavailable.
func (n *Node) ListAudit(ctx context.Context, cursor string, limit int) (AuditPage, error) {
	if !n.opened.Load() || n.closed.Load() {
		return AuditPage{}, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the node is not running", Err: ErrNotRunning}
	}
	s, err := n.auditStream(ctx)
	if err != nil {
		return AuditPage{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return AuditPage{}, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the audit trail is unavailable", Err: err}
	}
	seq := info.State.LastSeq
	if cursor != "" {
		v, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil || v == 0 {
			return AuditPage{}, mevents.Errorf(mevents.CodeInvalid, "cursor %q is not valid", cursor)
		}
		seq = min(seq, v)
	}
	page := AuditPage{Items: []AuditEntry{}}
	for ; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return AuditPage{}, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the audit trail is unavailable", Err: err}
		}
		if len(page.Items) == limit {
			page.Next = strconv.FormatUint(seq, 10)
			return page, nil
		}
		var e AuditEntry
		_ = json.Unmarshal(m.Data, &e)
		e.ID = strconv.FormatUint(m.Sequence, 10)
		page.Items = append(page.Items, e)
	}
	return page, nil
}
