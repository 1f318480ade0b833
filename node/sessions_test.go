package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// ListUsers needs no session, as CloudHSM's "user list", and counts each
// user's sessions on the answering HSM. A session lives as long as the
// client connection that opened it: closing it (or the client dying) ends
// the session, on that HSM only.
func TestSessionsEndWithTheirConnection(t *testing.T) {
	c := nodetest.New(t, 2)
	c.CreateCryptoUser(0, "alice", userPassword)
	c.WaitConverged()
	ctx := context.Background()
	// alice's sessions on HSM i (the set-up's admin sessions are open too).
	sessions := func(i int) uint32 {
		t.Helper()
		resp, err := c.Client(i).ListUsers(ctx, &hsmv1.ListUsersRequest{})
		require.NoError(t, err, "ListUsers needs no session")
		names := []string{}
		for _, u := range resp.GetUsers() {
			names = append(names, u.GetUsername())
		}
		require.Contains(t, names, "alice")
		require.Contains(t, names, node.AdminUsername)
		return resp.GetSessions()["alice"]
	}
	require.Zero(t, sessions(0))

	conn := c.Conn(0)
	hsm := hsmv1.NewHsmServiceClient(conn)
	login := func() context.Context {
		resp, err := hsm.Login(ctx, &hsmv1.LoginRequest{Username: "alice", Password: userPassword, Role: hsmv1.Role_ROLE_CRYPTO_USER})
		require.NoError(t, err)
		return metadata.AppendToOutgoingContext(ctx, node.MetadataSession, resp.GetSession())
	}
	first, second := login(), login()
	require.Equal(t, uint32(2), sessions(0))
	require.Zero(t, sessions(1), "sessions are per HSM")

	// The token works from another connection while its own is open.
	other := c.Client(0)
	_, err := other.GenerateRandom(first, &hsmv1.GenerateRandomRequest{Length: 16})
	require.NoError(t, err)
	// Logout ends one session.
	_, err = hsm.Logout(second, &hsmv1.LogoutRequest{})
	require.NoError(t, err)
	require.Equal(t, uint32(1), sessions(0))

	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool { return sessions(0) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the session ends with its connection")
	_, err = other.GenerateRandom(first, &hsmv1.GenerateRandomRequest{Length: 16})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
}
