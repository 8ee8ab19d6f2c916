package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// WebSockets over HTTP/2 (RFC 8441, CONTRACT §5.1). A client sends CONNECT
// with :protocol websocket; the stream then carries the WebSocket frames.
// melody (with gorilla/websocket) stays the session layer: it upgrades
// HTTP/1.1 connections by hijacking them, so the HTTP/2 request is shown
// to it as an HTTP/1.1 upgrade whose hijacked "connection" is the stream
// (h2Stream). gorilla's 101 answer becomes the stream's 200, with the
// same subprotocol; what follows are frames, read and written as they are
// over HTTP/1.1.

// isH2WebSocket reports whether r is an extended CONNECT for a WebSocket.
func isH2WebSocket(r *http.Request) bool {
	return r.ProtoMajor >= 2 && r.Method == http.MethodConnect && r.Header.Get(":protocol") == "websocket"
}

// h2Upgrade returns the writer and request to hand melody for an extended
// CONNECT: a GET upgrade request (with a made-up key, which RFC 8441 does
// without) and a writer whose Hijack yields the stream; and the stream,
// which must be closed before the handler returns.
func h2Upgrade(w http.ResponseWriter, r *http.Request) (*batchHijacker, *h2Stream, *http.Request) {
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.Header.Del(":protocol")
	r2.Header.Set("Connection", "Upgrade")
	r2.Header.Set("Upgrade", "websocket")
	var key [16]byte
	_, _ = rand.Read(key[:])
	r2.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key[:]))
	stream := &h2Stream{w: w, rc: http.NewResponseController(w), body: r.Body, remote: h2Addr(r.RemoteAddr)}
	hijack := func() (net.Conn, *bufio.ReadWriter, error) { return stream, nil, nil }
	return &batchHijacker{ResponseWriter: w, hijack: hijack}, stream, r2
}

// h2Stream is an HTTP/2 stream as a net.Conn: reads come from the request
// body, writes go to the response. It must be closed before the handler
// returns: writes after that would reach a finished response.
type h2Stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	body   io.ReadCloser
	remote h2Addr

	mu        sync.Mutex
	answered  bool // the 200 is sent
	closed    bool
	closeOnce sync.Once
}

var errStreamClosed = errors.New("websocket stream closed")

func (s *h2Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errStreamClosed
	}
	frames := p
	if !s.answered {
		// gorilla's handshake answer, maybe with the first frames after
		// it (writes are batched): send its subprotocol with a 200.
		rd := bytes.NewReader(p)
		br := bufio.NewReader(rd)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			return 0, errors.New("websocket over HTTP/2: unexpected handshake answer")
		}
		if sp := resp.Header.Get("Sec-WebSocket-Protocol"); sp != "" {
			s.w.Header().Set("Sec-WebSocket-Protocol", sp)
		}
		s.w.WriteHeader(http.StatusOK)
		s.answered = true
		frames = p[len(p)-br.Buffered()-rd.Len():] // what the answer's head left
		if len(frames) == 0 {
			return len(p), s.rc.Flush()
		}
	}
	if _, err := s.w.Write(frames); err != nil {
		return 0, err
	}
	return len(p), s.rc.Flush()
}

func (s *h2Stream) Read(p []byte) (int, error) { return s.body.Read(p) }

// Close ends the stream's reads and writes; it waits for a write under way.
func (s *h2Stream) Close() error {
	s.closeOnce.Do(func() {
		_ = s.body.Close()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	})
	return nil
}

func (s *h2Stream) LocalAddr() net.Addr  { return h2Addr("") }
func (s *h2Stream) RemoteAddr() net.Addr { return s.remote }

func (s *h2Stream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}
func (s *h2Stream) SetReadDeadline(t time.Time) error  { _ = s.rc.SetReadDeadline(t); return nil }
func (s *h2Stream) SetWriteDeadline(t time.Time) error { _ = s.rc.SetWriteDeadline(t); return nil }

// h2Addr is the client's address of an HTTP/2 stream.
type h2Addr string

func (h2Addr) Network() string  { return "tcp" }
func (a h2Addr) String() string { return string(a) }
