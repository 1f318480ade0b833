package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// maxInFlight bounds the bytes a delayed connection holds before Write blocks: the
// simulated link's buffer. A single larger write is still accepted when nothing is queued.
const maxInFlight = 4 << 20

// faultConn is a connection with one peer on which the peer's faults apply. Writes with no
// delay go straight through; with a delay they are copied into a FIFO queue and a pump
// goroutine writes each chunk once it is due, so latency does not cut throughput. Write
// errors of the pump surface on the next Write. Close discards bytes still in flight, like a
// reset.
type faultConn struct {
	net.Conn
	peer   string
	faults *Faults

	mu      sync.Mutex
	cond    *sync.Cond // signals queue changes and shutdown; uses mu
	queue   []chunk
	queued  int   // bytes in queue
	pumping bool  // a pump goroutine is running
	err     error // sticky: the first write error or the reason the conn was shut
	aborted bool  // shut by a fault (Block, Loss) rather than Close

	done      chan struct{} // closed on shutdown, wakes a sleeping pump
	closeOnce sync.Once
	closeErr  error
	onClose   func(*faultConn) // set by attach before the conn is shared; may be nil
}

// chunk is one delayed write.
type chunk struct {
	due  time.Time
	data []byte
}

// newFaultConn wraps conn, a connection with peer. The caller registers it in faults.
func newFaultConn(conn net.Conn, peer string, faults *Faults) *faultConn {
	c := &faultConn{Conn: conn, peer: peer, faults: faults, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Read reads from the connection. After a fault closed it, the error is the fault's
// (ErrBlocked, ErrLost) rather than "use of closed network connection".
func (c *faultConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.mu.Lock()
		if c.aborted {
			err = c.err
		}
		c.mu.Unlock()
	}
	return n, err
}

// Write writes b now, or queues it for delivery after the peer's delay.
func (c *faultConn) Write(b []byte) (int, error) {
	pf := c.faults.current(c.peer)
	if draw(pf.loss) {
		err := fmt.Errorf("%w: write to %s", ErrLost, c.peer)
		c.abort(err)
		return 0, err
	}

	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return 0, c.err
	}
	if pf.delay == 0 && len(c.queue) == 0 {
		c.mu.Unlock()
		return c.Conn.Write(b)
	}
	defer c.mu.Unlock()
	for c.queued > 0 && c.queued+len(b) > maxInFlight && c.err == nil {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.queue = append(c.queue, chunk{due: time.Now().Add(pf.delay), data: bytes.Clone(b)})
	c.queued += len(b)
	if !c.pumping {
		c.pumping = true
		go c.pump()
	}
	return len(b), nil
}

// pump writes queued chunks when due, in order, and exits when the queue is empty or the
// connection is shut.
func (c *faultConn) pump() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.err != nil || len(c.queue) == 0 {
			if c.err != nil {
				c.queue, c.queued = nil, 0
			}
			c.pumping = false
			c.cond.Broadcast()
			return
		}
		ch := c.queue[0]
		c.mu.Unlock()
		if wait := time.Until(ch.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
			}
		}
		_, err := c.Conn.Write(ch.data) // fails at once after shutdown
		c.mu.Lock()
		if c.err == nil && err != nil {
			c.err = err
		}
		c.queue[0] = chunk{}
		c.queue = c.queue[1:]
		c.queued -= len(ch.data)
		c.cond.Broadcast()
	}
}

// Close closes the connection, discarding delayed bytes not yet sent.
func (c *faultConn) Close() error {
	c.shutdown(net.ErrClosed, false)
	return c.closeErr
}

// abort closes the connection because of a fault; later reads and writes return reason.
func (c *faultConn) abort(reason error) {
	c.shutdown(reason, true)
}

// shutdown closes the connection once, recording reason for later calls.
func (c *faultConn) shutdown(reason error, aborted bool) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil || aborted {
			c.err = reason
		}
		c.aborted = aborted
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.done)
		if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = err
		}
		c.faults.detach(c)
		if c.onClose != nil {
			c.onClose(c)
		}
	})
}
