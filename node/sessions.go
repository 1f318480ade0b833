package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// MetadataSession is the gRPC metadata key that carries a session token.
const MetadataSession = "x-hsm-session"

// MetadataIndex is the gRPC metadata key of a Raft log index. A write's
// response header carries the index it was applied at; a request may carry
// the highest index its client has observed on any HSM, and the HSM waits
// until it has applied that index before serving it (read-your-writes
// across HSMs, for a client that spreads its calls).
const MetadataIndex = "x-hsm-index"

// MetadataLeader is the gRPC metadata key of the Raft leader's node id,
// which a write's response header carries: a client that sends its writes
// there saves the hop a follower makes to forward them.
const MetadataLeader = "x-hsm-leader"

// MetadataRequestID is the gRPC metadata key of a request id: 16 random
// bytes in hexadecimal (32 characters), chosen by the client for one
// logical write and sent unchanged with every attempt of it. A write that
// carries one takes effect once however often it is retried: the replicated
// command carries the id and the key database answers a repeated id with
// the first result (Raft thesis §6.3). Reads ignore it.
const MetadataRequestID = "x-hsm-request-id"

// session is one logged-in user on this HSM.
type session struct {
	user string
	role hsmv1.Role
	// conn is the client connection the session was opened on (see
	// connTracker); the session ends with it. Zero means none is known.
	conn uint64
	// lastIndex is the highest Raft index the session has observed: its
	// writes' indexes. Requests wait until the replica has applied it.
	lastIndex atomic.Uint64
}

// observe raises lastIndex to index.
func (s *session) observe(index uint64) {
	for {
		cur := s.lastIndex.Load()
		if index <= cur || s.lastIndex.CompareAndSwap(cur, index) {
			return
		}
	}
}

// sessionTable holds this HSM's sessions. Tokens are looked up by their
// SHA-256, so that the map lookup's timing says nothing about a token.
type sessionTable struct {
	mu  sync.RWMutex
	m   map[[32]byte]*session
	max int
}

func newSessionTable(max int) *sessionTable {
	return &sessionTable{m: make(map[[32]byte]*session), max: max}
}

// open creates a session opened on client connection conn and returns its
// token.
func (t *sessionTable) open(user string, role hsmv1.Role, index, conn uint64) (string, *session, error) {
	raw, err := cryptocore.RandomBytes(32)
	if err != nil {
		return "", nil, err
	}
	token := hex.EncodeToString(raw)
	s := &session{user: user, role: role, conn: conn}
	s.lastIndex.Store(index)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		return "", nil, ErrTooManySessions
	}
	t.m[sha256.Sum256([]byte(token))] = s
	return token, s, nil
}

func (t *sessionTable) get(token string) (*session, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.m[sha256.Sum256([]byte(token))]
	return s, ok
}

func (t *sessionTable) close(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, sha256.Sum256([]byte(token)))
}

// closeUser ends every session of user (after its deletion).
func (t *sessionTable) closeUser(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.m {
		if s.user == user {
			delete(t.m, k)
		}
	}
}

// closeConn ends every session opened on client connection conn, and
// returns how many it ended.
func (t *sessionTable) closeConn(conn uint64) int {
	if conn == 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, s := range t.m {
		if s.conn == conn {
			delete(t.m, k)
			n++
		}
	}
	return n
}

// perUser counts the sessions of each user that holds one.
func (t *sessionTable) perUser() map[string]uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]uint32)
	for _, s := range t.m {
		out[s.user]++
	}
	return out
}

func (t *sessionTable) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// connTracker is a gRPC stats handler that numbers the server's client
// connections and ends the sessions opened on a connection when it closes:
// as in CloudHSM, a session lives as long as the client's connection, so a
// client that dies (kill -9, a crashed host) leaves no user logged in.
type connTracker struct {
	next     atomic.Uint64
	sessions *sessionTable
	// ended is called with the number of sessions a closed connection
	// ended, when there were any.
	ended func(n int)
}

// connIDKey is the context key of a connection's number.
type connIDKey struct{}

// connIDFrom returns the number of the client connection ctx belongs to,
// or 0 outside a tracked server.
func connIDFrom(ctx context.Context) uint64 {
	id, _ := ctx.Value(connIDKey{}).(uint64)
	return id
}

// TagConn numbers a new connection; grpc derives its calls' contexts from
// the returned one.
func (c *connTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connIDKey{}, c.next.Add(1))
}

// HandleConn ends the sessions of a connection that closed.
func (c *connTracker) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); !ok {
		return
	}
	if n := c.sessions.closeConn(connIDFrom(ctx)); n > 0 && c.ended != nil {
		c.ended(n)
	}
}

// TagRPC leaves a call's context as it is.
func (c *connTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC ignores call events.
func (c *connTracker) HandleRPC(context.Context, stats.RPCStats) {}

// minIndexFrom returns the index a request asks this HSM to have applied.
func minIndexFrom(ctx context.Context) uint64 {
	v := metadata.ValueFromIncomingContext(ctx, MetadataIndex)
	if len(v) != 1 {
		return 0
	}
	i, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return 0
	}
	return i
}

// requestIDFrom returns the request id in ctx's incoming metadata, nil when
// there is none, or an InvalidArgument error when it is not 32 hexadecimal
// characters (or is sent twice).
func requestIDFrom(ctx context.Context) ([]byte, error) {
	v := metadata.ValueFromIncomingContext(ctx, MetadataRequestID)
	switch {
	case len(v) == 0:
		return nil, nil
	case len(v) > 1:
		return nil, invalid(MetadataRequestID + " must be sent once")
	}
	id, err := hex.DecodeString(v[0])
	if err != nil || len(id) != keydb.RequestIDSize {
		return nil, invalid(fmt.Sprintf("%s must be %d hexadecimal characters", MetadataRequestID, 2*keydb.RequestIDSize))
	}
	return id, nil
}

// tokenFrom returns the session token in ctx's incoming metadata.
func tokenFrom(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, MetadataSession); len(v) == 1 {
		return v[0]
	}
	return ""
}
