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
	ws := newWSSession(conn, cs.c.log)
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
// answers. The service answers a frame once what it settles is stored (a
// commit round, up to ~50 ms under load) and reads a bounded number of a
// connection's frames under way at once (1,000; 256 before 5 December
// 2026): one frame per event costs a frame and a place in that bound
// each, and capped a busy connection at ~5,000 events/s on the services
// of that bound. So settlements queued while a frame is
// written, or while maxUnanswered frames wait for their answers, go out
// together: consecutive ones of the same kind (op, delay, reason) share a
// frame of up to maxAckIDs ack ids. A consumer that settles now and then
// sends each at once; no timer is involved.
type wsSession struct {
	conn *websocket.Conn
	log  *slog.Logger
	kick chan struct{} // settlements are queued; capacity 1
	done chan struct{} // closed by close: the writer stops
	wg   sync.WaitGroup

	mu      sync.Mutex
	queued  []settlement // not yet written, in the order settled
	nextID  int
	pending map[string]struct{} // ids of frames written and not answered
	closed  bool
	idle    chan struct{} // closed and replaced when nothing is queued or pending
}

// maxUnanswered is the most settle frames written and not answered: half
// of what a service of the smallest bound (256) reads of a connection at
// once, so that the connection's reads never wait on it.
const maxUnanswered = 128

func newWSSession(conn *websocket.Conn, log *slog.Logger) *wsSession {
	ws := &wsSession{conn: conn, log: log, kick: make(chan struct{}, 1), done: make(chan struct{}),
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
		case <-ws.kick:
		case <-ws.done:
			return
		}
		for _, b := range ws.frames() {
			if failed {
				continue // settle frames after a failure are lost; the events come again
			}
			_ = ws.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := ws.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				failed = true
				_ = ws.conn.Close() // the reader fails and the session ends
			}
		}
	}
}

// frames takes the queued settlements as frames, each with a request id
// that is pending until answered, while fewer than maxUnanswered are; the
// rest stay queued until an answer comes (control kicks the writer).
func (ws *wsSession) frames() [][]byte {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var out [][]byte
	q := ws.queued
	for len(q) > 0 && len(ws.pending) < maxUnanswered {
		n := runLen(q)
		ws.nextID++
		id := strconv.Itoa(ws.nextID)
		ws.pending[id] = struct{}{}
		f := request(q[:n])
		f["op"], f["id"] = q[0].op, id
		b, _ := json.Marshal(f)
		out = append(out, b)
		q = q[n:]
	}
	if ws.queued = q; len(q) == 0 {
		ws.queued = nil // the next settlements start a new array
	}
	return out
}

// settle queues a settlement for the writer.
func (ws *wsSession) settle(op settleOp, ackID string, delay time.Duration, reason string) {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return
	}
	ws.queued = append(ws.queued, settlement{op: op, ackID: ackID, delay: delay, reason: reason})
	ws.mu.Unlock()
	select {
	case ws.kick <- struct{}{}:
	default: // the writer is already woken
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
	if len(ws.pending) == 0 && len(ws.queued) == 0 {
		close(ws.idle)
		ws.idle = make(chan struct{})
	}
	more := len(ws.queued) > 0
	ws.mu.Unlock()
	if more {
		select {
		case ws.kick <- struct{}{}: // the writer may send what waited
		default:
		}
	}
}

// drain waits until every queued settlement is written and answered, at
// most d.
func (ws *wsSession) drain(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		ws.mu.Lock()
		n, idle := len(ws.pending)+len(ws.queued), ws.idle
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
