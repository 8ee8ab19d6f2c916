package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// A WebSocket's frames leave in batches. melody writes each frame with a
// write of its own on the connection, which over TLS is a record and a
// system call per event: under load, a third of what a delivered event
// costs the node beyond producing it. batchConn sits under gorilla: a
// write appends the frame to a buffer and returns; the connection's writer
// sends what has gathered in one write, and what is written meanwhile
// goes in its next one. With one frame at a time nothing waits (the writer
// sends it at once); under load frames leave together, a frame still
// carries one event (CONTRACT §5.1), and no timer is involved.

const (
	// batchMax is how much may wait to be written: a write beyond it
	// blocks until the writer has taken the buffer (or failed), as a
	// write on a slow connection would.
	batchMax = 1 << 20
	// batchKeep is the largest buffer kept between batches; a larger one
	// (after a burst) is left to the collector, so an idle connection
	// holds little.
	batchKeep = 32 << 10
	// batchCloseWait bounds how long Close waits for what is gathered
	// (the close frame last) to be written before it closes anyway.
	batchCloseWait = 5 * time.Second
)

var errBatchClosed = errors.New("websocket connection closed")

// batchConn is a net.Conn whose writes are gathered and sent by a writer
// goroutine that Close stops. Reads, deadlines and addresses are the
// underlying connection's: gorilla sets the write deadline before each
// frame, so a batch is written within the deadline of its last frame.
// The first error of a write is returned by every write after it.
type batchConn struct {
	net.Conn
	wake chan struct{} // a write is waiting; capacity 1
	stop chan struct{} // closed by Close once the writer may end
	done chan struct{} // closed when the writer has ended

	closeWait time.Duration // batchCloseWait

	mu      sync.Mutex
	changed *sync.Cond // the buffer was taken, an error, or closing
	buf     []byte     // what waits to be written
	busy    bool       // the writer is writing a batch
	err     error
	closing bool // no more writes are taken
	gaveUp  bool // Close stopped waiting for the buffer

	closeOnce sync.Once
	closeErr  error
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), closeWait: batchCloseWait}
	b.changed = sync.NewCond(&b.mu)
	go b.writer()
	return b
}

// Write gathers p for the writer. It blocks while batchMax is waiting.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) >= batchMax && b.err == nil && !b.closing {
		b.changed.Wait()
	}
	switch {
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	case b.closing:
		b.mu.Unlock()
		return 0, errBatchClosed
	}
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // the writer is already woken
	}
	return len(p), nil
}

// writer sends what gathers until Close stops it.
func (b *batchConn) writer() {
	defer close(b.done)
	var spare []byte
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		}
		for {
			b.mu.Lock()
			out := b.buf
			if len(out) == 0 || b.err != nil {
				b.mu.Unlock()
				break
			}
			b.buf, b.busy = spare, true
			b.mu.Unlock()
			_, err := b.Conn.Write(out)
			spare = nil
			if cap(out) <= batchKeep {
				spare = out[:0]
			}
			b.mu.Lock()
			b.busy = false
			if err != nil && b.err == nil {
				b.err = err
			}
			b.changed.Broadcast()
			b.mu.Unlock()
		}
	}
}

// Close takes no more writes, waits (at most batchCloseWait, and no
// longer than the write deadline lets a write block) for what is gathered
// to be written, closes the connection and stops the writer.
func (b *batchConn) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.changed.Broadcast()
		t := time.AfterFunc(b.closeWait, func() {
			b.mu.Lock()
			b.gaveUp = true
			b.changed.Broadcast()
			b.mu.Unlock()
		})
		for (len(b.buf) > 0 || b.busy) && b.err == nil && !b.gaveUp {
			b.changed.Wait()
		}
		b.mu.Unlock()
		t.Stop()
		b.closeErr = b.Conn.Close() // ends a write under way
		close(b.stop)
		<-b.done
	})
	return b.closeErr
}

// batchHijacker is the response writer melody upgrades: its Hijack
// yields the connection (HTTP/1.1) or the stream (HTTP/2, h2Upgrade) as a
// batchConn, which the handler closes after the session whether or not
// melody did.
type batchHijacker struct {
	http.ResponseWriter
	hijack func() (net.Conn, *bufio.ReadWriter, error)
	conn   *batchConn
}

func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := h.hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = newBatchConn(c)
	if brw == nil {
		brw = bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn))
	}
	return h.conn, brw, nil
}

// close closes the connection if it was hijacked.
func (h *batchHijacker) close() {
	if h.conn != nil {
		_ = h.conn.Close()
	}
}
