// Package downproxy is a test helper shared by several packages' tests: a TCP port that
// refuses connections, as a server that is down does, until it is brought up, from when it
// forwards every connection to a real server (the tests put it in front of PostgreSQL to
// start a node with its database down). It lives under internal/ so that tests in different
// packages can share it while no program outside the module can import it.
package downproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a port that refuses connections until Up, then forwards them to its target.
type Proxy struct {
	addr, target string
	mu           sync.Mutex
	l            net.Listener
	wg           sync.WaitGroup
}

// New returns a Proxy for target on a free port of 127.0.0.1, down. The test's cleanup stops
// it and waits for its connections.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{addr: l.Addr().String(), target: target}
	l.Close() // refused from now on, until Up listens again on the same port
	t.Cleanup(func() {
		p.mu.Lock()
		if p.l != nil {
			p.l.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Up starts listening on the proxy's port and forwarding each connection to the target.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("bringing the proxy up on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Go(func() {
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				d, err := net.DialTimeout("tcp", p.target, 5*time.Second)
				if err != nil {
					return
				}
				defer d.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(d, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, d); done <- struct{}{} }()
				<-done
			})
		}
	})
}
