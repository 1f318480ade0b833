package kms_test

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// hmacSpecs are the HMAC key specs, their one algorithm and its MAC size.
var hmacSpecs = []struct {
	spec    types.KeySpec
	alg     types.MacAlgorithmSpec
	bits    uint32
	macSize int
}{
	{types.KeySpecHmac224, types.MacAlgorithmSpecHmacSha224, 224, 28},
	{types.KeySpecHmac256, types.MacAlgorithmSpecHmacSha256, 256, 32},
	{types.KeySpecHmac384, types.MacAlgorithmSpecHmacSha384, 384, 48},
	{types.KeySpecHmac512, types.MacAlgorithmSpecHmacSha512, 512, 64},
}

func TestHMACKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	msg := []byte("authenticate me")
	for _, sp := range hmacSpecs {
		t.Run(string(sp.spec), func(t *testing.T) {
			md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: sp.spec, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
			require.Equal(t, sp.spec, md.KeySpec)
			require.Equal(t, types.KeyUsageTypeGenerateVerifyMac, md.KeyUsage)
			require.Equal(t, []types.MacAlgorithmSpec{sp.alg}, md.MacAlgorithms)
			require.Empty(t, md.EncryptionAlgorithms)
			require.Empty(t, md.SigningAlgorithms)
			require.Equal(t, md.MacAlgorithms, e.describe(*md.Arn).MacAlgorithms)

			// A generic secret of the spec's size in the fleet, for MACs only.
			hk := e.hsmKeys(*md.Arn)
			require.Len(t, hk, 1)
			require.Equal(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, hk[0].GetType())
			require.Equal(t, sp.bits, hk[0].GetSizeBits())
			require.False(t, hk[0].GetExtractable())
			require.True(t, hk[0].GetSign() && hk[0].GetVerify())
			require.False(t, hk[0].GetEncrypt() || hk[0].GetDecrypt() || hk[0].GetWrap() || hk[0].GetUnwrap())

			out, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: sp.alg})
			require.NoError(t, err)
			require.Len(t, out.Mac, sp.macSize)
			require.Equal(t, *md.Arn, *out.KeyId)
			require.Equal(t, sp.alg, out.MacAlgorithm)
			again, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.Arn, Message: msg, MacAlgorithm: sp.alg})
			require.NoError(t, err)
			require.Equal(t, out.Mac, again.Mac, "HMAC is deterministic")

			v, err := e.kms.VerifyMac(ctx, &kmssdk.VerifyMacInput{KeyId: md.KeyId, Message: msg, Mac: out.Mac, MacAlgorithm: sp.alg})
			require.NoError(t, err)
			require.True(t, v.MacValid)
			require.Equal(t, *md.Arn, *v.KeyId)
			require.Equal(t, sp.alg, v.MacAlgorithm)

			bad := bytes.Clone(out.Mac)
			bad[0] ^= 1
			for name, in := range map[string]*kmssdk.VerifyMacInput{
				"changed MAC":     {KeyId: md.KeyId, Message: msg, Mac: bad, MacAlgorithm: sp.alg},
				"truncated MAC":   {KeyId: md.KeyId, Message: msg, Mac: out.Mac[:16], MacAlgorithm: sp.alg},
				"changed message": {KeyId: md.KeyId, Message: []byte("authenticate mE"), Mac: out.Mac, MacAlgorithm: sp.alg},
			} {
				_, err := e.kms.VerifyMac(ctx, in)
				require.Error(t, err, name)
				requireAPIError(t, err, "KMSInvalidMacException")
			}
			// Another HMAC key's MAC does not verify.
			other := e.createKey(&kmssdk.CreateKeyInput{KeySpec: sp.spec, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
			_, err = e.kms.VerifyMac(ctx, &kmssdk.VerifyMacInput{KeyId: other.KeyId, Message: msg, Mac: out.Mac, MacAlgorithm: sp.alg})
			requireAPIError(t, err, "KMSInvalidMacException")

			// The algorithm must be the spec's; an HMAC key does nothing else.
			for _, alg := range []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha224, types.MacAlgorithmSpecHmacSha512} {
				if alg == sp.alg {
					continue
				}
				_, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: alg})
				requireAPIError(t, err, "InvalidKeyUsageException", string(alg))
			}
			_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: msg})
			requireAPIError(t, err, "InvalidKeyUsageException", "GENERATE_VERIFY_MAC")
			_, err = e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.GetPublicKey(ctx, &kmssdk.GetPublicKeyInput{KeyId: md.KeyId})
			requireAPIError(t, err, "UnsupportedOperationException")
			_, err = e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: md.KeyId, NumberOfBytes: aws.Int32(16)})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: sp.alg, DryRun: aws.Bool(true)})
			requireAPIError(t, err, "DryRunOperationException")
		})
	}

	t.Run("errors", func(t *testing.T) {
		sym := e.createKey(nil)
		_, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: sym.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		requireAPIError(t, err, "InvalidKeyUsageException", "ENCRYPT_DECRYPT")
		md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		_, err = e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: make([]byte, 4097), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		requireAPIError(t, err, "ValidationException", "message")
		status, body := e.post("GenerateMac", `{"KeyId":"`+*md.KeyId+`","Message":"bXNn","MacAlgorithm":"HMAC_SHA_1"}`)
		require.Equal(t, 400, status)
		require.Contains(t, body, "macAlgorithm")
		mac, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		require.NoError(t, err)
		for _, st := range []types.KeyState{types.KeyStateDisabled, types.KeyStatePendingDeletion} {
			k := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
			moveTo(t, e, *k.KeyId, st)
			want := cellDisabled
			if st == types.KeyStatePendingDeletion {
				want = cellPD
			}
			_, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: k.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
			requireAPIError(t, err, want.code, *k.Arn+want.suffix)
			_, err = e.kms.VerifyMac(ctx, &kmssdk.VerifyMacInput{KeyId: k.KeyId, Message: msg, Mac: mac.Mac, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
			requireAPIError(t, err, want.code, *k.Arn+want.suffix)
		}
	})
}
