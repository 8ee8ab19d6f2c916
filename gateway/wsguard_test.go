package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway"
)

// TestWebSocketClosedOnLostRights: a reload that takes a type away from a
// client closes its open WebSockets with 1008 and the reason; other
// clients' sessions stay.
func TestWebSocketClosedOnLostRights(t *testing.T) {
	e := newConsumeEnv(t)
	consumer := e.mustDial("consumer", "types="+personType)
	other := e.mustDial("other", "types="+personType)

	old := e.node.Registry()
	var clients []broker.Client
	for _, c := range old.Clients {
		if c.ID == "consumer" {
			c.Consume = []string{orderType}
		}
		clients = append(clients, c)
	}
	cat, err := gateway.NewCatalog(broker.NewRegistry(old.Types, clients))
	if err != nil {
		t.Fatal(err)
	}
	e.api.SetCatalog(cat)

	err = consumer.closed(10 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1008 || !strings.Contains(ce.Text, personType) {
		t.Fatalf("consumer's session ended with %v, want close 1008 naming %s", err, personType)
	}
	select {
	case err := <-other.err:
		t.Fatalf("another client's session ended: %v", err)
	default:
	}
}

// TestWebSocketClosedOnMaintenance: maintenance mode closes open
// WebSockets with 1013 and the operator's message.
func TestWebSocketClosedOnMaintenance(t *testing.T) {
	e := newConsumeEnv(t)
	consumer := e.mustDial("consumer", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.SetMaintenance(ctx, broker.Maintenance{Enabled: true, Message: "upgrading to 2.0"}); err != nil {
		t.Fatal(err)
	}
	err := consumer.closed(10 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1013 || !strings.Contains(ce.Text, "upgrading to 2.0") {
		t.Fatalf("session ended with %v, want close 1013 with the message", err)
	}
}
