package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Operator is a user of the operator port (the `nats` CLI).
type Operator struct {
	User     string
	Password string
}

// NodeConfig configures one node. The zero value of an optional field
// means its documented default.
type NodeConfig struct {
	// Name is the node's server name, unique in the cluster.
	Name string
	// StoreDir is where JetStream keeps its files.
	StoreDir string

	// OperatorListen is host:port of the NATS client port for operators;
	// empty disables it. OperatorTLS is required when it is set.
	OperatorListen string
	OperatorTLS    *tls.Config
	Operators      []Operator

	// ClusterName, ClusterListen and Routes make the node part of a
	// cluster; without routes it is a single node. ClusterTLS secures the
	// routes (mutual TLS).
	ClusterName   string
	ClusterListen string
	Routes        []string
	ClusterTLS    *tls.Config
	// ClusterAdvertise is the host:port peers are told to route to this
	// node at; empty: the listen address.
	ClusterAdvertise string

	MaxStore  int64
	MaxMemory int64
	// SyncInterval is how often JetStream fsyncs; 0 means fsync every
	// write (the default, which favours not losing acknowledged events).
	SyncInterval time.Duration

	// AckTimeout is how long a delivered event may stay unacknowledged
	// before it is delivered again; default DefaultAckTimeout (consume.go).
	AckTimeout time.Duration

	// PublishEach stores the events of a one-type request one by one, as
	// requests of several types are, instead of as one atomic batch: the
	// earlier way, kept to compare the cost of both (benchmarks).
	PublishEach bool

	// LameDuck is how long a graceful shutdown spreads the closing of
	// operator connections over; default 2s.
	LameDuck time.Duration
	Logger   *slog.Logger
}

// Clustered reports whether the node has routes to peers.
func (c *NodeConfig) Clustered() bool { return len(c.Routes) > 0 }

// Node is one mevents node: an embedded NATS server with JetStream and the
// in-process connection the application uses.
type Node struct {
	cfg    NodeConfig
	log    *slog.Logger
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	opened atomic.Bool // set once Open succeeded
	closed atomic.Bool

	mu       sync.Mutex // serialises registry application
	registry atomic.Pointer[Registry]

	// appUser is the in-process identity the application connects with.
	appUser inProcessUser

	// kvLock (a one-slot semaphore, so that waiting for it heeds a
	// context) guards kv and cursors.
	kvLock  chan struct{}
	kv      jetstream.KeyValue // the admin bucket, opened on first use (status_maintenance.go)
	cursors jetstream.KeyValue // the group cursors (cursor.go), opened on first use

	groups groupCache   // the dead-event stream (dead.go)
	audit  auditTrail   // the audit stream (audit.go)
	hubs   hubs         // membership of consumer groups (group_hub.go)
	tails  tails        // wake parked readers (consume_park.go)
	memory memoryReturn // return memory after a burst of parking (memory.go)
	// cursorSnap is the cursor store as the lag metrics last read it (lag.go).
	cursorSnap cursorSnapshot
	// lagCache is what the lag metrics last asked the streams (lag.go).
	lagCache lagCache
	// parkAfter is how long a reader reads nothing before it parks.
	parkAfter time.Duration
	// oldConsumers: consumers of an earlier version, listed (upgrade.go).
	oldConsumers oldConsumers
	local        localSubs // this node's consumer instances (consume_settle.go)
	polls        polls     // the instances that serve long polls (poll.go)
	// bgCtx ends when the node starts closing; bg counts the background
	// work it stops (upgrade.go).
	bg sync.WaitGroup
	// loops counts the loops that run as long as the node (peers.go,
	// memory.go); they stop when bgCtx ends too.
	loops sync.WaitGroup
	// peerMissing: a peer this node had routes to has none now (peers.go).
	peerMissing atomic.Bool
	// cutOff: this node and the peers it has routes to are no majority
	// of the peers it has known (peers.go).
	cutOff atomic.Bool
	// peersKnown counts the peers the peer watch has seen (peers.go).
	peersKnown atomic.Int32
	bgCtx      context.Context
	bgCancel   context.CancelFunc
}

// NewNode returns a node that is not started yet: Open starts it.
func NewNode(cfg NodeConfig) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "mevents"
	}
	if cfg.LameDuck == 0 {
		cfg.LameDuck = 2 * time.Second
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "broker"), kvLock: make(chan struct{}, 1), parkAfter: parkAfter}
	n.memory.quiet, n.memory.every, n.memory.readers = memoryQuiet, memoryEvery, memoryFreedReaders
	n.bgCtx, n.bgCancel = context.WithCancel(context.Background())
	return n
}

