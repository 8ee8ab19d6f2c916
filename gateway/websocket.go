package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/olahol/melody"
)

// WebSocket consumers (CONTRACT §5.1): GET /v1/subscription/ws. One
// subscription per connection; a goroutine per session takes deliveries
// within the connection's credit (maxInFlight) and writes one event per text
// frame; client frames settle them.
//
// Origin policy: requests without an Origin header (programs, not
// browsers) are accepted; a browser's Origin must name the host the request
// was sent to, so that no other web site can open a consumer's connection
// with the user's client certificate.

const (
	wsSubprotocol = "cloudevents.json"
	// wsMaxMessage bounds a client frame: room for a settle frame of the
	// most ack ids a frame may name (maxMaxInFlight), at about 1 KiB each.
	wsMaxMessage = 1 << 20
	// wsControlBuffer is the room in a session's send buffer for result
	// and error frames beside the at most maxMaxInFlight events.
	wsControlBuffer = 64
	// wsSettling bounds the settle frames of a session under way at once
	// (each waits for its commit round, ~50 ms under load): a client that
	// acknowledges each event in a frame of its own gets wsSettling frames
	// a round (256 capped such a client near 5,000 events/s; this, about
	// 20,000: BenchmarkWebSocketFrameAcks).
	wsSettling    = maxMaxInFlight
	keyWSConn     = "mevents.ws"
	settleTimeout = 10 * time.Second
)

// wsConn is the state of one WebSocket session.
type wsConn struct {
	client string
	types  []string
	sub    *broker.Subscription
	// control holds a token for each control frame (result, error) queued
	// and not yet written: a client that floods frames waits for room
	// instead of overflowing the send buffer.
	control chan struct{}
	// settling holds a token for each settle frame under way.
	settling chan struct{}
	// handed maps the ack ids of unsettled deliveries to their types, for
	// the metrics of settlements; at most maxInFlight entries.
	mu     sync.Mutex
	handed map[string]string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newMelody configures the WebSocket hub. melody drops a frame when a
// session's send buffer is full and reports it only to HandleError; the
// buffer holds the largest credit plus control frames, and a dropped frame
// closes the session.
func (s *Server) newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = wsMaxMessage
	m.Config.MessageBufferSize = maxMaxInFlight + wsControlBuffer
	m.Upgrader.Subprotocols = []string{wsSubprotocol}
	m.Upgrader.CheckOrigin = sameOrigin
	m.Upgrader.HandshakeTimeout = 10 * time.Second
	m.HandleConnect(s.wsConnect)
	m.HandleMessage(s.wsMessage)
	m.HandleSentMessage(func(ss *melody.Session, msg []byte) {
		if bytes.HasPrefix(msg, controlPrefix) {
			select {
			case <-connOf(ss).control:
			default:
			}
		}
	})
	m.HandleMessageBinary(func(ss *melody.Session, _ []byte) {
		s.wsSend(ss, wsError{Op: "error", Message: "send text frames of JSON"})
	})
	m.HandleError(func(ss *melody.Session, err error) {
		switch {
		case errors.Is(err, melody.ErrMessageBufferFull):
			// A frame was dropped: the session cannot go on. A close
			// frame would be dropped too, so the connection is cut
			// (once the frames before the dropped one are written, or
			// the write deadline or batchCloseWait has passed).
			s.log.Warn("websocket send buffer full; closing the session", "remote", ss.RemoteAddr().String())
			_ = ss.WebsocketConnection().Close()
		case errors.Is(err, melody.ErrSessionClosed), errors.Is(err, melody.ErrWriteClosed),
			websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
		default:
			s.log.Debug("websocket", "err", err)
		}
	})
	return m
}

