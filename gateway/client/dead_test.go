package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/gateway/client"
)

// TestPoisonDeadRedeliver: a handler's Poison moves the event to the dead
// store; it can be listed, redelivered to the group, and deleted.
func TestPoisonDeadRedeliver(t *testing.T) {
	n := startNodes(t, 1, nil)[0]
	p := newClient(t, n, "producer").Producer(client.ProducerOptions{})
	ctx := context.Background()
	if _, err := p.Publish(ctx, orderEvent("bad-1", "k"), orderEvent("good-1", "k")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, n, "consumer")
	handled := make(chan string, 10)
	poison := true
	stop, _ := consume(t, c, client.ConsumerOptions{Group: "dead"}, func(ctx context.Context, e *client.Event) error {
		if e.ID == "bad-1" && poison {
			poison = false // the handlers of key k run one at a time
			return client.Poison("cannot parse", errors.New("boom"))
		}
		handled <- e.ID
		return nil
	})
	if got := <-handled; got != "good-1" {
		t.Fatalf("handled %s, want good-1 (bad-1 is dead)", got)
	}
	var dead client.DeadEvent
	waitFor(t, 30*time.Second, "the dead event", func() bool {
		page, err := c.ListDead(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) == 1 {
			dead = page.Items[0]
			return true
		}
		return false
	})
	if dead.Group != "dead" || dead.Reason != "cannot parse" || dead.Origin != "consumer" || !strings.Contains(string(dead.Event), `"bad-1"`) {
		t.Fatalf("dead event %+v", dead)
	}
	if err := c.RedeliverDead(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	if got := <-handled; got != "bad-1" {
		t.Fatalf("handled %s, want the redelivered bad-1", got)
	}
	if err := c.DeleteDead(ctx, dead.ID); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("delete a redelivered dead event: %v, want 404", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestProduceErrors: a 400 carries one problem per failing event; a 403
// is not retried.
func TestProduceErrors(t *testing.T) {
	n := startNodes(t, 1, nil)[0]
	ctx := context.Background()
	p := newClient(t, n, "producer").Producer(client.ProducerOptions{})
	_, err := p.Publish(ctx, orderEvent("ok", "k"),
		`{"specversion":"1.0","type":"md.gov.person.registered","source":"/t","id":"p1","data":{"idnp":"12"}}`)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || len(apiErr.Problems) != 1 ||
		apiErr.Problems[0].Index != 1 || apiErr.Problems[0].Pointer != "/data/idnp" {
		t.Fatalf("err %v (%+v), want a 400 naming event 1 at /data/idnp", err, apiErr)
	}
	res, err := newClient(t, n, "consumer").Producer(client.ProducerOptions{}).Publish(ctx, orderEvent("x", "k"))
	if client.StatusOf(err) != http.StatusForbidden || res.Attempts != 1 {
		t.Fatalf("consumer producing: %v after %d attempts, want one 403", err, res.Attempts)
	}
}

// TestProducerRetriesNetworkErrors: a producer that cannot reach the
// service tries MaxAttempts times, then reports the network error.
func TestProducerRetriesNetworkErrors(t *testing.T) {
	n := startNodes(t, 1, nil)[0]
	c, err := client.New(client.Config{URL: "https://" + brokertest.FreeAddr(t), TLS: n.TLSConfig("producer")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Producer(client.ProducerOptions{MaxAttempts: 3, MinBackoff: time.Millisecond}).Publish(context.Background(), orderEvent("net-1", "k"))
	if err == nil || client.StatusOf(err) != 0 || res.Attempts != 3 {
		t.Fatalf("publish to nothing: %v after %d attempts, want a network error after 3", err, res.Attempts)
	}
}
