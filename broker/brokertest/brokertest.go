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
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
)

// Ports are handed out in turn within a block of portBlock ports that this
// test process holds alone: several test processes run at once (go test
// runs packages in parallel), and a port one of them found free and
// handed to a node it starts in another process could be taken by another
// test process meanwhile ("address already in use"). A process holds its
// block by an advisory lock on a file named after it in the temporary
// directory, for as long as it runs. The block and the next port are the
// package's one piece of state, and only tests import the package.
const (
	portBase   = 20000
	portBlock  = 1000
	portBlocks = 12 // up to 32000, below the kernel's ephemeral range
)

// heldPorts is the block of ports this process holds and the next one
// to hand out within it.
type heldPorts struct {
	base int32
	next atomic.Int32
	lock *os.File // kept: closing it (or its finalizer) would end the lock
}

var ports = holdPorts()

// holdPorts takes the first free block from a random one on; when every
// block is held it shares that random one, unlocked.
func holdPorts() *heldPorts {
	first := rand.IntN(portBlocks)
	h := &heldPorts{base: int32(portBase + first*portBlock)}
	for i := range portBlocks {
		b := (first + i) % portBlocks
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("mevents-test-ports-%d.lock", b)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			break
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			h.base, h.lock = int32(portBase+b*portBlock), f // held as long as the process runs
			break
		}
		f.Close()
	}
	h.next.Store(int32(rand.IntN(portBlock)))
	return h
}

// FreeAddr returns 127.0.0.1:port with a port that is free now, below the
// kernel's ephemeral range (32768 and up on Linux): a port of that range,
// once released, may be taken at any moment as the local port of some
// outgoing connection, and then the node that was to listen on it cannot.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", ports.base+ports.next.Add(1)%portBlock)
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
