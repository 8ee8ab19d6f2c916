package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/mevents/mevents/gateway/client"
)

// devClient connects to `mevents dev` with its demo certificates.
func devClient(name string) *client.Client {
	c, err := client.New(client.Config{
		URL: "https://localhost:8443",
		TLSFiles: client.TLSFiles{CA: ".mevents-dev/pki/ca.pem",
			Cert: ".mevents-dev/pki/" + name + ".pem", Key: ".mevents-dev/pki/" + name + "-key.pem"},
	})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// Publish a CloudEvents sdk-go event and a raw JSON one in one batch; a
// 429 or 503 is retried with the same events, which the service stores once.
func ExampleProducer_Publish() {
	c := devClient("demo-producer")
	defer c.Close()
	ev := cloudevents.New()
	ev.SetID("order-4711-3")
	ev.SetSource("/mes/plant-1")
	ev.SetType("com.example.mes.processorder.statuschanged")
	ev.SetExtension("partitionkey", "4711")
	_ = ev.SetData("application/json", map[string]any{"orderId": "4711", "status": "RELEASED",
		"changedAt": "2026-01-05T10:00:00Z"})
	raw := `{"specversion":"1.0","id":"order-4711-4","source":"/mes/plant-1",
		"type":"com.example.mes.processorder.statuschanged","partitionkey":"4711",
		"data":{"orderId":"4711","status":"STARTED","changedAt":"2026-01-05T10:05:00Z"}}`
	res, err := c.Producer(client.ProducerOptions{}).Publish(context.Background(), ev, raw)
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		for _, p := range apiErr.Problems { // one per failing event of a 400
			fmt.Printf("event %d at %s: %s\n", p.Index, p.Pointer, p.Message)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", res.IDs)
}

// Consume a group until SIGINT/SIGTERM: handlers run concurrently across
// partition keys and in order within one; an error releases the event (it
// comes again, with the later events of its key), Poison makes it dead.
func ExampleConsumer_Consume() {
	c := devClient("demo-consumer")
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	consumer := c.Consumer(client.ConsumerOptions{Group: "billing", MaxInFlight: 100})
	err := consumer.Consume(ctx, func(ctx context.Context, e *client.Event) error {
		if len(e.Data) == 0 {
			return client.Poison("no data", nil)
		}
		fmt.Println(e.Type, e.ID, string(e.Data))
		return nil // acknowledged
	})
	if err != nil {
		log.Fatal(err) // refused for good, e.g. a type not routed to the client
	}
}

// Redeliver every dead event of the client.
func ExampleClient_RedeliverDead() {
	c := devClient("demo-consumer")
	defer c.Close()
	ctx := context.Background()
	for cursor := ""; ; {
		page, err := c.ListDead(ctx, cursor, 100)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range page.Items {
			fmt.Println("redeliver", d.ID, d.Reason)
			if err := c.RedeliverDead(ctx, d.ID); err != nil {
				log.Fatal(err)
			}
		}
		if cursor = page.Next; cursor == "" {
			return
		}
	}
}
