package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Preamble constants; the format is described in doc.go.
const (
	preambleMagic   = "HSMR"
	preambleVersion = 1
	maxAddrLen      = 1024

	ackAccepted byte = 0
	ackBlocked  byte = 1
)

// DefaultHandshakeTimeout bounds an inbound connection's TLS handshake and preamble, and an
// outbound one's when Dial is given no timeout.
const DefaultHandshakeTimeout = 10 * time.Second

// StreamLayer is a raft.StreamLayer over mutual TLS with fault injection. Use it with
// raft.NewNetworkTransportWithConfig.
//
// Accept returns only connections that completed the TLS handshake (the peer's chain verified
// by serverTLS) and the preamble, from a peer that is not blocked. Handshakes run in their own
// goroutines, bounded by the handshake timeout, so a slow or rejected peer neither delays other
// connections nor makes Accept return an error: raft's NetworkTransport backs off (up to a
// second) after every Accept error, so Accept returns an error only once the layer is closed.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	faults    *Faults
	logger    hclog.Logger
	timeout   time.Duration

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	ready  chan net.Conn // handshaken inbound connections
	wg     sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	acceptErr error                   // why the accept loop stopped
	conns     map[*faultConn]struct{} // live connections, closed by Close
	closed    bool
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Option configures a StreamLayer.
type Option func(*StreamLayer)

// WithLogger sets the logger for rejected inbound connections (default: none).
func WithLogger(l hclog.Logger) Option {
	return func(s *StreamLayer) { s.logger = l }
}

