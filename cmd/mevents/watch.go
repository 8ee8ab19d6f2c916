package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// runWatch prints the events routed to a client as JSON lines, over the
// WebSocket, acknowledging each once printed: `mevents watch`.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "https://localhost:8443", "API base URL")
	ca := fs.String("ca", ".mevents-dev/pki/ca.pem", "CA certificate of the API")
	cert := fs.String("cert", ".mevents-dev/pki/demo-consumer.pem", "client certificate")
	key := fs.String("key", ".mevents-dev/pki/demo-consumer-key.pem", "client key")
	group := fs.String("group", "watch", "consumer group (a new group starts at the oldest retained event, or at --start)")
	start := fs.String("start", "", "where a new group starts: latest or an RFC 3339 time (default: the oldest retained event)")
	types := fs.String("types", "", "comma-separated event types (default: all routed to the client)")
	noAck := fs.Bool("no-ack", false, "do not acknowledge: the events are delivered again after the ack timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tlsConfig, err := clientTLSFiles(*ca, *cert, *key)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	u, err := url.Parse(*api)
	if err != nil {
		return err
	}
	u.Scheme, u.Path = "wss", "/v1/subscription/ws"
	q := url.Values{"group": {*group}, "maxInFlight": {strconv.Itoa(100)}}
	if *start != "" {
		q.Set("start", *start)
	}
	if *types != "" {
		q.Set("types", *types)
	}
	u.RawQuery = q.Encode()
	d := websocket.Dialer{TLSClientConfig: tlsConfig, Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			return fmt.Errorf("watch: %s: %s", resp.Status, body)
		}
		return fmt.Errorf("watch: %w", err)
	}
	defer conn.Close()
	fmt.Fprintf(stderr, "watching group %q at %s (Ctrl-C to stop)\n", *group, *api)
	go func() {
		<-ctx.Done()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		_ = conn.Close()
	}()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		var ev struct {
			Op      string `json:"op"`
			AckID   string `json:"ackid"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(msg, &ev); err != nil {
			return fmt.Errorf("watch: a frame that is not JSON: %.200s", msg)
		}
		switch {
		case ev.Op == "error":
			fmt.Fprintf(stderr, "server: %s\n", msg)
		case ev.Op != "":
			// results of our acks: nothing to show
		default:
			fmt.Fprintf(stdout, "%s\n", msg)
			if !*noAck && ev.AckID != "" {
				frame, _ := json.Marshal(map[string]any{"op": "ack", "ackIds": []string{ev.AckID}})
				if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
					return fmt.Errorf("watch: ack: %w", err)
				}
			}
		}
	}
}
