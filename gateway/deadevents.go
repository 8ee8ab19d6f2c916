package gateway

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Dead events (CONTRACT §5.3): a client lists, redelivers and deletes its
// own; another client's look like missing ones (404).

const (
	defaultDeadLimit = 100
	maxDeadLimit     = 1000
)

// deadEventRoutes registers /v1/dead-events….
func (s *Server) deadEventRoutes(v1 *gin.RouterGroup) {
	v1.GET("/dead-events", s.getDeadEvents)
	v1.POST("/dead-events/:id/redeliver", s.redeliverDeadEvent)
	v1.DELETE("/dead-events/:id", s.deleteDeadEvent)
}

type deadPage struct {
	Items []broker.DeadEvent `json:"items"`
	Next  *string            `json:"next"`
}

// getDeadEvents handles GET /v1/dead-events?limit=&cursor=.
func (s *Server) getDeadEvents(c *gin.Context) { s.listDead(c, clientOf(c)) }

// listDead answers a page of cl's dead events.
func (s *Server) listDead(c *gin.Context, cl *broker.Client) {
	limit := defaultDeadLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLimit {
			s.fail(c, mevents.Errorf(mevents.CodeInvalid, "limit must be an integer from 1 to %d", maxDeadLimit))
			return
		}
		limit = n
	}
	page, err := s.broker.ListDead(c.Request.Context(), cl, c.Query("cursor"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := deadPage{Items: page.Items}
	if page.Next != "" {
		out.Next = &page.Next
	}
	c.JSON(http.StatusOK, out)
}

// redeliverDeadEvent handles POST /v1/dead-events/{id}/redeliver: the event
// goes back to the client's group it died in (202) and leaves the store.
func (s *Server) redeliverDeadEvent(c *gin.Context) { s.redeliverDead(c, clientOf(c), c.Param("id")) }

func (s *Server) redeliverDead(c *gin.Context, cl *broker.Client, id string) {
	if err := s.broker.RedeliverDead(c.Request.Context(), cl, id); err != nil {
		s.fail(c, err)
		return
	}
	s.audit(c, broker.AuditDeadRedeliver, cl.ID+"/"+id, "")
	c.JSON(http.StatusAccepted, gin.H{"id": id})
}

// deleteDeadEvent handles DELETE /v1/dead-events/{id} (204).
func (s *Server) deleteDeadEvent(c *gin.Context) { s.deleteDead(c, clientOf(c), c.Param("id")) }

func (s *Server) deleteDead(c *gin.Context, cl *broker.Client, id string) {
	if err := s.broker.DeleteDead(c.Request.Context(), cl, id); err != nil {
		s.fail(c, err)
		return
	}
	s.audit(c, broker.AuditDeadDelete, cl.ID+"/"+id, "")
	c.Status(http.StatusNoContent)
}
