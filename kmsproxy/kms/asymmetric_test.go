package kms_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"hash"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// signingCase is one signing algorithm: its hash, and how Go's crypto
// verifies its signatures.
type signingCase struct {
	alg  types.SigningAlgorithmSpec
	hash crypto.Hash
	// verify checks sig over digest with the public key pub.
	verify func(pub any, h crypto.Hash, digest, sig []byte) error
}

func verifyPSS(pub any, h crypto.Hash, digest, sig []byte) error {
	return rsa.VerifyPSS(pub.(*rsa.PublicKey), h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

func verifyPKCS1(pub any, h crypto.Hash, digest, sig []byte) error {
	return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), h, digest, sig)
}

func verifyECDSA(pub any, _ crypto.Hash, digest, sig []byte) error {
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest, sig) {
		return fmt.Errorf("ECDSA signature does not verify")
	}
	return nil
}

var rsaSigningCases = []signingCase{
	{types.SigningAlgorithmSpecRsassaPssSha256, crypto.SHA256, verifyPSS},
	{types.SigningAlgorithmSpecRsassaPssSha384, crypto.SHA384, verifyPSS},
	{types.SigningAlgorithmSpecRsassaPssSha512, crypto.SHA512, verifyPSS},
	{types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256, verifyPKCS1},
	{types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, crypto.SHA384, verifyPKCS1},
	{types.SigningAlgorithmSpecRsassaPkcs1V15Sha512, crypto.SHA512, verifyPKCS1},
}

// signingSpecs are the SIGN_VERIFY key specs and the algorithms AWS pairs
// with each.
var signingSpecs = []struct {
	spec  types.KeySpec
	cases []signingCase
}{
	{types.KeySpecRsa2048, rsaSigningCases},
	{types.KeySpecRsa3072, rsaSigningCases},
	{types.KeySpecRsa4096, rsaSigningCases},
	{types.KeySpecEccNistP256, []signingCase{{types.SigningAlgorithmSpecEcdsaSha256, crypto.SHA256, verifyECDSA}}},
	{types.KeySpecEccNistP384, []signingCase{{types.SigningAlgorithmSpecEcdsaSha384, crypto.SHA384, verifyECDSA}}},
	{types.KeySpecEccNistP521, []signingCase{{types.SigningAlgorithmSpecEcdsaSha512, crypto.SHA512, verifyECDSA}}},
}

func digestOf(h crypto.Hash, msg []byte) []byte {
	d := h.New()
	d.Write(msg)
	return d.Sum(nil)
}

// publicKey fetches a key's public key through GetPublicKey and parses it.
func (e *env) publicKey(keyID string) (any, *kmssdk.GetPublicKeyOutput) {
	e.t.Helper()
	out, err := e.kms.GetPublicKey(ctx, &kmssdk.GetPublicKeyInput{KeyId: aws.String(keyID)})
	require.NoError(e.t, err)
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	require.NoError(e.t, err)
	return pub, out
}