// Open starts the embedded NATS server, waits until JetStream has a meta
// leader (in a cluster: until a quorum of peers is up) or ctx ends, and
// connects in process.
func (n *Node) Open(ctx context.Context) error {
	opts, appUser, err := n.serverOptions()
	n.appUser = appUser
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("create nats server: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log: n.cfg.Logger.With("component", "nats")}, false, false, false)
	n.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("nats server did not start listening within 30s")
	}
	if err := n.waitMeta(ctx); err != nil {
		srv.Shutdown()
		return err
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("mevents-"+n.cfg.Name),
		nats.Nkey(appUser.pub, appUser.sign), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			n.log.Debug("nats connection", "subject", subject, "err", err)
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.tails.wakeAll() // a tail may have lost messages
			}
		}))
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("connect in process: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return fmt.Errorf("jetstream: %w", err)
	}
	n.nc, n.js = nc, js
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		n.returnMemory()
	}()
	if n.cfg.Clustered() {
		n.loops.Add(1)
		go func() {
			defer n.loops.Done()
			n.watchPeers()
		}()
	}
	n.opened.Store(true)
	n.log.Info("node ready", "name", n.cfg.Name, "clustered", n.cfg.Clustered())
	return nil
}

// waitMeta polls until the JetStream meta group has a leader.
func (n *Node) waitMeta(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		st := n.srv.Healthz(&server.HealthzOptions{JSMetaOnly: true})
		if st.StatusCode == 0 || st.StatusCode == 200 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a JetStream meta leader: %s: %w", st.Error, ctx.Err())
		case <-t.C:
		}
	}
}

// Ready reports nil when JetStream is current, its meta leader is known and
// this node's streams are healthy; otherwise a reason.
func (n *Node) Ready() error {
	if !n.opened.Load() || n.closed.Load() {
		return errors.New("node not running")
	}
	st := n.srv.Healthz(nil)
	if st.StatusCode != 0 && st.StatusCode != 200 && strings.Contains(st.Error, "failed to be ready for connections") {
		// nats-server waits at most 1 ms for its own start signal: a
		// check descheduled on a busy machine can lose that race once.
		st = n.srv.Healthz(nil)
	}
	if st.StatusCode != 0 && st.StatusCode != 200 {
		return errors.New(st.Error)
	}
	return nil
}

// Close shuts the node down gracefully, as Shutdown does, taking as long
// as that takes.
func (n *Node) Close() error { return n.Shutdown(context.Background()) }

// Shutdown stops the node gracefully until ctx ends: lame duck mode hands
// JetStream leadership to peers and closes operator connections, then the
// server stops. When ctx ends first (peers stopping at the same moment can
// leave nobody to hand over to, and writes without a quorum to wait for),
// the server stops at once: what JetStream acknowledged is on disk already,
// and unsettled deliveries go out again after the restart. Shutdown returns
// once the server has stopped; a graceful step still unwinding then gets at
// most shutdownStraggle more.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.srv == nil || n.closed.Swap(true) {
		return nil
	}
	n.bgCancel()
	graceful := make(chan struct{})
	go func() {
		defer close(graceful)
		n.bg.Wait()
		n.loops.Wait()
		// The long polls' instances give their partitions up while the
		// store can still be written.
		n.polls.close()
		if n.nc != nil {
			// Flush what was published; the application stopped publishing before.
			_ = n.nc.Drain()
		}
		n.srv.LameDuckShutdown()
	}()
	var err error
	select {
	case <-graceful:
	case <-ctx.Done():
		err = fmt.Errorf("graceful stop cut short: %w", ctx.Err())
		n.log.Warn("graceful stop cut short; stopping at once", "err", ctx.Err())
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	// With the server gone, what the graceful steps still wait for fails
	// at once.
	select {
	case <-graceful:
	case <-time.After(shutdownStraggle):
		n.log.Warn("graceful stop steps still running after the server stopped")
	}
	// Only now: a consumer group's hubs announce the node's instances for
	// as long as the node's connection lets them, as its instances may
	// pull until then. Other nodes take their partitions over (releasing
	// what they held) memberTTL after the last announcement.
	n.hubs.close()
	return err
}

// shutdownStraggle bounds how long Shutdown waits for its graceful steps
// after the server stopped under them.
const shutdownStraggle = 500 * time.Millisecond

type inProcessUser struct {
	pub  string
	sign nats.SignatureHandler
}

