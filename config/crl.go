package config

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"
)

// CRLValidity is how long a CRL issued by Revoke is current (its
// NextUpdate); reissue it (revoke again, or revoke nothing new) before then.
const CRLValidity = 365 * 24 * time.Hour

// CRL returns a PEM certificate revocation list, signed by the CA, that
// revokes the certificates with the given serial numbers.
func (ca *CA) CRL(serials []*big.Int, number int64, validity time.Duration) ([]byte, error) {
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now.Add(-clockSkew),
		NextUpdate: now.Add(validity),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	return encodePEM("X509 CRL", der), nil
}

// Revoke adds the certificate in certFile to the CRL at crlFile (created
// when absent), signed again by the CA in caDir. The gateway reads the CRL
// named by api.tls.crl on start and on every reload (SIGHUP).
func Revoke(caDir, crlFile, certFile string) error {
	ca, err := LoadCA(caDir)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("%s was not issued by the CA in %s", certFile, caDir)
	}
	var serials []*big.Int
	number := int64(1)
	if data, err := os.ReadFile(crlFile); err == nil {
		blk, _ := pem.Decode(data)
		if blk == nil || blk.Type != "X509 CRL" {
			return fmt.Errorf("%s: no PEM X509 CRL", crlFile)
		}
		old, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", crlFile, err)
		}
		if err := old.CheckSignatureFrom(ca.Cert); err != nil {
			return fmt.Errorf("%s is not signed by the CA in %s", crlFile, caDir)
		}
		for _, e := range old.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return nil // already revoked
			}
			serials = append(serials, e.SerialNumber)
		}
		if old.Number != nil {
			number = old.Number.Int64() + 1
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	crl, err := ca.CRL(append(serials, cert.SerialNumber), number, CRLValidity)
	if err != nil {
		return err
	}
	tmp := crlFile + ".tmp"
	if err := os.WriteFile(tmp, crl, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, crlFile)
}
