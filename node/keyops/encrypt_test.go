package keyops

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	mechGCM  = hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM
	mechOAEP = hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP
)

func TestEncryptDecryptAESGCM(t *testing.T) {
	for _, bits := range []uint32{128, 192, 256} {
		key := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, bits)
		for _, pt := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{7}, MaxDataSize)} {
			for _, aad := range [][]byte{nil, []byte("context")} {
				t.Run(fmt.Sprintf("%d/%d/%d", bits, len(pt), len(aad)), func(t *testing.T) {
					ct, err := Encrypt(key.attrs, key.material, &hsmv1.EncryptRequest{Mechanism: mechGCM, Plaintext: pt, Aad: aad})
					require.NoError(t, err)
					require.Len(t, ct, cryptocore.NonceSize+len(pt)+cryptocore.TagSize)
					// nonce || ciphertext || tag, as any AES-GCM implementation opens it.
					raw, err := cryptocore.OpenGCM(key.material, ct[:12], ct[12:], aad)
					require.NoError(t, err)
					require.Equal(t, len(pt), len(raw))

					got, err := Decrypt(key.attrs, key.material, &hsmv1.DecryptRequest{Mechanism: mechGCM, Ciphertext: ct, Aad: aad})
					require.NoError(t, err)
					require.True(t, bytes.Equal(pt, got))

					ct2, err := Encrypt(key.attrs, key.material, &hsmv1.EncryptRequest{Mechanism: mechGCM, Plaintext: pt, Aad: aad})
					require.NoError(t, err)
					require.NotEqual(t, ct[:12], ct2[:12], "fresh nonce per encryption")
				})
			}
		}
	}
}

func TestEncryptDecryptRSAOAEP(t *testing.T) {
	kp, _ := rsa2048(t)
	hashes := []hsmv1.Hash{hsmv1.Hash_HASH_UNSPECIFIED, hsmv1.Hash_HASH_SHA1, hsmv1.Hash_HASH_SHA224,
		hsmv1.Hash_HASH_SHA256, hsmv1.Hash_HASH_SHA384, hsmv1.Hash_HASH_SHA512}
	for _, h := range hashes {
		for _, mgf := range []hsmv1.Hash{hsmv1.Hash_HASH_UNSPECIFIED, h, hsmv1.Hash_HASH_SHA1} {
			for _, enc := range []testKey{kp.pub, kp.priv} {
				t.Run(fmt.Sprintf("%v/%v/%v", h, mgf, enc.attrs.GetClass()), func(t *testing.T) {
					pt := []byte("attack at dawn")
					ct, err := Encrypt(enc.attrs, enc.material, &hsmv1.EncryptRequest{
						Mechanism: mechOAEP, Plaintext: pt, Aad: []byte("label"), Hash: h, MgfHash: mgf,
					})
					require.NoError(t, err)
					require.Len(t, ct, 256)
					got, err := Decrypt(kp.priv.attrs, kp.priv.material, &hsmv1.DecryptRequest{
						Mechanism: mechOAEP, Ciphertext: ct, Aad: []byte("label"), Hash: h, MgfHash: mgf,
					})
					require.NoError(t, err)
					require.Equal(t, pt, got)
				})
			}
		}
	}
}

// TestDecryptOAEPInterop decrypts what Go's crypto/rsa encrypts to the
// key's public_key.
func TestDecryptOAEPInterop(t *testing.T) {
	kp, _ := rsa2048(t)
	pk, err := x509.ParsePKIXPublicKey(kp.pub.attrs.GetPublicKey())
	require.NoError(t, err)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pk.(*rsa.PublicKey), []byte("interop"), []byte("L"))
	require.NoError(t, err)
	got, err := Decrypt(kp.priv.attrs, kp.priv.material, &hsmv1.DecryptRequest{Mechanism: mechOAEP, Ciphertext: ct, Aad: []byte("L")})
	require.NoError(t, err)
	require.Equal(t, []byte("interop"), got)
}

