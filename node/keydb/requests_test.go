package keydb_test

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// requestID returns the n-th distinct request id.
func requestID(n uint64) []byte {
	id := make([]byte, keydb.RequestIDSize)
	id[0] = 0xa5 // never all zero
	binary.BigEndian.PutUint64(id[8:], n)
	return id
}

// withID returns a copy of cmd that carries the request id.
func withID(cmd *hsmfsmv1.Command, id []byte) *hsmfsmv1.Command {
	return with(cmd, func(c *hsmfsmv1.Command) { c.RequestId = id })
}

// stateOf returns the database's snapshot, decoded, without its applied
// index: what must not change when a duplicate is applied.
func stateOf(t *testing.T, db *keydb.DB) *hsmfsmv1.Snapshot {
	t.Helper()
	s := new(hsmfsmv1.Snapshot)
	require.NoError(t, proto.Unmarshal(mustSnapshot(t, db), s))
	s.AppliedIndex = 0
	return s
}

// TestRequestDeduplication applies a command with a request id, then
// commands with the same id: a retry gets the first result and changes
// nothing; an id reused for another request is refused.
func TestRequestDeduplication(t *testing.T) {
	id := requestID(1)
	tests := []struct {
		name string
		// setup runs before the first command.
		setup func(h *harness)
		first *hsmfsmv1.Command
		// between runs after the first command, without a request id.
		between func(h *harness)
		// again is the command applied with the same id.
		again *hsmfsmv1.Command
		// code is the first result's code; reused says again is another
		// request, refused with INVALID_ARGUMENT.
		code   hsmfsmv1.Code
		reused bool
	}{
		{name: "create key", first: aesKeyCmd(alice, "k1"), again: aesKeyCmd(alice, "k1"), code: codeOK},
		{name: "create key, retry with other material", first: aesKeyCmd(alice, "k1"),
			// A retried creation carries new material and record ids: the
			// node generates them again for every attempt.
			again: createKeyCmd(alice, aesTemplate("k1"), []byte("other sealed material")), code: codeOK},
		{name: "create pair", first: ecPairCmd(bob, "p1"), again: ecPairCmd(bob, "p1"), code: codeOK},
		{name: "delete key", first: deleteKeyCmd(alice, aliceKey), again: deleteKeyCmd(alice, aliceKey), code: codeOK},
		{name: "refusal is remembered", first: shareCmd(alice, aliceKey, "dave"),
			// dave exists by the retry, but the request was refused.
			between: func(h *harness) { h.mustOK(createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER)) },
			again:   shareCmd(alice, aliceKey, "dave"), code: codeNotFound},
		{name: "denied is remembered", first: deleteKeyCmd(bob, aliceKey), again: deleteKeyCmd(bob, aliceKey), code: codeDenied},
		{name: "create user", first: createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER),
			again: createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), code: codeOK},
		{name: "command without actor", first: admitCmd(member("hsm-9", 9)), again: admitCmd(member("hsm-9", 9)), code: codeOK},
		{name: "reused for another command", first: aesKeyCmd(alice, "k1"), again: deleteKeyCmd(alice, aliceKey), code: codeOK, reused: true},
		{name: "reused by another actor", first: aesKeyCmd(alice, "k1"), again: aesKeyCmd(bob, "k1"), code: codeOK, reused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, stageActive)
			if tc.setup != nil {
				tc.setup(h)
			}
			first := h.apply(withID(tc.first, id))
			require.Equal(t, tc.code, first.GetCode(), first.GetMessage())
			if tc.between != nil {
				tc.between(h)
			}
			before := stateOf(t, h.db)
			counts := h.db.Counts()

			// Replay answers as Apply will, without applying.
			replayed, replayIndex, replayOK := h.db.Replay(withID(tc.again, id))
			require.Equal(t, !tc.reused, replayOK)
			if replayOK {
				requireProtoEqual(t, first, replayed)
				require.Less(t, replayIndex, h.index+1)
			}
			_, _, noID := h.db.Replay(tc.again)
			require.False(t, noID, "a command without a request id replays nothing")

			again := h.apply(withID(tc.again, id))
			if tc.reused {
				require.Equal(t, codeInvalid, again.GetCode(), again.GetMessage())
				require.Contains(t, again.GetMessage(), "request id")
			} else {
				requireProtoEqual(t, first, again)
			}
			requireProtoEqual(t, before, stateOf(t, h.db))
			require.Equal(t, counts, h.db.Counts())
			require.Equal(t, h.index, h.db.AppliedIndex(), "the applied index moves")

			// The table still holds the first command's result, and the
			// handle counter did not move.
			res, index, found := h.db.AppliedRequest(id)
			require.True(t, found)
			require.Less(t, index, h.index)
			requireProtoEqual(t, first, res)
			next := h.mustOK(aesKeyCmd(carol, "after"))
			require.Equal(t, before.GetNextHandle(), next.GetHandle(), "a duplicate takes no handle")
		})
	}

	t.Run("malformed id", func(t *testing.T) {
		for _, bad := range [][]byte{{1}, make([]byte, keydb.RequestIDSize+1)} {
			h := newHarness(t, stageActive)
			before := stateOf(t, h.db)
			res := h.apply(withID(aesKeyCmd(alice, "k1"), bad))
			require.Equal(t, codeInvalid, res.GetCode(), res.GetMessage())
			requireProtoEqual(t, before, stateOf(t, h.db))
		}
	})

	t.Run("returns copies", func(t *testing.T) {
		h := newHarness(t, stageActive)
		first := h.apply(withID(aesKeyCmd(alice, "k1"), id))
		first.Handle = 999
		again := h.apply(withID(aesKeyCmd(alice, "k1"), id))
		again.Message = "changed"
		res, _, _ := h.db.AppliedRequest(id)
		require.NotEqual(t, uint64(999), res.GetHandle())
		require.Empty(t, res.GetMessage())
	})
}

