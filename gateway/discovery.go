package gateway

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// discoveryRoutes registers the discovery resources: on v1 those that
// answer about the caller (whoami, event types, schemas); on r the two
// documents, which need no registered client, so that integrators can read
// them before they are registered. The API listener still asks every
// connection for a certificate of the client CA.
func (s *Server) discoveryRoutes(r *gin.Engine, v1 *gin.RouterGroup) {
	r.GET("/v1/openapi.json", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", openAPI)
	})
	changelog := renderMarkdown("mevents API changelog", mevents.Changelog)
	r.GET("/changelog", func(c *gin.Context) {
		c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(changelog))
	})
	v1.GET("/whoami", s.whoami)
	v1.GET("/event-types", s.eventTypes)
	v1.GET("/event-types/:type/schema", s.eventTypeSchema)
}

// identity is the body of GET /v1/whoami.
type identity struct {
	ClientID string   `json:"clientId"`
	Roles    []string `json:"roles"`
	Produce  []string `json:"produce"`
	Consume  []string `json:"consume"`
	// RateLimit is in events/s per node; 0 is unlimited.
	RateLimit float64 `json:"rateLimit"`
}

func (s *Server) whoami(c *gin.Context) {
	cl := clientOf(c)
	id := identity{ClientID: cl.ID, Roles: []string{}, Produce: nonNil(cl.Produce), Consume: nonNil(cl.Consume), RateLimit: cl.RateLimit}
	if cl.Admin {
		id.Roles = append(id.Roles, "admin")
	}
	c.JSON(http.StatusOK, id)
}

// eventTypeInfo describes one event type to a client.
type eventTypeInfo struct {
	Type string `json:"type"`
	// Produce and Consume say what the caller may do with the type.
	Produce      bool   `json:"produce"`
	Consume      bool   `json:"consume"`
	Retention    string `json:"retention"`
	Replicas     int    `json:"replicas"`
	MaxEventSize int64  `json:"maxEventSize"`
	DedupWindow  string `json:"dedupWindow"`
	Partitions   int    `json:"partitions"`
	Stream       string `json:"stream"`
	Subjects     struct {
		Events     string `json:"events"`
		TestEvents string `json:"testEvents"`
	} `json:"subjects"`
	Schema string `json:"schema"`
}

// visible reports whether cl may see event type t: it produces or consumes
// it, or is an admin.
func visible(cl *broker.Client, t string) bool {
	return cl.Admin || cl.MayProduce(t) || cl.MayConsume(t)
}

func (s *Server) eventTypes(c *gin.Context) {
	cl, cat := clientOf(c), catalogOf(c)
	items := []eventTypeInfo{}
	for i := range cat.reg.Types {
		t := &cat.reg.Types[i]
		if !visible(cl, t.Name) {
			continue
		}
		items = append(items, describeType(cl, t))
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// describeType fills in the defaults the broker applies.
func describeType(cl *broker.Client, t *broker.EventType) eventTypeInfo {
	retention, dedup, replicas, size := t.Retention, t.DedupWindow, t.Replicas, t.MaxEventSize
	if retention == 0 {
		retention = broker.DefaultRetention
	}
	if dedup == 0 {
		dedup = broker.DefaultDedupWindow
	}
	dedup = min(dedup, retention)
	if replicas == 0 {
		replicas = broker.DefaultReplicas
	}
	if size == 0 {
		size = broker.MaxRequestSize
	}
	info := eventTypeInfo{
		Type: t.Name, Produce: cl.MayProduce(t.Name), Consume: cl.MayConsume(t.Name),
		Retention: durationString(retention), Replicas: replicas, MaxEventSize: size, DedupWindow: durationString(dedup),
		Partitions: mevents.Partitions, Stream: broker.StreamName(t.Name),
		Schema: "/v1/event-types/" + t.Name + "/schema",
	}
	info.Subjects.Events = "ev." + t.Name + ".*"
	info.Subjects.TestEvents = "evtest." + cl.ID + "." + t.Name + ".*"
	return info
}

func (s *Server) eventTypeSchema(c *gin.Context) {
	cl, cat := clientOf(c), catalogOf(c)
	name := c.Param("type")
	t := cat.reg.Type(name)
	if t == nil || !visible(cl, name) {
		// Unknown and invisible types look alike: the registry is not public.
		s.fail(c, mevents.Errorf(mevents.CodeNotFound, "no event type %q for client %s", name, cl.ID))
		return
	}
	c.Data(http.StatusOK, "application/schema+json", t.Schema)
}

// durationString prints a Go duration without zero units: 120h, 10m, 1h30m.
func durationString(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"0s", "0m"} {
		if len(s) > len(z)+1 && s[len(s)-len(z):] == z && s[len(s)-len(z)-1] >= 'a' {
			s = s[:len(s)-len(z)]
		}
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
