package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// adminRoutes registers /v1/admin/…, for clients with the admin role.
func (s *Server) adminRoutes(v1 *gin.RouterGroup) {
	a := v1.Group("/admin", s.requireAdmin)
	a.GET("/cluster", s.adminCluster)
	a.GET("/streams", s.adminStreams)
	a.POST("/reload", s.adminReload)
	a.GET("/maintenance", s.getMaintenance)
	a.PUT("/maintenance", s.putMaintenance)
	a.GET("/lag", s.adminLag)
	a.GET("/groups", s.adminGroups)
	a.GET("/clients/:id/dead-events", s.adminDeadEvents)
	a.POST("/clients/:id/dead-events/:event/redeliver", s.adminRedeliverDead)
	a.DELETE("/clients/:id/dead-events/:event", s.adminDeleteDead)
	a.GET("/audit", s.adminAudit)
}

// adminLag handles GET /v1/admin/lag?client=: the backlog of every group
// (or one client's), per event type.
func (s *Server) adminLag(c *gin.Context) {
	lags, err := s.broker.Lag(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	items := []broker.GroupLag{}
	for _, l := range lags {
		if cl := c.Query("client"); cl == "" || cl == l.Client {
			items = append(items, l)
		}
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// adminGroups handles GET /v1/admin/groups?client=&group=: every group
// cursor with its owner and backlog, per partition.
func (s *Server) adminGroups(c *gin.Context) {
	cursors, err := s.broker.Cursors(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	items := []broker.CursorState{}
	for _, cs := range cursors {
		if (c.Query("client") == "" || c.Query("client") == cs.Client) && (c.Query("group") == "" || c.Query("group") == cs.Group) {
			items = append(items, cs)
		}
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// adminDeadEvents handles GET /v1/admin/clients/{id}/dead-events: any
// client's dead events, paged like GET /v1/dead-events.
func (s *Server) adminDeadEvents(c *gin.Context) {
	cl := catalogOf(c).reg.Client(c.Param("id"))
	if cl == nil {
		s.fail(c, mevents.Errorf(mevents.CodeNotFound, "no client %q", c.Param("id")))
		return
	}
	s.listDead(c, cl)
}

// adminRedeliverDead handles POST
// /v1/admin/clients/{id}/dead-events/{event}/redeliver: as the client's own
// redeliver, for any client.
func (s *Server) adminRedeliverDead(c *gin.Context) {
	if cl := s.pathClient(c); cl != nil {
		s.redeliverDead(c, cl, c.Param("event"))
	}
}

// adminDeleteDead handles DELETE /v1/admin/clients/{id}/dead-events/{event}.
func (s *Server) adminDeleteDead(c *gin.Context) {
	if cl := s.pathClient(c); cl != nil {
		s.deleteDead(c, cl, c.Param("event"))
	}
}

// pathClient returns the client the path names, or answers 404 and nil.
func (s *Server) pathClient(c *gin.Context) *broker.Client {
	cl := catalogOf(c).reg.Client(c.Param("id"))
	if cl == nil {
		s.fail(c, mevents.Errorf(mevents.CodeNotFound, "no client %q", c.Param("id")))
	}
	return cl
}

// SetReloader sets what POST /v1/admin/reload runs: reading the registry
// again and applying it, as on SIGHUP. Until it is set, reload answers 503.
func (s *Server) SetReloader(fn func(ctx context.Context) error) { s.ops.reloader.Store(&fn) }

func (s *Server) requireAdmin(c *gin.Context) {
	if cl := clientOf(c); !cl.Admin {
		s.fail(c, mevents.Errorf(mevents.CodeForbidden, "client %s is not an admin", cl.ID))
		return
	}
	c.Next()
}

func (s *Server) adminCluster(c *gin.Context) {
	st, err := s.broker.ClusterStatus(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) adminStreams(c *gin.Context) {
	st, err := s.broker.StreamStatus(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": st})
}

// adminReload reloads the registry of the node that answers. Every node
// reads its own registry.yaml, so an operator reloads each node (or sends
// SIGHUP to each).
func (s *Server) adminReload(c *gin.Context) {
	fn := s.ops.reloader.Load()
	if fn == nil {
		s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "registry reload is not available on this node"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 60*time.Second)
	defer cancel()
	if err := (*fn)(ctx); err != nil {
		s.audit(c, broker.AuditReload, "registry", "rejected: "+err.Error())
		// The reason (file, field, rule) is for the operator who asked;
		// only admins reach this.
		s.fail(c, &mevents.Error{Code: mevents.CodeInvalid, Message: "registry not reloaded; the previous one stays in force: " + err.Error(), Err: err})
		return
	}
	s.audit(c, broker.AuditReload, "registry", "")
	cat := s.catalog.Load()
	c.JSON(http.StatusOK, gin.H{"reloaded": true, "eventTypes": len(cat.reg.Types), "clients": len(cat.reg.Clients)})
}

func (s *Server) getMaintenance(c *gin.Context) {
	m, _ := s.MaintenanceState()
	c.JSON(http.StatusOK, m)
}

// maintenanceRequest is the body of PUT /v1/admin/maintenance.
type maintenanceRequest struct {
	Enabled *bool  `json:"enabled"`
	Message string `json:"message"`
}

func (s *Server) putMaintenance(c *gin.Context) {
	var req maintenanceRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Enabled == nil {
		s.fail(c, mevents.Errorf(mevents.CodeInvalid, `the body must be {"enabled": true|false, "message": "…"}`))
		return
	}
	m := broker.Maintenance{Enabled: *req.Enabled, Message: req.Message, Since: time.Now().UTC(), By: clientOf(c).ID}
	if err := s.broker.SetMaintenance(c.Request.Context(), m); err != nil {
		s.fail(c, err)
		return
	}
	target := "off"
	if m.Enabled {
		target = "on"
	}
	s.audit(c, broker.AuditMaintenance, target, m.Message)
	s.awaitMaintenance(c.Request.Context(), m)
	c.JSON(http.StatusOK, m)
}

// awaitMaintenance waits until this node's watch has seen m (normally at
// once), so that the admin's next request to this node finds it in force.
// Other nodes follow within moments.
func (s *Server) awaitMaintenance(ctx context.Context, m broker.Maintenance) {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		cur, changed := s.MaintenanceState()
		if cur.Since.Equal(m.Since) && cur.By == m.By {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