// hsmKeys returns the fleet's HSM keys labelled with a key's ARN.
func (e *env) hsmKeys(arn string) []*hsmv1.KeyAttributes {
	e.t.Helper()
	session := e.fleet.Login(0, fleetUser, fleetPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	found, err := e.fleet.Client(0).FindKeys(session, &hsmv1.FindKeysRequest{Label: arn})
	require.NoError(e.t, err)
	return found.GetKeys()
}

func TestAsymmetricSigning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	msg := []byte("the message to sign")
	for _, sp := range signingSpecs {
		t.Run(string(sp.spec), func(t *testing.T) {
			md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: sp.spec, KeyUsage: types.KeyUsageTypeSignVerify, Description: aws.String("signer")})
			require.Equal(t, sp.spec, md.KeySpec)
			require.Equal(t, types.KeyUsageTypeSignVerify, md.KeyUsage)
			require.Equal(t, types.KeyStateEnabled, md.KeyState)
			require.Empty(t, md.EncryptionAlgorithms)
			require.Empty(t, md.MacAlgorithms)
			var algs []types.SigningAlgorithmSpec
			for _, c := range sp.cases {
				algs = append(algs, c.alg)
			}
			require.Equal(t, algs, md.SigningAlgorithms)
			require.Nil(t, md.CurrentKeyMaterialId, "AWS reports it for symmetric keys only")

			// The pair is in the fleet: the private half non-extractable,
			// for signing; both labelled with the ARN.
			hk := e.hsmKeys(*md.Arn)
			require.Len(t, hk, 2)
			for _, k := range hk {
				require.Equal(t, fleetUser, k.GetOwner())
				if k.GetClass() == hsmv1.KeyClass_KEY_CLASS_PRIVATE {
					require.False(t, k.GetExtractable())
					require.True(t, k.GetSign())
					require.False(t, k.GetDecrypt() || k.GetUnwrap())
				}
			}

			pub, pk := e.publicKey(*md.KeyId)
			require.Equal(t, sp.spec, pk.KeySpec)
			require.Equal(t, types.KeyUsageTypeSignVerify, pk.KeyUsage)
			require.Equal(t, algs, pk.SigningAlgorithms)
			require.Empty(t, pk.EncryptionAlgorithms)
			require.Equal(t, *md.Arn, *pk.KeyId)

			for _, c := range sp.cases {
				t.Run(string(c.alg), func(t *testing.T) {
					digest := digestOf(c.hash, msg)
					for _, mt := range []struct {
						typ   types.MessageType
						input []byte
					}{{types.MessageTypeRaw, msg}, {types.MessageTypeDigest, digest}} {
						out, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: mt.input, MessageType: mt.typ, SigningAlgorithm: c.alg})
						require.NoError(t, err, mt.typ)
						require.Equal(t, *md.Arn, *out.KeyId)
						require.Equal(t, c.alg, out.SigningAlgorithm)
						// Go's crypto verifies the HSM's signature.
						require.NoError(t, c.verify(pub, c.hash, digest, out.Signature), mt.typ)
						// KMS verifies it, as RAW and as DIGEST alike.
						for _, again := range []struct {
							typ   types.MessageType
							input []byte
						}{{types.MessageTypeRaw, msg}, {types.MessageTypeDigest, digest}} {
							v, err := e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: again.input, MessageType: again.typ,
								Signature: out.Signature, SigningAlgorithm: c.alg})
							require.NoError(t, err)
							require.True(t, v.SignatureValid)
							require.Equal(t, c.alg, v.SigningAlgorithm)
						}
						// A changed signature or message fails, as an exception.
						bad := bytes.Clone(out.Signature)
						bad[len(bad)/2] ^= 1
						_, err = e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: bad, SigningAlgorithm: c.alg})
						requireAPIError(t, err, "KMSInvalidSignatureException")
						_, err = e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: []byte("another message"), Signature: out.Signature, SigningAlgorithm: c.alg})
						requireAPIError(t, err, "KMSInvalidSignatureException")
					}
					// A digest of the wrong length.
					_, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: digest[1:], MessageType: types.MessageTypeDigest, SigningAlgorithm: c.alg})
					requireAPIError(t, err, "ValidationException", "Digest is invalid length for algorithm "+string(c.alg))
				})
			}

			// Algorithms of another family, and ECDSA hashes of another curve.
			other := types.SigningAlgorithmSpecEcdsaSha256
			if sp.cases[0].alg == other {
				other = types.SigningAlgorithmSpecEcdsaSha384
			}
			_, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: other})
			requireAPIError(t, err, "InvalidKeyUsageException", string(other))
			_, err = e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecSm2dsa})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, MessageType: types.MessageTypeExternalMu, SigningAlgorithm: sp.cases[0].alg})
			requireAPIError(t, err, "ValidationException", "EXTERNAL_MU")
			// A signing key neither encrypts nor makes data keys.
			_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: msg, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			requireAPIError(t, err, "InvalidKeyUsageException", "SIGN_VERIFY")
			_, err = e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: sp.cases[0].alg, DryRun: aws.Bool(true)})
			requireAPIError(t, err, "DryRunOperationException")
		})
	}

	t.Run("a signature of another key", func(t *testing.T) {
		md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
		mine, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		sig, err := ecdsa.SignASN1(rand.Reader, mine, digestOf(crypto.SHA256, msg))
		require.NoError(t, err)
		_, err = e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		requireAPIError(t, err, "KMSInvalidSignatureException")
		_, err = e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: []byte("not DER"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		requireAPIError(t, err, "KMSInvalidSignatureException")
	})

	t.Run("symmetric keys", func(t *testing.T) {
		md := e.createKey(nil)
		_, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
		requireAPIError(t, err, "InvalidKeyUsageException", "ENCRYPT_DECRYPT")
		_, err = e.kms.GetPublicKey(ctx, &kmssdk.GetPublicKeyInput{KeyId: md.KeyId})
		requireAPIError(t, err, "UnsupportedOperationException", "no public key")
		status, body := e.post("Sign", fmt.Sprintf(`{"KeyId":%q,"Message":"bXNn"}`, *md.KeyId))
		require.Equal(t, 400, status)
		require.Contains(t, body, "signingAlgorithm")
	})

	t.Run("key states", func(t *testing.T) {
		for _, st := range []types.KeyState{types.KeyStateDisabled, types.KeyStatePendingDeletion} {
			md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
			sig, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
			require.NoError(t, err)
			moveTo(t, e, *md.KeyId, st)
			want := cellDisabled
			if st == types.KeyStatePendingDeletion {
				want = cellPD
			}
			for name, call := range map[string]func() error{
				"Sign": func() error {
					_, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
					return err
				},
				"Verify": func() error {
					_, err := e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: sig.Signature, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
					return err
				},
				"GetPublicKey": func() error {
					_, err := e.kms.GetPublicKey(ctx, &kmssdk.GetPublicKeyInput{KeyId: md.KeyId})
					return err
				},
			} {
				err := call()
				require.Error(t, err, name)
				requireAPIError(t, err, want.code, *md.Arn+want.suffix)
			}
			require.Equal(t, st, e.describe(*md.KeyId).KeyState)
		}
	})
}

