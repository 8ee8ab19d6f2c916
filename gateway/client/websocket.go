package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const subprotocol = "cloudevents.json"

// websocket consumes over one WebSocket connection until it fails or ctx
// ends (then nil).
func (cs *Consumer) websocket(ctx, hctx context.Context, h Handler, connected *bool) error {
	conn, proto, err := cs.c.dialWebSocket(ctx, cs.query("maxInFlight", cs.o.MaxInFlight), cs.o.HTTP1)
	if err != nil {
		return err
	}
	*connected = true
	cs.c.log.Info("consumer connected", "group", cs.o.Group, "proto", proto)
	if cs.o.OnConnect != nil {
		cs.o.OnConnect(proto)
	}
	ws := newWSSession(conn, cs.c.log, cs.o.MaxInFlight)
	defer ws.close()
	d := newDispatcher(hctx, h, ws, cs.o.ReleaseDelay)
	d.noAck = cs.o.NoAck
	readErr := make(chan error, 1)
	go func() { readErr <- ws.read(d) }()
	select {
	case <-ctx.Done():
		d.stop()
		ws.drain(5 * time.Second)
		ws.closeNormal()
		<-readErr
		return nil
	case err := <-readErr:
		// Wait for the running handlers before reconnecting: the events
		// they handle come again, and must not run twice at once.
		d.stop()
		return err
	}
}

// wsSession writes settle frames from one goroutine and tracks their
// answers.
type wsSession struct {
	conn *websocket.Conn
	log  *slog.Logger
	out  chan []byte
	done chan struct{} // closed by close: the writer stops
	wg   sync.WaitGroup

	mu      sync.Mutex
	nextID  int
	pending map[string]struct{}
	closed  bool
	idle    chan struct{} // closed and replaced when pending empties
}

func newWSSession(conn *websocket.Conn, log *slog.Logger, credit int) *wsSession {
	ws := &wsSession{conn: conn, log: log, out: make(chan []byte, 2*credit+16), done: make(chan struct{}),
		pending: map[string]struct{}{}, idle: make(chan struct{})}
	ws.wg.Add(1)
	go ws.write()
	return ws
}

func (ws *wsSession) write() {
	defer ws.wg.Done()
	failed := false
	for {
		select {
		case b := <-ws.out:
			if failed {
				continue // settle frames after a failure are lost; the events come again
			}
			_ = ws.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := ws.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				failed = true
				_ = ws.conn.Close() // the reader fails and the session ends
			}
		case <-ws.done:
			return
		}
	}
}

// settle queues a settle frame with a request id.
func (ws *wsSession) settle(op settleOp, ackID string, delay time.Duration, reason string) {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return
	}
	ws.nextID++
	id := strconv.Itoa(ws.nextID)
	ws.pending[id] = struct{}{}
	ws.mu.Unlock()
	f := map[string]any{"op": op, "ackIds": []string{ackID}, "id": id}
	if delay > 0 {
		f["delay"] = delay.String()
	}
	if reason != "" {
		f["reason"] = reason
	}
	b, _ := json.Marshal(f)
	select {
	case ws.out <- b:
	case <-ws.done:
	}
}

var controlPrefix = []byte(`{"op"`)

// read reads frames into d until the connection fails.
func (ws *wsSession) read(d *dispatcher) error {
	for {
		_, b, err := ws.conn.ReadMessage()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, controlPrefix) {
			ws.control(b)
			continue
		}
		e, err := parseEvent(b)
		if err != nil {
			ws.log.Warn("unreadable event frame", "err", err)
			continue
		}
		d.add(e)
	}
}

// control handles a result or error frame.
func (ws *wsSession) control(b []byte) {
	var f struct {
		Op      string          `json:"op"`
		ID      json.RawMessage `json:"id"`
		Message string          `json:"message"`
		Failed  []struct {
			AckID string `json:"ackId"`
			Error string `json:"error"`
		} `json:"failed"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return
	}
	for _, fl := range f.Failed {
		ws.log.Warn("settlement failed; the event comes again", "ackId", fl.AckID, "err", fl.Error)
	}
	if f.Op == "error" {
		ws.log.Warn("the server refused a frame", "message", f.Message)
	}
	var id string
	if json.Unmarshal(f.ID, &id) != nil {
		return
	}
	ws.mu.Lock()
	delete(ws.pending, id)
	if len(ws.pending) == 0 {
		close(ws.idle)
		ws.idle = make(chan struct{})
	}
	ws.mu.Unlock()
}

// drain waits until every queued frame is answered, at most d.
func (ws *wsSession) drain(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		ws.mu.Lock()
		n, idle := len(ws.pending), ws.idle
		ws.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-idle:
		case <-t.C:
			return
		}
	}
}

// closeNormal sends a close frame (1000) and closes.
func (ws *wsSession) closeNormal() {
	ws.stopWriter()
	_ = ws.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	_ = ws.conn.Close()
}

func (ws *wsSession) stopWriter() {
	ws.mu.Lock()
	if !ws.closed {
		ws.closed = true
		close(ws.done)
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}

func (ws *wsSession) close() {
	ws.stopWriter()
	_ = ws.conn.Close()
}

// dialWebSocket opens the subscription's WebSocket: over HTTP/2 (RFC
// 8441) when the server offers it, else with the HTTP/1.1 upgrade. It
// returns the protocol used.
func (c *Client) dialWebSocket(ctx context.Context, q url.Values, http1 bool) (*websocket.Conn, string, error) {
	if !http1 {
		conn, err := c.dialH2(ctx, q)
		var apiErr *Error
		if err == nil || errors.As(err, &apiErr) || ctx.Err() != nil {
			return conn, "HTTP/2.0", err
		}
		c.log.Debug("no WebSocket over HTTP/2; trying HTTP/1.1", "err", err)
	}
	tlsCfg := c.tls.Clone()
	tlsCfg.NextProtos = []string{"http/1.1"}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{subprotocol},
		HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	u := *c.base
	u.Scheme = "wss"
	if c.base.Scheme == "http" {
		u.Scheme = "ws"
	}
	u.Path += "/v1/subscription/ws"
	u.RawQuery = q.Encode()
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, "", responseError(resp, body)
		}
		return nil, "", fmt.Errorf("websocket: %w", err)
	}
	return conn, "HTTP/1.1", nil
}
