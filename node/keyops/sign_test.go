package keyops

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	mechPKCS1 = hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15
	mechPSS   = hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS
	mechECDSA = hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA
)

// signHashes are the hashes signatures take; unspecified means SHA-256.
var signHashes = []hsmv1.Hash{hsmv1.Hash_HASH_UNSPECIFIED, hsmv1.Hash_HASH_SHA256, hsmv1.Hash_HASH_SHA384, hsmv1.Hash_HASH_SHA512}

// cryptoHash maps an API hash to crypto.Hash for the interop checks.
func cryptoHash(t *testing.T, h hsmv1.Hash) (cryptocore.Hash, crypto.Hash) {
	t.Helper()
	ch, err := hashOf(h)
	require.NoError(t, err)
	std, err := ch.CryptoHash()
	require.NoError(t, err)
	return ch, std
}

func TestSignVerify(t *testing.T) {
	kp, _ := rsa2048(t)
	type signer struct {
		name string
		pair keyPair
		mech hsmv1.SignatureMechanism
	}
	signers := []signer{{"pkcs1", kp, mechPKCS1}, {"pss", kp, mechPSS}}
	for c, p := range ecPairs(t) {
		signers = append(signers, signer{"ecdsa-" + c.String(), p, mechECDSA})
	}
	msg := []byte("the message to sign")
	for _, s := range signers {
		for _, h := range signHashes {
			for _, isDigest := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/digest=%v", s.name, h, isDigest), func(t *testing.T) {
					ch, std := cryptoHash(t, h)
					digest, err := ch.Digest(msg)
					require.NoError(t, err)
					input := msg
					if isDigest {
						input = digest
					}
					sig, err := Sign(s.pair.priv.attrs, s.pair.priv.material, &hsmv1.SignRequest{
						Mechanism: s.mech, Hash: h, Message: input, IsDigest: isDigest,
					})
					require.NoError(t, err)

					// Either key object verifies, in either input form.
					for _, k := range []testKey{s.pair.pub, s.pair.priv} {
						for _, form := range []struct {
							in  []byte
							dig bool
						}{{msg, false}, {digest, true}} {
							ok, err := Verify(k.attrs, k.material, &hsmv1.VerifyRequest{
								Mechanism: s.mech, Hash: h, Message: form.in, IsDigest: form.dig, Signature: sig,
							})
							require.NoError(t, err)
							require.True(t, ok)
						}
					}
					ok, err := Verify(s.pair.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: s.mech, Hash: h, Message: []byte("other"), Signature: sig})
					require.NoError(t, err)
					require.False(t, ok, "other message")
					ok, err = Verify(s.pair.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: s.mech, Hash: h, Message: msg, Signature: flipped(sig, len(sig)-1)})
					require.NoError(t, err)
					require.False(t, ok, "changed signature")
					ok, err = Verify(s.pair.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: s.mech, Hash: h, Message: msg})
					require.NoError(t, err)
					require.False(t, ok, "empty signature")

					// Interop: Go's verifiers with the public_key DER.
					pk, err := x509.ParsePKIXPublicKey(s.pair.pub.attrs.GetPublicKey())
					require.NoError(t, err)
					switch s.mech {
					case mechPKCS1:
						require.NoError(t, rsa.VerifyPKCS1v15(pk.(*rsa.PublicKey), std, digest, sig))
					case mechPSS:
						require.NoError(t, rsa.VerifyPSS(pk.(*rsa.PublicKey), std, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}))
					case mechECDSA:
						require.True(t, ecdsa.VerifyASN1(pk.(*ecdsa.PublicKey), digest, sig))
					}
				})
			}
		}
	}
}

func TestVerifyForeignSignatures(t *testing.T) {
	kp, _ := rsa2048(t)
	priv, err := cryptocore.ParsePrivateKey(kp.priv.material)
	require.NoError(t, err)
	digest, err := cryptocore.SHA384.Digest([]byte("m"))
	require.NoError(t, err)
	sig, err := priv.Sign(rand.Reader, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384})
	require.NoError(t, err)
	ok, err := Verify(kp.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: mechPSS, Hash: hsmv1.Hash_HASH_SHA384, Message: []byte("m"), Signature: sig})
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = Verify(kp.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: mechPKCS1, Hash: hsmv1.Hash_HASH_SHA384, Message: []byte("m"), Signature: sig})
	require.NoError(t, err)
	require.False(t, ok, "a PSS signature is not a PKCS #1 v1.5 one")
}

