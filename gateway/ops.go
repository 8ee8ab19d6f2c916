package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness is what the ops listener asks the broker.
type Readiness interface {
	// Ready returns nil when the node can serve, or why not.
	Ready() error
}

// Ops is the operations listener: plain HTTP on its own address, serving
// /healthz (the process is alive), /readyz (the node can serve) and
// /metrics (Prometheus, from the node's own registry).
type Ops struct {
	listen  string
	ready   Readiness
	metrics prometheus.Gatherer
	pprof   bool
	log     *slog.Logger
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}
}

// NewOps returns an ops listener for addr; Open starts it.
func NewOps(addr string, r Readiness, log *slog.Logger) *Ops {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ops{listen: addr, ready: r, log: log.With("component", "ops"), done: make(chan struct{})}
}

// ServeMetrics makes /metrics serve what g gathers (the node's own
// registry); call it before Open. Without it /metrics answers 404.
func (o *Ops) ServeMetrics(g prometheus.Gatherer) { o.metrics = g }

// ServeProfiles makes /debug/pprof/ serve Go's profiles; call it before
// Open.
func (o *Ops) ServeProfiles() { o.pprof = true }

// Open listens and serves in the background until Close.
func (o *Ops) Open(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		return fmt.Errorf("ops listen: %w", err)
	}
	o.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := o.ready.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"status\":\"unavailable\",\"reason\":%q}\n", err.Error())
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	if o.metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.metrics, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelError), Timeout: 10 * time.Second}))
	}
	if o.pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("ops listener stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the listener listens on.
func (o *Ops) Addr() string {
	if o.ln == nil {
		return ""
	}
	return o.ln.Addr().String()
}

// Close stops the listener and waits for it.
func (o *Ops) Close(ctx context.Context) error {
	if o.srv == nil {
		return nil
	}
	err := o.srv.Shutdown(ctx)
	<-o.done
	return err
}
