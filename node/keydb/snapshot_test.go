package keydb_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// richHarness returns an active fixture with shares, quorum settings, a
// locked user, members, a deleted key and remembered request ids.
func richHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, stageActive)
	h.mustOK(shareCmd(alice, aliceKey, carol))
	h.mustOK(shareCmd(alice, aliceKey, bob))
	h.mustOK(shareCmd(alice, alicePub, bob))
	h.mustOK(aesKeyCmd(bob, "bob-aes"))
	h.mustOK(ecPairCmd(carol, "carol-ec"))
	h.mustOK(deleteKeyCmd(carol, 6))
	h.mustOK(quorumKeyCmd(admin, []byte("k-admin")))
	h.mustOK(quorumKeyCmd(officer, []byte("k-officer")))
	h.mustOK(quorumCmd(admin, keydb.ServiceQuorum, 2))
	for range keydb.MaxLoginFailures {
		h.mustOK(loginFailureCmd(carol))
	}
	h.mustOK(loginFailureCmd(bob))
	h.mustOK(withID(admitCmd(member("hsm-2", 2)), requestID(1)))
	h.mustOK(withID(admitCmd(member("hsm-3", 3)), requestID(2)))
	return h
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := richHarness(t)
	snap := h.snapshot()
	require.Equal(t, snap, h.snapshot(), "snapshot bytes are stable")

	restored := keydb.New()
	require.NoError(t, restored.Restore(snap))
	require.Equal(t, snap, mustSnapshot(t, restored), "restore then snapshot gives the same bytes")

	require.Equal(t, h.db.Cluster(), restored.Cluster())
	requireProtosEqual(t, h.db.Users(), restored.Users())
	requireProtosEqual(t, h.db.FindKeys(keydb.KeyFilter{}), restored.FindKeys(keydb.KeyFilter{}))
	requireProtosEqual(t, h.db.Members(), restored.Members())
	require.Equal(t, h.db.Counts(), restored.Counts())
	require.Equal(t, h.db.AppliedIndex(), restored.AppliedIndex())
	require.EqualValues(t, 2, restored.QuorumValue(keydb.ServiceQuorum))
	for _, name := range []string{admin, alice, carol} {
		want, _ := h.db.User(name)
		got, found := restored.User(name)
		require.True(t, found)
		require.Equal(t, want.PasswordHash, got.PasswordHash)
		requireProtoEqual(t, want.Info, got.Info)
	}
	k, found := restored.Key(aliceKey)
	require.True(t, found)
	require.Equal(t, []byte("sealed-alice-aes"), k.SealedMaterial)

	// Both continue identically: the handle counter and the indexes came back.
	next := []*hsmfsmv1.Command{
		aesKeyCmd(bob, "after"),
		aesKeyCmd(bob, "bob-aes"), // duplicate id: the id index was rebuilt
		deleteUserCmd(admin, carol),
		deleteKeyCmd(carol, 5),
		deleteUserCmd(admin, carol),
	}
	var codes []hsmfsmv1.Code
	for _, c := range next {
		index := h.db.AppliedIndex() + 1
		a, b := h.db.Apply(index, c), restored.Apply(index, c)
		requireProtoEqual(t, a, b)
		codes = append(codes, a.GetCode())
	}
	require.Equal(t, []hsmfsmv1.Code{codeOK, codeExists, codePrecondition, codeOK, codeOK}, codes)
	require.Equal(t, h.snapshot(), mustSnapshot(t, restored))
}

func TestSnapshotEmpty(t *testing.T) {
	db := keydb.New()
	snap := mustSnapshot(t, db)
	restored := keydb.New()
	require.NoError(t, restored.Restore(snap))
	require.Equal(t, snap, mustSnapshot(t, restored))
	require.Equal(t, hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED, restored.Cluster().State)
}

