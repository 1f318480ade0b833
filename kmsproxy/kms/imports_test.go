package kms_test

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// wrapper wraps key material the way AWS's documentation shows, with the
// openssl of the machine, in a directory of its own.
type wrapper struct {
	t   *testing.T
	dir string
}

func newWrapper(t *testing.T) *wrapper {
	t.Helper()
	_, err := exec.LookPath("openssl")
	require.NoError(t, err, "the BYOK tests wrap key material with openssl, as AWS's documentation does")
	return &wrapper{t: t, dir: t.TempDir()}
}

func (w *wrapper) path(name string) string { return filepath.Join(w.dir, name) }

func (w *wrapper) write(name string, b []byte) string {
	w.t.Helper()
	require.NoError(w.t, os.WriteFile(w.path(name), b, 0o600))
	return w.path(name)
}

func (w *wrapper) read(name string) []byte {
	w.t.Helper()
	b, err := os.ReadFile(w.path(name))
	require.NoError(w.t, err)
	return b
}

func (w *wrapper) openssl(args ...string) {
	w.t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	require.NoError(w.t, err, "openssl %v: %s", args, out)
}

// oaepMD is openssl's name of a wrapping algorithm's hash.
func oaepMD(alg types.AlgorithmSpec) string {
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaAesKeyWrapSha1:
		return "sha1"
	}
	return "sha256"
}

// wrap wraps material under the wrapping public key (DER) with alg:
// RSAES_OAEP as `openssl pkeyutl -encrypt -pubin -inkey wrapping.der
// -keyform DER -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
// -pkeyopt rsa_mgf1_md:sha256`; RSA_AES_KEY_WRAP as a fresh AES-256 key
// wrapping the material (`openssl enc -id-aes256-wrap-pad -iv A65959A6`),
// itself encrypted as above, the two concatenated.
func (w *wrapper) wrap(publicKey, material []byte, alg types.AlgorithmSpec) []byte {
	w.t.Helper()
	w.write("wrapping.der", publicKey)
	md := oaepMD(alg)
	rsaEncrypt := func(in, out string) {
		w.openssl("pkeyutl", "-encrypt", "-in", w.path(in), "-out", w.path(out), "-pubin", "-inkey", w.path("wrapping.der"), "-keyform", "DER",
			"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
	}
	w.write("material.bin", material)
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaesOaepSha256:
		rsaEncrypt("material.bin", "wrapped.bin")
		return w.read("wrapped.bin")
	}
	w.openssl("rand", "-out", w.path("aes-key.bin"), "32")
	w.openssl("enc", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(w.read("aes-key.bin")), "-iv", "A65959A6",
		"-in", w.path("material.bin"), "-out", w.path("material-wrapped.bin"))
	rsaEncrypt("aes-key.bin", "aes-key-wrapped.bin")
	return append(w.read("aes-key-wrapped.bin"), w.read("material-wrapped.bin")...)
}

// privateKey generates a private key with openssl and returns it as
// PKCS #8 DER (`openssl pkcs8 -topk8 -outform der -nocrypt`).
func (w *wrapper) privateKey(genpkeyArgs ...string) []byte {
	w.t.Helper()
	w.openssl(append(append([]string{"genpkey"}, genpkeyArgs...), "-out", w.path("private.pem"))...)
	w.openssl("pkcs8", "-topk8", "-outform", "der", "-nocrypt", "-in", w.path("private.pem"), "-out", w.path("private.der"))
	return w.read("private.der")
}

func (e *env) importParams(keyID string, alg types.AlgorithmSpec, spec types.WrappingKeySpec) *kmssdk.GetParametersForImportOutput {
	e.t.Helper()
	out, err := e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: aws.String(keyID), WrappingAlgorithm: alg, WrappingKeySpec: spec})
	require.NoError(e.t, err)
	return out
}

func (e *env) importMaterial(keyID string, p *kmssdk.GetParametersForImportOutput, wrapped []byte, validTo *time.Time) (*kmssdk.ImportKeyMaterialOutput, error) {
	in := &kmssdk.ImportKeyMaterialInput{KeyId: aws.String(keyID), ImportToken: p.ImportToken, EncryptedKeyMaterial: wrapped,
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}
	if validTo != nil {
		in.ExpirationModel, in.ValidTo = types.ExpirationModelTypeKeyMaterialExpires, validTo
	}
	return e.kms.ImportKeyMaterial(ctx, in)
}

