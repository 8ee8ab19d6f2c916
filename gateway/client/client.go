// Package client is the Go client of the mevents event exchange: it
// produces CloudEvents, consumes them in groups with per-key order, and
// manages dead events, over the HTTPS API with a client certificate.
//
//	c, err := client.New(client.Config{URL: "https://localhost:8443",
//		TLS: client.TLSFiles{CA: "ca.pem", Cert: "me.pem", Key: "me-key.pem"}})
//	p := c.Producer(client.ProducerOptions{})
//	res, err := p.Publish(ctx, ev)                  // retried safely, stored once
//	err = c.Consumer(client.ConsumerOptions{Group: "billing"}).Consume(ctx, handler)
//
// A Producer retries on 429, 503 and network errors with the same events
// (the service deduplicates by source+id), honouring Retry-After. A
// Consumer runs the handler concurrently across partition keys and
// strictly in order within a key; it acknowledges what the handler
// handled, releases what failed (delivered again later, with the later
// events of its key), and reports as dead what the handler calls Poison.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config configures a Client.
type Config struct {
	// URL is the API's base URL, e.g. https://localhost:8443 (the
	// address of `mevents dev`).
	URL string
	// TLS is the client's TLS configuration, with its client certificate;
	// when nil, TLSFiles are read.
	TLS *tls.Config
	// TLSFiles names PEM files: used when TLS is nil.
	TLSFiles TLSFiles
	// Logger receives the consumers' reconnections and settle failures;
	// nil discards them.
	Logger *slog.Logger
	// Timeout bounds one HTTP request other than a long poll; default 30 s.
	Timeout time.Duration
}

// TLSFiles names the PEM files of a client: the CA certificate(s) that
// signed the API's certificate, and the client certificate and its key.
type TLSFiles struct {
	CA, Cert, Key string
}

// Load reads the files into a TLS configuration.
func (f TLSFiles) Load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificates", f.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Client talks to one mevents API. It is safe for concurrent use; Close
// releases its idle connections.
type Client struct {
	base    *url.URL
	tls     *tls.Config
	log     *slog.Logger
	timeout time.Duration
	// tr speaks HTTP/2 when the server offers it, HTTP/1.1 otherwise.
	tr   *http.Transport
	http *http.Client
}

// New returns a client of cfg.URL; it reads the TLS files but does no
// network I/O.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("client: URL %q is not an https:// URL", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		if tlsCfg, err = cfg.TLSFiles.Load(); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	tlsCfg = tlsCfg.Clone()
	if tlsCfg.MinVersion == 0 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	return &Client{base: u, tls: tlsCfg, log: log.With("component", "mevents-client"), timeout: cfg.Timeout,
		tr: tr, http: &http.Client{Transport: tr}}, nil
}

// Close closes the client's idle connections. Consumers still running
// keep theirs.
func (c *Client) Close() {
	c.tr.CloseIdleConnections()
}

// url returns the API URL of path with query q.
func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil); any other answer is an *Error. timeout 0 means c.timeout.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, contentType string, body []byte, timeout time.Duration, out any) (int, error) {
	if timeout == 0 {
		timeout = c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), r)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, responseError(resp, data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errClosedByUser is what the loops return when their context ended.
var errClosedByUser = errors.New("stopped")
