package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node/metrics"
)

// BenchmarkUnaryServerInterceptor measures the interceptor alone around a handler that does
// nothing, for a call that succeeds and one that fails, from one goroutine and from many.
func BenchmarkUnaryServerInterceptor(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry())
	icpt := m.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: encrypt}
	denied := status.Error(codes.PermissionDenied, "no")
	ok := func(context.Context, any) (any, error) { return nil, nil }
	fail := func(context.Context, any) (any, error) { return nil, denied }
	ctx := context.Background()

	b.Run("ok", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = icpt(ctx, nil, info, ok)
		}
	})
	b.Run("error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = icpt(ctx, nil, info, fail)
		}
	})
	b.Run("ok-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = icpt(ctx, nil, info, ok)
			}
		})
	})
}
