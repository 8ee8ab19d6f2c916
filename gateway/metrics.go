package gateway

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics. They live on the registry
// given to NewMetrics (the node's own, never the global one), which the ops
// listener serves at /metrics.
//
// The produce path and the request metrics are recorded by the gateway
// itself. The delivery metrics (Delivered, Acked, Redelivered, Dead,
// SessionOpened/SessionClosed, Lag) are recorded by the subscription
// endpoints through the methods below; they are safe for concurrent use.
type Metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	produceRequests *prometheus.CounterVec
	events          *prometheus.CounterVec
	validation      *prometheus.CounterVec
	maintenance     prometheus.Gauge

	delivered   *prometheus.CounterVec
	acked       *prometheus.CounterVec
	redelivered *prometheus.CounterVec
	dead        *prometheus.CounterVec
	sessions    *prometheus.GaugeVec
}

// NewMetrics creates the gateway's metrics and registers them on reg; nil
// reg means a private registry nobody serves (tests). It panics if reg
// already holds them: one Metrics per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cg := []string{"client", "group", "type"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_http_requests_total",
			Help: "API requests by route, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mevents_http_request_duration_seconds",
			Help:    "API request latency by route and method (long-polls and WebSockets included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"route", "method"}),
		produceRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_produce_requests_total",
			Help: "Produce requests (POST /v1/events and /v1/test-events) by client and status."}, []string{"client", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_produced_events_total",
			Help: "Events of produce requests by type, client and the request's status (202: stored); type \"other\" for unregistered types."},
			[]string{"type", "client", "status"}),
		validation: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_validation_failures_total",
			Help: "Problems found in produced events, by the rule (JSON Schema keyword or CloudEvents rule) that failed."}, []string{"keyword"}),
		maintenance: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mevents_maintenance",
			Help: "1 while the cluster is in maintenance mode."}),

		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_delivered_events_total",
			Help: "Events delivered to consumers (first deliveries and redeliveries)."}, cg),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_acked_events_total",
			Help: "Deliveries acknowledged by consumers."}, cg),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_redelivered_events_total",
			Help: "Redeliveries (after release, ack timeout or disconnect)."}, cg),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mevents_dead_events_total",
			Help: "Events moved to the dead-event store, by origin (consumer, maxDeliver)."}, append(cg, "origin")),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mevents_websocket_sessions",
			Help: "Open WebSocket subscriptions on this node."}, []string{"client"}),
	}
	reg.MustRegister(m.requests, m.latency, m.produceRequests, m.events, m.validation, m.maintenance,
		m.delivered, m.acked, m.redelivered, m.dead, m.sessions)
	return m
}

// Delivered counts n events of type typ delivered to client in group.
func (m *Metrics) Delivered(client, group, typ string, n int) {
	m.delivered.WithLabelValues(client, group, typ).Add(float64(n))
}

// Acked counts n acknowledged deliveries.
func (m *Metrics) Acked(client, group, typ string, n int) {
	m.acked.WithLabelValues(client, group, typ).Add(float64(n))
}

// Redelivered counts n redeliveries.
func (m *Metrics) Redelivered(client, group, typ string, n int) {
	m.redelivered.WithLabelValues(client, group, typ).Add(float64(n))
}

// Dead counts an event moved to the dead-event store; origin is
// "consumer" or "maxDeliver".
func (m *Metrics) Dead(client, group, typ, origin string) {
	m.dead.WithLabelValues(client, group, typ, origin).Inc()
}

// SessionOpened and SessionClosed track the open WebSocket sessions of a client.
func (m *Metrics) SessionOpened(client string) { m.sessions.WithLabelValues(client).Inc() }

// SessionClosed: see SessionOpened.
func (m *Metrics) SessionClosed(client string) { m.sessions.WithLabelValues(client).Dec() }

// Metrics returns the server's metrics, for the subscription endpoints.
func (s *Server) Metrics() *Metrics { return s.ops.metrics }

// Context keys of the metrics.
const (
	keyEventList = "mevents.eventList"
	keyProblems  = "mevents.problems"
)

// observe records a finished request; the access log calls it.
func (s *Server) observe(c *gin.Context, elapsed time.Duration) {
	m := s.ops.metrics
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := strconv.Itoa(c.Writer.Status())
	m.requests.WithLabelValues(route, c.Request.Method, status).Inc()
	m.latency.WithLabelValues(route, c.Request.Method).Observe(elapsed.Seconds())
	if route != "/v1/events" && route != "/v1/test-events" {
		return
	}
	client := "unknown"
	if v, ok := c.Get(keyClient); ok {
		client = v.(*broker.Client).ID
	}
	m.produceRequests.WithLabelValues(client, status).Inc()
	if v, ok := c.Get(keyEventList); ok {
		// One label lookup per type of the request, not per event.
		cat := s.catalog.Load()
		counts := make(map[string]int, 1)
		for _, e := range v.([]mevents.Event) {
			typ := "other" // a label per unregistered type would let clients grow the series without bound
			if cat != nil && cat.reg.Type(e.Type) != nil {
				typ = e.Type
			}
			counts[typ]++
		}
		for typ, n := range counts {
			m.events.WithLabelValues(typ, client, status).Add(float64(n))
		}
	}
	if v, ok := c.Get(keyProblems); ok {
		for _, p := range v.([]mevents.Problem) {
			m.validation.WithLabelValues(p.Keyword).Inc()
		}
	}
}

func gaugeOf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
