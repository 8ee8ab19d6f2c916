package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Broker is what the gateway needs from the broker: one small interface
// per resource, each declared beside its handlers.
type Broker interface {
	Publisher
	Subscriber
	Inspector
	Auditor
}

// Publisher stores produced events.
type Publisher interface {
	// Publish stores the events of one request; see broker.Node.Publish.
	Publish(ctx context.Context, p broker.Publication) error
}

// TLSFiles names the PEM files of the API's TLS setup.
type TLSFiles struct {
	Cert, Key string
	// ClientCA holds the CA certificates client certificates must chain to.
	ClientCA string
	// CRL, optional, revokes client certificates (PEM or DER, signed by a
	// client CA).
	CRL string
}

// Config configures a Server.
type Config struct {
	// Listen is host:port of the API (":0" picks a free port).
	Listen string
	TLS    TLSFiles
	Logger *slog.Logger
	// Metrics are where the gateway records its metrics; nil: a private
	// registry (see NewMetrics).
	Metrics *Metrics
	// HeaderTimeout bounds the TLS handshake and the reading of a
	// request's headers, against slow clients holding connections; default
	// DefaultHeaderTimeout.
	HeaderTimeout time.Duration
}

// DefaultHeaderTimeout is the default of Config.HeaderTimeout.
const DefaultHeaderTimeout = 10 * time.Second

// Server is the HTTPS API. New does no I/O; Open listens; Close stops.
type Server struct {
	cfg    Config
	log    *slog.Logger
	broker Broker

	catalog    atomic.Pointer[Catalog]
	catMu      sync.Mutex
	catChanged chan struct{} // closed, and replaced, by SetCatalog
	tls        atomic.Pointer[tls.Config]

	// consume is the state of the subscription endpoints (subscription.go).
	consume consumeState
	// ops is the state of operations: maintenance, rate limits, metrics (operations.go).
	ops opsState

	handler http.Handler
	http    *http.Server
	ln      net.Listener
	done    chan struct{}
	closeMu sync.Once
}

// New returns a server that publishes through b. It serves nothing until
// SetCatalog has been called and Open has run.
func New(cfg Config, b Broker) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "gateway"), broker: b, done: make(chan struct{})}
	s.initConsume()
	s.initOps()
	s.handler = s.routes()
	return s
}

// SetCatalog makes c the registry the gateway authorizes and validates
// with; it applies to the next request, and open WebSockets whose client
// lost its rights are closed.
func (s *Server) SetCatalog(c *Catalog) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	s.catalog.Store(c)
	if s.catChanged != nil {
		close(s.catChanged)
	}
	s.catChanged = make(chan struct{})
}

// catalogState returns the catalog in force and a channel closed when it
// is replaced.
func (s *Server) catalogState() (*Catalog, <-chan struct{}) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	if s.catChanged == nil {
		s.catChanged = make(chan struct{})
	}
	return s.catalog.Load(), s.catChanged
}

// Handler returns the API's HTTP handler (for tests that bring their own
// server).
func (s *Server) Handler() http.Handler { return s.handler }

// Open loads the TLS files, listens and serves in the background until
// Close.
func (s *Server) Open(ctx context.Context) error {
	if err := s.ReloadTLS(); err != nil {
		return err
	}
	if err := s.openOps(ctx); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		s.closeOps(ctx)
		return fmt.Errorf("api listen: %w", err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return s.tls.Load(), nil
			},
		},
	}
	go func() {
		defer close(s.done)
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	s.log.Info("api listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the API listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops accepting requests and waits for in-flight ones to finish
// until ctx ends, then closes the rest. Subscriptions end first: each
// gives its partitions back to the group. When ctx ends before they have,
// Close returns ctx's error and those still giving back finish once the
// broker under them stops (broker.Node.Shutdown).
func (s *Server) Close(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	var err error
	s.closeMu.Do(func() {
		// Long-lived subscriptions (WebSockets, long polls) end first, so
		// that Shutdown need not wait for them.
		consumeErr := s.closeConsume(ctx)
		err = s.http.Shutdown(ctx)
		if err != nil {
			_ = s.http.Close()
		}
		<-s.done
		s.closeOps(ctx)
		if err == nil {
			err = consumeErr
		}
	})
	return err
}

func (s *Server) routes() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = false
	r.Use(s.recover, s.accessLog)
	r.NoRoute(func(c *gin.Context) {
		s.fail(c, mevents.Errorf(mevents.CodeNotFound, "no such resource: %s", c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		s.fail(c, &mevents.Error{Code: codeMethodNotAllowed, Message: "method " + c.Request.Method + " not allowed on " + c.Request.URL.Path})
	})

	v1 := r.Group("/v1", s.sameOrigin, s.authenticate, s.admit)
	s.discoveryRoutes(r, v1) // documents without client identity on r: /changelog, /v1/openapi.json
	v1.POST("/events", s.postEvents(false))
	v1.POST("/test-events", s.postEvents(true))
	s.subscriptionRoutes(v1)
	s.deadEventRoutes(v1)
	s.adminRoutes(v1)
	s.consoleRoutes(r)
	return r
}
