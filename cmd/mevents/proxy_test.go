package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// linkProxy carries one node's routes to one peer over loopback, so that a
// test can partition the cluster without root: cut closes its connections
// and refuses new ones; drop loses the bytes of one direction while the
// connections stay open (a one-way partition). Close stops it and waits
// for its goroutines.
type linkProxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	// dropOut loses bytes towards target, dropIn bytes from it.
	dropOut, dropIn atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept()
	}()
	t.Cleanup(p.Close)
	return p
}

func (p *linkProxy) Addr() string { return p.ln.Addr().String() }

func (p *linkProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			c.Close()
			continue
		}
		d, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, d) {
			return
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(d, c, &p.dropOut) }()
		go func() { defer p.wg.Done(); p.pipe(c, d, &p.dropIn) }()
	}
}

// track registers a connection pair; false when the proxy is closed.
func (p *linkProxy) track(c, d net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		d.Close()
		return false
	}
	p.conns[c], p.conns[d] = struct{}{}, struct{}{}
	return true
}

// pipe copies from src to dst, losing what arrives while drop is set.
func (p *linkProxy) pipe(dst, src net.Conn, drop *atomic.Bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// setCut cuts the link (closing its connections) or heals it.
func (p *linkProxy) setCut(cut bool) {
	p.cut.Store(cut)
	if cut {
		p.closeConns()
	}
}

func (p *linkProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *linkProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