func TestRestoreErrors(t *testing.T) {
	h := richHarness(t)
	valid := new(hsmfsmv1.Snapshot)
	require.NoError(t, proto.Unmarshal(h.snapshot(), valid))

	edit := func(f func(s *hsmfsmv1.Snapshot)) []byte {
		s := proto.CloneOf(valid)
		f(s)
		b, err := proto.Marshal(s)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, keydb.ErrSnapshotDecode},
		{"empty", nil, keydb.ErrSnapshotVersion},
		{"future version", edit(func(s *hsmfsmv1.Snapshot) { s.FormatVersion = 2 }), keydb.ErrSnapshotVersion},
		{"no cluster", edit(func(s *hsmfsmv1.Snapshot) { s.Cluster = nil }), keydb.ErrSnapshotInvalid},
		{"bad cluster state", edit(func(s *hsmfsmv1.Snapshot) { s.Cluster.State = 42 }), keydb.ErrSnapshotInvalid},
		{"next handle 0", edit(func(s *hsmfsmv1.Snapshot) { s.NextHandle = 0 }), keydb.ErrSnapshotInvalid},
		{"duplicate user", edit(func(s *hsmfsmv1.Snapshot) { s.Users = append(s.Users, s.Users[0]) }), keydb.ErrSnapshotInvalid},
		{"bad username", edit(func(s *hsmfsmv1.Snapshot) { s.Users[0].Info.Username = "a b" }), keydb.ErrSnapshotInvalid},
		{"user without info", edit(func(s *hsmfsmv1.Snapshot) { s.Users[0].Info = nil }), keydb.ErrSnapshotInvalid},
		{"duplicate key", edit(func(s *hsmfsmv1.Snapshot) { s.Keys = append(s.Keys, s.Keys[0]) }), keydb.ErrSnapshotInvalid},
		{"key beyond counter", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[0].Attributes.Handle = s.NextHandle }), keydb.ErrSnapshotInvalid},
		{"key without owner", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[0].Attributes.Owner = "ghost" }), keydb.ErrSnapshotInvalid},
		{"key owned by admin", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[0].Attributes.Owner = admin }), keydb.ErrSnapshotInvalid},
		{"key shared with ghost", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[0].Attributes.SharedUsers = []string{"ghost"} }), keydb.ErrSnapshotInvalid},
		{"broken pair", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[1].Attributes.PairHandle = 1 }), keydb.ErrSnapshotInvalid},
		{"duplicate id", edit(func(s *hsmfsmv1.Snapshot) { s.Keys[0].Attributes.Id = []byte("alice-ec") }), keydb.ErrSnapshotInvalid},
		{"duplicate member", edit(func(s *hsmfsmv1.Snapshot) { s.Members = append(s.Members, s.Members[0]) }), keydb.ErrSnapshotInvalid},
		{"quorum 1 stored", edit(func(s *hsmfsmv1.Snapshot) { s.Quorum[0].M = 1 }), keydb.ErrSnapshotInvalid},
		{"unknown quorum service", edit(func(s *hsmfsmv1.Snapshot) { s.Quorum[0].Service = "x" }), keydb.ErrSnapshotInvalid},
		{"short request id", edit(func(s *hsmfsmv1.Snapshot) { s.AppliedRequests[0].RequestId = []byte{1} }), keydb.ErrSnapshotInvalid},
		{"duplicate request id", edit(func(s *hsmfsmv1.Snapshot) { s.AppliedRequests[1].RequestId = s.AppliedRequests[0].RequestId }), keydb.ErrSnapshotInvalid},
		{"request without result", edit(func(s *hsmfsmv1.Snapshot) { s.AppliedRequests[0].Result = nil }), keydb.ErrSnapshotInvalid},
		{"requests out of order", edit(func(s *hsmfsmv1.Snapshot) {
			s.AppliedRequests[0], s.AppliedRequests[1] = s.AppliedRequests[1], s.AppliedRequests[0]
		}), keydb.ErrSnapshotInvalid},
		{"request beyond applied index", edit(func(s *hsmfsmv1.Snapshot) { s.AppliedRequests[1].Index = s.AppliedIndex + 1 }), keydb.ErrSnapshotInvalid},
		{"too many requests", edit(func(s *hsmfsmv1.Snapshot) {
			for i := range uint64(keydb.MaxAppliedRequests) {
				s.AppliedRequests = append(s.AppliedRequests, &hsmfsmv1.AppliedRequest{
					RequestId: requestID(100 + i), Index: s.AppliedIndex, Result: &hsmfsmv1.Result{Code: codeOK}})
			}
		}), keydb.ErrSnapshotInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := richHarness(t).db
			before := mustSnapshot(t, db)
			err := db.Restore(tt.data)
			require.ErrorIs(t, err, tt.want)
			require.Equal(t, before, mustSnapshot(t, db), "a failed restore changes nothing")
		})
	}
}

