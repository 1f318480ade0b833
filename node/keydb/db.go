package keydb

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Quotas and limits, after AWS CloudHSM's (reference §5.2 and §5.3).
const (
	// MaxUsers is the most users a cluster holds, admins included.
	MaxUsers = 250
	// MaxKeys is the most key objects a cluster holds; a key pair is two.
	MaxKeys = 16666
	// MaxMembers is the most HSMs a cluster holds.
	MaxMembers = 28
	// MaxUsernameLen is the longest username.
	MaxUsernameLen = 31
	// MaxLoginFailures is the number of consecutive failed logins that locks
	// a user.
	MaxLoginFailures = 5
	// MaxQuorumValue is the largest quorum minimum value (M).
	MaxQuorumValue = 8
	// MaxLabelLen bounds a key label, in bytes (an hsmsim bound).
	MaxLabelLen = 127
	// MaxKeyIDLen bounds a key id, in bytes (an hsmsim bound).
	MaxKeyIDLen = 128
	// MaxQuorumTokens is the most quorum tokens the cluster holds
	// (CloudHSM: an HSM stores at most 1,024 tokens).
	MaxQuorumTokens = 1024
	// QuorumTokenLifetime is how long a quorum token is accepted after it
	// is issued, in seconds (CloudHSM: 10 minutes).
	QuorumTokenLifetime = 600
	// QuorumChallengeSize is the size of a quorum token's challenge.
	QuorumChallengeSize = 32
	// MaxQuorumTokenIDLen bounds a quorum token id (an hsmsim bound).
	MaxQuorumTokenIDLen = 64
)

// Quorum-controlled services whose minimum value SetQuorumValue sets.
const (
	// ServiceUser covers user management: create, delete, change password.
	ServiceUser = "user"
	// ServiceQuorum covers changing a quorum value.
	ServiceQuorum = "quorum"
)

// SnapshotFormatVersion is the Snapshot.format_version this code writes and
// reads.
const SnapshotFormatVersion = 1

// DB is the key database. The zero value is not usable; call New. A DB is
// safe for concurrent use: Apply and Restore write under an exclusive lock,
// the read methods share a read lock and return copies.
type DB struct {
	mu sync.RWMutex
	s  *state
}

// state is everything a snapshot holds, plus indexes derived from it.
type state struct {
	applied    uint64
	cluster    *hsmfsmv1.Cluster
	users      map[string]*hsmfsmv1.User
	keys       map[uint64]*hsmfsmv1.Key
	members    map[string]*hsmfsmv1.Member
	quorum     map[string]uint32 // only values other than 1
	tokens     map[string]*hsmfsmv1.QuorumToken
	nextHandle uint64
	requests   requestTable

	// Derived, rebuilt by Restore.
	ids   map[string][]uint64 // key id → handles that hold it (a pair at most)
	owned map[string]int      // owner → number of key objects it owns
}

func newState() *state {
	return &state{
		cluster:    &hsmfsmv1.Cluster{State: hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED},
		users:      make(map[string]*hsmfsmv1.User),
		keys:       make(map[uint64]*hsmfsmv1.Key),
		members:    make(map[string]*hsmfsmv1.Member),
		quorum:     make(map[string]uint32),
		tokens:     make(map[string]*hsmfsmv1.QuorumToken),
		nextHandle: 1,
		requests:   newRequestTable(),
		ids:        make(map[string][]uint64),
		owned:      make(map[string]int),
	}
}

// New returns an empty, uninitialized key database.
func New() *DB {
	return &DB{s: newState()}
}

// ClusterInfo is the cluster's identity and lifecycle state.
type ClusterInfo struct {
	// State is UNINITIALIZED before InitCluster, INITIALIZED until Activate,
	// then ACTIVE.
	State hsmfsmv1.ClusterState
	// ID is the cluster id, e.g. "cluster-abc123".
	ID string
	// CertPEM is the cluster certificate signed by the trust anchor.
	CertPEM string
	// TrustAnchorPEM is the customer's self-signed CA certificate.
	TrustAnchorPEM string
}

// User is a user record including its password hash; only login needs it.
type User struct {
	// Info is the user's public description.
	Info *hsmv1.UserInfo
	// PasswordHash is the Argon2id PHC string of the user's password.
	PasswordHash string
}

// Key is a key object: its attributes and its sealed material.
type Key struct {
	// Attributes are the key's attributes, handle and owner included.
	Attributes *hsmv1.KeyAttributes
	// SealedMaterial is the barrier's envelope of the key material; empty
	// for a public key.
	SealedMaterial []byte
}

// KeyFilter selects keys for FindKeys. Every zero field matches any key; the
// set fields must all match.
type KeyFilter struct {
	// Label matches keys with exactly this label.
	Label string
	// ID matches keys with exactly this id.
	ID []byte
	// Class matches keys of this class.
	Class hsmv1.KeyClass
	// Type matches keys of this type.
	Type hsmv1.KeyType
	// Owner matches keys owned by this user.
	Owner string
	// UsableBy matches keys this user owns or that are shared with it.
	UsableBy string
}

// Counts are the sizes of the database.
type Counts struct {
	// Users counts users, admins included.
	Users int
	// Keys counts key objects; a key pair is two.
	Keys int
	// Members counts admitted HSMs.
	Members int
}