func randomMaterial(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// openBlob decrypts a ciphertext blob offline with the key material: the
// body is AES-256-GCM under the material, the additional data the header
// and the canonical encryption context (kmsproxy/DESIGN.md). It proves
// the HSM encrypts with exactly the imported bytes.
func openBlob(t *testing.T, material, blob []byte, ec map[string]string) []byte {
	t.Helper()
	block, err := aes.NewCipher(material)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	aad := append([]byte(nil), blob[:21]...)
	var keys []string
	for k := range ec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(k)))
		aad = append(aad, k...)
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(ec[k])))
		aad = append(aad, ec[k]...)
	}
	body := blob[21:]
	pt, err := gcm.Open(nil, body[:12], body[12:], aad)
	require.NoError(t, err)
	return pt
}

// TestImportSymmetric is BYOK end to end: a symmetric key with imported
// material wrapped by openssl, reimport, deletion, expiry on the clock,
// expired and invalid tokens, and material for the wrong key.
func TestImportSymmetric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := newWrapper(t)
	md := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("byok")})
	require.Equal(t, types.OriginTypeExternal, md.Origin)
	require.Equal(t, types.KeyStatePendingImport, md.KeyState)
	require.False(t, md.Enabled)
	require.Nil(t, md.CurrentKeyMaterialId)
	require.Empty(t, e.hsmKeys(*md.Arn), "no material until it is imported")
	_, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
	requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending import.")
	_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: md.KeyId})
	requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending import.")

	material := randomMaterial(t, 32)
	p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
	require.Equal(t, *md.Arn, *p.KeyId)
	require.WithinDuration(t, e.clock.Now().Add(24*time.Hour), *p.ParametersValidTo, 5*time.Second)
	pub, err := x509.ParsePKIXPublicKey(p.PublicKey)
	require.NoError(t, err)
	require.Equal(t, 2048, pub.(*rsa.PublicKey).N.BitLen())
	wk := e.hsmKeys(*md.Arn + "/import")
	require.Len(t, wk, 2, "the wrapping key pair is in the fleet")
	for _, k := range wk {
		if k.GetClass() == hsmv1.KeyClass_KEY_CLASS_PRIVATE {
			require.False(t, k.GetExtractable())
			require.True(t, k.GetUnwrap())
			require.False(t, k.GetDecrypt() || k.GetSign())
		}
	}

	var blobs [][]byte
	t.Run("import", func(t *testing.T) {
		out, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256), nil)
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *out.KeyId)
		require.Regexp(t, materialIDRE, *out.KeyMaterialId)
		d := e.describe(*md.KeyId)
		require.Equal(t, types.KeyStateEnabled, d.KeyState)
		require.Equal(t, types.ExpirationModelTypeKeyMaterialDoesNotExpire, d.ExpirationModel)
		require.Nil(t, d.ValidTo)
		require.Equal(t, *out.KeyMaterialId, *d.CurrentKeyMaterialId)
		hk := e.hsmKeys(*md.Arn)
		require.Len(t, hk, 1)
		require.Equal(t, hsmv1.KeyType_KEY_TYPE_AES, hk[0].GetType())
		require.False(t, hk[0].GetExtractable())

		ec := map[string]string{"tenant": "byok"}
		blob := e.encrypt(*md.KeyId, []byte("imported"), ec)
		blobs = append(blobs, blob)
		require.Equal(t, []byte("imported"), openBlob(t, material, blob, ec), "the HSM encrypts with the imported bytes")
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec})
		require.NoError(t, err)
		require.Equal(t, "imported", string(dec.Plaintext))
		require.Equal(t, *out.KeyMaterialId, *dec.KeyMaterialId)

		all := e.rotations(*md.KeyId, types.IncludeKeyMaterialAllKeyMaterial, 10)
		require.Len(t, all, 1)
		require.Equal(t, types.ImportStateImported, all[0].ImportState)
		require.Equal(t, types.KeyMaterialStateCurrent, all[0].KeyMaterialState)
		require.Equal(t, types.ExpirationModelTypeKeyMaterialDoesNotExpire, all[0].ExpirationModel)
		require.Empty(t, e.rotations(*md.KeyId, "", 10))
	})

	t.Run("material for the wrong key", func(t *testing.T) {
		_, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, randomMaterial(t, 32), types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		// Not AES-256 material at all.
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, randomMaterial(t, 16), types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		require.Len(t, e.hsmKeys(*md.Arn), 1, "refused material leaves no HSM key")
		// Wrapped with another algorithm than the token's, or not wrapped.
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha1), nil)
		requireAPIError(t, err, "InvalidCiphertextException")
		_, err = e.importMaterial(*md.KeyId, p, randomMaterial(t, 256), nil)
		requireAPIError(t, err, "InvalidCiphertextException")
		// Material for another key, imported into this one: the other key's
		// token does not fit.
		other := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal})
		op := e.importParams(*other.KeyId, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa3072)
		_, err = e.importMaterial(*md.KeyId, op, w.wrap(op.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "InvalidImportTokenException")
		_, err = e.importMaterial(*md.KeyId, &kmssdk.GetParametersForImportOutput{ImportToken: []byte("not a token")}, []byte("x"), nil)
		requireAPIError(t, err, "InvalidImportTokenException")
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
	})

	t.Run("delete and reimport", func(t *testing.T) {
		out, err := e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *out.KeyId)
		require.NotEmpty(t, *out.KeyMaterialId)
		require.Equal(t, types.KeyStatePendingImport, e.describe(*md.KeyId).KeyState)
		require.Empty(t, e.hsmKeys(*md.Arn), "the material is gone from the fleet")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blobs[0], EncryptionContext: map[string]string{"tenant": "byok"}})
		requireAPIError(t, err, "KMSInvalidStateException", " is pending import.")
		all := e.rotations(*md.KeyId, types.IncludeKeyMaterialAllKeyMaterial, 10)
		require.Equal(t, types.ImportStatePendingImport, all[0].ImportState)
		// Again: no effect.
		_, err = e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: md.KeyId})
		require.NoError(t, err)

		// Other material is refused, the same comes back, with an expiry.
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, randomMaterial(t, 32), types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		validTo := e.clock.Now().Add(2 * time.Hour)
		re, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256), &validTo)
		require.NoError(t, err)
		require.Equal(t, *out.KeyMaterialId, *re.KeyMaterialId, "the same material keeps its id")
		d := e.describe(*md.KeyId)
		require.Equal(t, types.KeyStateEnabled, d.KeyState)
		require.Equal(t, types.ExpirationModelTypeKeyMaterialExpires, d.ExpirationModel)
		require.WithinDuration(t, validTo, *d.ValidTo, time.Second)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blobs[0], EncryptionContext: map[string]string{"tenant": "byok"}})
		require.NoError(t, err)
		require.Equal(t, "imported", string(dec.Plaintext))
	})

	t.Run("expiry", func(t *testing.T) {
		e.advance(time.Hour)
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
		e.advance(time.Hour + time.Second)
		d := e.describe(*md.KeyId)
		require.Equal(t, types.KeyStatePendingImport, d.KeyState)
		require.Nil(t, d.ValidTo)
		require.Empty(t, e.hsmKeys(*md.Arn))
		// Reimported (the token is still valid: 22 h left).
		_, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256), nil)
		require.NoError(t, err)
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
	})

	t.Run("expired and superseded tokens", func(t *testing.T) {
		e.advance(22*time.Hour + time.Second)
		_, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "ExpiredImportTokenException")
		require.Empty(t, e.hsmKeys(*md.Arn+"/import"), "the sweeper deleted the expired wrapping key")
		// New parameters (RSA-AES wrapping, openssl as AWS documents it);
		// the old token is not valid any more, even before expiry.
		p1 := e.importParams(*md.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa4096)
		p2 := e.importParams(*md.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha1, types.WrappingKeySpecRsa3072)
		require.Len(t, e.hsmKeys(*md.Arn+"/import"), 2, "only the latest wrapping key pair remains")
		_, err = e.importMaterial(*md.KeyId, p1, w.wrap(p1.PublicKey, material, types.AlgorithmSpecRsaAesKeyWrapSha256), nil)
		requireAPIError(t, err, "InvalidImportTokenException")
		_, err = e.importMaterial(*md.KeyId, p2, w.wrap(p2.PublicKey, material, types.AlgorithmSpecRsaAesKeyWrapSha1), nil)
		require.NoError(t, err)
		require.Equal(t, []byte("imported"), openBlob(t, material, blobs[0], map[string]string{"tenant": "byok"}))
	})

	t.Run("rules", func(t *testing.T) {
		p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
		wrapped := w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha256)
		past, far := e.clock.Now().Add(-time.Minute), e.clock.Now().Add(366*24*time.Hour)
		for name, in := range map[string]*kmssdk.ImportKeyMaterialInput{
			"expires without ValidTo":     {ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires},
			"default model needs ValidTo": {},
			"ValidTo without expiry":      {ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, ValidTo: &far},
			"ValidTo in the past":         {ValidTo: &past},
			"ValidTo over a year":         {ValidTo: &far},
			"new material again":          {ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, ImportType: types.ImportTypeNewKeyMaterial, KeyMaterialId: aws.String(hex.EncodeToString(make([]byte, 32)))},
		} {
			in.KeyId, in.ImportToken, in.EncryptedKeyMaterial = md.KeyId, p.ImportToken, wrapped
			_, err := e.kms.ImportKeyMaterial(ctx, in)
			require.Error(t, err, name)
			var code string
			switch name {
			case "new material again":
				code = "UnsupportedOperationException"
			default:
				code = "ValidationException"
			}
			requireAPIError(t, err, code)
		}
		_, err := e.kms.ImportKeyMaterial(ctx, &kmssdk.ImportKeyMaterialInput{KeyId: md.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, KeyMaterialId: aws.String(hex.EncodeToString(make([]byte, 32)))})
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		cur := *e.describe(*md.KeyId).CurrentKeyMaterialId
		_, err = e.kms.ImportKeyMaterial(ctx, &kmssdk.ImportKeyMaterialInput{KeyId: md.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, KeyMaterialId: aws.String(cur), ImportType: types.ImportTypeExistingKeyMaterial,
			KeyMaterialDescription: aws.String("reimported once")})
		require.NoError(t, err)
		all := e.rotations(*md.KeyId, types.IncludeKeyMaterialAllKeyMaterial, 10)
		require.Equal(t, "reimported once", *all[0].KeyMaterialDescription)

		// Wrapping algorithms.
		for alg, code := range map[types.AlgorithmSpec]string{
			types.AlgorithmSpecRsaesPkcs1V15: "UnsupportedOperationException",
			types.AlgorithmSpecSm2pke:        "UnsupportedOperationException",
		} {
			_, err := e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: md.KeyId, WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
			requireAPIError(t, err, code)
		}
		// Keys that do not take imported material.
		sym := e.createKey(nil)
		for name, err := range map[string]error{
			"params": errOf(e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: sym.KeyId,
				WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})),
			"import": errOf(e.kms.ImportKeyMaterial(ctx, &kmssdk.ImportKeyMaterialInput{KeyId: sym.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: wrapped,
				ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})),
			"delete": errOf(e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: sym.KeyId})),
		} {
			require.Error(t, err, name)
			requireAPIError(t, err, "UnsupportedOperationException", *sym.Arn+" origin is AWS_KMS which is not valid for this operation.")
		}
	})

	t.Run("pending deletion", func(t *testing.T) {
		moveTo(t, e, *md.KeyId, types.KeyStatePendingDeletion)
		_, err := e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: md.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending deletion.")
		_, err = e.importMaterial(*md.KeyId, p, []byte("wrapped"), nil)
		requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending deletion.")
		_, err = e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, types.KeyStatePendingDeletion, e.describe(*md.KeyId).KeyState, "the state does not change")
		_, err = e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: md.KeyId})
		require.NoError(t, err)
	})
}

