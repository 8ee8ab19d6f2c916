package gateway_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
)

// TestClientByFingerprint registers a client by the SHA-256 fingerprint of
// its certificate: that certificate is the client whatever its subject,
// and another certificate with the same subject is not.
func TestClientByFingerprint(t *testing.T) {
	e := newEnv(t)
	cert, err := e.ca.IssueTLS(config.IssueOptions{Name: "shared-app", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	reg := broker.NewRegistry(
		[]broker.EventType{{Name: personType, Schema: []byte(personSchema), Replicas: 1, MaxEventSize: broker.MaxRequestSize}},
		[]broker.Client{{ID: "fp-app", Certificate: broker.CertificateMatch{Fingerprint: config.Fingerprint(cert.Certificate[0])}, Produce: []string{personType}}})
	cat, err := gateway.NewCatalog(reg)
	if err != nil {
		t.Fatal(err)
	}
	e.api.SetCatalog(cat)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), Certificates: []tls.Certificate{cert}}}
	t.Cleanup(tr.CloseIdleConnections)
	r := e.post(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "/v1/events", "application/cloudevents+json", []byte(person("fp1", "2000000000001")))
	if r.status != http.StatusAccepted {
		t.Fatalf("registered fingerprint: status %d, want 202: %s", r.status, r.body)
	}
	r = e.post(e.client("shared-app", nil, false), "/v1/events", "application/cloudevents+json", []byte(person("fp2", "2000000000001")))
	if r.status != http.StatusForbidden {
		t.Fatalf("same subject, other certificate: status %d, want 403", r.status)
	}
}
