package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node/transport"
)

const (
	clusterID = "cluster-7f3a"
	waitFor   = 5 * time.Second
	tick      = 5 * time.Millisecond
)

// cluster is the PKI of one test cluster: its trust anchor and the cluster certificate.
type cluster struct {
	ca   *testpki.CA
	cert tls.Certificate
}

func newCluster(t *testing.T) cluster {
	ca := testpki.NewCA(t, "customer-ca")
	return cluster{ca: ca, cert: ca.Issue(t, clusterID, false)}
}

// node is a StreamLayer whose accepted connections are collected in a channel.
type node struct {
	*transport.StreamLayer
	accepted chan net.Conn
}

// newLayer starts a StreamLayer on 127.0.0.1:0 presenting cert and verifying peers against
// anchor and id. It is closed when the test ends.
func newLayer(t *testing.T, cert tls.Certificate, anchor *x509.Certificate, id string) *transport.StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, cli := transport.NewTLSConfigs(cert, anchor, id)
	s := transport.NewStreamLayer(ln, nil, srv, cli, &transport.Faults{},
		transport.WithLogger(testLogger(t)), transport.WithHandshakeTimeout(waitFor))
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// newNode is newLayer with a goroutine collecting accepted connections.
func newNode(t *testing.T, cert tls.Certificate, anchor *x509.Certificate, id string) *node {
	t.Helper()
	s := newLayer(t, cert, anchor, id)
	n := &node{StreamLayer: s, accepted: make(chan net.Conn, 16)}

	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			n.accepted <- c
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, s.Close())
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return n
}

// addr returns the node's Raft address.
func (n *node) addr() string { return n.Addr().String() }

// nextAccepted returns the next connection the node accepted.
func (n *node) nextAccepted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-n.accepted:
		return c
	case <-time.After(waitFor):
		require.FailNow(t, "no connection accepted")
		return nil
	}
}

// requireAccepts dials n from a good peer and checks that the next connection n accepts is
// that one: nothing rejected earlier was delivered, and the listener still works. It returns
// both ends.
func requireAccepts(t *testing.T, from, n *node) (out, in net.Conn) {
	t.Helper()
	var err error
	out, err = from.Dial(raftAddr(n), waitFor)
	require.NoError(t, err)
	t.Cleanup(func() { _ = out.Close() })
	in = n.nextAccepted(t)
	require.Equal(t, out.LocalAddr().String(), in.RemoteAddr().String())
	return out, in
}

// raftAddr returns the node's address as Raft names it.
func raftAddr(n *node) raft.ServerAddress { return raft.ServerAddress(n.addr()) }

// echo copies everything c reads back to it until it fails.
func echo(c net.Conn) {
	go func() { _, _ = io.Copy(c, c) }()
}

// roundTrip writes msg on c and reads it back (through an echo on the other side).
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(waitFor)))
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

// readErr reads from c until it fails and returns the error.
func readErr(t *testing.T, c net.Conn) error {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor)) // fails if c is already closed
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		err = io.EOF
	}
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "connection still open")
	return err
}

// testLogger routes logs to t.Log until the test ends; goroutines still logging afterwards
// are dropped instead of panicking.
func testLogger(t *testing.T) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: w, Level: hclog.Debug})
}

type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

// raftAddrOf returns addr as a Raft address.
func raftAddrOf(addr net.Addr) raft.ServerAddress { return raft.ServerAddress(addr.String()) }
