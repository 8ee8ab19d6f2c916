package config

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	buf, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return parseCertPEM(t, buf)
}

func parseCertPEM(t *testing.T, buf []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(buf)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mode(t *testing.T, file string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestIssueFiles(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	out := filepath.Join(t.TempDir(), "pki")
	if err := IssueCA(caDir); err != nil {
		t.Fatal(err)
	}
	if err := IssueCA(caDir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("IssueCA again: %v, want already exists", err)
	}
	if err := IssueNode(caDir, out, "n1", nil); err != nil {
		t.Fatal(err)
	}
	if err := IssueNode(caDir, out, "n2", []string{"n2.example", "10.0.0.2", "::2"}); err != nil {
		t.Fatal(err)
	}
	if err := IssueClient(caDir, out, "civil-registry"); err != nil {
		t.Fatal(err)
	}
	if err := IssueClient(caDir, out, "civil-registry"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("IssueClient again: %v, want already exists", err)
	}

	for file, want := range map[string]os.FileMode{
		filepath.Join(caDir, "ca.pem"):               0o644,
		filepath.Join(caDir, "ca-key.pem"):           0o600,
		filepath.Join(out, "n1.pem"):                 0o644,
		filepath.Join(out, "n1-key.pem"):             0o600,
		filepath.Join(out, "civil-registry.pem"):     0o644,
		filepath.Join(out, "civil-registry-key.pem"): 0o600,
	} {
		if got := mode(t, file); got != want {
			t.Errorf("mode of %s = %v, want %v", file, got, want)
		}
	}

	ca := readCert(t, filepath.Join(caDir, "ca.pem"))
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Fatalf("CA: IsCA=%v, valid %v to %v", ca.IsCA, ca.NotBefore, ca.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	for _, tt := range []struct {
		file, subject string
		dns           []string
		ips           []string
		server        bool
	}{
		{"n1.pem", "CN=n1", []string{"localhost"}, []string{"127.0.0.1", "::1"}, true},
		{"n2.pem", "CN=n2", []string{"n2.example"}, []string{"10.0.0.2", "::2"}, true},
		{"civil-registry.pem", "CN=civil-registry", nil, nil, false},
	} {
		t.Run(tt.file, func(t *testing.T) {
			cert := readCert(t, filepath.Join(out, tt.file))
			if got := cert.Subject.String(); got != tt.subject {
				t.Fatalf("subject %q, want %q", got, tt.subject)
			}
			if !equalStrings(cert.DNSNames, tt.dns) {
				t.Fatalf("DNS names %q, want %q", cert.DNSNames, tt.dns)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !equalStrings(ips, tt.ips) {
				t.Fatalf("IPs %q, want %q", ips, tt.ips)
			}
			if d := cert.NotAfter.Sub(cert.NotBefore); d < 2*365*24*time.Hour || d > 2*366*24*time.Hour {
				t.Fatalf("valid for %v, want 2 years", d)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("verify for client auth: %v", err)
			}
			_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if tt.server && err != nil {
				t.Fatalf("verify for server auth: %v", err)
			}
			if !tt.server && err == nil {
				t.Fatal("a client certificate verifies for server auth")
			}
			for _, host := range append(tt.dns, tt.ips...) {
				if err := cert.VerifyHostname(host); err != nil {
					t.Fatalf("VerifyHostname(%s): %v", host, err)
				}
			}
			name := strings.TrimSuffix(tt.file, ".pem")
			if _, err := tls.LoadX509KeyPair(filepath.Join(out, name+".pem"), filepath.Join(out, name+"-key.pem")); err != nil {
				t.Fatalf("LoadX509KeyPair: %v", err)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestIssueErrors(t *testing.T) {
	caDir := t.TempDir()
	if err := IssueNode(caDir, caDir, "n1", nil); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("IssueNode without a CA: %v, want not exist", err)
	}
	if err := IssueCA(caDir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../n1", "a/b", ".hidden", "a b"} {
		if err := IssueClient(caDir, caDir, name); err == nil {
			t.Errorf("IssueClient(%q) succeeded", name)
		}
	}
	// The CA's own files are never replaced.
	if err := IssueClient(caDir, caDir, "ca"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("IssueClient(ca): %v, want already exists", err)
	}

	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts IssueOptions
		want string
	}{
		{"no name", IssueOptions{Client: true}, "no name"},
		{"no usage", IssueOptions{Name: "x"}, "neither server nor client"},
		{"server without hosts", IssueOptions{Name: "x", Server: true}, "needs hosts"},
		{"backwards", IssueOptions{Name: "x", Client: true, NotBefore: time.Now(), NotAfter: time.Now().Add(-time.Hour)}, "NotAfter is not after NotBefore"},
	} {
		if _, _, err := ca.Issue(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Issue: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	if err := IssueCA(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(ca.CertPEM) != string(onDisk) {
		t.Fatal("CertPEM differs from ca.pem")
	}

	// A key that is not the certificate's is refused.
	other, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := other.Issue(IssueOptions{Name: "x", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCA(ca.CertPEM, otherKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("ParseCA with another key: %v", err)
	}
	// A leaf certificate is not a CA.
	leaf, leafKey, err := other.Issue(IssueOptions{Name: "x", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCA(leaf, leafKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("ParseCA with a leaf: %v", err)
	}
}

func TestIssueValidity(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tt := range []struct {
		name                string
		notBefore, notAfter time.Time
		valid               bool
	}{
		{"default", time.Time{}, time.Time{}, true},
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), false},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, _, err := ca.Issue(IssueOptions{Name: "c", Client: true, NotBefore: tt.notBefore, NotAfter: tt.notAfter})
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCertPEM(t, certPEM)
			_, err = cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if tt.valid != (err == nil) {
				t.Fatalf("Verify: %v, want valid=%v", err, tt.valid)
			}
			var invalid x509.CertificateInvalidError
			if !tt.valid && (!errors.As(err, &invalid) || invalid.Reason != x509.Expired) {
				t.Fatalf("Verify: %v, want an Expired error", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	got := Fingerprint(ca.Cert.Raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("Fingerprint=%q, want %q", got, want)
	}
}

// handshake runs a real TLS handshake over loopback between a server with
// the given certificate, requiring client certificates from clientCAs, and
// a client trusting roots, then exchanges a message. It returns each side's
// error.
func handshake(t *testing.T, server tls.Certificate, clientCAs *x509.CertPool, client *tls.Certificate, roots *x509.CertPool) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Server(conn, &tls.Config{
			Certificates: []tls.Certificate{server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS12,
		})
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			done <- err
			return
		}
		_, err = c.Write(buf)
		done <- err
	}()

	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	clientErr = func() error {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(conn, cfg)
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return errors.New("echo mismatch")
		}
		return nil
	}()
	return <-done, clientErr
}

func TestTLSHandshake(t *testing.T) {
	// The deployment's PKI, issued to files as `mevents certs` does.
	dir := t.TempDir()
	if err := IssueCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := IssueNode(dir, dir, "n1", nil); err != nil {
		t.Fatal(err)
	}
	if err := IssueClient(dir, dir, "producer"); err != nil {
		t.Fatal(err)
	}
	load := func(name string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	node, producer := load("n1"), load("producer")

	// Certificates that must be refused.
	other, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *CA, opts IssueOptions) *tls.Certificate {
		c, err := ca.IssueTLS(opts)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	stranger := issue(other, IssueOptions{Name: "producer", Client: true})
	strangeNode := issue(other, IssueOptions{Name: "n1", Hosts: []string{"localhost"}, Server: true, Client: true})
	expired := issue(ca, IssueOptions{Name: "producer", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	serverOnly := issue(ca, IssueOptions{Name: "producer", Hosts: []string{"localhost"}, Server: true})

	for _, tt := range []struct {
		name   string
		server tls.Certificate
		client *tls.Certificate
		ok     bool
	}{
		{"client certificate", node, &producer, true},
		{"node certificate as client (routes)", node, &node, true},
		{"client certificate from another CA", node, stranger, false},
		{"expired client certificate", node, expired, false},
		{"certificate without client usage", node, serverOnly, false},
		{"no client certificate", node, nil, false},
		{"server certificate from another CA", *strangeNode, &producer, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			serverErr, clientErr := handshake(t, tt.server, ca.Pool(), tt.client, ca.Pool())
			if tt.ok && (serverErr != nil || clientErr != nil) {
				t.Fatalf("handshake failed: server: %v; client: %v", serverErr, clientErr)
			}
			if !tt.ok && (serverErr == nil || clientErr == nil) {
				t.Fatalf("handshake succeeded: server: %v; client: %v", serverErr, clientErr)
			}
		})
	}
}
