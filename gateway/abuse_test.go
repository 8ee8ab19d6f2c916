package gateway_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway"
)

// TestSlowClients: a client that connects and never completes the TLS
// handshake, or never finishes its request headers, is disconnected after
// the header timeout instead of holding the connection.
func TestSlowClients(t *testing.T) {
	e := newEnv(t)
	reg := broker.NewRegistry(nil, nil)
	cat, err := gateway.NewCatalog(reg)
	if err != nil {
		t.Fatal(err)
	}
	api := gateway.New(gateway.Config{Listen: "127.0.0.1:0", TLS: e.files, HeaderTimeout: 300 * time.Millisecond}, e.node)
	api.SetCatalog(cat)
	if err := api.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close(context.Background()) })

	closed := func(t *testing.T, c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
	t.Run("no TLS handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", api.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closed(t, c)
	})
	t.Run("headers never finished", func(t *testing.T) {
		cert, err := e.ca.IssueTLS(config.IssueOptions{Name: "producer", Client: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", api.Addr(), &tls.Config{RootCAs: e.ca.Pool(), Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: mevents\r\nContent-Type: appl"); err != nil {
			t.Fatal(err)
		}
		closed(t, c)
	})
}