// WithHandshakeTimeout sets the handshake timeout (default DefaultHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(s *StreamLayer) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// NewStreamLayer returns a StreamLayer that accepts on ln with serverTLS and dials with
// clientTLS (see NewTLSConfigs). advertise is this node's Raft address as peers dial it and
// as their fault tables name it; nil means ln.Addr(). faults is this node's fault table; nil
// means an empty one. The layer owns ln and closes it on Close.
func NewStreamLayer(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config, faults *Faults, opts ...Option) *StreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	if faults == nil {
		faults = &Faults{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &StreamLayer{
		ln:        ln,
		advertise: advertise,
		serverTLS: serverTLS,
		clientTLS: clientTLS,
		faults:    faults,
		logger:    hclog.NewNullLogger(),
		timeout:   DefaultHandshakeTimeout,
		ctx:       ctx,
		cancel:    cancel,
		ready:     make(chan net.Conn),
		conns:     make(map[*faultConn]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Faults returns the layer's fault table.
func (s *StreamLayer) Faults() *Faults { return s.faults }

// Addr returns the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Accept waits for the next inbound connection that completed the handshake and preamble.
// It returns an error only after Close (or a listener failure).
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		return nil, s.acceptErr
	}
}

// Close stops accepting, closes the listener, aborts handshakes in progress and closes every
// connection the layer accepted or dialed, as the node's process exiting would: peers notice
// at once. It is idempotent.
func (s *StreamLayer) Close() error {
	err := s.stop(net.ErrClosed)
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	conns := make([]*faultConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return err
}

// track registers fc so that Close closes it, or closes fc and fails when the layer is
// closed.
func (s *StreamLayer) track(fc *faultConn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = fc.Close() // not under s.mu: its onClose takes it
		return fmt.Errorf("stream layer: %w", net.ErrClosed)
	}
	defer s.mu.Unlock()
	select {
	case <-fc.done: // closed already (Block); its onClose found nothing to remove
	default:
		s.conns[fc] = struct{}{}
	}
	return nil
}

// untrack forgets a closed connection.
func (s *StreamLayer) untrack(fc *faultConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, fc)
}

// Dial connects to the peer at address: TCP, TLS with clientTLS, then the preamble. The whole
// exchange is bounded by timeout (DefaultHandshakeTimeout when zero). It fails at once with
// ErrBlocked when address is blocked in this node's fault table, and with ErrBlocked when the
// peer refuses this node because of its own.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	peer := string(address)
	if err := s.faults.check(peer); err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	if timeout <= 0 {
		timeout = s.timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", peer)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	conn := tls.Client(raw, s.clientTLS)
	if err := s.dialHandshake(ctx, conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	_ = raw.SetDeadline(time.Time{})
	fc, err := s.faults.attach(peer, conn, s.untrack)
	if err == nil {
		err = s.track(fc)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", peer, err)
	}
	return fc, nil
}

// dialHandshake runs the client side: TLS handshake, preamble, then the acceptor's verdict.
// In TLS 1.3 the client finishes its handshake before the server has checked the client's
// certificate, so a rejected certificate shows up here, as the alert read instead of the ack.
func (s *StreamLayer) dialHandshake(ctx context.Context, conn *tls.Conn) error {
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	if err := writePreamble(conn, s.advertise.String()); err != nil {
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("read preamble ack: %w", err)
	}
	switch ack[0] {
	case ackAccepted:
		return nil
	case ackBlocked:
		return fmt.Errorf("%w: refused by the peer", ErrBlocked)
	default:
		return fmt.Errorf("%w: ack %#x", ErrBadPreamble, ack[0])
	}
}

// acceptLoop accepts raw connections and hands each to its own handshake goroutine.
func (s *StreamLayer) acceptLoop() {
	defer s.wg.Done()
	const maxBackoff = time.Second
	var backoff time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				_ = s.stop(err)
				return
			}
			// A transient failure (for example too many open files): retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxBackoff)
			s.logger.Warn("accept failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		backoff = 0
		s.wg.Add(1)
		go s.acceptHandshake(raw)
	}
}

// acceptHandshake runs the server side of one connection and delivers it to Accept.
func (s *StreamLayer) acceptHandshake(raw net.Conn) {
	defer s.wg.Done()
	stop := context.AfterFunc(s.ctx, func() { _ = raw.Close() })
	defer stop()

	_ = raw.SetDeadline(time.Now().Add(s.timeout))
	conn := tls.Server(raw, s.serverTLS)
	peer, err := s.serverHandshake(conn)
	if err != nil {
		_ = conn.Close()
		s.logger.Warn("inbound connection rejected", "remote", raw.RemoteAddr().String(), "peer", peer, "error", err)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	if !stop() { // closed meanwhile
		_ = conn.Close()
		return
	}
	fc, err := s.faults.attach(peer, conn, s.untrack) // closes conn if peer was blocked meanwhile
	if err == nil {
		err = s.track(fc)
	}
	if err != nil {
		s.logger.Warn("inbound connection rejected", "remote", raw.RemoteAddr().String(), "peer", peer, "error", err)
		return
	}
	select {
	case s.ready <- fc:
	case <-s.ctx.Done():
		_ = fc.Close()
	}
}

// serverHandshake runs the TLS handshake, reads the preamble and answers it. It returns the
// peer's advertised address.
func (s *StreamLayer) serverHandshake(conn *tls.Conn) (string, error) {
	if err := conn.HandshakeContext(s.ctx); err != nil {
		return "", fmt.Errorf("tls handshake: %w", err)
	}
	peer, err := readPreamble(conn)
	if err != nil {
		return "", err
	}
	if s.faults.Blocked(peer) {
		_, _ = conn.Write([]byte{ackBlocked})
		return peer, fmt.Errorf("%w: %s", ErrBlocked, peer)
	}
	if _, err := conn.Write([]byte{ackAccepted}); err != nil {
		return peer, fmt.Errorf("write preamble ack: %w", err)
	}
	return peer, nil
}

// stop cancels the layer once, recording why Accept fails from now on, and closes the
// listener.
func (s *StreamLayer) stop(reason error) error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.acceptErr = fmt.Errorf("accept: %w", reason)
		s.mu.Unlock()
		s.cancel()
		if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	})
	return err
}

// writePreamble sends magic, version, and the length-prefixed address.
func writePreamble(w io.Writer, addr string) error {
	if len(addr) == 0 || len(addr) > maxAddrLen {
		return fmt.Errorf("%w: address length %d", ErrBadPreamble, len(addr))
	}
	buf := make([]byte, 0, len(preambleMagic)+3+len(addr))
	buf = append(buf, preambleMagic...)
	buf = append(buf, preambleVersion)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(addr)))
	buf = append(buf, addr...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write preamble: %w", err)
	}
	return nil
}

// readPreamble reads and checks a preamble and returns the address it names.
func readPreamble(r io.Reader) (string, error) {
	var hdr [len(preambleMagic) + 3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPreamble, err)
	}
	if string(hdr[:len(preambleMagic)]) != preambleMagic {
		return "", fmt.Errorf("%w: bad magic", ErrBadPreamble)
	}
	if v := hdr[len(preambleMagic)]; v != preambleVersion {
		return "", fmt.Errorf("%w: version %d", ErrBadPreamble, v)
	}
	n := int(binary.BigEndian.Uint16(hdr[len(preambleMagic)+1:]))
	if n == 0 || n > maxAddrLen {
		return "", fmt.Errorf("%w: address length %d", ErrBadPreamble, n)
	}
	addr := make([]byte, n)
	if _, err := io.ReadFull(r, addr); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPreamble, err)
	}
	return string(addr), nil
}
