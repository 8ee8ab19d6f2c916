package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// runServe runs one node from its node.yaml until ctx ends.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "node.yaml", "the node's configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadNode(*path)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	return serve(ctx, cfg, log, nil)
}

// serve opens a Main, reloads its registry on SIGHUP and closes it when ctx
// ends. ready, if not nil, is called once the node serves.
func serve(ctx context.Context, cfg *config.Node, log *slog.Logger, ready func(*Main)) error {
	m := NewMain(cfg, log)
	if err := m.Open(ctx); err != nil {
		// Open failed, perhaps because ctx ended: stop what started,
		// within the same bound as a stop.
		_ = m.stop()
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if ready != nil {
		ready(m)
	}
	for {
		select {
		case <-hup:
			if err := m.Reload(ctx); err != nil {
				log.Error("registry reload rejected; the previous registry stays in force", "err", err)
			}
		case <-ctx.Done():
			log.Info("shutting down", "shutdownTimeout", time.Duration(cfg.ShutdownTimeout).String())
			return m.stop()
		}
	}
}

// Main is one running node: the embedded NATS node, the HTTPS gateway and
// the operations listener, wired from a node.yaml. Tests run it end to end.
type Main struct {
	Config *config.Node
	Log    *slog.Logger
	Node   *broker.Node
	API    *gateway.Server
	Ops    *gateway.Ops
	// Metrics is the node's own Prometheus registry, served at the ops
	// listener's /metrics.
	Metrics *prometheus.Registry
	// serving is true from the moment the API listens until Close.
	serving atomic.Bool
}

// errNotServing is /readyz's reason while the API does not listen: the
// node is still starting (creating or loading streams) or shutting down.
var errNotServing = errors.New("the API is not serving")

// Ready reports whether the node can serve requests: its API listens and
// its NATS node is ready (broker.Node.Ready). It is what /readyz answers.
func (m *Main) Ready() error {
	if !m.serving.Load() {
		return errNotServing
	}
	return m.Node.Ready()
}

// NewMain wires a node from cfg; it does no I/O.
func NewMain(cfg *config.Node, log *slog.Logger) *Main {
	return &Main{Config: cfg, Log: log}
}

// Open starts the node: NATS and JetStream (waiting for a quorum in a
// cluster), the streams of the registry, then the API and ops listeners.
func (m *Main) Open(ctx context.Context) error {
	cfg := m.Config
	nc := broker.NodeConfig{
		Name:       cfg.Node.Name,
		StoreDir:   cfg.Node.DataDir,
		MaxStore:   int64(cfg.JetStream.MaxStore),
		MaxMemory:  int64(cfg.JetStream.MaxMemory),
		AckTimeout: time.Duration(cfg.Delivery.AckTimeout),
		Logger:     m.Log,
	}
	if !cfg.JetStream.Sync.Always() {
		nc.SyncInterval = cfg.JetStream.Sync.Interval()
	}
	if n := cfg.NATS; n != nil {
		t, err := serverTLS(n.TLS.Cert, n.TLS.Key, n.TLS.CA, false)
		if err != nil {
			return fmt.Errorf("nats operator port: %w", err)
		}
		nc.OperatorListen, nc.OperatorTLS = n.Listen, t
		for _, o := range n.Operators {
			nc.Operators = append(nc.Operators, broker.Operator{User: o.User, Password: o.Password})
		}
	}
	if !cfg.SingleNode() {
		c := cfg.Cluster
		nc.ClusterName, nc.ClusterListen, nc.Routes, nc.ClusterAdvertise = c.Name, c.Listen, c.Routes, c.Advertise
		if c.TLS.Cert != "" {
			t, err := serverTLS(c.TLS.Cert, c.TLS.Key, c.TLS.CA, true)
			if err != nil {
				return fmt.Errorf("cluster routes: %w", err)
			}
			nc.ClusterTLS = t
		}
	}
	m.Node = broker.NewNode(nc)
	m.Metrics = prometheus.NewRegistry()
	m.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Node.Collector(), m.Node.LagCollector())
	metrics := gateway.NewMetrics(m.Metrics)
	m.Ops = gateway.NewOps(cfg.Ops.Listen, m, m.Log)
	if cfg.Ops.Pprof {
		m.Ops.ServeProfiles()
	}
	m.Ops.ServeMetrics(m.Metrics)
	// The ops listener comes first so that /healthz answers while the
	// node waits for its peers.
	if err := m.Ops.Open(ctx); err != nil {
		return err
	}
	if err := m.Node.Open(ctx); err != nil {
		return err
	}
	reg, cat, err := m.loadRegistry()
	if err != nil {
		return err
	}
	if err := m.Node.ApplyRegistry(ctx, reg); err != nil {
		return err
	}
	m.API = gateway.New(gateway.Config{
		Listen:  cfg.API.Listen,
		TLS:     gateway.TLSFiles{Cert: cfg.API.TLS.Cert, Key: cfg.API.TLS.Key, ClientCA: cfg.API.TLS.ClientCA, CRL: cfg.API.TLS.CRL},
		Logger:  m.Log,
		Metrics: metrics,
	}, m.Node)
	m.API.SetCatalog(cat)
	m.API.SetReloader(m.Reload)
	if err := m.API.Open(ctx); err != nil {
		return err
	}
	m.serving.Store(true)
	return nil
}

