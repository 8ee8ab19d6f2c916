package gateway

import (
	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents/broker"
)

// Inspector reports on the cluster for admins (issue 4: not built yet).
type Inspector interface{}

// opsState is the state of operations: maintenance mode, rate limits, metrics.
type opsState struct{}

func (s *Server) initOps() {}

// admit lets a request of an authenticated client in, or refuses it
// (maintenance mode).
func (s *Server) admit(c *gin.Context) { c.Next() }

// limit takes n events from the client's rate budget, or returns a
// rate_limited error.
func (s *Server) limit(c *gin.Context, cl *broker.Client, n int) error { return nil }

// discoveryRoutes registers the documents (/changelog, /v1/openapi.json);
// the authenticated discovery routes go on the /v1 group.
func (s *Server) discoveryRoutes(r *gin.Engine) {}

// adminRoutes registers /v1/admin/….
func (s *Server) adminRoutes(v1 *gin.RouterGroup) {}
