package gateway_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/mevents/mevents/config"
)

// TestCertificateValidity: certificates outside their validity period are
// refused in the handshake, like untrusted ones.
func TestCertificateValidity(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		ok                  bool
	}{
		{"valid", now.Add(-time.Hour), now.Add(time.Hour), true},
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), false},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := e.ca.IssueTLS(config.IssueOptions{Name: "producer", Client: true, NotBefore: tt.notBefore, NotAfter: tt.notAfter})
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), Certificates: []tls.Certificate{cert}}}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(e.url + "/v1/whoami")
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("request err=%v, want ok=%v", err, tt.ok)
			}
		})
	}
}