func TestSignErrors(t *testing.T) {
	kp, _ := rsa2048(t)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256)
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	gs := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 256)
	noSign := func(a *hsmv1.KeyAttributes) { a.Sign = false }
	noVerify := func(a *hsmv1.KeyAttributes) { a.Verify = false }
	sha256 := hsmv1.Hash_HASH_SHA256
	tests := []struct {
		name     string
		key      testKey
		verify   bool
		mech     hsmv1.SignatureMechanism
		hash     hsmv1.Hash
		msg      []byte
		isDigest bool
		want     error
	}{
		{"rsa sign flag", kp.priv.with(noSign), false, mechPKCS1, sha256, []byte("m"), false, ErrPermission},
		{"ec sign flag", ec.priv.with(noSign), false, mechECDSA, sha256, []byte("m"), false, ErrPermission},
		{"rsa verify flag public", kp.pub.with(noVerify), true, mechPSS, sha256, []byte("m"), false, ErrPermission},
		{"rsa verify flag private", kp.priv.with(noVerify), true, mechPSS, sha256, []byte("m"), false, ErrPermission},
		{"ec verify flag", ec.pub.with(noVerify), true, mechECDSA, sha256, []byte("m"), false, ErrPermission},
		{"ecdsa with rsa", kp.priv, false, mechECDSA, sha256, []byte("m"), false, ErrInvalidArgument},
		{"pss with ec", ec.priv, false, mechPSS, sha256, []byte("m"), false, ErrInvalidArgument},
		{"pkcs1 verify with ec", ec.pub, true, mechPKCS1, sha256, []byte("m"), false, ErrInvalidArgument},
		{"ecdsa verify with rsa", kp.pub, true, mechECDSA, sha256, []byte("m"), false, ErrInvalidArgument},
		{"sign with rsa public", kp.pub, false, mechPKCS1, sha256, []byte("m"), false, ErrInvalidArgument},
		{"sign with ec public", ec.pub, false, mechECDSA, sha256, []byte("m"), false, ErrInvalidArgument},
		{"sign with aes", aes, false, mechECDSA, sha256, []byte("m"), false, ErrInvalidArgument},
		{"sign with generic secret", gs, false, mechPKCS1, sha256, []byte("m"), false, ErrInvalidArgument},
		{"no mechanism", kp.priv, false, 0, sha256, []byte("m"), false, ErrInvalidArgument},
		{"no mechanism verify", kp.pub, true, 0, sha256, []byte("m"), false, ErrInvalidArgument},
		{"sha1", kp.priv, false, mechPKCS1, hsmv1.Hash_HASH_SHA1, []byte("m"), false, ErrInvalidArgument},
		{"sha224", ec.priv, false, mechECDSA, hsmv1.Hash_HASH_SHA224, []byte("m"), false, ErrInvalidArgument},
		{"sha1 verify", kp.pub, true, mechPSS, hsmv1.Hash_HASH_SHA1, []byte("m"), false, ErrInvalidArgument},
		{"unknown hash", kp.priv, false, mechPSS, hsmv1.Hash(77), []byte("m"), false, ErrInvalidArgument},
		{"short digest", kp.priv, false, mechPSS, sha256, make([]byte, 31), true, ErrInvalidArgument},
		{"long digest", ec.priv, false, mechECDSA, sha256, make([]byte, 33), true, ErrInvalidArgument},
		{"sha512 digest of sha256 size", kp.priv, false, mechPKCS1, hsmv1.Hash_HASH_SHA512, make([]byte, 32), true, ErrInvalidArgument},
		{"bad digest verify", ec.pub, true, mechECDSA, hsmv1.Hash_HASH_SHA384, make([]byte, 32), true, ErrInvalidArgument},
		{"oversize message", kp.priv, false, mechPKCS1, sha256, make([]byte, MaxDataSize+1), false, ErrInvalidArgument},
		{"oversize message verify", ec.pub, true, mechECDSA, sha256, make([]byte, MaxDataSize+1), false, ErrInvalidArgument},
		{"nil key", testKey{}, false, mechPKCS1, sha256, []byte("m"), false, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.verify {
				var ok bool
				ok, err = Verify(tc.key.attrs, tc.key.material, &hsmv1.VerifyRequest{
					Mechanism: tc.mech, Hash: tc.hash, Message: tc.msg, IsDigest: tc.isDigest, Signature: make([]byte, 256),
				})
				require.False(t, ok)
			} else {
				_, err = Sign(tc.key.attrs, tc.key.material, &hsmv1.SignRequest{
					Mechanism: tc.mech, Hash: tc.hash, Message: tc.msg, IsDigest: tc.isDigest,
				})
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err := Sign(kp.priv.attrs, kp.priv.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = Verify(kp.pub.attrs, nil, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = Verify(kp.pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: mechPSS, Message: []byte("m"), Signature: make([]byte, maxSignatureSize+1)})
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = Sign(kp.priv.attrs, kp.priv.material, &hsmv1.SignRequest{Mechanism: mechPSS, Message: make([]byte, MaxDataSize)})
	require.NoError(t, err, "a message of MaxDataSize bytes")
	_, err = Sign(ec.priv.attrs, kp.priv.material, &hsmv1.SignRequest{Mechanism: mechECDSA, Message: []byte("m")})
	require.ErrorIs(t, err, ErrKeyMaterial, "RSA material under EC attributes")
}

// TestVerifyWithoutPublicKeyAttribute verifies with private key objects
// whose public_key attribute is missing: the public key comes from the
// material.
func TestVerifyWithoutPublicKeyAttribute(t *testing.T) {
	kp, _ := rsa2048(t)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P384)
	noPub := func(a *hsmv1.KeyAttributes) { a.PublicKey = nil }
	for _, tc := range []struct {
		pair keyPair
		mech hsmv1.SignatureMechanism
	}{{kp, mechPSS}, {ec, mechECDSA}} {
		sig, err := Sign(tc.pair.priv.attrs, tc.pair.priv.material, &hsmv1.SignRequest{Mechanism: tc.mech, Message: []byte("m")})
		require.NoError(t, err)
		priv := tc.pair.priv.with(noPub)
		ok, err := Verify(priv.attrs, priv.material, &hsmv1.VerifyRequest{Mechanism: tc.mech, Message: []byte("m"), Signature: sig})
		require.NoError(t, err)
		require.True(t, ok)
		pub := tc.pair.pub.with(noPub)
		_, err = Verify(pub.attrs, nil, &hsmv1.VerifyRequest{Mechanism: tc.mech, Message: []byte("m"), Signature: sig})
		require.ErrorIs(t, err, ErrKeyMaterial)
	}
}
