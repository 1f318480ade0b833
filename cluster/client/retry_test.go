package client

import (
	"context"
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
		name        string
		err         error
		read, write bool // retryable for a read, for a write
		conn        bool // marks the HSM unhealthy
	}{
		{"connection refused", unavailable(`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true, true, true},
		{"no such host", unavailable(`connection error: desc = "transport: Error while dialing: dial tcp: lookup hsm-9: no such host"`), true, true, true},
		{"handshake", unavailable(`connection error: desc = "transport: authentication handshake failed: client: the HSM's certificate is for \"x\""`), true, true, true},
		{"transport closing", unavailable("transport is closing"), true, true, true},
		{"broken mid-call", unavailable("error reading from server: EOF"), true, false, true},
		{"reset mid-call", unavailable("connection error: desc = \"read tcp: connection reset by peer\""), true, false, true},
		{"no leader", unavailable("no Raft leader: the cluster cannot accept writes now; retry: context deadline exceeded"), true, true, false},
		{"indeterminate", unavailable("leadership lost while the write was in flight; it may or may not have been applied"), false, false, false},
		{"replica behind", unavailable("replica behind the session's last write; retry"), true, false, false},
		{"session lost", status.Error(codes.Unauthenticated, "no valid session: log in first"), true, true, false},
		{"inner deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true, false, false},
		{"not found", status.Error(codes.NotFound, "key 7 not found"), false, false, false},
		{"permission denied", status.Error(codes.PermissionDenied, "permission denied"), false, false, false},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), false, false, false},
		{"internal", status.Error(codes.Internal, "internal error"), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			require.Equal(t, tc.read, retryable(ctx, false, tc.err), "read")
			require.Equal(t, tc.write, retryable(ctx, true, tc.err), "write")
			require.Equal(t, tc.conn, isConnectionError(tc.err), "connection error")
			dead, cancel := context.WithCancel(ctx)
			cancel()
			require.False(t, retryable(dead, false, tc.err), "never after the caller's context ended")
		})
	}
}

// TestWriteMethods checks the classification of every HsmService method:
// a method is a read only when listed here.
func TestWriteMethods(t *testing.T) {
	const hsmServicePrefix = "/hsm.v1.HsmService/"
	reads := map[string]bool{
		"ListUsers": true, "FindKeys": true, "GetAttributes": true, "Encrypt": true, "Decrypt": true,
		"Sign": true, "Verify": true, "GenerateMac": true, "VerifyMac": true, "WrapKey": true,
		"GenerateRandom": true, "ListQuorumTokens": true,
	}
	writes := []string{"CreateUser", "DeleteUser", "ChangePassword", "ActivateCluster", "GenerateSymmetricKey",
		"GenerateKeyPair", "SetAttribute", "ShareKey", "UnshareKey", "DeleteKey", "UnwrapKey"}
	methods := hsmv1.HsmService_ServiceDesc.Methods
	require.NotEmpty(t, methods)
	for _, m := range methods {
		require.Equal(t, !reads[m.MethodName], isWrite(hsmServicePrefix+m.MethodName), m.MethodName)
	}
	for _, m := range writes {
		require.True(t, isWrite(hsmServicePrefix+m), m)
	}
	require.True(t, isWrite("/hsm.v1.ClusterService/GetClusterStatus"), "other services are treated as writes")
}
