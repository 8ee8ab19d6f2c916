package client

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// WebSocket over HTTP/2 (RFC 8441). Go's HTTP clients (net/http, and
// x/net/http2, which wraps it since Go 1.27) refuse the :protocol
// pseudo-header of an extended CONNECT, so the client speaks the little
// HTTP/2 it needs itself, with x/net's framer: one connection, one
// stream, flow control and pings. gorilla/websocket then frames that
// stream as it frames a TCP connection; it wants its HTTP/1.1 handshake
// first, which h2Stream answers itself with what the HTTP/2 response said.

// errNoH2 says the server does not offer WebSockets over HTTP/2.
var errNoH2 = errors.New("the server offers no WebSockets over HTTP/2")

const (
	h2StreamID   = 1
	h2RecvWindow = 1 << 20 // what the client lets the server send ahead
	h2Handshake  = 10 * time.Second
)

// dialH2 opens the subscription's WebSocket over HTTP/2. It returns
// errNoH2 (wrapped) when the server does not offer it, an *Error when the
// server refused the subscription.
func (c *Client) dialH2(ctx context.Context, q url.Values) (*websocket.Conn, error) {
	cfg := c.tls.Clone()
	cfg.NextProtos = []string{"h2"}
	if cfg.ServerName == "" {
		cfg.ServerName = c.base.Hostname()
	}
	host := c.base.Host
	if c.base.Port() == "" {
		host = net.JoinHostPort(c.base.Hostname(), "443")
	}
	dctx, cancel := context.WithTimeout(ctx, h2Handshake)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("websocket over HTTP/2: %w", err)
	}
	tc := nc.(*tls.Conn)
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, errNoH2
	}
	stop := context.AfterFunc(dctx, func() { tc.SetDeadline(time.Now()) })
	s, err := openH2Stream(tc, c.base.Host, c.url("/v1/subscription/ws", q))
	if !stop() || err != nil {
		tc.Close()
		if err == nil {
			err = dctx.Err()
		}
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	s.start()
	u := *c.base
	u.Scheme = "ws" // the stream is TLS already: gorilla must not add TLS
	u.Path += "/v1/subscription/ws"
	conn, _, err := websocket.NewClient(s, &u, http.Header{"Sec-WebSocket-Protocol": {subprotocol}}, 0, 0)
	if err != nil {
		s.Close()
		return nil, err
	}
	return conn, nil
}

// h2Stream is the one stream of an HTTP/2 connection as a net.Conn.
type h2Stream struct {
	tc    *tls.Conn
	fr    *http2.Framer
	proto string // the subprotocol the server chose

	wmu sync.Mutex // serialises frame writes

	mu         sync.Mutex
	cond       *sync.Cond
	sendWindow int64 // min of the stream's and the connection's
	connWindow int64
	maxFrame   int
	closed     bool
	err        error

	in       *io.PipeReader
	inW      *io.PipeWriter
	readerWG sync.WaitGroup

	hmu       sync.Mutex
	handshook bool
	request   bytes.Buffer
	reply     bytes.Buffer
	closeOnce sync.Once
}

// openH2Stream sends the preface and the extended CONNECT and reads the
// answer's headers.
func openH2Stream(tc *tls.Conn, authority, target string) (*h2Stream, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	s := &h2Stream{tc: tc, fr: http2.NewFramer(tc, tc), sendWindow: 65535, connWindow: 65535, maxFrame: 16384}
	s.cond = sync.NewCond(&s.mu)
	s.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		return nil, err
	}
	if err := s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2RecvWindow},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0}); err != nil {
		return nil, err
	}
	if err := s.fr.WriteWindowUpdate(0, h2RecvWindow); err != nil {
		return nil, err
	}
	// The server's first frame is its SETTINGS.
	f, err := s.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return nil, errors.New("websocket over HTTP/2: the server did not start with SETTINGS")
	}
	xconnect := false
	_ = sf.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingEnableConnectProtocol:
			xconnect = st.Val == 1
		case http2.SettingInitialWindowSize:
			s.sendWindow = int64(st.Val)
		case http2.SettingMaxFrameSize:
			s.maxFrame = int(st.Val)
		}
		return nil
	})
	if err := s.fr.WriteSettingsAck(); err != nil {
		return nil, err
	}
	if !xconnect {
		return nil, errNoH2
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, hf := range [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
		{":path", u.RequestURI()}, {":authority", authority}, {"sec-websocket-version", "13"},
		{"sec-websocket-protocol", subprotocol}} {
		_ = enc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]})
	}
	if err := s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: h2StreamID, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		return nil, err
	}
	// Read until the answer's headers; the body of a refusal follows.
	for {
		f, err := s.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != h2StreamID {
				continue
			}
			status, _ := strconv.Atoi(f.PseudoValue("status"))
			h := http.Header{}
			for _, hf := range f.RegularFields() {
				h.Add(hf.Name, hf.Value)
			}
			if status == http.StatusOK {
				s.proto = h.Get("Sec-WebSocket-Protocol")
				return s, nil
			}
			body := s.readBody(f.StreamEnded())
			return nil, responseError(&http.Response{StatusCode: status, Header: h}, body)
		case *http2.SettingsFrame:
			s.applySettings(f)
		case *http2.WindowUpdateFrame:
			s.addWindow(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = s.fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			return nil, fmt.Errorf("websocket over HTTP/2: stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return nil, fmt.Errorf("websocket over HTTP/2: goaway: %v", f.ErrCode)
		}
	}
}

