package keydb_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// t0 is the fixtures' clock, in Unix seconds.
const t0 int64 = 1_900_000_000

func challenge(b byte) []byte { return bytes.Repeat([]byte{b}, keydb.QuorumChallengeSize) }

func tokenCmd(requester, id, service string, issuedAt int64) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateQuorumToken{CreateQuorumToken: &hsmfsmv1.CreateQuorumToken{
		Id: id, Service: service, Requester: requester, Challenge: challenge(1), IssuedAtUnix: issuedAt}}}
}

func approveCmd(id, approver string, now int64) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ApproveQuorumToken{ApproveQuorumToken: &hsmfsmv1.ApproveQuorumToken{
		Id: id, Approver: approver, NowUnix: now, ApproverPublicKeyDer: []byte("k-" + approver)}}}
}

func createUserWithToken(actor, name, token string, now int64) *hsmfsmv1.Command {
	cmd := createUserCmd(actor, name, hsmv1.Role_ROLE_CRYPTO_USER)
	cmd.GetCreateUser().QuorumTokenId, cmd.GetCreateUser().NowUnix = token, now
	return cmd
}

// quorumHarness is the active fixture with quorum keys for both admins and
// the "user" service at 2.
func quorumHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, stageActive)
	h.mustOK(quorumKeyCmd(admin, []byte("k-"+admin)))
	h.mustOK(quorumKeyCmd(officer, []byte("k-"+officer)))
	h.mustOK(quorumCmd(admin, keydb.ServiceUser, 2))
	return h
}

// approved issues token id to admin at issuedAt, approved by both admins.
func (h *harness) approved(id, service string, issuedAt int64) {
	h.t.Helper()
	h.mustOK(tokenCmd(admin, id, service, issuedAt))
	h.mustOK(approveCmd(id, admin, issuedAt))
	h.mustOK(approveCmd(id, officer, issuedAt))
}

