package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// newRequestID returns a fresh request id as a client sends it.
func newRequestID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// withRequestID returns the session's context carrying the request id.
func withRequestID(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, node.MetadataRequestID, id)
}

// countLabel returns how many keys the session sees with label.
func countLabel(t testing.TB, s *userSession, label string) int {
	t.Helper()
	resp, err := s.cl.FindKeys(s.ctx, &hsmv1.FindKeysRequest{Label: label})
	require.NoError(t, err)
	return len(resp.GetKeys())
}

// TestIdempotentWrites sends writes twice with one request id, the second
// time through another HSM, as a client does that retries after an unknown
// outcome: each takes effect once and both calls get the same answer.
func TestIdempotentWrites(t *testing.T) {
	c := nodetest.New(t, 3)
	f := c.Followers()
	c.CreateCryptoUser(c.Leader().Index, "alice", userPassword)
	c.WaitConverged()
	a := loginCU(t, c, f[0].Index, "alice", userPassword)
	b := loginCU(t, c, f[1].Index, "alice", userPassword)
	leader := loginCU(t, c, c.Leader().Index, "alice", userPassword)

	t.Run("create key", func(t *testing.T) {
		id := newRequestID(t)
		var h1, h2 metadata.MD
		first, err := a.cl.GenerateSymmetricKey(withRequestID(a.ctx, id), aes256("idem-create"), grpc.Header(&h1))
		require.NoError(t, err)
		// The second attempt goes through another HSM, which may or may
		// not have applied the first yet: either way it proposes, and the
		// key database answers from its table.
		second, err := b.cl.GenerateSymmetricKey(withRequestID(b.ctx, id), aes256("idem-create"), grpc.Header(&h2))
		require.NoError(t, err)
		require.Equal(t, first.GetKey().GetHandle(), second.GetKey().GetHandle())
		require.True(t, proto.Equal(first.GetKey(), second.GetKey()), "the same key: %v\n%v", first.GetKey(), second.GetKey())
		require.Len(t, h2.Get(node.MetadataIndex), 1, "a retried write still returns an index")
		require.Equal(t, 1, countLabel(t, b, "idem-create"))
		require.Equal(t, 1, countLabel(t, leader, "idem-create"))

		// A new id is a new request.
		third, err := b.cl.GenerateSymmetricKey(withRequestID(b.ctx, newRequestID(t)), aes256("idem-create"))
		require.NoError(t, err)
		require.NotEqual(t, first.GetKey().GetHandle(), third.GetKey().GetHandle())
		require.Equal(t, 2, countLabel(t, b, "idem-create"))
	})

	t.Run("delete key", func(t *testing.T) {
		handle := a.createAES(t, "idem-delete")
		id := newRequestID(t)
		_, err := a.cl.DeleteKey(withRequestID(a.ctx, id), &hsmv1.DeleteKeyRequest{Handle: handle})
		require.NoError(t, err)
		// Once the other HSM has applied the deletion, the key is gone
		// there: the retry is answered from the table, not NotFound.
		c.WaitConverged()
		var header metadata.MD
		_, err = b.cl.DeleteKey(withRequestID(b.ctx, id), &hsmv1.DeleteKeyRequest{Handle: handle}, grpc.Header(&header))
		require.NoError(t, err)
		require.Len(t, header.Get(node.MetadataIndex), 1)
		// Without the id, deleting it again is an error.
		_, err = b.cl.DeleteKey(b.ctx, &hsmv1.DeleteKeyRequest{Handle: handle})
		requireCode(t, err, codes.NotFound)
	})

	t.Run("refusal is remembered", func(t *testing.T) {
		handle := a.createAES(t, "idem-share")
		id := newRequestID(t)
		share := &hsmv1.ShareKeyRequest{Handle: handle, Username: "dave"}
		_, err := a.cl.ShareKey(withRequestID(a.ctx, id), share)
		requireCode(t, err, codes.NotFound)
		c.CreateCryptoUser(c.Leader().Index, "dave", userPassword)
		c.WaitConverged()
		_, err = b.cl.ShareKey(withRequestID(b.ctx, id), share)
		requireCode(t, err, codes.NotFound, "the retry gets the first answer")
		_, err = b.cl.ShareKey(withRequestID(b.ctx, newRequestID(t)), share)
		require.NoError(t, err, "a new request succeeds")
	})

	t.Run("id reused for another request", func(t *testing.T) {
		id := newRequestID(t)
		handle := a.createAES(t, "idem-reuse")
		_, err := a.cl.SetAttribute(withRequestID(a.ctx, id), &hsmv1.SetAttributeRequest{Handle: handle,
			Attribute: &hsmv1.SetAttributeRequest_Label{Label: "idem-reuse-2"}})
		require.NoError(t, err)
		_, err = b.cl.GenerateSymmetricKey(withRequestID(b.ctx, id), aes256("idem-reuse-3"))
		st := requireCode(t, err, codes.InvalidArgument)
		require.Contains(t, st.Message(), "request id")
		require.Zero(t, countLabel(t, b, "idem-reuse-3"))
	})

	t.Run("quorum token", func(t *testing.T) {
		// The node draws the token's id for each attempt; the retry must
		// answer with the id of the token the first attempt created.
		admins := []*userSession{loginAdmin(t, c, f[0].Index), loginAdmin(t, c, f[1].Index)}
		id := newRequestID(t)
		var tokens []string
		for _, s := range admins {
			resp, err := s.cl.GenerateQuorumToken(withRequestID(s.ctx, id), &hsmv1.GenerateQuorumTokenRequest{Service: "user"})
			require.NoError(t, err)
			tokens = append(tokens, resp.GetToken().GetTokenId())
		}
		require.Equal(t, tokens[0], tokens[1])
		list, err := admins[1].cl.ListQuorumTokens(admins[1].ctx, &hsmv1.ListQuorumTokensRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetTokens(), 1)
		require.Equal(t, tokens[0], list.GetTokens()[0].GetTokenId())
	})

	t.Run("malformed", func(t *testing.T) {
		valid := newRequestID(t)
		tests := []struct {
			name string
			ids  []string
		}{
			{"empty", []string{""}},
			{"short", []string{valid[:30]}},
			{"long", []string{valid + "00"}},
			{"not hex", []string{strings.Repeat("zz", 16)}},
			{"sent twice", []string{valid, newRequestID(t)}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := a.ctx
				for _, id := range tc.ids {
					ctx = withRequestID(ctx, id)
				}
				_, err := a.cl.GenerateSymmetricKey(ctx, aes256("idem-malformed"))
				st := requireCode(t, err, codes.InvalidArgument)
				require.Contains(t, st.Message(), node.MetadataRequestID)
			})
		}
		require.Zero(t, countLabel(t, a, "idem-malformed"), "no malformed request created a key")
	})
}
