package keydb

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Errors returned by Restore, wrapped with the details.
var (
	// ErrSnapshotDecode is returned when the snapshot is not a valid
	// hsmfsm.v1.Snapshot encoding.
	ErrSnapshotDecode = errors.New("keydb: snapshot cannot be decoded")
	// ErrSnapshotVersion is returned when the snapshot's format version is
	// not SnapshotFormatVersion.
	ErrSnapshotVersion = errors.New("keydb: unsupported snapshot format version")
	// ErrSnapshotInvalid is returned when the snapshot decodes but breaks an
	// invariant of the database (a duplicate user, a key owned by nobody, a
	// handle beyond the counter, ...).
	ErrSnapshotInvalid = errors.New("keydb: invalid snapshot")
)

// Snapshot encodes the whole state. Lists are sorted and the encoding is
// deterministic, so equal states give equal bytes. The result shares nothing
// with the database.
func (db *DB) Snapshot() ([]byte, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	s := db.s
	snap := &hsmfsmv1.Snapshot{
		FormatVersion: SnapshotFormatVersion,
		AppliedIndex:  s.applied,
		Cluster:       s.cluster,
		Users: sortedValues(s.users, func(a, b *hsmfsmv1.User) int {
			return strings.Compare(a.GetInfo().GetUsername(), b.GetInfo().GetUsername())
		}),
		Keys: sortedValues(s.keys, func(a, b *hsmfsmv1.Key) int {
			return cmp.Compare(a.GetAttributes().GetHandle(), b.GetAttributes().GetHandle())
		}),
		Members:    sortedValues(s.members, func(a, b *hsmfsmv1.Member) int { return strings.Compare(a.GetNodeId(), b.GetNodeId()) }),
		NextHandle: s.nextHandle,
		QuorumTokens: sortedValues(s.tokens, func(a, b *hsmfsmv1.QuorumToken) int {
			return strings.Compare(a.GetId(), b.GetId())
		}),
		AppliedRequests: s.requests.order,
	}
	for _, service := range slices.Sorted(maps.Keys(s.quorum)) {
		snap.Quorum = append(snap.Quorum, &hsmfsmv1.QuorumSetting{Service: service, M: s.quorum[service]})
	}
	// Marshal under the read lock: snap points into the state.
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("keydb: encode snapshot: %w", err)
	}
	return b, nil
}

// PrepareRestore turns a snapshot taken on another cluster (from a backup)
// into the first snapshot of a new cluster: it decodes and validates it as
// Restore does, replaces the member list with first (the HSM restoring it:
// the source's HSMs are not members of the new cluster), drops the quorum
// tokens (they were issued on the source) and the remembered request ids
// (their clients talked to the source cluster) and sets the applied index to
// appliedIndex, the Raft index the snapshot is installed at. Users, keys,
// quorum values, the handle counter and the cluster record are kept.
func PrepareRestore(b []byte, first *hsmfsmv1.Member, appliedIndex uint64) ([]byte, error) {
	if r := checkMember(first); r != nil {
		return nil, fmt.Errorf("%w: first member: %s", ErrSnapshotInvalid, r.GetMessage())
	}
	snap := new(hsmfsmv1.Snapshot)
	if err := proto.Unmarshal(b, snap); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotDecode, err)
	}
	if v := snap.GetFormatVersion(); v != SnapshotFormatVersion {
		return nil, fmt.Errorf("%w: %d, want %d", ErrSnapshotVersion, v, SnapshotFormatVersion)
	}
	if snap.GetCluster().GetState() == stateUninitialized {
		return nil, fmt.Errorf("%w: the snapshot's cluster is not initialized", ErrSnapshotInvalid)
	}
	snap.Members = []*hsmfsmv1.Member{proto.CloneOf(first)}
	snap.QuorumTokens = nil
	snap.AppliedRequests = nil
	snap.AppliedIndex = appliedIndex
	if _, err := stateFromSnapshot(proto.CloneOf(snap)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("keydb: encode snapshot: %w", err)
	}
	return out, nil
}

// Restore replaces the whole state with the one encoded in b. It decodes and
// validates into a new state first and swaps it in only if that succeeds;
// on error the database is unchanged. The errors wrap ErrSnapshotDecode,
// ErrSnapshotVersion or ErrSnapshotInvalid.
func (db *DB) Restore(b []byte) error {
	snap := new(hsmfsmv1.Snapshot)
	if err := proto.Unmarshal(b, snap); err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshotDecode, err)
	}
	if v := snap.GetFormatVersion(); v != SnapshotFormatVersion {
		return fmt.Errorf("%w: %d, want %d", ErrSnapshotVersion, v, SnapshotFormatVersion)
	}
	s, err := stateFromSnapshot(snap)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	db.mu.Lock()
	db.s = s
	db.mu.Unlock()
	return nil
}

