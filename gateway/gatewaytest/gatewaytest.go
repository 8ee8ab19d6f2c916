// Package gatewaytest starts in-process mevents nodes for tests, in the
// spirit of net/http/httptest: an embedded NATS JetStream node (one, or a
// cluster of several) with the HTTPS gateway in front, over real mutual TLS
// with certificates made for the test.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
)

// Options configures NewCluster.
type Options struct {
	// Size is the number of nodes; 0 means 1. Several nodes form a cluster.
	Size int
	// EventTypes and Clients are the registry. An event type's Replicas of
	// 0 becomes 1 on one node and 3 on a cluster.
	EventTypes []broker.EventType
	Clients    []broker.Client
	// AckTimeout is the nodes' ack timeout; 0 keeps the broker's default.
	AckTimeout time.Duration
	// Logger receives the gateways' logs; nil discards them.
	Logger *slog.Logger
}

// Node is one running node and its gateway.
type Node struct {
	Broker *broker.Node
	API    *gateway.Server
	// CA issued the API's certificate and is its client CA.
	CA *config.CA
	// URL is the API's base URL, https://127.0.0.1:port.
	URL string
	t   testing.TB
	dir string
}

// NewCluster starts the nodes and their gateways; they stop when the test
// ends.
func NewCluster(t testing.TB, o Options) []*Node {
	t.Helper()
	size := max(o.Size, 1)
	dir := t.TempDir()
	ca, err := config.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(config.IssueOptions{Name: "api", Hosts: []string{"127.0.0.1", "localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := gateway.TLSFiles{Cert: write("api.pem", certPEM), Key: write("api-key.pem", keyPEM), ClientCA: write("ca.pem", ca.CertPEM)}
	replicas := 1
	var routes, listens []string
	if size > 1 {
		replicas = 3
		for i := 0; i < size; i++ {
			addr := FreeAddr(t)
			listens = append(listens, addr)
			routes = append(routes, "nats-route://"+addr)
		}
	}
	types := make([]broker.EventType, len(o.EventTypes))
	for i, et := range o.EventTypes {
		if et.Replicas == 0 {
			et.Replicas = replicas
		}
		if et.MaxEventSize == 0 {
			et.MaxEventSize = broker.MaxRequestSize
		}
		types[i] = et
	}
	reg := broker.NewRegistry(types, o.Clients)
	cat, err := gateway.NewCatalog(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	nodes := make([]*Node, size)
	errs := make(chan error, size)
	for i := range nodes {
		cfg := broker.NodeConfig{Name: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(dir, fmt.Sprintf("js%d", i)),
			SyncInterval: time.Minute, AckTimeout: o.AckTimeout}
		if size > 1 {
			cfg.ClusterListen, cfg.Routes, cfg.ClusterName = listens[i], routes, "gatewaytest"
		}
		node := broker.NewNode(cfg)
		t.Cleanup(func() { node.Close() })
		nodes[i] = &Node{Broker: node, CA: ca, t: t, dir: dir}
		go func() { errs <- node.Open(ctx) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A loaded machine (the race detector, other packages' clusters) may
	// take a while to elect leaders: wait until every node is ready.
	for _, n := range nodes {
		for n.Broker.Ready() != nil {
			if ctx.Err() != nil {
				t.Fatalf("node not ready: %v", n.Broker.Ready())
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	for _, n := range nodes {
		if err := n.Broker.ApplyRegistry(ctx, reg); err != nil {
			t.Fatal(err)
		}
		api := gateway.New(gateway.Config{Listen: "127.0.0.1:0", TLS: files, Logger: o.Logger}, n.Broker)
		api.SetCatalog(cat)
		if err := api.Open(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { api.Close(context.Background()) })
		n.API, n.URL = api, "https://"+api.Addr()
	}
	return nodes
}

// TLSConfig returns a client TLS configuration that trusts the API and
// presents a new certificate with subject CN=name.
func (n *Node) TLSConfig(name string) *tls.Config {
	n.t.Helper()
	cert, err := n.CA.IssueTLS(config.IssueOptions{Name: name, Client: true})
	if err != nil {
		n.t.Fatal(err)
	}
	return &tls.Config{RootCAs: n.CA.Pool(), MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
}

// ClientFiles writes a new certificate for CN=name, its key and the CA
// certificate as PEM files, for clients that read files.
func (n *Node) ClientFiles(name string) (certFile, keyFile, caFile string) {
	n.t.Helper()
	certPEM, keyPEM, err := n.CA.Issue(config.IssueOptions{Name: name, Client: true})
	if err != nil {
		n.t.Fatal(err)
	}
	d := n.t.TempDir()
	certFile, keyFile, caFile = filepath.Join(d, name+".pem"), filepath.Join(d, name+"-key.pem"), filepath.Join(d, "ca.pem")
	for f, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, caFile: n.CA.CertPEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			n.t.Fatal(err)
		}
	}
	return certFile, keyFile, caFile
}

// nextPort hands out ports in turn from a random start, so that no two
// calls in this test process return the same port.
var nextPort = func() *atomic.Int32 {
	var p atomic.Int32
	p.Store(int32(20000 + rand.IntN(10000)))
	return &p
}()

// FreeAddr returns 127.0.0.1:port with a port that is free now, below
// the kernel's ephemeral range (32768 and up on Linux): a port of that range,
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

// Main runs a package's tests with WebSockets over HTTP/2 (RFC 8441)
// enabled: Go's HTTP/2 server reads GODEBUG=http2xconnect=1 only when the
// process starts, so the test binary runs itself again with it. Call it
// from TestMain: func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }.
func Main(m *testing.M) int {
	if env, changed := gateway.ExtendedConnectEnv(os.Environ()); changed {
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, os.Args, env)
		}
		fmt.Fprintln(os.Stderr, "gatewaytest: run again with GODEBUG=http2xconnect=1:", err)
		return 2
	}
	return m.Run()
}