// serverOptions builds the NATS server options: an application account
// with JetStream, the system account, operator users (TLS only) and an
// nkey user that may only connect in process.
func (n *Node) serverOptions() (*server.Options, inProcessUser, error) {
	c := n.cfg
	opts := &server.Options{}
	// Accounts are declared in configuration syntax because that is the
	// only way to give an account JetStream limits.
	if err := opts.ProcessConfigString(`
accounts: {
  APP: { jetstream: enabled }
  SYS: {}
}
system_account: SYS
`); err != nil {
		return nil, inProcessUser{}, fmt.Errorf("nats accounts: %w", err)
	}
	var app, sys *server.Account
	for _, a := range opts.Accounts {
		switch a.Name {
		case "APP":
			app = a
		case "SYS":
			sys = a
		}
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, inProcessUser{}, fmt.Errorf("in-process identity: %w", err)
	}
	pub, _ := kp.PublicKey()
	opts.Nkeys = []*server.NkeyUser{{
		Nkey:                   pub,
		Account:                app,
		AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}},
	}}
	for _, o := range c.Operators {
		opts.Users = append(opts.Users,
			&server.User{Username: o.User, Password: o.Password, Account: app,
				AllowedConnectionTypes: map[string]struct{}{"STANDARD": {}}},
			// The same operator in the system account, for server reports.
			&server.User{Username: o.User + "-sys", Password: o.Password, Account: sys,
				AllowedConnectionTypes: map[string]struct{}{"STANDARD": {}}})
	}

	opts.ServerName = c.Name
	opts.NoSigs = true
	opts.NoLog = false
	opts.JetStream = true
	opts.StoreDir = c.StoreDir
	opts.JetStreamMaxStore = c.MaxStore
	opts.JetStreamMaxMemory = c.MaxMemory
	if c.SyncInterval > 0 {
		opts.SyncInterval = c.SyncInterval
	} else {
		opts.SyncAlways = true
	}
	opts.LameDuckDuration = c.LameDuck
	opts.LameDuckGracePeriod = -c.LameDuck / 2 // negative: see nats-server lameDuckMode
	opts.MaxPayload = 8 << 20
	// Every instance of a group reads through a consumer of its own
	// (consume_read.go): a type with a thousand groups has a thousand.
	opts.JetStreamLimits.DefaultMaxConsumers = -1
	opts.JetStreamLimits.MaxBatchInflightPerStream = maxBatchesInFlight
	opts.JetStreamLimits.MaxBatchInflightTotal = maxBatchesTotal

	switch {
	case c.OperatorListen == "" && !c.Clustered():
		opts.DontListen = true
	case c.OperatorListen == "":
		// nats-server starts routing only after its client listener is up
		// (Server.Start), so a clustered node without an operator port
		// listens on a random loopback port where no user can log in: the
		// only users are operators (none here) and the in-process identity.
		opts.Host, opts.Port = "127.0.0.1", -1
	default:
		host, port, err := splitHostPort(c.OperatorListen)
		if err != nil {
			return nil, inProcessUser{}, fmt.Errorf("operator listen: %w", err)
		}
		opts.Host, opts.Port = host, port
		if c.OperatorTLS == nil {
			return nil, inProcessUser{}, errors.New("operator port needs TLS")
		}
		opts.TLSConfig = c.OperatorTLS
		opts.TLS = true
		opts.TLSTimeout = 5
	}

	if c.Clustered() {
		host, port, err := splitHostPort(c.ClusterListen)
		if err != nil {
			return nil, inProcessUser{}, fmt.Errorf("cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: host, Port: port,
			TLSConfig: c.ClusterTLS, TLSTimeout: 5, Advertise: c.ClusterAdvertise}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, inProcessUser{}, fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	return opts, inProcessUser{pub: pub, sign: kp.Sign}, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	if port == 0 {
		port = -1 // nats-server: -1 picks a free port
	}
	return host, port, nil
}

// OperatorAddr returns the address the operator port listens on, or "".
func (n *Node) OperatorAddr() string {
	if n.srv == nil || n.cfg.OperatorListen == "" {
		return ""
	}
	if a := n.srv.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// ClusterAddr returns the address the route port listens on, or "".
func (n *Node) ClusterAddr() string {
	if n.srv == nil || !n.cfg.Clustered() {
		return ""
	}
	if a := n.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Name returns the node's server name.
func (n *Node) Name() string { return n.cfg.Name }

// natsLogger adapts slog to nats-server's logger.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
