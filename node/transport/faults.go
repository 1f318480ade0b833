package transport

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// Faults is a node's fault table: the peers it refuses, delays or drops traffic with. Peers
// are named by their Raft address (the raft.ServerAddress in the cluster configuration, which
// is also what a StreamLayer advertises in its preamble and what node-to-node gRPC calls carry
// in the x-hsm-from metadata); the caller maps node ids to addresses.
//
// Faults apply to this node's side only. Block is naturally two-way (neither side can reach
// the other through this node); Delay and Loss affect what this node sends, so symmetric
// latency between two AZs is set on the nodes of both.
//
// The zero value is an empty table ready to use. A Faults is safe for concurrent use; changes
// apply at once to existing connections.
type Faults struct {
	mu    sync.Mutex
	peers map[string]*peerFault
	conns map[string]map[*faultConn]struct{}
}

// PeerFault is one peer's entry in a Snapshot.
type PeerFault struct {
	// Peer is the peer's Raft address.
	Peer string `json:"peer"`
	// Blocked is true when all traffic with the peer is refused.
	Blocked bool `json:"blocked,omitempty"`
	// Delay is the latency added to every write to the peer.
	Delay time.Duration `json:"delay,omitempty"`
	// Loss is the probability that a write to the peer is lost.
	Loss float64 `json:"loss,omitempty"`
}

// peerFault is the mutable state behind a PeerFault.
type peerFault struct {
	blocked bool
	delay   time.Duration
	loss    float64
}

// Block refuses all traffic with peers: dials to them fail with ErrBlocked, inbound
// connections and gRPC calls from them are refused, and live connections with them are
// closed.
func (f *Faults) Block(peers ...string) {
	var victims []*faultConn
	f.mu.Lock()
	for _, p := range peers {
		f.entry(p).blocked = true
		for c := range f.conns[p] {
			victims = append(victims, c)
		}
	}
	f.mu.Unlock()
	for _, c := range victims {
		c.abort(fmt.Errorf("%w: %s", ErrBlocked, c.peer))
	}
}

// Unblock lets traffic with peers through again. New connections must be made; the ones
// Block closed stay closed.
func (f *Faults) Unblock(peers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range peers {
		if e := f.peers[p]; e != nil {
			e.blocked = false
			f.prune(p)
		}
	}
}

// Delay adds latency d to every write to peer, on existing and future connections: bytes are
// delivered d after they were written, in order, without limiting throughput (up to an
// in-flight bound). A d of zero or less removes the delay.
func (f *Faults) Delay(peer string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entry(peer).delay = max(d, 0)
	f.prune(peer)
}

// Loss makes each write to peer (for Raft, about one message) fail with probability p,
// clamped to [0, 1]. TCP cannot lose bytes without corrupting the stream, so a lost write
// resets the connection (it is closed and the write returns ErrLost) and the sender retries
// on a new one, as after a timeout. For gRPC a lost call fails with codes.Unavailable.
// A p of zero removes the loss.
func (f *Faults) Loss(peer string, p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entry(peer).loss = min(max(p, 0), 1)
	f.prune(peer)
}

// Heal clears every fault. Connections closed by Block stay closed.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = nil
}

// Blocked reports whether peer is blocked.
func (f *Faults) Blocked(peer string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.peers[peer]
	return e != nil && e.blocked
}

// Snapshot returns the current faults, one entry per affected peer, sorted by peer.
func (f *Faults) Snapshot() []PeerFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PeerFault, 0, len(f.peers))
	for p, e := range f.peers {
		out = append(out, PeerFault{Peer: p, Blocked: e.blocked, Delay: e.delay, Loss: e.loss})
	}
	slices.SortFunc(out, func(a, b PeerFault) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

// check returns ErrBlocked (wrapped) when peer is blocked.
func (f *Faults) check(peer string) error {
	if f.Blocked(peer) {
		return fmt.Errorf("%w: %s", ErrBlocked, peer)
	}
	return nil
}

// current returns peer's fault entry by value (zero when none).
func (f *Faults) current(peer string) peerFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.peers[peer]; e != nil {
		return *e
	}
	return peerFault{}
}

// lost draws whether one write or call to peer is lost.
func (f *Faults) lost(peer string) bool {
	return draw(f.current(peer).loss)
}

// draw returns true with probability p.
func draw(p float64) bool {
	return p > 0 && rand.Float64() < p
}

// attach wraps conn, a connection with peer, so that the faults apply to it and Block can
// close it; onClose (may be nil) runs once when it closes. It fails with ErrBlocked, closing
// conn, when peer is blocked: the check and the registration are atomic, so a Block racing
// with a dial or accept cannot miss the connection.
func (f *Faults) attach(peer string, conn net.Conn, onClose func(*faultConn)) (*faultConn, error) {
	f.mu.Lock()
	if e := f.peers[peer]; e != nil && e.blocked {
		f.mu.Unlock()
		_ = conn.Close()
		return nil, fmt.Errorf("%w: %s", ErrBlocked, peer)
	}
	defer f.mu.Unlock()
	c := newFaultConn(conn, peer, f)
	c.onClose = onClose
	if f.conns == nil {
		f.conns = make(map[string]map[*faultConn]struct{})
	}
	if f.conns[peer] == nil {
		f.conns[peer] = make(map[*faultConn]struct{})
	}
	f.conns[peer][c] = struct{}{}
	return c, nil
}

// detach forgets a closed connection.
func (f *Faults) detach(c *faultConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns[c.peer], c)
	if len(f.conns[c.peer]) == 0 {
		delete(f.conns, c.peer)
	}
}

// entry returns peer's mutable entry, creating it. f.mu must be held.
func (f *Faults) entry(peer string) *peerFault {
	if f.peers == nil {
		f.peers = make(map[string]*peerFault)
	}
	e := f.peers[peer]
	if e == nil {
		e = &peerFault{}
		f.peers[peer] = e
	}
	return e
}

// prune drops peer's entry when it holds no fault, so Snapshot lists only affected peers.
// f.mu must be held.
func (f *Faults) prune(peer string) {
	if e := f.peers[peer]; e != nil && *e == (peerFault{}) {
		delete(f.peers, peer)
	}
}