// Cluster returns the cluster's identity and state.
func (db *DB) Cluster() ClusterInfo {
	db.mu.RLock()
	defer db.mu.RUnlock()
	c := db.s.cluster
	return ClusterInfo{
		State:          c.GetState(),
		ID:             c.GetClusterId(),
		CertPEM:        c.GetClusterCertPem(),
		TrustAnchorPEM: c.GetTrustAnchorPem(),
	}
}

// User returns the named user with its password hash, and whether it exists.
func (db *DB) User(name string) (User, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	u, ok := db.s.users[name]
	if !ok {
		return User{}, false
	}
	return User{Info: proto.CloneOf(u.GetInfo()), PasswordHash: u.GetPasswordHash()}, true
}

// Users returns every user, sorted by username, without password hashes.
func (db *DB) Users() []*hsmv1.UserInfo {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make([]*hsmv1.UserInfo, 0, len(db.s.users))
	for _, u := range db.s.users {
		out = append(out, proto.CloneOf(u.GetInfo()))
	}
	slices.SortFunc(out, func(a, b *hsmv1.UserInfo) int { return strings.Compare(a.GetUsername(), b.GetUsername()) })
	return out
}

// Key returns the key object with the given handle, and whether it exists.
func (db *DB) Key(handle uint64) (Key, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	k, ok := db.s.keys[handle]
	if !ok {
		return Key{}, false
	}
	return Key{Attributes: proto.CloneOf(k.GetAttributes()), SealedMaterial: bytes.Clone(k.GetSealedMaterial())}, true
}

// FindKeys returns the attributes of the keys that match f, sorted by handle.
// It never returns sealed material; use Key for that.
func (db *DB) FindKeys(f KeyFilter) []*hsmv1.KeyAttributes {
	db.mu.RLock()
	defer db.mu.RUnlock()
	var out []*hsmv1.KeyAttributes
	for _, k := range db.s.keys {
		if a := k.GetAttributes(); f.matches(a) {
			out = append(out, proto.CloneOf(a))
		}
	}
	slices.SortFunc(out, func(a, b *hsmv1.KeyAttributes) int { return cmp.Compare(a.GetHandle(), b.GetHandle()) })
	return out
}

func (f KeyFilter) matches(a *hsmv1.KeyAttributes) bool {
	switch {
	case f.Label != "" && a.GetLabel() != f.Label,
		f.ID != nil && !bytes.Equal(a.GetId(), f.ID),
		f.Class != hsmv1.KeyClass_KEY_CLASS_UNSPECIFIED && a.GetClass() != f.Class,
		f.Type != hsmv1.KeyType_KEY_TYPE_UNSPECIFIED && a.GetType() != f.Type,
		f.Owner != "" && a.GetOwner() != f.Owner,
		f.UsableBy != "" && !usableBy(a, f.UsableBy):
		return false
	}
	return true
}

// usableBy reports whether user owns the key or it is shared with user.
func usableBy(a *hsmv1.KeyAttributes, user string) bool {
	if a.GetOwner() == user {
		return true
	}
	_, shared := slices.BinarySearch(a.GetSharedUsers(), user)
	return shared
}

// Members returns the admitted HSMs, sorted by node id.
func (db *DB) Members() []*hsmfsmv1.Member {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make([]*hsmfsmv1.Member, 0, len(db.s.members))
	for _, m := range db.s.members {
		out = append(out, proto.CloneOf(m))
	}
	slices.SortFunc(out, func(a, b *hsmfsmv1.Member) int { return strings.Compare(a.GetNodeId(), b.GetNodeId()) })
	return out
}

// Member returns the admitted HSM with the given node id, and whether it
// exists.
func (db *DB) Member(nodeID string) (*hsmfsmv1.Member, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	m, ok := db.s.members[nodeID]
	if !ok {
		return nil, false
	}
	return proto.CloneOf(m), true
}

// QuorumValue returns the quorum minimum value (M) of a service; 1, quorum
// disabled, unless SetQuorumValue set another.
func (db *DB) QuorumValue(service string) uint32 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if m, ok := db.s.quorum[service]; ok {
		return m
	}
	return 1
}

// QuorumTokens returns the quorum tokens, expired ones included until a new
// token's creation drops them, sorted by id.
func (db *DB) QuorumTokens() []*hsmfsmv1.QuorumToken {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make([]*hsmfsmv1.QuorumToken, 0, len(db.s.tokens))
	for _, t := range db.s.tokens {
		out = append(out, proto.CloneOf(t))
	}
	slices.SortFunc(out, func(a, b *hsmfsmv1.QuorumToken) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// QuorumToken returns the quorum token with the given id, and whether it
// exists.
func (db *DB) QuorumToken(id string) (*hsmfsmv1.QuorumToken, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	t, ok := db.s.tokens[id]
	if !ok {
		return nil, false
	}
	return proto.CloneOf(t), true
}

// AppliedIndex returns the log index of the last command applied (or the
// one the restored snapshot had reached).
func (db *DB) AppliedIndex() uint64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.s.applied
}

// Counts returns the number of users, key objects and members.
func (db *DB) Counts() Counts {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return Counts{Users: len(db.s.users), Keys: len(db.s.keys), Members: len(db.s.members)}
}
