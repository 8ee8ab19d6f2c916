package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn records each write that reaches the connection under a
// batchConn, and says when one begins.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	writes  []string
	writing chan struct{} // a write began; capacity 1
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, string(p))
	c.mu.Unlock()
	select {
	case c.writing <- struct{}{}:
	default:
	}
	return c.Conn.Write(p)
}

func (c *recordingConn) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes...)
}

// batchPipe is a batchConn over one end of a synchronous pipe (a write
// returns once the other end has read it all), with that other end.
func batchPipe(t *testing.T) (*batchConn, *recordingConn, net.Conn) {
	t.Helper()
	a, peer := net.Pipe()
	rec := &recordingConn{Conn: a, writing: make(chan struct{}, 1)}
	b := newBatchConn(rec)
	t.Cleanup(func() {
		_ = peer.Close()
		_ = b.Close()
	})
	return b, rec, peer
}

func mustWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: %d, %v", s, n, err)
	}
}

// Frames written while a write is under way leave together, in order, in
// the next write; a frame alone leaves at once.
func TestBatchConnGathersWhileWriting(t *testing.T) {
	b, rec, peer := batchPipe(t)
	mustWrite(t, b, "a")
	<-rec.writing // "a" is being written: the peer has not read it
	for _, f := range []string{"b", "cc", "ddd"} {
		mustWrite(t, b, f)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "abccddd" {
		t.Fatalf("read %q, %v", got, err)
	}
	if w := rec.recorded(); len(w) != 2 || w[0] != "a" || w[1] != "bccddd" {
		t.Fatalf("writes %q, want [a bccddd]", w)
	}
	mustWrite(t, b, "e")
	one := make([]byte, 1)
	if _, err := io.ReadFull(peer, one); err != nil || one[0] != 'e' {
		t.Fatalf("read %q, %v", one, err)
	}
}

// Close writes what is gathered (the close frame last), then closes.
func TestBatchConnCloseWritesWhatIsGathered(t *testing.T) {
	b, rec, peer := batchPipe(t)
	mustWrite(t, b, "first")
	<-rec.writing
	mustWrite(t, b, "-second")
	mustWrite(t, b, "-close")
	read := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(peer)
		read <- all
	}()
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := <-read; string(got) != "first-second-close" {
		t.Fatalf("peer read %q before the end", got)
	}
	if _, err := b.Write([]byte("late")); !errors.Is(err, errBatchClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A failed write fails every write after it, and unblocks one waiting for
// room: a peer that stops reading is found out by the write deadline, as
// without batching.
func TestBatchConnWriteErrors(t *testing.T) {
	t.Run("peer gone", func(t *testing.T) {
		b, _, peer := batchPipe(t)
		_ = peer.Close()
		mustWrite(t, b, "x") // gathered; its write fails
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := b.Write([]byte("y"))
			if errors.Is(err, io.ErrClosedPipe) {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("write after the peer closed: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("peer not reading", func(t *testing.T) {
		b, rec, _ := batchPipe(t)
		mustWrite(t, b, "first")
		<-rec.writing
		big := bytes.Repeat([]byte("f"), batchMax)
		mustWrite(t, b, string(big)) // fills the buffer
		if err := b.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := b.Write([]byte("more")) // waits for room until the deadline fails the write
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write into a full buffer: %v", err)
		}
		if waited := time.Since(start); waited < 100*time.Millisecond {
			t.Fatalf("a write into a full buffer returned after %s, not when the deadline failed the write under way", waited)
		}
	})
}

// Close does not wait past its bound for a peer that reads nothing.
func TestBatchConnCloseGivesUp(t *testing.T) {
	b, rec, _ := batchPipe(t)
	b.closeWait = 100 * time.Millisecond
	mustWrite(t, b, "never read")
	<-rec.writing
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close waited for a peer that reads nothing")
	}
}

// Over HTTP/2, the first write to the stream may hold gorilla's handshake
// answer and the first frames together (writes are batched): the answer
// becomes the stream's 200 with its subprotocol, the frames its body.
func TestH2StreamAnswerWithFrames(t *testing.T) {
	const answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: cloudevents.json\r\n\r\n"
	for _, frames := range []string{"", "\x81\x02hi", strings.Repeat("f", 10000)} {
		rec := httptest.NewRecorder()
		s := &h2Stream{w: rec, rc: http.NewResponseController(rec), body: io.NopCloser(strings.NewReader(""))}
		if n, err := s.Write([]byte(answer + frames)); err != nil || n != len(answer)+len(frames) {
			t.Fatalf("write of the answer and %d bytes of frames: %d, %v", len(frames), n, err)
		}
		mustWrite(t, s, "next")
		if rec.Code != http.StatusOK || rec.Header().Get("Sec-WebSocket-Protocol") != "cloudevents.json" || rec.Body.String() != frames+"next" {
			t.Fatalf("with %d bytes of frames: status %d, subprotocol %q, body of %d bytes", len(frames), rec.Code, rec.Header().Get("Sec-WebSocket-Protocol"), rec.Body.Len())
		}
	}
	rec := httptest.NewRecorder()
	s := &h2Stream{w: rec, rc: http.NewResponseController(rec), body: io.NopCloser(strings.NewReader(""))}
	if _, err := s.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")); err == nil {
		t.Fatal("a first write that is not a 101 answer was taken")
	}
}
