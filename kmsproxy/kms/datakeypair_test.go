package kms_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// checkKeyPair checks a data key pair: the private key parses as PKCS #8,
// is of the spec, matches the public key and signs what the public key
// verifies.
func checkKeyPair(t *testing.T, spec types.DataKeyPairSpec, privDER, pubDER []byte) {
	t.Helper()
	key, err := x509.ParsePKCS8PrivateKey(privDER)
	require.NoError(t, err)
	signer, isSigner := key.(crypto.Signer)
	require.True(t, isSigner)
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	require.NoError(t, err)
	require.Equal(t, pubDER, pub, "the private key matches the public key")
	digest := digestOf(crypto.SHA256, []byte("data key pair"))
	switch k := key.(type) {
	case *rsa.PrivateKey:
		want := map[types.DataKeyPairSpec]int{types.DataKeyPairSpecRsa2048: 2048, types.DataKeyPairSpecRsa3072: 3072, types.DataKeyPairSpecRsa4096: 4096}[spec]
		require.Equal(t, want, k.N.BitLen())
		require.NoError(t, k.Validate())
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest)
		require.NoError(t, err)
		parsed, err := x509.ParsePKIXPublicKey(pubDER)
		require.NoError(t, err)
		require.NoError(t, rsa.VerifyPKCS1v15(parsed.(*rsa.PublicKey), crypto.SHA256, digest, sig))
	case *ecdsa.PrivateKey:
		want := map[types.DataKeyPairSpec]string{types.DataKeyPairSpecEccNistP256: "P-256", types.DataKeyPairSpecEccNistP384: "P-384", types.DataKeyPairSpecEccNistP521: "P-521"}[spec]
		require.Equal(t, want, k.Curve.Params().Name)
		sig, err := ecdsa.SignASN1(rand.Reader, k, digest)
		require.NoError(t, err)
		parsed, err := x509.ParsePKIXPublicKey(pubDER)
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(parsed.(*ecdsa.PublicKey), digest, sig))
	default:
		t.Fatalf("unexpected key type %T", key)
	}
}

func TestDataKeyPairs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)
	ec := map[string]string{"purpose": "data key pair"}
	for _, spec := range []types.DataKeyPairSpec{
		types.DataKeyPairSpecRsa2048, types.DataKeyPairSpecRsa3072, types.DataKeyPairSpecRsa4096,
		types.DataKeyPairSpecEccNistP256, types.DataKeyPairSpecEccNistP384, types.DataKeyPairSpecEccNistP521,
	} {
		t.Run(string(spec), func(t *testing.T) {
			out, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: md.KeyId, KeyPairSpec: spec, EncryptionContext: ec})
			require.NoError(t, err)
			require.Equal(t, *md.Arn, *out.KeyId)
			require.Equal(t, spec, out.KeyPairSpec)
			require.Equal(t, *md.CurrentKeyMaterialId, *out.KeyMaterialId)
			checkKeyPair(t, spec, out.PrivateKeyPlaintext, out.PublicKey)
			// The encrypted private key is an ordinary ciphertext blob.
			dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext: ec})
			require.NoError(t, err)
			require.Equal(t, out.PrivateKeyPlaintext, dec.Plaintext)
			_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
			requireAPIError(t, err, "InvalidCiphertextException")
		})
	}

	t.Run("without plaintext", func(t *testing.T) {
		for _, spec := range []types.DataKeyPairSpec{types.DataKeyPairSpecRsa2048, types.DataKeyPairSpecEccNistP256} {
			out, err := e.kms.GenerateDataKeyPairWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyPairWithoutPlaintextInput{KeyId: md.Arn, KeyPairSpec: spec})
			require.NoError(t, err)
			require.Equal(t, spec, out.KeyPairSpec)
			dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
			require.NoError(t, err)
			checkKeyPair(t, spec, dec.Plaintext, out.PublicKey)
		}
		status, body := e.post("GenerateDataKeyPairWithoutPlaintext", `{"KeyId":"`+*md.KeyId+`","KeyPairSpec":"ECC_NIST_P256","Recipient":{}}`)
		require.Equal(t, 400, status, body)
		require.Contains(t, body, "SerializationException")
	})

	t.Run("no temporary key stays in the fleet", func(t *testing.T) {
		require.Empty(t, e.hsmKeys("hsmsim:kms-temporary"))
		require.Len(t, e.hsmKeys("hsmsim:kms-transport"), 2, "the transport key pair")
	})

	t.Run("errors", func(t *testing.T) {
		for _, spec := range []types.DataKeyPairSpec{types.DataKeyPairSpecEccSecgP256k1, types.DataKeyPairSpecSm2, types.DataKeyPairSpecEccNistEdwards25519} {
			_, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: md.KeyId, KeyPairSpec: spec})
			requireAPIError(t, err, "UnsupportedOperationException")
		}
		status, body := e.post("GenerateDataKeyPair", `{"KeyId":"`+*md.KeyId+`","KeyPairSpec":"RSA_1024"}`)
		require.Equal(t, 400, status)
		require.Contains(t, body, "keyPairSpec")
		signing := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
		hmacKey := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		for _, k := range []*types.KeyMetadata{signing, hmacKey} {
			_, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: k.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			requireAPIError(t, err, "InvalidKeyUsageException")
		}
		_, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: md.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256, DryRun: aws.Bool(true)})
		requireAPIError(t, err, "DryRunOperationException")
		for _, st := range []types.KeyState{types.KeyStateDisabled, types.KeyStatePendingDeletion} {
			k := e.createKey(nil)
			moveTo(t, e, *k.KeyId, st)
			want := cellDisabled
			if st == types.KeyStatePendingDeletion {
				want = cellPD
			}
			_, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: k.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			requireAPIError(t, err, want.code, *k.Arn+want.suffix)
			_, err = e.kms.GenerateDataKeyPairWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyPairWithoutPlaintextInput{KeyId: k.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			requireAPIError(t, err, want.code, *k.Arn+want.suffix)
		}
	})
}