// TestDeterminism applies equivalent command sequences, differing only in
// the order of commands whose order does not matter, to two databases and
// compares the snapshots byte for byte.
func TestDeterminism(t *testing.T) {
	const nUsers, nKeys = 60, 200
	users := make([]string, nUsers)
	for i := range users {
		users[i] = fmt.Sprintf("cu-%03d", i)
	}
	temps := []string{"tmp-a", "tmp-b", "tmp-c"}
	build := func(seed uint64) []byte {
		rng := rand.New(rand.NewPCG(seed, seed))
		h := newHarness(t, stageActive)
		// Users in a random order.
		for _, i := range rng.Perm(nUsers) {
			h.mustOK(createUserCmd(admin, users[i], hsmv1.Role_ROLE_CRYPTO_USER))
		}
		// Keys in a fixed order (handles depend on it), owners fixed.
		for k := range nKeys {
			h.mustOK(aesKeyCmd(users[k%nUsers], fmt.Sprintf("key-%03d", k)))
		}
		// Shares in a random order: each key with 5 fixed users.
		type share struct {
			handle uint64
			owner  string
			user   string
		}
		var shares []share
		for k := range nKeys {
			for j := 1; j <= 5; j++ {
				shares = append(shares, share{uint64(4 + k), users[k%nUsers], users[(k+j*7)%nUsers]})
			}
		}
		rng.Shuffle(len(shares), func(i, j int) { shares[i], shares[j] = shares[j], shares[i] })
		for _, s := range shares {
			h.mustOK(shareCmd(s.owner, s.handle, s.user))
		}
		// Members and quorum keys in a random order.
		for _, i := range rng.Perm(10) {
			h.mustOK(admitCmd(member(fmt.Sprintf("hsm-m%d", i), byte(10+i))))
		}
		for _, i := range rng.Perm(nUsers) {
			h.mustOK(quorumKeyCmd(users[i], []byte("key-"+users[i])))
		}
		// Users that own nothing, given shares in a random order, then
		// deleted in a random order: their shares disappear everywhere.
		for _, i := range rng.Perm(len(temps)) {
			h.mustOK(createUserCmd(admin, temps[i], hsmv1.Role_ROLE_CRYPTO_USER))
		}
		var tempShares []share
		for k := range nKeys {
			tempShares = append(tempShares, share{uint64(4 + k), users[k%nUsers], temps[k%len(temps)]})
		}
		rng.Shuffle(len(tempShares), func(i, j int) { tempShares[i], tempShares[j] = tempShares[j], tempShares[i] })
		for _, s := range tempShares {
			h.mustOK(shareCmd(s.owner, s.handle, s.user))
		}
		for _, i := range rng.Perm(len(temps)) {
			h.mustOK(deleteUserCmd(admin, temps[i]))
		}
		return h.snapshot()
	}

	a, b := build(1), build(1)
	require.Equal(t, a, b, "same commands, same bytes")
	c, d := build(2), build(3)
	require.Equal(t, len(c), len(d))
	require.Equal(t, c, d, "order of order-independent commands does not show")
}
