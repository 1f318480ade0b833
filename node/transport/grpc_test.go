package transport_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node/transport"
)

// grpcPair starts a gRPC server (the health service) with the cluster's server TLS config and
// the server interceptors of serverFaults, and a client to it with the cluster's client TLS
// config and the client interceptors of clientFaults. The client names itself self and the
// server peer.
func grpcPair(t *testing.T, serverFaults, clientFaults *transport.Faults, self, peer string) healthpb.HealthClient {
	c := newCluster(t)
	srvTLS, cliTLS := transport.NewTLSConfigs(c.cert, c.ca.Cert, clusterID)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(srvTLS)),
		grpc.ChainUnaryInterceptor(serverFaults.UnaryServerInterceptor(nil)),
		grpc.ChainStreamInterceptor(serverFaults.StreamServerInterceptor(nil)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	peerOf := func(string) string { return peer }
	cc, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)),
		grpc.WithChainUnaryInterceptor(clientFaults.UnaryClientInterceptor(self, peerOf)),
		grpc.WithChainStreamInterceptor(clientFaults.StreamClientInterceptor(self, peerOf)),
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func TestGRPCInterceptors(t *testing.T) {
	const self, peer = "10.0.0.1:7000", "10.0.0.2:7000"
	tests := []struct {
		name  string
		fault func(server, client *transport.Faults)
		want  error // nil: the call succeeds
	}{
		{name: "no fault", fault: func(_, _ *transport.Faults) {}},
		{name: "client blocks the server", fault: func(_, c *transport.Faults) { c.Block(peer) }, want: transport.ErrBlocked},
		{name: "server blocks the client", fault: func(s, _ *transport.Faults) { s.Block(self) }, want: transport.ErrBlocked},
		{name: "client loses", fault: func(_, c *transport.Faults) { c.Loss(peer, 1) }, want: transport.ErrLost},
		{name: "server loses", fault: func(s, _ *transport.Faults) { s.Loss(self, 1) }, want: transport.ErrLost},
		{name: "unrelated block", fault: func(s, c *transport.Faults) { s.Block("10.0.0.3:7000"); c.Block("10.0.0.3:7000") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var server, client transport.Faults
			hc := grpcPair(t, &server, &client, self, peer)
			tt.fault(&server, &client)

			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
				require.ErrorContains(t, err, tt.want.Error())
			}

			// Streams get the same treatment.
			stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			}
		})
	}
}

func TestGRPCDelay(t *testing.T) {
	const self, peer = "10.0.0.1:7000", "10.0.0.2:7000"
	const d = 50 * time.Millisecond
	tests := []struct {
		name  string
		fault func(server, client *transport.Faults)
	}{
		{name: "client delays", fault: func(_, c *transport.Faults) { c.Delay(peer, d) }},
		{name: "server delays", fault: func(s, _ *transport.Faults) { s.Delay(self, d) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var server, client transport.Faults
			hc := grpcPair(t, &server, &client, self, peer)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}) // connect first
			require.NoError(t, err)

			tt.fault(&server, &client)
			start := time.Now()
			_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Since(start), d)
		})
	}
}

func TestClientInterceptorNamesSelf(t *testing.T) {
	var f transport.Faults
	cc, err := grpc.NewClient("passthrough:///peer", grpc.WithTransportCredentials(credentials.NewTLS(nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })

	var got []string
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		got = md.Get(transport.MetadataFrom)
		return nil
	}
	icpt := f.UnaryClientInterceptor("10.0.0.1:7000", func(target string) string {
		require.Equal(t, "passthrough:///peer", target)
		return "10.0.0.2:7000"
	})
	require.NoError(t, icpt(context.Background(), "/m", nil, nil, cc, invoker))
	require.Equal(t, []string{"10.0.0.1:7000"}, got)

	// The server side reads it back; calls without it are not from a node.
	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs(transport.MetadataFrom, "10.0.0.1:7000"))
	require.Equal(t, "10.0.0.1:7000", transport.PeerFromMetadata(in))
	require.Empty(t, transport.PeerFromMetadata(context.Background()))

	// A blocked peer is refused without calling the invoker, with an error that is both a
	// gRPC status and ErrBlocked.
	f.Block("10.0.0.2:7000")
	got = nil
	err = icpt(context.Background(), "/m", nil, nil, cc, invoker)
	require.ErrorIs(t, err, transport.ErrBlocked)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Nil(t, got)
}
