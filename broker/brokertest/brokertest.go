// Package brokertest starts embedded NATS nodes for tests, in the spirit
// of net/http/httptest: one node or a cluster of them in this process, on
// free loopback ports, in the test's temporary directories, closed when the
// test ends.
//
// MEVENTS_TEST_LOG=1 sends the nodes' logs (debug level) to standard error.
package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
)

// nextPort hands out ports in turn from a random start, so that no two
// calls in one test process return the same port. It is the package's one
// piece of state, and only tests import the package.
var nextPort = func() *atomic.Int32 {
	var p atomic.Int32
	p.Store(int32(20000 + rand.IntN(10000)))
	return &p
}()

// FreeAddr returns 127.0.0.1:port with a port that is free now, below the
// kernel's ephemeral range (32768 and up on Linux): a port of that range,
// once released, may be taken at any moment as the local port of some
// outgoing connection, and then the node that was to listen on it cannot.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", nextPort.Add(1))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below 32000")
	return ""
}

// FreePort is the port of FreeAddr.
func FreePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// Open opens a node; an empty StoreDir is a temporary directory. The node
// closes when the test ends.
func Open(t testing.TB, cfg broker.NodeConfig) *broker.Node {
	t.Helper()
	n := broker.NewNode(defaults(t, cfg))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Open(ctx); err != nil {
		t.Fatalf("open node %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Cluster opens the nodes of Configs(t, size, base) and waits until every
// one is ready (has a meta leader). The nodes close when the test ends.
func Cluster(t testing.TB, size int, base broker.NodeConfig) []*broker.Node {
	t.Helper()
	return OpenAll(t, Configs(t, size, base))
}

// Configs returns the configurations of size nodes n1…nsize routed to each
// other: base with each node's name, store directory and cluster addresses
// filled in, and fsync once a minute unless base says otherwise (fsync per
// write adds nothing to what tests check). A test that stops a node opens
// it again from its configuration.
func Configs(t testing.TB, size int, base broker.NodeConfig) []broker.NodeConfig {
	t.Helper()
	addrs := make([]string, size)
	routes := make([]string, size)
	for i := range addrs {
		addrs[i] = FreeAddr(t)
		routes[i] = "nats-route://" + addrs[i]
	}
	if base.SyncInterval == 0 {
		base.SyncInterval = time.Minute
	}
	cfgs := make([]broker.NodeConfig, size)
	for i := range cfgs {
		cfg := base
		cfg.Name, cfg.ClusterListen, cfg.Routes, cfg.StoreDir = fmt.Sprintf("n%d", i+1), addrs[i], routes, t.TempDir()
		cfgs[i] = defaults(t, cfg)
	}
	return cfgs
}

// OpenAll opens the nodes of cfgs at once and waits until every one is
// ready. The nodes close when the test ends.
func OpenAll(t testing.TB, cfgs []broker.NodeConfig) []*broker.Node {
	t.Helper()
	nodes := make([]*broker.Node, len(cfgs))
	for i, cfg := range cfgs {
		nodes[i] = broker.NewNode(defaults(t, cfg))
		t.Cleanup(func() { nodes[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.Open(ctx) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("open cluster: %v", err)
		}
	}
	// A loaded machine (the race detector, other packages' clusters) may
	// take a while to elect leaders.
	for _, n := range nodes {
		for n.Ready() != nil {
			if ctx.Err() != nil {
				t.Fatalf("node %s not ready: %v", n.Name(), n.Ready())
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	return nodes
}

func defaults(t testing.TB, cfg broker.NodeConfig) broker.NodeConfig {
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	if cfg.Logger == nil && os.Getenv("MEVENTS_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", cfg.Name)
	}
	return cfg
}