// TestImportAsymmetricAndHMAC imports an RSA and an EC private key made
// by openssl and an HMAC key, and checks interoperability both ways:
// signatures made offline with the private key verify through Verify,
// KMS's signatures verify with Go's crypto, the public key is the one
// imported, and MACs equal Go's HMAC.
func TestImportAsymmetricAndHMAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := newWrapper(t)
	msg := []byte("signed offline")

	t.Run("RSA", func(t *testing.T) {
		md := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
		require.Equal(t, types.KeyStatePendingImport, md.KeyState)
		_, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
		requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending import.")
		_, err = e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: md.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa4096})
		requireAPIError(t, err, "ValidationException", "RSA_AES_KEY_WRAP")
		der := w.privateKey("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
		key, err := x509.ParsePKCS8PrivateKey(der)
		require.NoError(t, err)
		priv := key.(*rsa.PrivateKey)
		p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa3072)
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, der, types.AlgorithmSpecRsaAesKeyWrapSha256), nil)
		require.NoError(t, err)
		pubAny, _ := e.publicKey(*md.KeyId)
		require.True(t, priv.PublicKey.Equal(pubAny), "GetPublicKey returns the imported key's public key")

		for _, c := range rsaSigningCases {
			digest := digestOf(c.hash, msg)
			var sig []byte
			if c.alg[:9] == "RSASSA_PS" {
				sig, err = rsa.SignPSS(rand.Reader, priv, c.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			} else {
				sig, err = rsa.SignPKCS1v15(rand.Reader, priv, c.hash, digest)
			}
			require.NoError(t, err)
			v, err := e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: sig, SigningAlgorithm: c.alg})
			require.NoError(t, err, c.alg)
			require.True(t, v.SignatureValid)
			out, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: digest, MessageType: types.MessageTypeDigest, SigningAlgorithm: c.alg})
			require.NoError(t, err)
			require.NoError(t, c.verify(&priv.PublicKey, c.hash, digest, out.Signature))
		}
		// Another RSA key is other material.
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, w.privateKey("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), types.AlgorithmSpecRsaAesKeyWrapSha256), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		// An RSA-3072 key is not RSA_2048 material.
		other := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
		op := e.importParams(*other.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha1, types.WrappingKeySpecRsa2048)
		_, err = e.importMaterial(*other.KeyId, op, w.wrap(op.PublicKey, w.privateKey("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"), types.AlgorithmSpecRsaAesKeyWrapSha1), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException", "RSA_2048")
		// Asymmetric keys take no ImportType.
		_, err = e.kms.ImportKeyMaterial(ctx, &kmssdk.ImportKeyMaterialInput{KeyId: md.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: []byte("x"),
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, ImportType: types.ImportTypeExistingKeyMaterial})
		requireAPIError(t, err, "ValidationException")
	})

	t.Run("RSA encryption", func(t *testing.T) {
		md := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecRsa3072})
		der := w.privateKey("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072")
		key, err := x509.ParsePKCS8PrivateKey(der)
		require.NoError(t, err)
		priv := key.(*rsa.PrivateKey)
		p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha1, types.WrappingKeySpecRsa2048)
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, der, types.AlgorithmSpecRsaAesKeyWrapSha1), nil)
		require.NoError(t, err)
		enc, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("to the owner"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		require.NoError(t, err)
		pt, err := rsa.DecryptOAEP(sha256.New(), nil, priv, enc.CiphertextBlob, nil)
		require.NoError(t, err, "the owner of the private key decrypts offline")
		require.Equal(t, "to the owner", string(pt))
	})

	t.Run("EC", func(t *testing.T) {
		md := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP384, KeyUsage: types.KeyUsageTypeSignVerify})
		der := w.privateKey("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
		key, err := x509.ParsePKCS8PrivateKey(der)
		require.NoError(t, err)
		priv := key.(*ecdsa.PrivateKey)
		p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa3072)
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, der, types.AlgorithmSpecRsaesOaepSha256), nil)
		require.NoError(t, err)
		digest := digestOf(crypto.SHA384, msg)
		sig, err := ecdsa.SignASN1(rand.Reader, priv, digest)
		require.NoError(t, err)
		v, err := e.kms.Verify(ctx, &kmssdk.VerifyInput{KeyId: md.KeyId, Message: msg, Signature: sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha384})
		require.NoError(t, err)
		require.True(t, v.SignatureValid)
		out, err := e.kms.Sign(ctx, &kmssdk.SignInput{KeyId: md.KeyId, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha384})
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(&priv.PublicKey, digest, out.Signature))
		// A P-256 key is not ECC_NIST_P384 material.
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, w.privateKey("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"), types.AlgorithmSpecRsaesOaepSha256), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		// P-521 material does not fit RSA_2048 with OAEP.
		p521 := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP521, KeyUsage: types.KeyUsageTypeSignVerify})
		_, err = e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: p521.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha1, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		requireAPIError(t, err, "ValidationException", "ECC_NIST_P521")
	})

	t.Run("HMAC", func(t *testing.T) {
		md := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		material := randomMaterial(t, 32)
		p := e.importParams(*md.KeyId, types.AlgorithmSpecRsaesOaepSha1, types.WrappingKeySpecRsa2048)
		_, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha1), nil)
		require.NoError(t, err)
		out, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		require.NoError(t, err)
		m := hmac.New(sha256.New, material)
		m.Write(msg)
		require.Equal(t, m.Sum(nil), out.Mac, "KMS's MAC is HMAC-SHA-256 under the imported bytes")
		v, err := e.kms.VerifyMac(ctx, &kmssdk.VerifyMacInput{KeyId: md.KeyId, Message: msg, Mac: m.Sum(nil), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		require.NoError(t, err)
		require.True(t, v.MacValid)
		// Delete and bring back: other bytes are refused.
		_, err = e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: md.KeyId})
		require.NoError(t, err)
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, randomMaterial(t, 32), types.AlgorithmSpecRsaesOaepSha1), nil)
		requireAPIError(t, err, "IncorrectKeyMaterialException")
		_, err = e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, types.AlgorithmSpecRsaesOaepSha1), nil)
		require.NoError(t, err)
		again, err := e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: md.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		require.NoError(t, err)
		require.Equal(t, out.Mac, again.Mac)
	})
}
