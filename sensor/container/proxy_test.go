package container

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// proxy forwards a unix socket to another, so that a test can take a
// connection away from a client without touching the server.
type proxy struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startProxy listens on a new socket forwarding to target until tb ends.
func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	p := &proxy{path: filepath.Join(tb.TempDir(), "proxy.sock"), target: target, conns: map[net.Conn]bool{}}
	p.listen(tb)
	tb.Cleanup(func() {
		p.cut(tb)
		p.wg.Wait()
	})
	return p
}

// listen starts accepting again after stopAccepting or cut.
func (p *proxy) listen(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		})
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); io.Copy(up, c); closeBoth() }()
	go func() { defer p.wg.Done(); io.Copy(c, up); closeBoth() }()
}

// stopAccepting closes the listener, and removes its socket, but keeps the
// connections already made.
func (p *proxy) stopAccepting(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// cut stops accepting and drops every connection.
func (p *proxy) cut(tb testing.TB) {
	tb.Helper()
	p.stopAccepting(tb)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
