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

// open creates a session and returns its token.
func (t *sessionTable) open(user string, role hsmv1.Role, index uint64) (string, *session, error) {
	raw, err := cryptocore.RandomBytes(32)
	if err != nil {
		return "", nil, err
	}
	token := hex.EncodeToString(raw)
	s := &session{user: user, role: role}
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

func (t *sessionTable) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

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