func TestQuorumTokenRules(t *testing.T) {
	type step struct {
		cmd  *hsmfsmv1.Command
		want hsmfsmv1.Code
		msg  string // a substring of the result's message
	}
	tests := []struct {
		name  string
		setup func(h *harness)
		steps []step
	}{
		{"no token", nil, []step{{createUserWithToken(admin, "dave", "", t0), codeDenied, "quorum token required"}}},
		{"unknown token", nil, []step{{createUserWithToken(admin, "dave", "qt-none", t0), codeDenied, "not found"}}},
		{"one approval", func(h *harness) {
			h.mustOK(tokenCmd(admin, "qt-1", keydb.ServiceUser, t0))
			h.mustOK(approveCmd("qt-1", admin, t0))
		}, []step{{createUserWithToken(admin, "dave", "qt-1", t0+1), codeDenied, "not enough approvals (1 of 2)"}}},
		{"two approvals, used once", func(h *harness) { h.approved("qt-1", keydb.ServiceUser, t0) }, []step{
			{createUserWithToken(admin, "dave", "qt-1", t0+600), codeOK, ""},
			{createUserWithToken(admin, "erin", "qt-1", t0+600), codeDenied, "not found"},
		}},
		{"a failed command keeps its token", func(h *harness) { h.approved("qt-1", keydb.ServiceUser, t0) }, []step{
			{createUserWithToken(admin, alice, "qt-1", t0), codeExists, ""},
			{createUserWithToken(admin, "dave", "qt-1", t0), codeOK, ""},
		}},
		{"expired", func(h *harness) { h.approved("qt-1", keydb.ServiceUser, t0) }, []step{
			{createUserWithToken(admin, "dave", "qt-1", t0+601), codeDenied, "quorum token expired"},
			{approveCmd("qt-1", admin, t0+601), codeDenied, "expired"},
		}},
		{"another service's token", func(h *harness) { h.approved("qt-1", keydb.ServiceQuorum, t0) }, []step{
			{createUserWithToken(admin, "dave", "qt-1", t0), codeDenied, `for the "quorum" service`},
		}},
		{"another admin's token", func(h *harness) { h.approved("qt-1", keydb.ServiceUser, t0) }, []step{
			{createUserWithToken(officer, "dave", "qt-1", t0), codeDenied, `issued to "admin"`},
		}},
		{"a deleted approver no longer counts", func(h *harness) {
			h.approved("qt-new", keydb.ServiceUser, t0)
			create := createUserCmd(admin, "third", hsmv1.Role_ROLE_ADMIN)
			create.GetCreateUser().QuorumTokenId, create.GetCreateUser().NowUnix = "qt-new", t0
			h.mustOK(create)
			h.mustOK(quorumKeyCmd("third", []byte("k-third")))
			h.mustOK(tokenCmd(admin, "qt-1", keydb.ServiceUser, t0))
			h.mustOK(approveCmd("qt-1", admin, t0))
			h.mustOK(approveCmd("qt-1", "third", t0))
			h.approved("qt-del", keydb.ServiceUser, t0)
			del := deleteUserCmd(admin, "third")
			del.GetDeleteUser().QuorumTokenId, del.GetDeleteUser().NowUnix = "qt-del", t0
			h.mustOK(del)
		}, []step{{createUserWithToken(admin, "dave", "qt-1", t0), codeDenied, "(1 of 2)"}}},
		{"approvals", func(h *harness) { h.mustOK(tokenCmd(admin, "qt-1", keydb.ServiceUser, t0)) }, []step{
			{approveCmd("qt-1", alice, t0), codeDenied, "only an admin"},
			{approveCmd("qt-none", admin, t0), codeNotFound, ""},
			{&hsmfsmv1.Command{Command: &hsmfsmv1.Command_ApproveQuorumToken{ApproveQuorumToken: &hsmfsmv1.ApproveQuorumToken{
				Id: "qt-1", Approver: admin, NowUnix: t0, ApproverPublicKeyDer: []byte("stale key")}}}, codeDenied, "registered quorum key"},
			{approveCmd("qt-1", admin, t0), codeOK, ""},
			{approveCmd("qt-1", admin, t0), codeExists, "already approved"},
		}},
		{"token requests", nil, []step{
			{tokenCmd(alice, "qt-1", keydb.ServiceUser, t0), codeDenied, "only an admin"},
			{tokenCmd(admin, "qt-1", "cluster", t0), codeInvalid, "unknown quorum service"},
			{tokenCmd(admin, "", keydb.ServiceUser, t0), codeInvalid, "id"},
			{tokenCmd(admin, "qt-1", keydb.ServiceUser, 0), codeInvalid, "issue time"},
			{tokenCmd(admin, "qt-1", keydb.ServiceUser, t0), codeOK, ""},
			{tokenCmd(officer, "qt-1", keydb.ServiceUser, t0), codeExists, ""},
		}},
		{"quorum values need a quorum token", func(h *harness) {
			h.mustOK(quorumCmd(admin, keydb.ServiceQuorum, 2))
			h.approved("qt-user", keydb.ServiceUser, t0)
			h.approved("qt-quorum", keydb.ServiceQuorum, t0)
		}, []step{
			{quorumCmd(admin, keydb.ServiceUser, 1), codeDenied, "quorum token required"},
			{withToken(quorumCmd(admin, keydb.ServiceUser, 1), "qt-user"), codeDenied, `for the "user" service`},
			{withToken(quorumCmd(admin, keydb.ServiceUser, 1), "qt-quorum"), codeOK, ""},
			{createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), codeOK, ""},
		}},
		{"passwords", func(h *harness) { h.approved("qt-1", keydb.ServiceUser, t0) }, []step{
			{setPasswordCmd(alice, alice, "hash-new"), codeOK, ""},
			{setPasswordCmd(admin, alice, "hash-new"), codeDenied, "quorum token required"},
			{withToken(setPasswordCmd(admin, alice, "hash-new"), "qt-1"), codeOK, ""},
			{withToken(setPasswordCmd(admin, alice, "hash-new"), "qt-1"), codeDenied, "not found"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := quorumHarness(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			for i, s := range tt.steps {
				before := h.snapshot()
				res := h.apply(s.cmd)
				require.Equal(t, s.want, res.GetCode(), "step %d: %s", i, res.GetMessage())
				require.Contains(t, res.GetMessage(), s.msg, "step %d", i)
				if s.want != codeOK {
					require.True(t, proto.Equal(withoutIndex(t, before), withoutIndex(t, h.snapshot())),
						"step %d: a failed command changed the state", i)
				}
			}
		})
	}
}

// withoutIndex decodes a snapshot and clears its applied index.
func withoutIndex(t *testing.T, b []byte) *hsmfsmv1.Snapshot {
	t.Helper()
	s := new(hsmfsmv1.Snapshot)
	require.NoError(t, proto.Unmarshal(b, s))
	s.AppliedIndex = 0
	return s
}

// withToken sets the quorum token and clock of a user or quorum command.
func withToken(cmd *hsmfsmv1.Command, id string) *hsmfsmv1.Command {
	switch c := cmd.GetCommand().(type) {
	case *hsmfsmv1.Command_SetQuorumValue:
		c.SetQuorumValue.QuorumTokenId, c.SetQuorumValue.NowUnix = id, t0
	case *hsmfsmv1.Command_SetPassword:
		c.SetPassword.QuorumTokenId, c.SetPassword.NowUnix = id, t0
	}
	return cmd
}

// At most MaxQuorumTokens live tokens are held; creating a token drops the
// expired ones, the same on every replica.
func TestQuorumTokenLimit(t *testing.T) {
	h := quorumHarness(t)
	for i := range keydb.MaxQuorumTokens {
		h.mustOK(tokenCmd(admin, fmt.Sprintf("qt-%04d", i), keydb.ServiceUser, t0+int64(i%2)*10))
	}
	res := h.apply(tokenCmd(admin, "qt-over", keydb.ServiceUser, t0+600))
	require.Equal(t, codePrecondition, res.GetCode(), res.GetMessage())
	require.Equal(t, keydb.MaxQuorumTokens, len(h.db.QuorumTokens()))

	// At t0+605 the tokens issued at t0 have expired and are dropped.
	h.mustOK(tokenCmd(admin, "qt-late", keydb.ServiceUser, t0+605))
	tokens := h.db.QuorumTokens()
	require.Equal(t, keydb.MaxQuorumTokens/2+1, len(tokens))
	for _, tok := range tokens {
		require.GreaterOrEqual(t, tok.GetIssuedAtUnix(), t0+10)
	}

	// A replica restored from a snapshot continues identically.
	other := keydb.New()
	require.NoError(t, other.Restore(h.snapshot()))
	next := tokenCmd(admin, "qt-next", keydb.ServiceUser, t0+2000)
	index := h.db.AppliedIndex() + 1
	requireProtoEqual(t, h.db.Apply(index, next), other.Apply(index, next))
	require.Equal(t, h.snapshot(), mustSnapshot(t, other))
	require.Equal(t, 1, len(other.QuorumTokens()))
}

func TestQuorumTokensInSnapshots(t *testing.T) {
	h := quorumHarness(t)
	h.approved("qt-b", keydb.ServiceUser, t0)
	h.mustOK(tokenCmd(admin, "qt-a", keydb.ServiceQuorum, t0))
	snap := h.snapshot()
	restored := keydb.New()
	require.NoError(t, restored.Restore(snap))
	requireProtosEqual(t, h.db.QuorumTokens(), restored.QuorumTokens())
	require.Equal(t, []string{admin, officer}, restored.QuorumTokens()[1].GetApprovers())
	// The restored replica accepts the token as the original does.
	cmd := createUserWithToken(admin, "dave", "qt-b", t0+1)
	index := h.db.AppliedIndex() + 1
	requireProtoEqual(t, h.db.Apply(index, cmd), restored.Apply(index, cmd))
	require.Equal(t, h.snapshot(), mustSnapshot(t, restored))

	valid := new(hsmfsmv1.Snapshot)
	require.NoError(t, proto.Unmarshal(snap, valid))
	edit := func(f func(s *hsmfsmv1.Snapshot)) []byte {
		s := proto.CloneOf(valid)
		f(s)
		b, err := proto.Marshal(s)
		require.NoError(t, err)
		return b
	}
	bad := map[string][]byte{
		"duplicate token":    edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens = append(s.QuorumTokens, s.QuorumTokens[0]) }),
		"unknown service":    edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens[0].Service = "x" }),
		"short challenge":    edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens[0].Challenge = []byte("x") }),
		"unsorted approvers": edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens[1].Approvers = []string{officer, admin} }),
		"repeated approver":  edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens[1].Approvers = []string{admin, admin} }),
		"no requester":       edit(func(s *hsmfsmv1.Snapshot) { s.QuorumTokens[0].Requester = "" }),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, keydb.New().Restore(b), keydb.ErrSnapshotInvalid)
		})
	}
}

