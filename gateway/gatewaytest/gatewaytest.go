// Package gatewaytest serves the mevents API for tests, in the spirit of
// net/http/httptest: a certificate authority made for the test, the API
// over mutual TLS on a free loopback port in front of a node (see
// broker/brokertest), and HTTP clients that present certificates of that
// authority.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
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
