package gateway

import "github.com/gin-gonic/gin"

// Subscriber delivers events to consumers (issue 3: not built yet).
type Subscriber interface{}

// consumeState is the state of the subscription endpoints.
type consumeState struct{}

func (s *Server) initConsume()  {}
func (s *Server) closeConsume() {}

// subscriptionRoutes registers /v1/subscription/….
func (s *Server) subscriptionRoutes(v1 *gin.RouterGroup) {}

// deadEventRoutes registers /v1/dead-events….
func (s *Server) deadEventRoutes(v1 *gin.RouterGroup) {}