// sameOrigin is the origin policy (see the file comment).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// getWebSocket handles GET /v1/subscription/ws?group=&types=&maxInFlight=&start=
// (HTTP/1.1 upgrade), and CONNECT of the same with :protocol websocket
// (HTTP/2, RFC 8441: see websocket_h2.go).
func (s *Server) getWebSocket(c *gin.Context) {
	o, err := subscribeOptions(c, "maxInFlight", broker.DefaultMaxInFlight)
	if err != nil {
		s.fail(c, err)
		return
	}
	h2 := isH2WebSocket(c.Request)
	if !h2 && !websocket.IsWebSocketUpgrade(c.Request) {
		s.fail(c, mevents.Errorf(mevents.CodeInvalid, "this endpoint expects a WebSocket: an HTTP/1.1 upgrade or an HTTP/2 CONNECT with :protocol websocket (subprotocol %s)", wsSubprotocol))
		return
	}
	if !sameOrigin(c.Request) {
		s.fail(c, mevents.Errorf(mevents.CodeForbidden, "origin %q may not open a subscription", c.GetHeader("Origin")))
		return
	}
	if !s.begin() {
		s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "the service is shutting down"))
		return
	}
	defer s.consume.active.Done()
	sub, err := s.broker.Subscribe(c.Request.Context(), o)
	if err != nil {
		s.fail(c, err)
		return
	}
	conn := &wsConn{client: o.Client.ID, types: o.Types, sub: sub, handed: make(map[string]string),
		control: make(chan struct{}, wsControlBuffer), settling: make(chan struct{}, wsSettling)}
	conn.ctx, conn.cancel = context.WithCancel(s.consume.ctx)
	s.Metrics().SessionOpened(conn.client)
	defer s.Metrics().SessionClosed(conn.client)
	w, r := &batchHijacker{ResponseWriter: c.Writer, hijack: c.Writer.Hijack}, c.Request
	if h2 {
		var stream *h2Stream
		w, stream, r = h2Upgrade(c.Writer, c.Request)
		defer stream.Close() // before the handler returns (see h2Stream)
	}
	defer w.close()
	err = s.consume.ws.HandleRequestWithKeys(w, r, map[string]any{keyWSConn: conn})
	// The session has ended: stop the pump, then release what is unsettled.
	conn.cancel()
	conn.wg.Wait()
	sub.Close()
	if errors.Is(err, melody.ErrClosed) {
		s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "the service is shutting down"))
	} else if err != nil {
		c.Set(keyErr, err) // the upgrader has answered
	}
}

func connOf(ss *melody.Session) *wsConn { return ss.MustGet(keyWSConn).(*wsConn) }

// wsConnect starts the session's pump: deliveries come only within the
// credit, so the send buffer never fills with events. A guard closes the
// session when maintenance begins or the client loses its rights.
func (s *Server) wsConnect(ss *melody.Session) {
	conn := connOf(ss)
	m := s.Metrics()
	group := conn.sub.Group()
	conn.wg.Add(2)
	go func() {
		defer conn.wg.Done()
		for {
			d, err := conn.sub.Next(conn.ctx)
			if err != nil {
				return
			}
			conn.mu.Lock()
			if len(conn.handed) >= 2*maxMaxInFlight {
				// Deliveries that timed out were never settled here:
				// forget them rather than grow.
				clear(conn.handed)
			}
			conn.handed[d.AckID] = d.Type
			conn.mu.Unlock()
			if ss.Write(d.Event) != nil {
				return // the session is closed
			}
			m.Delivered(conn.client, group, d.Type, 1)
			if d.Count > 1 {
				m.Redelivered(conn.client, group, d.Type, 1)
			}
		}
	}()
	go func() {
		defer conn.wg.Done()
		s.wsGuard(ss, conn)
	}()
}

// WebSocket close codes (RFC 6455, IANA registry).
const (
	closeGoingAway  = 1001 // the server is shutting down
	closePolicy     = 1008 // the client may no longer consume
	closeTryLater   = 1013 // maintenance: try again later
	maxCloseReason  = 123  // bytes a close frame's reason may hold
	reasonTruncated = "…"
)

// wsGuard closes the session with 1013 when maintenance mode begins, with
// 1008 when a registry reload leaves the client unregistered, disabled or
// without one of the session's types, and with 1001 when the server
// closes; it returns when the session ends.
func (s *Server) wsGuard(ss *melody.Session, conn *wsConn) {
	for {
		maint, maintChanged := s.MaintenanceState()
		if maint.Enabled {
			wsClose(ss, closeTryLater, "maintenance: "+maint.Message)
			return
		}
		cat, catChanged := s.catalogState()
		if reason := lostRights(cat, conn.client, conn.types); reason != "" {
			wsClose(ss, closePolicy, reason)
			return
		}
		select {
		case <-conn.ctx.Done():
			if s.consume.ctx.Err() != nil {
				// The server is closing. melody's Close misses a session
				// that registers while it runs, so close it here too.
				wsClose(ss, closeGoingAway, "the server is shutting down")
			}
			return
		case <-maintChanged:
		case <-catChanged:
		}
	}
}

// lostRights says why client may no longer consume types, or "".
func lostRights(cat *Catalog, client string, types []string) string {
	if cat == nil {
		return ""
	}
	cl := cat.reg.Client(client)
	switch {
	case cl == nil:
		return "client " + client + " is no longer registered"
	case cl.Disabled:
		return "client " + client + " is disabled"
	}
	for _, t := range types {
		if !cl.MayConsume(t) {
			return "event type " + t + " is no longer routed to client " + client
		}
	}
	return ""
}