// stateFromSnapshot builds a state from a decoded snapshot, which it then
// owns, and checks the invariants Apply maintains.
func stateFromSnapshot(snap *hsmfsmv1.Snapshot) (*state, error) {
	s := newState()
	s.applied = snap.GetAppliedIndex()
	s.nextHandle = snap.GetNextHandle()
	if s.nextHandle == 0 {
		return nil, errors.New("next handle is 0")
	}

	c := snap.GetCluster()
	if c == nil {
		return nil, errors.New("no cluster record")
	}
	if _, known := hsmfsmv1.ClusterState_name[int32(c.GetState())]; !known || c.GetState() == hsmfsmv1.ClusterState_CLUSTER_STATE_UNSPECIFIED {
		return nil, fmt.Errorf("cluster state %v", c.GetState())
	}
	s.cluster = c

	for _, u := range snap.GetUsers() {
		info := u.GetInfo()
		name := info.GetUsername()
		switch {
		case info == nil:
			return nil, errors.New("user without info")
		case !validUsername(name):
			return nil, fmt.Errorf("invalid username %q", name)
		case info.GetRole() == hsmv1.Role_ROLE_UNSPECIFIED:
			return nil, fmt.Errorf("user %q has no role", name)
		}
		if _, dup := s.users[name]; dup {
			return nil, fmt.Errorf("duplicate user %q", name)
		}
		s.users[name] = u
	}

	for _, k := range snap.GetKeys() {
		a := k.GetAttributes()
		h := a.GetHandle()
		switch {
		case a == nil:
			return nil, errors.New("key without attributes")
		case h == 0 || h >= s.nextHandle:
			return nil, fmt.Errorf("key handle %d outside 1..%d", h, s.nextHandle-1)
		case !slices.IsSorted(a.GetSharedUsers()):
			return nil, fmt.Errorf("key %d: shared users not sorted", h)
		}
		if _, dup := s.keys[h]; dup {
			return nil, fmt.Errorf("duplicate key handle %d", h)
		}
		if owner, found := s.users[a.GetOwner()]; !found || owner.GetInfo().GetRole() != roleCryptoUser {
			return nil, fmt.Errorf("key %d: owner %q is not a crypto user", h, a.GetOwner())
		}
		for _, name := range a.GetSharedUsers() {
			if _, found := s.users[name]; !found {
				return nil, fmt.Errorf("key %d: shared with unknown user %q", h, name)
			}
		}
		s.keys[h] = k
		s.indexID(a.GetId(), h)
		s.owned[a.GetOwner()]++
	}
	for h, k := range s.keys {
		a := k.GetAttributes()
		if p := a.GetPairHandle(); p != 0 {
			if other, found := s.keys[p]; !found || other.GetAttributes().GetPairHandle() != h {
				return nil, fmt.Errorf("key %d: broken pair link to %d", h, p)
			}
		}
	}
	for id, hs := range s.ids {
		if len(hs) > 2 || len(hs) == 2 && s.keys[hs[0]].GetAttributes().GetPairHandle() != hs[1] {
			return nil, fmt.Errorf("key id %x held by keys %v", id, hs)
		}
	}

	for _, m := range snap.GetMembers() {
		if m == nil || m.GetNodeId() == "" {
			return nil, errors.New("member without node id")
		}
		if _, dup := s.members[m.GetNodeId()]; dup {
			return nil, fmt.Errorf("duplicate member %q", m.GetNodeId())
		}
		s.members[m.GetNodeId()] = m
	}

	for _, q := range snap.GetQuorum() {
		switch {
		case q.GetService() != ServiceUser && q.GetService() != ServiceQuorum:
			return nil, fmt.Errorf("unknown quorum service %q", q.GetService())
		case q.GetM() < 2 || q.GetM() > MaxQuorumValue:
			return nil, fmt.Errorf("quorum value %d for %q outside 2..%d", q.GetM(), q.GetService(), MaxQuorumValue)
		}
		if _, dup := s.quorum[q.GetService()]; dup {
			return nil, fmt.Errorf("duplicate quorum service %q", q.GetService())
		}
		s.quorum[q.GetService()] = q.GetM()
	}

	if n := len(snap.GetQuorumTokens()); n > MaxQuorumTokens {
		return nil, fmt.Errorf("%d quorum tokens, at most %d", n, MaxQuorumTokens)
	}
	for _, t := range snap.GetQuorumTokens() {
		id := t.GetId()
		switch {
		case id == "" || len(id) > MaxQuorumTokenIDLen:
			return nil, fmt.Errorf("quorum token id %q", id)
		case !validService(t.GetService()):
			return nil, fmt.Errorf("quorum token %q: unknown service %q", id, t.GetService())
		case t.GetRequester() == "":
			return nil, fmt.Errorf("quorum token %q: no requester", id)
		case len(t.GetChallenge()) != QuorumChallengeSize:
			return nil, fmt.Errorf("quorum token %q: challenge of %d bytes", id, len(t.GetChallenge()))
		case !slices.IsSorted(t.GetApprovers()) || len(slices.Compact(slices.Clone(t.GetApprovers()))) != len(t.GetApprovers()):
			return nil, fmt.Errorf("quorum token %q: approvers not sorted and distinct", id)
		}
		if _, dup := s.tokens[id]; dup {
			return nil, fmt.Errorf("duplicate quorum token %q", id)
		}
		s.tokens[id] = t
	}

	if err := s.restoreRequests(snap.GetAppliedRequests()); err != nil {
		return nil, err
	}
	return s, nil
}

// sortedValues returns m's values sorted by compare.
func sortedValues[K comparable, V any](m map[K]V, compare func(a, b V) int) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, compare)
	return out
}