// encryptionSpecs are the RSA ENCRYPT_DECRYPT specs and their largest
// plaintexts for RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256 (AWS's table).
var encryptionSpecs = []struct {
	spec            types.KeySpec
	maxSHA1, max256 int
}{
	{types.KeySpecRsa2048, 214, 190},
	{types.KeySpecRsa3072, 342, 318},
	{types.KeySpecRsa4096, 470, 446},
}

func TestAsymmetricEncryption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sym := e.createKey(nil)
	for _, sp := range encryptionSpecs {
		t.Run(string(sp.spec), func(t *testing.T) {
			md := e.createKey(&kmssdk.CreateKeyInput{KeySpec: sp.spec})
			require.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage, "ENCRYPT_DECRYPT is the default usage")
			require.Equal(t, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecRsaesOaepSha256}, md.EncryptionAlgorithms)
			require.Empty(t, md.SigningAlgorithms)
			for _, k := range e.hsmKeys(*md.Arn) {
				if k.GetClass() == hsmv1.KeyClass_KEY_CLASS_PRIVATE {
					require.False(t, k.GetExtractable())
					require.True(t, k.GetDecrypt())
					require.False(t, k.GetSign() || k.GetUnwrap())
				}
			}
			pubAny, pk := e.publicKey(*md.Arn)
			require.Equal(t, md.EncryptionAlgorithms, pk.EncryptionAlgorithms)
			pub := pubAny.(*rsa.PublicKey)

			for _, c := range []struct {
				alg  types.EncryptionAlgorithmSpec
				hash func() hash.Hash
				max  int
			}{
				{types.EncryptionAlgorithmSpecRsaesOaepSha1, sha1.New, sp.maxSHA1},
				{types.EncryptionAlgorithmSpecRsaesOaepSha256, sha256.New, sp.max256},
			} {
				t.Run(string(c.alg), func(t *testing.T) {
					pt := bytes.Repeat([]byte{0x5a}, c.max)
					enc, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: pt, EncryptionAlgorithm: c.alg})
					require.NoError(t, err)
					require.Equal(t, c.alg, enc.EncryptionAlgorithm)
					require.Len(t, enc.CiphertextBlob, pub.Size(), "raw RSA-OAEP, no header")
					dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: c.alg})
					require.NoError(t, err)
					require.Equal(t, pt, dec.Plaintext)
					require.Equal(t, *md.Arn, *dec.KeyId)
					require.Equal(t, c.alg, dec.EncryptionAlgorithm)

					// A ciphertext made offline with the public key decrypts.
					offline, err := rsa.EncryptOAEP(c.hash(), rand.Reader, pub, []byte("made offline"), nil)
					require.NoError(t, err)
					dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: offline, EncryptionAlgorithm: c.alg})
					require.NoError(t, err)
					require.Equal(t, "made offline", string(dec.Plaintext))

					// AWS's plaintext limit.
					_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: append(pt, 0), EncryptionAlgorithm: c.alg})
					requireAPIError(t, err, "ValidationException", fmt.Sprintf("at most %d bytes", c.max))
					// Tampered ciphertext, or the other algorithm.
					bad := bytes.Clone(enc.CiphertextBlob)
					bad[3] ^= 1
					_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: bad, EncryptionAlgorithm: c.alg})
					requireAPIError(t, err, "InvalidCiphertextException")
					otherAlg := types.EncryptionAlgorithmSpecRsaesOaepSha256
					if c.alg == otherAlg {
						otherAlg = types.EncryptionAlgorithmSpecRsaesOaepSha1
					}
					_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: otherAlg})
					requireAPIError(t, err, "InvalidCiphertextException")

					// ReEncrypt to a symmetric key and back.
					re, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceKeyId: md.KeyId,
						SourceEncryptionAlgorithm: c.alg, DestinationKeyId: sym.KeyId})
					require.NoError(t, err)
					require.Equal(t, *md.Arn, *re.SourceKeyId)
					require.Equal(t, c.alg, re.SourceEncryptionAlgorithm)
					back, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: re.CiphertextBlob, DestinationKeyId: md.KeyId,
						DestinationEncryptionAlgorithm: c.alg})
					require.NoError(t, err)
					require.Equal(t, c.alg, back.DestinationEncryptionAlgorithm)
					require.Nil(t, back.DestinationKeyMaterialId)
					dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: back.CiphertextBlob, EncryptionAlgorithm: c.alg})
					require.NoError(t, err)
					require.Equal(t, pt, dec.Plaintext)
				})
			}

			// The algorithm is required (SYMMETRIC_DEFAULT, the default, is
			// not the key's), the encryption context refused, and the blob
			// names no key.
			_, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
			requireAPIError(t, err, "InvalidKeyUsageException", "SYMMETRIC_DEFAULT")
			_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256,
				EncryptionContext: map[string]string{"a": "b"}})
			requireAPIError(t, err, "ValidationException", "EncryptionContext")
			enc, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			require.NoError(t, err)
			_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
			requireAPIError(t, err, "InvalidCiphertextException")
			_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
			requireAPIError(t, err, "InvalidKeyUsageException", "ENCRYPT_DECRYPT")
			_, err = e.kms.GenerateDataKeyWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes128})
			requireAPIError(t, err, "InvalidKeyUsageException")
			_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob,
				EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, DryRun: aws.Bool(true)})
			requireAPIError(t, err, "DryRunOperationException")
			// A symmetric blob given to an asymmetric key does not decrypt.
			blob := e.encrypt(*sym.KeyId, []byte("sym"), nil)
			_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, CiphertextBlob: blob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			requireAPIError(t, err, "InvalidCiphertextException")
		})
	}
}
