package client

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// TestEncodeCall checks that a queued call's encoding, which a batch sends
// as it is, is exactly proto.Marshal's encoding of a BatchRequest holding
// that one call, for every request a Batch serves, with and without an
// index; and that other messages are refused.
func TestEncodeCall(t *testing.T) {
	enc := &hsmv1.EncryptRequest{Handle: 7, Plaintext: []byte("pt"), Aad: []byte("aad")}
	dec := &hsmv1.DecryptRequest{Handle: 7, Ciphertext: []byte("ct")}
	rnd, empty := &hsmv1.GenerateRandomRequest{Length: 32}, &hsmv1.GenerateRandomRequest{}
	sig := &hsmv1.SignRequest{Handle: 3, Message: []byte("m")}
	ver := &hsmv1.VerifyRequest{Handle: 3, Message: []byte("m"), Signature: []byte("s")}
	mac := &hsmv1.GenerateMacRequest{Handle: 4, Message: []byte("m")}
	vmac := &hsmv1.VerifyMacRequest{Handle: 4, Message: []byte("m"), Mac: []byte("t")}
	tests := []struct {
		name string
		args proto.Message
		call *hsmv1.BatchCall
	}{
		{"encrypt", enc, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_Encrypt{Encrypt: enc}}},
		{"decrypt", dec, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_Decrypt{Decrypt: dec}}},
		{"random", rnd, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_GenerateRandom{GenerateRandom: rnd}}},
		{"empty random", empty, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_GenerateRandom{GenerateRandom: empty}}},
		{"sign", sig, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_Sign{Sign: sig}}},
		{"verify", ver, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_Verify{Verify: ver}}},
		{"mac", mac, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_GenerateMac{GenerateMac: mac}}},
		{"verify mac", vmac, &hsmv1.BatchCall{Request: &hsmv1.BatchCall_VerifyMac{VerifyMac: vmac}}},
	}
	for _, tc := range tests {
		for _, index := range []uint64{0, 1, 1 << 40} {
			call := proto.CloneOf(tc.call)
			call.MinIndex = index
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hsmv1.BatchRequest{Calls: []*hsmv1.BatchCall{call}})
			require.NoError(t, err)
			got, ok, err := encodeCall(index, tc.args)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, want, got, "%s, index %d", tc.name, index)

			var back hsmv1.BatchRequest
			require.NoError(t, proto.Unmarshal(append(got, got...), &back))
			require.Len(t, back.GetCalls(), 2, "encodings concatenate into a request")
			require.True(t, proto.Equal(call, back.GetCalls()[1]))
		}
	}
	for _, args := range []any{&hsmv1.GenerateSymmetricKeyRequest{}, &hsmv1.BatchRequest{}, "not a message", nil} {
		_, ok, err := encodeCall(1, args)
		require.NoError(t, err)
		require.False(t, ok, "%T", args)
	}
}
