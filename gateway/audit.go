package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Auditor keeps the audit trail; *broker.Node implements it.
type Auditor interface {
	// Record appends an entry; see broker.Node.Record.
	Record(ctx context.Context, e broker.AuditEntry) error
	// ListAudit pages the trail, newest first; see broker.Node.ListAudit.
	ListAudit(ctx context.Context, cursor string, limit int) (broker.AuditPage, error)
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// audit records that the caller did action to target, in the log and in
// the replicated trail. The action is done already: a trail that cannot
// be written is logged as an error, and the answer stays the action's.
func (s *Server) audit(c *gin.Context, action, target, detail string) {
	actor := clientOf(c).ID
	s.log.Info("audit", "actor", actor, "action", action, "target", target, "detail", detail,
		"requestId", c.GetString(keyRequestID))
	// The request's context may end with the answer; the record should not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 10*time.Second)
	defer cancel()
	e := broker.AuditEntry{Time: time.Now().UTC(), Actor: actor, Action: action, Target: target, Detail: detail}
	if err := s.broker.Record(ctx, e); err != nil {
		s.log.Error("audit entry not recorded", "actor", actor, "action", action, "target", target, "err", err)
	}
}

type auditPage struct {
	Items []broker.AuditEntry `json:"items"`
	Next  *string             `json:"next"`
}

// adminAudit handles GET /v1/admin/audit?limit=&cursor=: the audit trail,
// newest first.
func (s *Server) adminAudit(c *gin.Context) {
	limit := defaultAuditLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			s.fail(c, mevents.Errorf(mevents.CodeInvalid, "limit must be an integer from 1 to %d", maxAuditLimit))
			return
		}
		limit = n
	}
	page, err := s.broker.ListAudit(c.Request.Context(), c.Query("cursor"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := auditPage{Items: page.Items}
	if page.Next != "" {
		out.Next = &page.Next
	}
	c.JSON(http.StatusOK, out)
}
