package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// ReloadTLS reads the certificate, key, client CA and CRL files again; the
// new ones apply to the next TLS handshake. On error the old ones stay.
func (s *Server) ReloadTLS() error {
	cert, err := tls.LoadX509KeyPair(s.cfg.TLS.Cert, s.cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	caPEM, err := os.ReadFile(s.cfg.TLS.ClientCA)
	if err != nil {
		return fmt.Errorf("api client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("api client CA %s: no PEM certificates", s.cfg.TLS.ClientCA)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// Without h2 here HTTP/2 silently turns off: this config replaces
		// the one http.Server prepares.
		NextProtos: []string{"h2", "http/1.1"},
	}
	if s.cfg.TLS.CRL != "" {
		revoked, err := loadCRL(s.cfg.TLS.CRL, caPEM)
		switch {
		case errors.Is(err, errCRLOutdated):
			s.log.Warn("the API's CRL is outdated; it is used as it is: issue a new one", "crl", s.cfg.TLS.CRL, "err", err)
		case err != nil:
			return fmt.Errorf("api CRL %s: %w", s.cfg.TLS.CRL, err)
		}
		// VerifyConnection runs on every handshake, resumed ones included.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && revoked[cs.PeerCertificates[0].SerialNumber.String()] {
				return errors.New("client certificate revoked")
			}
			return nil
		}
	}
	s.tls.Store(cfg)
	return nil
}

// loadCRL reads a PEM or DER CRL, checks that one of the CA certificates
// signed it and returns the revoked serial numbers (decimal).
func loadCRL(file string, caPEM []byte) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, err
	}
	signed := false
	for rest := caPEM; len(rest) > 0; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if ca, err := x509.ParseCertificate(b.Bytes); err == nil && crl.CheckSignatureFrom(ca) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return nil, errors.New("not signed by the client CA")
	}
	if !crl.NextUpdate.IsZero() && time.Now().After(crl.NextUpdate) {
		// An outdated list still revokes what it lists; refusing to start
		// over it would be worse. The caller warns the operator.
		return revokedSet(crl), fmt.Errorf("%w (next update was due %s)", errCRLOutdated, crl.NextUpdate.Format(time.RFC3339))
	}
	return revokedSet(crl), nil
}

var errCRLOutdated = errors.New("CRL is past its next update")

func revokedSet(crl *x509.RevocationList) map[string]bool {
	m := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		m[e.SerialNumber.String()] = true
	}
	return m
}