// wsClose sends a close frame with code and reason, then closes.
func wsClose(ss *melody.Session, code int, reason string) {
	if len(reason) > maxCloseReason {
		cut := maxCloseReason - len(reasonTruncated)
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + reasonTruncated
	}
	_ = ss.CloseWithMsg(websocket.FormatCloseMessage(code, reason))
}

// wsFrame is a client frame.
type wsFrame struct {
	Op string          `json:"op"`
	ID json.RawMessage `json:"id,omitempty"`
	settleRequest
}

type wsResult struct {
	Op        string                 `json:"op"`
	ID        json.RawMessage        `json:"id"`
	Succeeded []string               `json:"succeeded"`
	Failed    []broker.SettleFailure `json:"failed"`
}

type wsError struct {
	Op      string          `json:"op"`
	ID      json.RawMessage `json:"id,omitempty"`
	Message string          `json:"message"`
}

// wsMessage settles the deliveries a client frame names.
func (s *Server) wsMessage(ss *melody.Session, msg []byte) {
	conn := connOf(ss)
	st, id, bad := decodeFrame(msg)
	if bad != nil {
		s.wsSend(ss, bad)
		return
	}
	// Frames apply in the order they come (so do the settlements of a
	// key); their writes are waited for concurrently, at most wsSettling
	// frames at once; beyond that the connection's reads wait. A
	// settlement outlives its connection (bounded by settleTimeout): an
	// ack sent just before a close is not lost.
	select {
	case conn.settling <- struct{}{}:
	case <-conn.ctx.Done():
		return
	}
	wait := conn.sub.SettleAsync(st)
	conn.wg.Add(1)
	go func() {
		defer func() { <-conn.settling; conn.wg.Done() }()
		s.wsSettle(ss, conn, st.Op, wait, id)
	}()
}

// wsSettle waits for what one frame settles and answers it when it has an id.
func (s *Server) wsSettle(ss *melody.Session, conn *wsConn, op broker.SettleOp, wait func(context.Context) broker.SettleResult, id json.RawMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(conn.ctx), settleTimeout)
	defer cancel()
	res := wait(ctx)
	conn.mu.Lock()
	for _, id := range res.Succeeded {
		if typ, ok := conn.handed[id]; ok {
			delete(conn.handed, id)
			switch op {
			case broker.SettleAck:
				s.Metrics().Acked(conn.client, conn.sub.Group(), typ, 1)
			case broker.SettleDead:
				s.Metrics().Dead(conn.client, conn.sub.Group(), typ, "consumer")
			}
		}
	}
	conn.mu.Unlock()
	if len(id) > 0 {
		s.wsSend(ss, wsResult{Op: "result", ID: id, Succeeded: res.Succeeded, Failed: res.Failed})
	}
}

// decodeFrame reads a client frame: the settlement it asks for and its
// request id, or the error frame that answers it.
func decodeFrame(msg []byte) (broker.Settlement, json.RawMessage, *wsError) {
	var f wsFrame
	if err := json.Unmarshal(msg, &f); err != nil {
		return broker.Settlement{}, nil, &wsError{Op: "error", Message: "malformed frame: " + err.Error()}
	}
	if len(f.ID) > 0 && (f.ID[0] == '{' || f.ID[0] == '[') {
		return broker.Settlement{}, nil, &wsError{Op: "error", Message: "id must be a string or a number"}
	}
	op := broker.SettleOp(f.Op)
	if op != broker.SettleAck && op != broker.SettleRelease && op != broker.SettleDead {
		return broker.Settlement{}, nil, &wsError{Op: "error", ID: f.ID, Message: `op must be "ack", "release" or "dead"`}
	}
	st, err := f.settlement(op)
	if err != nil {
		return broker.Settlement{}, nil, &wsError{Op: "error", ID: f.ID, Message: mevents.ErrorMessage(err)}
	}
	return st, f.ID, nil
}

// controlPrefix starts every control frame (events start with "ackid").
var controlPrefix = []byte(`{"op"`)

// wsSend queues a control frame. It runs on the session's read loop: when
// wsControlBuffer control frames wait to be written it blocks, so that a
// client flooding frames is slowed down by TCP instead of overflowing the
// send buffer; a client that reads nothing for settleTimeout is cut off.
func (s *Server) wsSend(ss *melody.Session, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("websocket frame", "err", err)
		return
	}
	conn := connOf(ss)
	t := time.NewTimer(settleTimeout)
	defer t.Stop()
	select {
	case conn.control <- struct{}{}:
	case <-conn.ctx.Done():
		return
	case <-t.C:
		s.log.Warn("websocket client does not read its control frames; closing the session", "client", conn.client)
		_ = ss.WebsocketConnection().Close()
		return
	}
	if ss.Write(b) != nil {
		<-conn.control
	}
}
