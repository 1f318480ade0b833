package client

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// TestRetryPolicy pins the retry policy of the package documentation, with
// the messages grpc-go and the node really produce.
func TestRetryPolicy(t *testing.T) {
	unavailable := func(msg string) error { return status.Error(codes.Unavailable, msg) }
	tests := []struct {
		name string
		err  error
		// known: retryable for a read and for a write (the Client
		// sends a request id, so the two are retried alike).
		known bool
		// other: retryable for a method the Client does not know.
		other bool
		// conn: marks the HSM unhealthy.
		conn bool
	}{
		{"connection refused", unavailable(`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true, true, true},
		{"no such host", unavailable(`connection error: desc = "transport: Error while dialing: dial tcp: lookup hsm-9: no such host"`), true, true, true},
		{"handshake", unavailable(`connection error: desc = "transport: authentication handshake failed: client: the HSM's certificate is for \"x\""`), true, true, true},
		{"transport closing", unavailable("transport is closing"), true, true, true},
		{"broken mid-call", unavailable("error reading from server: EOF"), true, false, true},
		{"reset mid-call", unavailable("connection error: desc = \"read tcp: connection reset by peer\""), true, false, true},
		{"no leader", unavailable("no Raft leader: the cluster cannot accept writes now; retry: context deadline exceeded"), true, true, false},
		{"indeterminate", unavailable("leadership lost while the write was in flight; it may or may not have been applied"), true, false, false},
		{"replica behind", unavailable("replica behind the session's last write; retry"), true, false, false},
		{"applied, not visible", status.Error(codes.Aborted, "the write was applied, but this HSM's replica has not caught up with it yet"), true, false, false},
		{"session lost", status.Error(codes.Unauthenticated, "no valid session: log in first"), true, true, false},
		{"inner deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true, false, false},
		{"not found", status.Error(codes.NotFound, "key 7 not found"), false, false, false},
		{"permission denied", status.Error(codes.PermissionDenied, "permission denied"), false, false, false},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), false, false, false},
		{"already exists", status.Error(codes.AlreadyExists, "key id exists"), false, false, false},
		{"internal", status.Error(codes.Internal, "internal error"), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			require.Equal(t, tc.known, retryable(ctx, kindRead, tc.err), "read")
			require.Equal(t, tc.known, retryable(ctx, kindWrite, tc.err), "write")
			require.Equal(t, tc.other, retryable(ctx, kindOther, tc.err), "other")
			require.Equal(t, tc.conn, isConnectionError(tc.err), "connection error")
			dead, cancel := context.WithCancel(ctx)
			cancel()
			for _, k := range []methodKind{kindRead, kindWrite, kindOther} {
				require.False(t, retryable(dead, k, tc.err), "never after the caller's context ended")
			}
		})
	}
}

// TestMethodKinds checks the classification of every HsmService method: a
// method is a read or a deduplicated write only when listed here, and
// every method of the service is one or the other (Login and Logout are
// the Client's own).
func TestMethodKinds(t *testing.T) {
	const hsmServicePrefix = "/hsm.v1.HsmService/"
	reads := []string{"ListUsers", "FindKeys", "GetAttributes", "Encrypt", "Decrypt", "Sign", "Verify",
		"GenerateMac", "VerifyMac", "WrapKey", "GenerateRandom", "Batch", "ListQuorumTokens"}
	writes := []string{"CreateUser", "DeleteUser", "ChangePassword", "ActivateCluster", "GenerateSymmetricKey",
		"GenerateKeyPair", "SetAttribute", "ShareKey", "UnshareKey", "DeleteKey", "UnwrapKey",
		"RegisterQuorumKey", "GenerateQuorumToken", "ApproveQuorumToken", "SetQuorumValue"}
	want := map[string]methodKind{"Login": kindOther, "Logout": kindOther}
	for _, m := range reads {
		want[m] = kindRead
	}
	for _, m := range writes {
		want[m] = kindWrite
	}
	methods := hsmv1.HsmService_ServiceDesc.Methods
	require.Len(t, methods, len(want), "a new HsmService method must be classified")
	for _, m := range methods {
		k, ok := want[m.MethodName]
		require.True(t, ok, "unclassified method %s", m.MethodName)
		require.Equal(t, k, kindOf(hsmServicePrefix+m.MethodName), m.MethodName)
	}
	require.Equal(t, kindOther, kindOf("/hsm.v1.ClusterService/GetClusterStatus"), "other services are unknown")
	require.Equal(t, kindOther, kindOf("/hsm.v1.HsmService/NotYetInvented"))
}

// TestNewRequestID checks the request id format the node accepts: 16
// random bytes in hexadecimal.
func TestNewRequestID(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		id, err := newRequestID()
		require.NoError(t, err)
		require.Len(t, id, 2*requestIDSize)
		_, err = hex.DecodeString(id)
		require.NoError(t, err)
		require.False(t, seen[id], "ids are unique")
		seen[id] = true
	}
}