// PrepareRestore keeps users, keys and settings, makes the restoring HSM the
// only member, drops tokens and sets the applied index.
func TestPrepareRestore(t *testing.T) {
	h := richHarness(t)
	h.mustOK(tokenCmd(admin, "qt-1", keydb.ServiceUser, t0))
	first := member("hsm-new", 9)
	b, err := keydb.PrepareRestore(h.snapshot(), first, 4242)
	require.NoError(t, err)
	db := keydb.New()
	require.NoError(t, db.Restore(b))
	require.EqualValues(t, 4242, db.AppliedIndex())
	requireProtosEqual(t, []*hsmfsmv1.Member{first}, db.Members())
	require.Empty(t, db.QuorumTokens())
	requireProtosEqual(t, h.db.Users(), db.Users())
	requireProtosEqual(t, h.db.FindKeys(keydb.KeyFilter{}), db.FindKeys(keydb.KeyFilter{}))
	require.Equal(t, h.db.Cluster(), db.Cluster())
	require.EqualValues(t, 2, db.QuorumValue(keydb.ServiceQuorum))

	uninitialized := mustSnapshot(t, keydb.New())
	bad := []struct {
		name  string
		snap  []byte
		first *hsmfsmv1.Member
		want  error
	}{
		{"garbage", []byte{0xff, 0xff}, first, keydb.ErrSnapshotDecode},
		{"uninitialized cluster", uninitialized, first, keydb.ErrSnapshotInvalid},
		{"invalid first member", h.snapshot(), &hsmfsmv1.Member{NodeId: "x"}, keydb.ErrSnapshotInvalid},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keydb.PrepareRestore(tt.snap, tt.first, 1)
			require.ErrorIs(t, err, tt.want)
		})
	}
}
