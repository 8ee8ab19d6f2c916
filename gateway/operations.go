package gateway

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Inspector reports on the node and the cluster and keeps the cluster-wide
// admin state; *broker.Node implements it.
type Inspector interface {
	// ClusterStatus: see broker.Node.ClusterStatus.
	ClusterStatus(ctx context.Context) (broker.ClusterStatus, error)
	// StreamStatus: see broker.Node.StreamStatus.
	StreamStatus(ctx context.Context) ([]broker.StreamStatus, error)
	// Lag: see broker.Node.Lag.
	Lag(ctx context.Context) ([]broker.GroupLag, error)
	// Cursors: see broker.Node.Cursors.
	Cursors(ctx context.Context) ([]broker.CursorState, error)
	// SetMaintenance stores the maintenance mode for every node.
	SetMaintenance(ctx context.Context, m broker.Maintenance) error
	// WatchMaintenance calls fn with the current mode and every change
	// until Stop; see broker.Node.WatchMaintenance.
	WatchMaintenance(ctx context.Context, fn func(broker.Maintenance)) (*broker.MaintenanceWatch, error)
}

// maintenanceRetryAfter is the Retry-After (seconds) of answers refused in
// maintenance mode.
const maintenanceRetryAfter = 30

// opsState is the state of operations: maintenance mode, rate limits,
// metrics and the registry reloader.
type opsState struct {
	metrics *Metrics

	mu      sync.Mutex
	maint   broker.Maintenance
	changed chan struct{} // closed, and replaced, when maint changes
	watch   *broker.MaintenanceWatch

	buckets  sync.Map // client id → *bucket
	reloader atomic.Pointer[func(context.Context) error]
}

func (s *Server) initOps() {
	s.ops.metrics = s.cfg.Metrics
	if s.ops.metrics == nil {
		s.ops.metrics = NewMetrics(nil)
	}
}

// openOps starts following the cluster-wide maintenance mode; Open calls it.
func (s *Server) openOps(ctx context.Context) error {
	w, err := s.broker.WatchMaintenance(ctx, s.setMaintenance)
	if err != nil {
		return fmt.Errorf("maintenance mode: %w", err)
	}
	s.ops.watch = w
	return nil
}

// closeOps stops the maintenance watch, waiting until ctx ends at most:
// stopping it deletes its JetStream consumer, which waits for a quorum
// that a cluster stopping as a whole no longer has. It then ends with the
// broker's connection.
func (s *Server) closeOps(ctx context.Context) {
	if s.ops.watch == nil {
		return
	}
	stopped := make(chan struct{})
	go func() { s.ops.watch.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
}

func (s *Server) setMaintenance(m broker.Maintenance) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	if m.Enabled != s.ops.maint.Enabled {
		s.log.Warn("maintenance mode changed", "enabled", m.Enabled, "message", m.Message, "by", m.By)
	}
	s.ops.maint = m
	if s.ops.changed != nil {
		close(s.ops.changed)
	}
	s.ops.changed = make(chan struct{})
	s.ops.metrics.maintenance.Set(gaugeOf(m.Enabled))
}

// MaintenanceState returns the maintenance mode in force on this node and a
// channel that is closed at its next change. Long-lived subscriptions
// (WebSockets) select on the channel, then call again: in maintenance they
// close with 1012 (service restart) or 1013 (try again later) and the
// message. Safe for concurrent use, also before Open.
func (s *Server) MaintenanceState() (broker.Maintenance, <-chan struct{}) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	if s.ops.changed == nil {
		s.ops.changed = make(chan struct{})
	}
	return s.ops.maint, s.ops.changed
}

// exemptFromMaintenance are the /v1 routes that stay open in maintenance:
// the admin API (to end it) and discovery (read-only).
var exemptFromMaintenance = []string{"/v1/admin/", "/v1/whoami", "/v1/event-types"}

// admit lets a request of an authenticated client in, or refuses it with
// 503, Retry-After and the operator's message in maintenance mode.
func (s *Server) admit(c *gin.Context) {
	m, _ := s.MaintenanceState()
	if !m.Enabled {
		c.Next()
		return
	}
	route := c.FullPath()
	for _, p := range exemptFromMaintenance {
		if strings.HasPrefix(route, p) {
			c.Next()
			return
		}
	}
	msg := m.Message
	if msg == "" {
		msg = "the service is in maintenance; try again later"
	}
	c.Header("Retry-After", strconv.Itoa(maintenanceRetryAfter))
	s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "%s", msg))
}

// limit takes n events from the client's rate budget, or returns a
// rate_limited error and sets Retry-After.
func (s *Server) limit(c *gin.Context, cl *broker.Client, n int) error {
	if cl.RateLimit <= 0 || n == 0 {
		return nil
	}
	v, _ := s.ops.buckets.LoadOrStore(cl.ID, &bucket{})
	wait, ok := v.(*bucket).take(time.Now(), cl.RateLimit, n)
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	c.Header("Retry-After", strconv.Itoa(secs))
	return mevents.Errorf(mevents.CodeRateLimited, "client %s is over its rate of %g events/s; retry after %d s", cl.ID, cl.RateLimit, secs)
}

// bucket is a token bucket of one client on this node: it holds at most
// one second's worth of events (at least 1) and refills at the client's
// rate. A request is admitted when the bucket holds its events, or is full
// for a batch larger than the bucket; such a batch leaves the bucket in
// debt, so the average stays at the rate. The rate is read at every request,
// so a registry reload applies at once.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take admits n events at rate events/s, or says how long until it would.
func (b *bucket) take(now time.Time, rate float64, n int) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	capacity := math.Max(rate, 1)
	if b.last.IsZero() {
		b.tokens = capacity
	} else {
		b.tokens = math.Min(capacity, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	need := math.Min(float64(n), capacity)
	if b.tokens >= need {
		b.tokens -= float64(n)
		return 0, true
	}
	return time.Duration((need - b.tokens) / rate * float64(time.Second)), false
}