// TestRequestEviction fills the table beyond MaxAppliedRequests: the oldest
// ids by index go first, a forgotten id applies again, and two databases
// fed the same commands encode to the same bytes, before and after a
// restore.
func TestRequestEviction(t *testing.T) {
	const extra = 5
	build := func() *harness {
		h := newHarness(t, stageActive)
		// The first ids create keys, so that their re-application shows.
		for i := range uint64(extra) {
			h.mustOK(withID(aesKeyCmd(alice, ""), requestID(i)))
		}
		for i := uint64(extra); i < keydb.MaxAppliedRequests+extra; i++ {
			h.mustOK(withID(resetFailuresCmd(bob), requestID(i)))
		}
		return h
	}
	a, b := build(), build()
	snapA := a.snapshot()
	require.Equal(t, snapA, b.snapshot(), "same commands, same bytes")

	decoded := new(hsmfsmv1.Snapshot)
	require.NoError(t, proto.Unmarshal(snapA, decoded))
	require.Len(t, decoded.GetAppliedRequests(), keydb.MaxAppliedRequests)
	require.Equal(t, requestID(extra), decoded.GetAppliedRequests()[0].GetRequestId(), "the oldest kept is the first not evicted")
	for i := range uint64(extra) {
		_, _, found := a.db.AppliedRequest(requestID(i))
		require.False(t, found, "id %d is evicted", i)
	}
	_, _, found := a.db.AppliedRequest(requestID(extra))
	require.True(t, found)

	// A restored copy behaves the same: it keeps the table and its order.
	restored := keydb.New()
	require.NoError(t, restored.Restore(snapA))
	require.Equal(t, snapA, mustSnapshot(t, restored))
	keys := a.db.Counts().Keys
	for _, cmd := range []*hsmfsmv1.Command{
		withID(aesKeyCmd(alice, ""), requestID(0)),         // forgotten: applied again
		withID(resetFailuresCmd(bob), requestID(extra)),    // remembered, then evicted by the next
		withID(aesKeyCmd(alice, ""), requestID(1<<40)),     // new: evicts id extra
		withID(aesKeyCmd(alice, ""), requestID(1<<40)),     // duplicate
		withID(resetFailuresCmd(bob), requestID(extra)),    // forgotten now: applied again
		withID(resetFailuresCmd(bob), requestID(extra+10)), // remembered
	} {
		index := a.db.AppliedIndex() + 1
		a.index = index
		requireProtoEqual(t, a.db.Apply(index, cmd), restored.Apply(index, cmd))
	}
	require.Equal(t, keys+2, a.db.Counts().Keys, "the forgotten and the new id created one key each")
	require.Equal(t, a.snapshot(), mustSnapshot(t, restored))
}

// TestRequestsInSnapshots checks that Restore keeps the table (a retry
// after a restart answers from it) and PrepareRestore drops it (a restored
// cluster is a new cluster).
func TestRequestsInSnapshots(t *testing.T) {
	h := newHarness(t, stageActive)
	first := h.mustOK(withID(aesKeyCmd(alice, "k1"), requestID(1)))
	snap := h.snapshot()

	t.Run("restore keeps", func(t *testing.T) {
		db := keydb.New()
		require.NoError(t, db.Restore(snap))
		res, _, found := db.AppliedRequest(requestID(1))
		require.True(t, found)
		requireProtoEqual(t, first, res)
		counts := db.Counts()
		requireProtoEqual(t, first, db.Apply(h.index+1, withID(aesKeyCmd(alice, "k1"), requestID(1))))
		require.Equal(t, counts, db.Counts())
	})

	t.Run("prepare restore drops", func(t *testing.T) {
		prepared, err := keydb.PrepareRestore(snap, member("hsm-new", 9), 7)
		require.NoError(t, err)
		db := keydb.New()
		require.NoError(t, db.Restore(prepared))
		_, _, found := db.AppliedRequest(requestID(1))
		require.False(t, found)
		res := db.Apply(8, withID(aesKeyCmd(alice, "k2"), requestID(1)))
		require.Equal(t, codeOK, res.GetCode(), res.GetMessage())
		require.NotEqual(t, first.GetHandle(), res.GetHandle(), "the id is new to the restored cluster")
	})
}
