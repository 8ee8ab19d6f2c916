package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Validity of issued certificates, and the clock skew their NotBefore
// allows for.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 2 * 365 * 24 * time.Hour
	clockSkew    = 5 * time.Minute
)

// File names of a CA in its directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// CA is a certificate authority that issues node and client certificates:
// ECDSA P-256 keys, signed with the CA's key.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// NewCA creates a CA in memory, with a new key and a self-signed
// certificate valid for CAValidity. Tests use it directly; IssueCA writes one
// to files.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// A distinct name per CA tells certificates of two development CAs apart.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("mevents CA %032x", serial)[:19]},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaf certificates only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodePEM("CERTIFICATE", der)}, nil
}

// LoadCA reads the CA in dir (ca.pem and ca-key.pem). The key may be PKCS#8,
// SEC 1 (EC) or PKCS#1 (RSA), so an operator may bring their own CA.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return ParseCA(certPEM, keyPEM)
}

// ParseCA returns the CA with the given PEM certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("parse CA: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("parse CA: the certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("parse CA: the key does not belong to the certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodePEM("CERTIFICATE", cert.Raw)}, nil
}

// Pool returns a pool holding the CA certificate, for tls.Config RootCAs
// and ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// IssueOptions describe a certificate for CA.Issue.
type IssueOptions struct {
	// Name is the subject's common name: the subject prints as "CN=Name".
	Name string
	// Hosts are the DNS names and IP addresses the certificate is valid
	// for, exactly as given; a server certificate needs at least one.
	Hosts []string
	// Server and Client select the extended key usages (TLS server and TLS
	// client authentication); at least one is required.
	Server, Client bool
	// NotBefore and NotAfter bound the validity; zero means 5 minutes ago
	// (allowing for clock skew) and NotBefore plus CertValidity. Tests set
	// them to issue expired or not yet valid certificates.
	NotBefore, NotAfter time.Time
}

// Issue creates a new ECDSA P-256 key and a certificate for it signed by
// the CA, and returns both PEM-encoded (the key as PKCS#8), ready for
// tls.X509KeyPair.
func (ca *CA) Issue(opts IssueOptions) (certPEM, keyPEM []byte, err error) {
	if opts.Name == "" {
		return nil, nil, errors.New("issue certificate: no name")
	}
	if !opts.Server && !opts.Client {
		return nil, nil, errors.New("issue certificate: neither server nor client usage")
	}
	if opts.Server && len(opts.Hosts) == 0 {
		return nil, nil, errors.New("issue certificate: a server certificate needs hosts")
	}
	notBefore, notAfter := opts.NotBefore, opts.NotAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-clockSkew)
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(CertValidity)
	}
	if !notAfter.After(notBefore) {
		return nil, nil, errors.New("issue certificate: NotAfter is not after NotBefore")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: opts.Name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if opts.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if opts.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range opts.Hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %s: %w", opts.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodePEM("CERTIFICATE", der), encodePEM("PRIVATE KEY", keyDER), nil
}

// IssueTLS is Issue returning a tls.Certificate, for tests that configure
// TLS in memory.
func (ca *CA) IssueTLS(opts IssueOptions) (tls.Certificate, error) {
	certPEM, keyPEM, err := ca.Issue(opts)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// IssueCA creates a new CA and writes it to dir/ca.pem and dir/ca-key.pem
// (mode 0600), creating dir if needed. It refuses to replace an existing CA.
func IssueCA(dir string) error {
	ca, err := NewCA()
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	return writePair(dir, "ca", ca.CertPEM, encodePEM("PRIVATE KEY", keyDER))
}

// IssueNode issues a certificate for node name, signed by the CA in caDir,
// and writes outDir/NAME.pem and outDir/NAME-key.pem. It is valid for
// server and client authentication (the API, the NATS port and routes) for
// the given hosts, or for localhost, 127.0.0.1 and ::1 when hosts is empty.
// It refuses to replace existing files.
func IssueNode(caDir, outDir, name string, hosts []string) error {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	return issueFiles(caDir, outDir, IssueOptions{Name: name, Hosts: hosts, Server: true, Client: true})
}

// IssueClient issues a client certificate with subject "CN=NAME", signed by
// the CA in caDir, and writes outDir/NAME.pem and outDir/NAME-key.pem. It
// refuses to replace existing files.
func IssueClient(caDir, outDir, name string) error {
	return issueFiles(caDir, outDir, IssueOptions{Name: name, Client: true})
}

// fileNamePattern keeps certificate names usable as file names.
var fileNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)

func issueFiles(caDir, outDir string, opts IssueOptions) error {
	if !fileNamePattern.MatchString(opts.Name) {
		return fmt.Errorf("issue certificate: name %q: use letters, digits, '.', '_' and '-'", opts.Name)
	}
	ca, err := LoadCA(caDir)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue(opts)
	if err != nil {
		return err
	}
	return writePair(outDir, opts.Name, certPEM, keyPEM)
}

// writePair writes dir/NAME.pem and dir/NAME-key.pem (mode 0600), unless
// either exists.
func writePair(dir, name string, certPEM, keyPEM []byte) error {
	certFile := filepath.Join(dir, name+".pem")
	keyFile := filepath.Join(dir, name+"-key.pem")
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s already exists", f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

// writeNew creates file with data, failing if it exists.
func writeNew(file string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(file)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(file)
		return err
	}
	return nil
}

// Fingerprint returns the SHA-256 fingerprint of a DER certificate as
// "sha256:" and lower-case hex, the form registry.yaml accepts.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("unsupported %q PEM block", block.Type)
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
