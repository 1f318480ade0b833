package node_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// TestBatch checks that an HSM serves each call of a Batch exactly as the
// call alone: the same answer or the same status, in the batch's session,
// with the call's own index, and that it refuses malformed batches.
func TestBatch(t *testing.T) {
	c := nodetest.New(t, 3)
	f := c.Followers()[0].Index
	c.CreateCryptoUser(f, "alice", userPassword)
	c.WaitConverged()
	alice := loginCU(t, c, f, "alice", userPassword)
	aes := alice.createAES(t, "batch")
	sealed := alice.encrypt(t, aes, []byte("sealed"))

	// Each call, and the same call's result when made alone.
	type alone struct {
		call *hsmv1.BatchCall
		run  func(context.Context) (proto.Message, error)
	}
	encrypt := &hsmv1.EncryptRequest{Handle: aes, Mechanism: gcm, Plaintext: []byte("in a batch"), Aad: []byte("aad")}
	decrypt := &hsmv1.DecryptRequest{Handle: aes, Mechanism: gcm, Ciphertext: sealed, Aad: []byte("aad")}
	missing := &hsmv1.EncryptRequest{Handle: 1 << 40, Mechanism: gcm, Plaintext: []byte("x")}
	badAAD := &hsmv1.DecryptRequest{Handle: aes, Mechanism: gcm, Ciphertext: sealed, Aad: []byte("other")}
	random := &hsmv1.GenerateRandomRequest{Length: 16}
	badRandom := &hsmv1.GenerateRandomRequest{Length: 0}
	calls := []alone{
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_Encrypt{Encrypt: encrypt}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.Encrypt(ctx, encrypt) }},
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_Decrypt{Decrypt: decrypt}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.Decrypt(ctx, decrypt) }},
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_Encrypt{Encrypt: missing}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.Encrypt(ctx, missing) }},
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_Decrypt{Decrypt: badAAD}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.Decrypt(ctx, badAAD) }},
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_GenerateRandom{GenerateRandom: random}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.GenerateRandom(ctx, random) }},
		{&hsmv1.BatchCall{Request: &hsmv1.BatchCall_GenerateRandom{GenerateRandom: badRandom}},
			func(ctx context.Context) (proto.Message, error) { return alice.cl.GenerateRandom(ctx, badRandom) }},
	}
	batch := &hsmv1.BatchRequest{}
	for _, call := range calls {
		batch.Calls = append(batch.Calls, call.call)
	}

	// requireSameAsAlone checks each result against its call made alone
	// in ctx. Encrypt and GenerateRandom answers are random: for those
	// only the sizes are compared.
	requireSameAsAlone := func(t *testing.T, ctx context.Context, results []*hsmv1.BatchResult) {
		t.Helper()
		require.Len(t, results, len(calls))
		for i, call := range calls {
			want, err := call.run(ctx)
			res := results[i]
			if err != nil {
				require.Equal(t, uint32(status.Code(err)), res.GetCode(), "call %d: %v", i, err)
				require.Equal(t, status.Convert(err).Message(), res.GetMessage(), "call %d", i)
				require.Nil(t, res.GetResponse(), "call %d: a failed call has no response", i)
				continue
			}
			require.Zero(t, res.GetCode(), "call %d: %s", i, res.GetMessage())
			switch r := res.GetResponse().(type) {
			case *hsmv1.BatchResult_Encrypt:
				require.Len(t, r.Encrypt.GetCiphertext(), len(want.(*hsmv1.EncryptResponse).GetCiphertext()), "call %d", i)
				require.Equal(t, encrypt.GetPlaintext(), alice.decrypt(t, aes, r.Encrypt.GetCiphertext()), "call %d", i)
			case *hsmv1.BatchResult_GenerateRandom:
				require.Len(t, r.GenerateRandom.GetRandom(), len(want.(*hsmv1.GenerateRandomResponse).GetRandom()), "call %d", i)
			case *hsmv1.BatchResult_Decrypt:
				require.True(t, proto.Equal(want, r.Decrypt), "call %d: %v, want %v", i, r.Decrypt, want)
			default:
				t.Fatalf("call %d: unexpected response %T", i, r)
			}
		}
	}

	t.Run("each call answered as alone", func(t *testing.T) {
		resp, err := alice.cl.Batch(alice.ctx, batch)
		require.NoError(t, err)
		requireSameAsAlone(t, alice.ctx, resp.GetResults())
	})
	t.Run("without a session each call is refused as alone", func(t *testing.T) {
		resp, err := alice.cl.Batch(context.Background(), batch)
		require.NoError(t, err)
		requireSameAsAlone(t, context.Background(), resp.GetResults())
		for _, res := range resp.GetResults() {
			require.Equal(t, uint32(codes.Unauthenticated), res.GetCode())
		}
	})
	t.Run("a call waits for its own index only", func(t *testing.T) {
		ahead := &hsmv1.BatchCall{MinIndex: 1 << 40, Request: &hsmv1.BatchCall_Encrypt{Encrypt: encrypt}}
		resp, err := alice.cl.Batch(alice.ctx, &hsmv1.BatchRequest{Calls: append([]*hsmv1.BatchCall{ahead}, batch.GetCalls()...)})
		require.NoError(t, err)
		require.Equal(t, uint32(codes.Unavailable), resp.GetResults()[0].GetCode(),
			"an index this replica never reaches: %s", resp.GetResults()[0].GetMessage())
		requireSameAsAlone(t, alice.ctx, resp.GetResults()[1:])
	})

	tooMany := &hsmv1.BatchRequest{}
	for range node.MaxBatchCalls + 1 {
		tooMany.Calls = append(tooMany.Calls, calls[4].call)
	}
	refusals := []struct {
		name  string
		batch *hsmv1.BatchRequest
	}{
		{"empty", &hsmv1.BatchRequest{}},
		{"more than MaxBatchCalls", tooMany},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alice.cl.Batch(alice.ctx, tc.batch)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		})
	}
	t.Run("a call without a request", func(t *testing.T) {
		resp, err := alice.cl.Batch(alice.ctx, &hsmv1.BatchRequest{Calls: []*hsmv1.BatchCall{{}, calls[4].call}})
		require.NoError(t, err)
		require.Equal(t, uint32(codes.InvalidArgument), resp.GetResults()[0].GetCode())
		require.Zero(t, resp.GetResults()[1].GetCode(), "the other calls are served")
	})
	t.Run("full batch", func(t *testing.T) {
		full := &hsmv1.BatchRequest{Calls: tooMany.GetCalls()[:node.MaxBatchCalls]}
		resp, err := alice.cl.Batch(alice.ctx, full)
		require.NoError(t, err)
		require.Len(t, resp.GetResults(), node.MaxBatchCalls)
	})
}