// loadRegistry reads registry.yaml and compiles its schemas.
func (m *Main) loadRegistry() (*broker.Registry, *gateway.Catalog, error) {
	reg, err := config.LoadRegistry(m.Config.Registry, m.Config.RegistryOptions())
	if err != nil {
		return nil, nil, err
	}
	cat, err := gateway.NewCatalog(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.Config.Registry, err)
	}
	return reg, cat, nil
}

// Reload reads the registry again and applies it: new types get their
// streams, client changes apply to the next request. The API certificate
// and client CA files are read again too. On error nothing changes.
func (m *Main) Reload(ctx context.Context) error {
	reg, cat, err := m.loadRegistry()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.Node.ApplyRegistry(ctx, reg); err != nil {
		return err
	}
	m.API.SetCatalog(cat)
	if err := m.API.ReloadTLS(); err != nil {
		m.Log.Error("API TLS files not reloaded; the previous ones stay in force", "err", err)
	}
	m.Log.Info("registry reloaded", "types", len(reg.Types), "clients", len(reg.Clients))
	return nil
}

// stop closes m within shutdownTimeout: Close gets the timeout less a
// margin, and should it overrun even so, stop returns at the timeout and
// the process exits with an error, the goroutine still closing with it.
func (m *Main) stop() error {
	timeout := time.Duration(m.Config.ShutdownTimeout)
	if timeout <= 0 { // a configuration built in code without Default
		timeout = time.Duration(config.DefaultShutdownTimeout)
	}
	// The margin covers what follows the end of Close's context: the NATS
	// server's hard stop, broker.Node.Shutdown's straggle wait and the ops
	// listener's close.
	margin := min(max(timeout/5, 500*time.Millisecond), 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), timeout-margin)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- m.Close(ctx) }()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case err := <-closed:
		return err
	case <-deadline.C:
		return fmt.Errorf("not stopped within shutdownTimeout %s; exiting anyway", timeout)
	}
}

// Close stops the node gracefully until ctx ends: the API stops accepting,
// ends subscriptions (their partitions go back to their groups) and
// finishes in-flight requests, then the NATS node enters lame duck mode
// and stops. The API gets the larger part of the time and the NATS node
// the rest (at least half of it, when ctx leaves less than
// nodeStopReserve); when a step runs out of time the next one begins, and
// the NATS node stops at once when ctx ends (see broker.Node.Shutdown).
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	m.serving.Store(false)
	if m.API != nil {
		apiCtx, cancel := context.WithCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			left := time.Until(d)
			apiCtx, cancel = context.WithTimeout(ctx, max(left-nodeStopReserve, left/2))
		}
		errs = append(errs, m.API.Close(apiCtx))
		cancel()
	}
	if m.Node != nil {
		errs = append(errs, m.Node.Shutdown(ctx))
	}
	if m.Ops != nil {
		// The ops listener serves nothing long; it gets a moment of its own.
		octx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		errs = append(errs, m.Ops.Close(octx))
		cancel()
	}
	return errors.Join(errs...)
}

// nodeStopReserve is the time Close keeps for the NATS node's lame duck
// mode (leadership transfer, about a second, and the closing of clients).
const nodeStopReserve = 4 * time.Second

// serverTLS builds the TLS configuration of a NATS listener. With
// mutual set (routes), peers must present a certificate from ca; without it
// (the operator port, where operators log in with a password) a
// certificate is optional but must chain to ca when given.
func serverTLS(certFile, keyFile, caFile string, mutual bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		t.RootCAs = pool
		t.ClientCAs = pool
	}
	switch {
	case mutual:
		t.ClientAuth = tls.RequireAndVerifyClientCert
	case caFile != "":
		t.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return t, nil
}
