package node

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// MaxBatchCalls bounds the calls of one Batch.
const MaxBatchCalls = 256

// batchMethodKey is the context key under which a call of a Batch carries
// the full method name it would have alone (see grpcMethod).
type batchMethodKey struct{}

// Batch serves each call of the batch as the call's own RPC would be served,
// in the batch's session and with the call's own index: the same checks, the
// same answer, the same status, the same metrics. Calls whose index this
// replica has applied run one after the other; a call that must wait for
// its index runs on its own, so that it holds up none of the others.
func (s *hsmServer) Batch(ctx context.Context, req *hsmv1.BatchRequest) (*hsmv1.BatchResponse, error) {
	calls := req.GetCalls()
	if len(calls) == 0 || len(calls) > MaxBatchCalls {
		return nil, toStatus(invalid("a batch holds 1 to " + strconv.Itoa(MaxBatchCalls) + " calls, not " + strconv.Itoa(len(calls))))
	}
	md, _ := metadata.FromIncomingContext(ctx)
	results := make([]*hsmv1.BatchResult, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		if s.n.fsm.AppliedIndex() >= call.GetMinIndex() {
			results[i] = s.batchCall(ctx, md, call)
			continue
		}
		wg.Go(func() { results[i] = s.batchCall(ctx, md, call) })
	}
	wg.Wait()
	return &hsmv1.BatchResponse{Results: results}, nil
}

// batchCall serves one call of a Batch whose metadata is md.
func (s *hsmServer) batchCall(ctx context.Context, md metadata.MD, call *hsmv1.BatchCall) *hsmv1.BatchResult {
	start := time.Now()
	method, run := s.batchHandler(call)
	if run == nil {
		return &hsmv1.BatchResult{Code: uint32(codes.InvalidArgument), Message: "a batch call needs one of the batchable requests"}
	}
	cmd := md.Copy()
	if idx := call.GetMinIndex(); idx > 0 {
		cmd.Set(MetadataIndex, strconv.FormatUint(idx, 10))
	} else {
		cmd.Delete(MetadataIndex)
	}
	cctx := context.WithValue(metadata.NewIncomingContext(ctx, cmd), batchMethodKey{}, method)
	res, err := run(cctx)
	s.n.metrics.Observe(method, err, time.Since(start))
	if err != nil {
		st := status.Convert(err)
		return &hsmv1.BatchResult{Code: uint32(st.Code()), Message: st.Message()}
	}
	return res
}

// batchHandler returns the full method name of call's request and the
// handler that serves it as that method; a nil handler when the call holds
// no request the batch serves.
func (s *hsmServer) batchHandler(call *hsmv1.BatchCall) (string, func(context.Context) (*hsmv1.BatchResult, error)) {
	switch r := call.GetRequest().(type) {
	case *hsmv1.BatchCall_Encrypt:
		return hsmv1.HsmService_Encrypt_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.Encrypt(ctx, r.Encrypt)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_Encrypt{Encrypt: out}}, err
		}
	case *hsmv1.BatchCall_Decrypt:
		return hsmv1.HsmService_Decrypt_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.Decrypt(ctx, r.Decrypt)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_Decrypt{Decrypt: out}}, err
		}
	case *hsmv1.BatchCall_GenerateRandom:
		return hsmv1.HsmService_GenerateRandom_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.GenerateRandom(ctx, r.GenerateRandom)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_GenerateRandom{GenerateRandom: out}}, err
		}
	case *hsmv1.BatchCall_Sign:
		return hsmv1.HsmService_Sign_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.Sign(ctx, r.Sign)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_Sign{Sign: out}}, err
		}
	case *hsmv1.BatchCall_Verify:
		return hsmv1.HsmService_Verify_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.Verify(ctx, r.Verify)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_Verify{Verify: out}}, err
		}
	case *hsmv1.BatchCall_GenerateMac:
		return hsmv1.HsmService_GenerateMac_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.GenerateMac(ctx, r.GenerateMac)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_GenerateMac{GenerateMac: out}}, err
		}
	case *hsmv1.BatchCall_VerifyMac:
		return hsmv1.HsmService_VerifyMac_FullMethodName, func(ctx context.Context) (*hsmv1.BatchResult, error) {
			out, err := s.VerifyMac(ctx, r.VerifyMac)
			return &hsmv1.BatchResult{Response: &hsmv1.BatchResult_VerifyMac{VerifyMac: out}}, err
		}
	}
	return "", nil
}