func TestEncryptErrors(t *testing.T) {
	kp, _ := rsa2048(t)
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	gs := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 256)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256)
	noEncrypt := func(a *hsmv1.KeyAttributes) { a.Encrypt = false }
	noDecrypt := func(a *hsmv1.KeyAttributes) { a.Decrypt = false }
	gcmCT, err := Encrypt(aes.attrs, aes.material, &hsmv1.EncryptRequest{Mechanism: mechGCM, Plaintext: []byte("x")})
	require.NoError(t, err)
	oaepCT, err := Encrypt(kp.pub.attrs, nil, &hsmv1.EncryptRequest{Mechanism: mechOAEP, Plaintext: []byte("x")})
	require.NoError(t, err)

	tests := []struct {
		name    string
		key     testKey
		decrypt bool
		mech    hsmv1.EncryptionMechanism
		data    []byte
		hash    hsmv1.Hash
		want    error
	}{
		{"aes encrypt flag", aes.with(noEncrypt), false, mechGCM, []byte("x"), 0, ErrPermission},
		{"aes decrypt flag", aes.with(noDecrypt), true, mechGCM, gcmCT, 0, ErrPermission},
		{"rsa public encrypt flag", kp.pub.with(noEncrypt), false, mechOAEP, []byte("x"), 0, ErrPermission},
		{"rsa private encrypt flag", kp.priv.with(noEncrypt), false, mechOAEP, []byte("x"), 0, ErrPermission},
		{"rsa decrypt flag", kp.priv.with(noDecrypt), true, mechOAEP, oaepCT, 0, ErrPermission},
		{"oaep with aes", aes, false, mechOAEP, []byte("x"), 0, ErrInvalidArgument},
		{"gcm with rsa public", kp.pub, false, mechGCM, []byte("x"), 0, ErrInvalidArgument},
		{"gcm with rsa private", kp.priv, true, mechGCM, gcmCT, 0, ErrInvalidArgument},
		{"gcm with generic secret", gs, false, mechGCM, []byte("x"), 0, ErrInvalidArgument},
		{"oaep with ec", ec.pub, false, mechOAEP, []byte("x"), 0, ErrInvalidArgument},
		{"oaep decrypt with public", kp.pub, true, mechOAEP, oaepCT, 0, ErrInvalidArgument},
		{"no mechanism", aes, false, 0, []byte("x"), 0, ErrInvalidArgument},
		{"no mechanism decrypt", aes, true, 0, gcmCT, 0, ErrInvalidArgument},
		{"unknown hash", kp.pub, false, mechOAEP, []byte("x"), hsmv1.Hash(99), ErrInvalidArgument},
		{"gcm oversize", aes, false, mechGCM, make([]byte, MaxDataSize+1), 0, ErrInvalidArgument},
		{"oaep oversize", kp.pub, false, mechOAEP, make([]byte, MaxDataSize+1), 0, ErrInvalidArgument},
		{"oaep too long for modulus", kp.pub, false, mechOAEP, make([]byte, 256-2*32-1), 0, ErrInvalidArgument},
		{"oaep too long for sha512", kp.pub, false, mechOAEP, make([]byte, 256-2*64-1), hsmv1.Hash_HASH_SHA512, ErrInvalidArgument},
		{"decrypt oversize", aes, true, mechGCM, make([]byte, MaxDataSize+29), 0, ErrInvalidArgument},
		{"nil key", testKey{}, false, mechGCM, []byte("x"), 0, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.decrypt {
				_, err = Decrypt(tc.key.attrs, tc.key.material, &hsmv1.DecryptRequest{Mechanism: tc.mech, Ciphertext: tc.data, Hash: tc.hash})
			} else {
				_, err = Encrypt(tc.key.attrs, tc.key.material, &hsmv1.EncryptRequest{Mechanism: tc.mech, Plaintext: tc.data, Hash: tc.hash})
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err = Encrypt(aes.attrs, aes.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = Decrypt(aes.attrs, aes.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = Encrypt(kp.pub.attrs, nil, &hsmv1.EncryptRequest{Mechanism: mechOAEP, Plaintext: make([]byte, 256-2*32-2)})
	require.NoError(t, err, "the longest plaintext that fits")
}

func TestDecryptTampered(t *testing.T) {
	kp, other := rsa2048(t)
	secret := []byte("the secret plaintext")
	for _, bits := range []uint32{128, 192, 256} {
		key := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, bits)
		otherKey := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, bits)
		ct, err := Encrypt(key.attrs, key.material, &hsmv1.EncryptRequest{Mechanism: mechGCM, Plaintext: secret, Aad: []byte("a")})
		require.NoError(t, err)
		tests := []struct {
			name string
			key  testKey
			ct   []byte
			aad  []byte
		}{
			{"nonce", key, flipped(ct, 0), []byte("a")},
			{"ciphertext", key, flipped(ct, 13), []byte("a")},
			{"tag", key, flipped(ct, len(ct)-1), []byte("a")},
			{"aad", key, ct, []byte("b")},
			{"no aad", key, ct, nil},
			{"truncated", key, ct[:len(ct)-1], []byte("a")},
			{"too short", key, ct[:27], []byte("a")},
			{"empty", key, nil, []byte("a")},
			{"other key", otherKey, ct, []byte("a")},
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("gcm%d/%s", bits, tc.name), func(t *testing.T) {
				pt, err := Decrypt(tc.key.attrs, tc.key.material, &hsmv1.DecryptRequest{Mechanism: mechGCM, Ciphertext: tc.ct, Aad: tc.aad})
				require.ErrorIs(t, err, ErrDecrypt)
				require.Nil(t, pt)
				require.NotContains(t, err.Error(), string(secret))
			})
		}
	}

	ct, err := Encrypt(kp.pub.attrs, nil, &hsmv1.EncryptRequest{Mechanism: mechOAEP, Plaintext: secret, Aad: []byte("a")})
	require.NoError(t, err)
	tests := []struct {
		name string
		key  testKey
		ct   []byte
		aad  []byte
		hash hsmv1.Hash
	}{
		{"ciphertext", kp.priv, flipped(ct, 100), []byte("a"), 0},
		{"label", kp.priv, ct, []byte("b"), 0},
		{"hash", kp.priv, ct, []byte("a"), hsmv1.Hash_HASH_SHA384},
		{"truncated", kp.priv, ct[1:], []byte("a"), 0},
		{"empty", kp.priv, nil, []byte("a"), 0},
		{"other key", other.priv, ct, []byte("a"), 0},
	}
	for _, tc := range tests {
		t.Run("oaep/"+tc.name, func(t *testing.T) {
			pt, err := Decrypt(tc.key.attrs, tc.key.material, &hsmv1.DecryptRequest{Mechanism: mechOAEP, Ciphertext: tc.ct, Aad: tc.aad, Hash: tc.hash})
			require.ErrorIs(t, err, ErrDecrypt)
			require.Nil(t, pt)
			require.False(t, strings.Contains(err.Error(), string(secret)))
		})
	}
}

func TestEncryptBadMaterial(t *testing.T) {
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	_, err := Encrypt(aes.attrs, aes.material[:16], &hsmv1.EncryptRequest{Mechanism: mechGCM})
	require.ErrorIs(t, err, ErrKeyMaterial)
	kp, _ := rsa2048(t)
	_, err = Decrypt(kp.priv.attrs, []byte("garbage"), &hsmv1.DecryptRequest{Mechanism: mechOAEP, Ciphertext: make([]byte, 256)})
	require.ErrorIs(t, err, ErrKeyMaterial)
	_, err = Encrypt(kp.pub.with(func(a *hsmv1.KeyAttributes) { a.PublicKey = nil }).attrs, nil,
		&hsmv1.EncryptRequest{Mechanism: mechOAEP})
	require.ErrorIs(t, err, ErrKeyMaterial)
	// A private key object without public_key encrypts with its material's.
	ct, err := Encrypt(kp.priv.with(func(a *hsmv1.KeyAttributes) { a.PublicKey = nil }).attrs, kp.priv.material,
		&hsmv1.EncryptRequest{Mechanism: mechOAEP, Plaintext: []byte("x")})
	require.NoError(t, err)
	pt, err := Decrypt(kp.priv.attrs, kp.priv.material, &hsmv1.DecryptRequest{Mechanism: mechOAEP, Ciphertext: ct})
	require.NoError(t, err)
	require.Equal(t, []byte("x"), pt)
}
