// Package gatewaytest serves the mevents API for tests, in the spirit of
// net/http/httptest: a certificate authority made for the test, the API
// over mutual TLS on a free loopback port in front of a node (see
// broker/brokertest), HTTP clients that present certificates of that
// authority, and whole clusters of nodes with their APIs (NewCluster).
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
)

// PKI is a certificate authority made for one test, and the API's
// certificate files for 127.0.0.1 and localhost.
type PKI struct {
	CA    *config.CA
	Files gateway.TLSFiles
}

// NewPKI makes a CA and a server certificate in a temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	ca, err := config.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{CA: ca}
	p.Files = p.ServerFiles(t, "api")
	return p
}

// ServerFiles writes another server certificate of the CA, for a second
// API server.
func (p *PKI) ServerFiles(t testing.TB, name string) gateway.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, err := p.CA.Issue(config.IssueOptions{Name: name, Hosts: []string{"127.0.0.1", "localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	f := gateway.TLSFiles{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem"), ClientCA: filepath.Join(dir, "ca.pem")}
	for file, data := range map[string][]byte{f.Cert: certPEM, f.Key: keyPEM, f.ClientCA: p.CA.CertPEM} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// ClientTLS returns a TLS configuration that trusts the CA and presents a
// client certificate with subject CN=name; name "" presents none.
func (p *PKI) ClientTLS(t testing.TB, name string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12}
	if name != "" {
		cert, err := p.CA.IssueTLS(config.IssueOptions{Name: name, Client: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// ClientFiles writes a new certificate for CN=name, its key and the CA
// certificate as PEM files in a temporary directory, for clients that read
// files (browsers, the CLI).
func (p *PKI) ClientFiles(t testing.TB, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	certPEM, keyPEM, err := p.CA.Issue(config.IssueOptions{Name: name, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	certFile, keyFile, caFile = filepath.Join(d, name+".pem"), filepath.Join(d, name+"-key.pem"), filepath.Join(d, "ca.pem")
	for f, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, caFile: p.CA.CertPEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, caFile
}

// Client returns an HTTP client presenting CN=name (see ClientTLS) that
// speaks HTTP/2 when http2 is set and only HTTP/1.1 otherwise. Its idle
// connections close when the test ends.
func (p *PKI) Client(t testing.TB, name string, http2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: p.ClientTLS(t, name), ForceAttemptHTTP2: http2}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Serve opens the API in front of node with the node's registry as its
// catalog. cfg.Listen defaults to a free loopback port and cfg.TLS to the
// PKI's files. The server closes when the test ends; its address is
// https://+Addr().
func (p *PKI) Serve(t testing.TB, node *broker.Node, cfg gateway.Config) *gateway.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TLS == (gateway.TLSFiles{}) {
		cfg.TLS = p.Files
	}
	cat, err := gateway.NewCatalog(node.Registry())
	if err != nil {
		t.Fatal(err)
	}
	api := gateway.New(cfg, node)
	api.SetCatalog(cat)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := api.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close(context.Background()) })
	return api
}

// Options configures NewCluster.
type Options struct {
	// Size is the number of nodes; 0 means 1. Several nodes form a cluster.
	Size int
	// EventTypes and Clients are the registry. An event type's Replicas of
	// 0 becomes 1 on one node and 3 on a cluster; its MaxEventSize of 0
	// the request limit.
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
	// PKI made the API's certificate; its CA is the client CA.
	PKI *PKI
	CA  *config.CA // PKI.CA
	// URL is the API's base URL, https://127.0.0.1:port.
	URL string
	t   testing.TB
}

// NewCluster starts the nodes (see brokertest.Cluster) with the registry
// of o and an API in front of each; all trust one CA. They stop when the
// test ends.
func NewCluster(t testing.TB, o Options) []*Node {
	t.Helper()
	size := max(o.Size, 1)
	replicas := 1
	if size > 1 {
		replicas = 3
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
	base := broker.NodeConfig{SyncInterval: time.Minute, AckTimeout: o.AckTimeout}
	var brokers []*broker.Node
	if size > 1 {
		base.ClusterName = "gatewaytest"
		brokers = brokertest.Cluster(t, size, base)
	} else {
		base.Name = "n1"
		brokers = []*broker.Node{brokertest.Open(t, base)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pki := NewPKI(t)
	nodes := make([]*Node, size)
	for i, b := range brokers {
		if err := b.ApplyRegistry(ctx, reg); err != nil {
			t.Fatal(err)
		}
		api := pki.Serve(t, b, gateway.Config{Logger: o.Logger})
		nodes[i] = &Node{Broker: b, API: api, PKI: pki, CA: pki.CA, URL: "https://" + api.Addr(), t: t}
	}
	return nodes
}

// TLSConfig returns a client TLS configuration that trusts the API and
// presents a new certificate with subject CN=name.
func (n *Node) TLSConfig(name string) *tls.Config {
	n.t.Helper()
	return n.PKI.ClientTLS(n.t, name)
}

// ClientFiles writes a new certificate for CN=name, its key and the CA
// certificate as PEM files, for clients that read files.
func (n *Node) ClientFiles(name string) (certFile, keyFile, caFile string) {
	n.t.Helper()
	return n.PKI.ClientFiles(n.t, name)
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

// LogBuffer is a buffer that a server's logger (or a process's output)
// writes while the test reads it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
