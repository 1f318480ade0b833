package transport_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/node/transport"
)

// BenchmarkUnaryServerInterceptor measures the fault interceptor alone around a handler that
// does nothing, with the metadata a customer's call carries (no MetadataFrom, so no faults
// apply) and with a peer's call, with an empty fault table and with a fault on another peer.
func BenchmarkUnaryServerInterceptor(b *testing.B) {
	client := metadata.Pairs(
		":authority", "127.0.0.1:9000", "content-type", "application/grpc", "user-agent", "grpc-go/1.80.0",
		"x-hsm-session", "0123456789abcdef0123456789abcdef", "x-hsm-index", "42",
		"x-hsm-request-id", "0123456789abcdef", "grpc-accept-encoding", "gzip",
	)
	fromPeer := metadata.Join(client, metadata.Pairs(transport.MetadataFrom, "127.0.0.1:7001"))
	handler := func(context.Context, any) (any, error) { return nil, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/hsm.v1.HsmService/Encrypt"}
	for _, tc := range []struct {
		name   string
		md     metadata.MD
		faults func(*transport.Faults)
	}{
		{"client", client, func(*transport.Faults) {}},
		{"peer", fromPeer, func(*transport.Faults) {}},
		{"client-faults-elsewhere", client, func(f *transport.Faults) { f.Block("127.0.0.1:7999") }},
		{"peer-faults-elsewhere", fromPeer, func(f *transport.Faults) { f.Block("127.0.0.1:7999") }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := new(transport.Faults)
			tc.faults(f)
			icpt := f.UnaryServerInterceptor(nil)
			ctx := metadata.NewIncomingContext(context.Background(), tc.md)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := icpt(ctx, nil, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