// readBody reads the DATA of a refusal (at most 64 KiB).
func (s *h2Stream) readBody(ended bool) []byte {
	var b []byte
	for !ended && len(b) < 64<<10 {
		f, err := s.fr.ReadFrame()
		if err != nil {
			break
		}
		if df, ok := f.(*http2.DataFrame); ok && df.StreamID == h2StreamID {
			b = append(b, df.Data()...)
			ended = df.StreamEnded()
		}
	}
	return b
}

func (s *h2Stream) applySettings(f *http2.SettingsFrame) {
	if f.IsAck() {
		return
	}
	s.mu.Lock()
	_ = f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingInitialWindowSize:
			s.sendWindow = int64(st.Val) // no data was sent before the answer
		case http2.SettingMaxFrameSize:
			s.maxFrame = int(st.Val)
		}
		return nil
	})
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wmu.Lock()
	_ = s.fr.WriteSettingsAck()
	s.wmu.Unlock()
}

func (s *h2Stream) addWindow(f *http2.WindowUpdateFrame) {
	s.mu.Lock()
	if f.StreamID == 0 {
		s.connWindow += int64(f.Increment)
	} else if f.StreamID == h2StreamID {
		s.sendWindow += int64(f.Increment)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// start reads frames in the background until the connection ends; the
// reader belongs to the stream and ends with Close.
func (s *h2Stream) start() {
	s.in, s.inW = io.Pipe()
	s.readerWG.Add(1)
	go func() {
		defer s.readerWG.Done()
		err := s.readLoop()
		s.mu.Lock()
		s.closed, s.err = true, err
		s.cond.Broadcast()
		s.mu.Unlock()
		s.inW.CloseWithError(err)
	}()
}

func (s *h2Stream) readLoop() error {
	for {
		f, err := s.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if f.StreamID != h2StreamID {
				continue
			}
			if n := len(f.Data()); n > 0 {
				if _, err := s.inW.Write(f.Data()); err != nil {
					return err
				}
				s.wmu.Lock()
				_ = s.fr.WriteWindowUpdate(0, uint32(f.Length))
				_ = s.fr.WriteWindowUpdate(h2StreamID, uint32(f.Length))
				s.wmu.Unlock()
			}
			if f.StreamEnded() {
				return io.EOF
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				return io.EOF
			}
		case *http2.SettingsFrame:
			s.applySettings(f)
		case *http2.WindowUpdateFrame:
			s.addWindow(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				s.wmu.Lock()
				_ = s.fr.WritePing(true, f.Data)
				s.wmu.Unlock()
			}
		case *http2.RSTStreamFrame:
			return fmt.Errorf("websocket over HTTP/2: stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return fmt.Errorf("websocket over HTTP/2: the server goes away: %v", f.ErrCode)
		}
	}
}

// writeData sends p as DATA frames within the flow-control windows.
func (s *h2Stream) writeData(p []byte) (int, error) {
	sent := 0
	for len(p) > 0 {
		s.mu.Lock()
		for !s.closed && (s.sendWindow <= 0 || s.connWindow <= 0) {
			s.cond.Wait()
		}
		if s.closed {
			err := s.err
			s.mu.Unlock()
			if err == nil || errors.Is(err, io.EOF) {
				err = net.ErrClosed
			}
			return sent, err
		}
		n := int64(len(p))
		n = min(n, s.sendWindow, s.connWindow, int64(s.maxFrame))
		s.sendWindow -= n
		s.connWindow -= n
		s.mu.Unlock()
		s.wmu.Lock()
		err := s.fr.WriteData(h2StreamID, false, p[:n])
		s.wmu.Unlock()
		if err != nil {
			return sent, err
		}
		sent += int(n)
		p = p[n:]
	}
	return sent, nil
}

func (s *h2Stream) Write(p []byte) (int, error) {
	s.hmu.Lock()
	if !s.handshook {
		defer s.hmu.Unlock()
		s.request.Write(p)
		head := s.request.Bytes()
		i := bytes.Index(head, []byte("\r\n\r\n"))
		if i < 0 {
			return len(p), nil
		}
		key := ""
		for _, line := range bytes.Split(head[:i], []byte("\r\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && http.CanonicalHeaderKey(string(bytes.TrimSpace(k))) == "Sec-Websocket-Key" {
				key = string(bytes.TrimSpace(v))
			}
		}
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		s.reply.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
		s.reply.WriteString(base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
		if s.proto != "" {
			s.reply.WriteString("Sec-WebSocket-Protocol: " + s.proto + "\r\n")
		}
		s.reply.WriteString("\r\n")
		s.handshook = true
		return len(p), nil
	}
	s.hmu.Unlock()
	return s.writeData(p)
}

func (s *h2Stream) Read(p []byte) (int, error) {
	s.hmu.Lock()
	if s.reply.Len() > 0 {
		defer s.hmu.Unlock()
		return s.reply.Read(p)
	}
	s.hmu.Unlock()
	return s.in.Read(p)
}

// Close ends the stream and the connection and waits for the reader.
func (s *h2Stream) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		_ = s.fr.WriteRSTStream(h2StreamID, http2.ErrCodeCancel)
		s.wmu.Unlock()
		_ = s.tc.Close()
		if s.in != nil {
			_ = s.in.Close()
		}
		s.readerWG.Wait()
	})
	return nil
}

func (s *h2Stream) LocalAddr() net.Addr                { return s.tc.LocalAddr() }
func (s *h2Stream) RemoteAddr() net.Addr               { return s.tc.RemoteAddr() }
func (s *h2Stream) SetDeadline(t time.Time) error      { return nil }
func (s *h2Stream) SetReadDeadline(t time.Time) error  { return nil }
func (s *h2Stream) SetWriteDeadline(t time.Time) error { return nil }
