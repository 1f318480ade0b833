package keyops

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	wrapKW     = hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW
	wrapKWP    = hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP
	wrapOAEP   = hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP
	mechRSAAES = hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES
)

// wrapTarget is a key to wrap, with a name for subtests.
type wrapTarget struct {
	name string
	key  testKey
}

// wrapTargets returns one key of every kind: AES of each size, generic
// secrets (one not a multiple of 8 bytes), RSA and EC private keys.
func wrapTargets(t *testing.T, rsaPriv testKey) []wrapTarget {
	t.Helper()
	targets := []wrapTarget{{"rsa-2048", rsaPriv}}
	for _, bits := range []uint32{128, 192, 256} {
		targets = append(targets, wrapTarget{fmt.Sprintf("aes-%d", bits), mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, bits)})
	}
	for _, bits := range []uint32{128, 136, 4096} {
		targets = append(targets, wrapTarget{fmt.Sprintf("generic-%d", bits), mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, bits)})
	}
	for c, p := range ecPairs(t) {
		targets = append(targets, wrapTarget{"ec-" + c.String(), p.priv})
	}
	return targets
}

func TestWrapUnwrap(t *testing.T) {
	kp, _ := rsa2048(t)
	aes128 := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 128)
	aes256 := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	type wrapper struct {
		name        string
		mech        hsmv1.WrapMechanism
		hash        hsmv1.Hash
		wrap, unwrp testKey
	}
	wrappers := []wrapper{
		{"kw-aes128", wrapKW, 0, aes128, aes128},
		{"kw-aes256", wrapKW, 0, aes256, aes256},
		{"kwp-aes128", wrapKWP, 0, aes128, aes128},
		{"kwp-aes256", wrapKWP, 0, aes256, aes256},
		{"oaep-public", wrapOAEP, 0, kp.pub, kp.priv},
		{"oaep-private-sha1", wrapOAEP, hsmv1.Hash_HASH_SHA1, kp.priv, kp.priv},
		{"oaep-sha512", wrapOAEP, hsmv1.Hash_HASH_SHA512, kp.pub, kp.priv},
		{"rsa-aes-public", mechRSAAES, 0, kp.pub, kp.priv},
		{"rsa-aes-private-sha1", mechRSAAES, hsmv1.Hash_HASH_SHA1, kp.priv, kp.priv},
		{"rsa-aes-sha384", mechRSAAES, hsmv1.Hash_HASH_SHA384, kp.pub, kp.priv},
	}
	for _, w := range wrappers {
		for _, target := range wrapTargets(t, kp.priv) {
			t.Run(w.name+"/"+target.name, func(t *testing.T) {
				n := len(target.key.material)
				fits := true
				switch w.mech {
				case wrapKW:
					fits = n%8 == 0 && n >= 16
				case wrapOAEP:
					ch, err := hashOf(w.hash)
					require.NoError(t, err)
					fits = n <= 256-2*ch.Size()-2
				}
				wrapped, err := WrapKey(w.wrap.attrs, w.wrap.material, target.key.attrs, target.key.material,
					&hsmv1.WrapKeyRequest{Mechanism: w.mech, Hash: w.hash})
				if !fits {
					require.ErrorIs(t, err, ErrInvalidArgument)
					return
				}
				require.NoError(t, err)
				require.NotContains(t, string(wrapped), string(target.key.material))

				usage := &hsmv1.KeyUsage{Extractable: false, Sign: true}
				attrs, material, err := UnwrapKey(w.unwrp.attrs, w.unwrp.material, &hsmv1.UnwrapKeyRequest{
					Mechanism: w.mech, Hash: w.hash, Wrapped: wrapped, Type: target.key.attrs.GetType(),
					Label: "imported", Id: []byte("new"), Usage: usage,
				})
				require.NoError(t, err)
				require.Equal(t, target.key.material, material)
				want := target.key.attrs
				require.Equal(t, want.GetKcv(), attrs.GetKcv())
				require.Equal(t, want.GetClass(), attrs.GetClass())
				require.Equal(t, want.GetType(), attrs.GetType())
				require.Equal(t, want.GetSizeBits(), attrs.GetSizeBits())
				require.Equal(t, want.GetCurve(), attrs.GetCurve())
				require.Equal(t, want.GetPublicKey(), attrs.GetPublicKey())
				require.Equal(t, "imported", attrs.GetLabel())
				require.Equal(t, []byte("new"), attrs.GetId())
				require.True(t, attrs.GetToken())
				require.True(t, attrs.GetSign())
				require.False(t, attrs.GetExtractable() || attrs.GetDecrypt() || attrs.GetUnwrap())
				require.Zero(t, attrs.GetHandle())
				require.Empty(t, attrs.GetOwner())
				require.Empty(t, attrs.GetRecordId())
			})
		}
	}
}

// TestWrapRSAAESFormat checks the CKM_RSA_AES_KEY_WRAP layout with Go's
// crypto/rsa: RSA-OAEP(temporary AES key) || AES-KWP(key).
func TestWrapRSAAESFormat(t *testing.T) {
	kp, _ := rsa2048(t)
	target := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	wrapped, err := WrapKey(kp.pub.attrs, nil, target.attrs, target.material, &hsmv1.WrapKeyRequest{Mechanism: mechRSAAES})
	require.NoError(t, err)
	require.Len(t, wrapped, 256+32+8)
	k, err := x509.ParsePKCS8PrivateKey(kp.priv.material)
	require.NoError(t, err)
	eph, err := rsa.DecryptOAEP(sha256.New(), nil, k.(*rsa.PrivateKey), wrapped[:256], nil)
	require.NoError(t, err)
	require.Len(t, eph, 32)
	got, err := cryptocore.UnwrapKWP(eph, wrapped[256:])
	require.NoError(t, err)
	require.Equal(t, target.material, got)

	// And the reverse: a wrap built outside with a 128-bit temporary key.
	eph = make([]byte, 16)
	_, err = rand.Read(eph)
	require.NoError(t, err)
	head, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.(*rsa.PrivateKey).PublicKey, eph, nil)
	require.NoError(t, err)
	tail, err := cryptocore.WrapKWP(eph, target.material)
	require.NoError(t, err)
	attrs, material, err := UnwrapKey(kp.priv.attrs, kp.priv.material, &hsmv1.UnwrapKeyRequest{
		Mechanism: mechRSAAES, Wrapped: append(head, tail...), Type: hsmv1.KeyType_KEY_TYPE_AES,
	})
	require.NoError(t, err)
	require.Equal(t, target.material, material)
	require.Equal(t, target.attrs.GetKcv(), attrs.GetKcv())
}

func TestWrapErrors(t *testing.T) {
	kp, _ := rsa2048(t)
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	target := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 128)
	gs := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 256)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256)
	noWrap := func(a *hsmv1.KeyAttributes) { a.Wrap = false }
	tests := []struct {
		name   string
		wrap   testKey
		target testKey
		mech   hsmv1.WrapMechanism
		hash   hsmv1.Hash
		want   error
	}{
		{"not extractable aes", aes, target.with(func(a *hsmv1.KeyAttributes) { a.Extractable = false }), wrapKWP, 0, ErrPermission},
		{"not extractable rsa", kp.pub, ec.priv.with(func(a *hsmv1.KeyAttributes) { a.Extractable = false }), mechRSAAES, 0, ErrPermission},
		{"wrap flag aes", aes.with(noWrap), target, wrapKW, 0, ErrPermission},
		{"wrap flag rsa public", kp.pub.with(noWrap), target, wrapOAEP, 0, ErrPermission},
		{"wrap flag rsa private", kp.priv.with(noWrap), target, mechRSAAES, 0, ErrPermission},
		{"kw with rsa", kp.pub, target, wrapKW, 0, ErrInvalidArgument},
		{"kwp with generic secret", gs, target, wrapKWP, 0, ErrInvalidArgument},
		{"oaep with aes", aes, target, wrapOAEP, 0, ErrInvalidArgument},
		{"rsa-aes with ec", ec.pub, target, mechRSAAES, 0, ErrInvalidArgument},
		{"no mechanism", aes, target, 0, 0, ErrInvalidArgument},
		{"unknown hash", kp.pub, target, wrapOAEP, hsmv1.Hash(50), ErrInvalidArgument},
		{"public key", aes, kp.pub, wrapKWP, 0, ErrInvalidArgument},
		{"no wrapping key", testKey{}, target, wrapKWP, 0, ErrInvalidArgument},
		{"no key", aes, testKey{}, wrapKWP, 0, ErrInvalidArgument},
		{"rsa private too big for oaep", kp.pub, kp.priv, wrapOAEP, 0, ErrInvalidArgument},
		{"corrupt target", aes, testKey{attrs: target.attrs, material: []byte{1, 2, 3}}, wrapKWP, 0, ErrKeyMaterial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WrapKey(tc.wrap.attrs, tc.wrap.material, tc.target.attrs, tc.target.material,
				&hsmv1.WrapKeyRequest{Mechanism: tc.mech, Hash: tc.hash})
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err := WrapKey(aes.attrs, aes.material, target.attrs, target.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestUnwrapErrors(t *testing.T) {
	kp, other := rsa2048(t)
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	otherAES := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256)
	gs20 := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 160)
	target := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 128)

	wrap := func(w testKey, k testKey, mech hsmv1.WrapMechanism) []byte {
		t.Helper()
		b, err := WrapKey(w.attrs, w.material, k.attrs, k.material, &hsmv1.WrapKeyRequest{Mechanism: mech})
		require.NoError(t, err)
		return b
	}
	kw := wrap(aes, target, wrapKW)
	kwp := wrap(aes, target, wrapKWP)
	oaep := wrap(kp.pub, target, wrapOAEP)
	rsaAES := wrap(kp.pub, target, mechRSAAES)
	kwpEC := wrap(aes, ec.priv, wrapKWP)
	kwpGS20 := wrap(aes, gs20, wrapKWP)
	kwpRSA := wrap(aes, kp.priv, wrapKWP)
	notPKCS8, err := cryptocore.WrapKWP(aes.material, []byte("this is not a private key"))
	require.NoError(t, err)
	aesType := hsmv1.KeyType_KEY_TYPE_AES
	noUnwrap := func(a *hsmv1.KeyAttributes) { a.Unwrap = false }

	tests := []struct {
		name    string
		key     testKey
		mech    hsmv1.WrapMechanism
		hash    hsmv1.Hash
		wrapped []byte
		typ     hsmv1.KeyType
		want    error
	}{
		{"unwrap flag aes", aes.with(noUnwrap), wrapKW, 0, kw, aesType, ErrPermission},
		{"unwrap flag rsa", kp.priv.with(noUnwrap), mechRSAAES, 0, rsaAES, aesType, ErrPermission},
		{"kw with rsa", kp.priv, wrapKW, 0, kw, aesType, ErrInvalidArgument},
		{"oaep with aes", aes, wrapOAEP, 0, oaep, aesType, ErrInvalidArgument},
		{"oaep with rsa public", kp.pub, wrapOAEP, 0, oaep, aesType, ErrInvalidArgument},
		{"rsa-aes with ec", ec.priv, mechRSAAES, 0, rsaAES, aesType, ErrInvalidArgument},
		{"no mechanism", aes, 0, 0, kw, aesType, ErrInvalidArgument},
		{"no type", aes, wrapKW, 0, kw, 0, ErrInvalidArgument},
		{"empty", aes, wrapKW, 0, nil, aesType, ErrInvalidArgument},
		{"oversize", aes, wrapKW, 0, make([]byte, MaxWrappedSize+8), aesType, ErrInvalidArgument},
		{"unknown hash", kp.priv, wrapOAEP, hsmv1.Hash(12), oaep, aesType, ErrInvalidArgument},
		{"no key", testKey{}, wrapKW, 0, kw, aesType, ErrInvalidArgument},
		{"ec as rsa", aes, wrapKWP, 0, kwpEC, hsmv1.KeyType_KEY_TYPE_RSA, ErrInvalidArgument},
		{"rsa as ec", aes, wrapKWP, 0, kwpRSA, hsmv1.KeyType_KEY_TYPE_EC, ErrInvalidArgument},
		{"aes as rsa", aes, wrapKWP, 0, kwp, hsmv1.KeyType_KEY_TYPE_RSA, ErrInvalidArgument},
		{"20 bytes as aes", aes, wrapKWP, 0, kwpGS20, aesType, ErrInvalidArgument},
		{"not pkcs8", aes, wrapKWP, 0, notPKCS8, hsmv1.KeyType_KEY_TYPE_EC, ErrInvalidArgument},
		{"kw tampered", aes, wrapKW, 0, flipped(kw, 3), aesType, ErrDecrypt},
		{"kw truncated", aes, wrapKW, 0, kw[:len(kw)-8], aesType, ErrDecrypt},
		{"kw bad length", aes, wrapKW, 0, kw[:len(kw)-1], aesType, ErrDecrypt},
		{"kw other key", otherAES, wrapKW, 0, kw, aesType, ErrDecrypt},
		{"kw as kwp", aes, wrapKWP, 0, kw, aesType, ErrDecrypt},
		{"kwp tampered", aes, wrapKWP, 0, flipped(kwp, 20), aesType, ErrDecrypt},
		{"kwp other key", otherAES, wrapKWP, 0, kwp, aesType, ErrDecrypt},
		{"oaep tampered", kp.priv, wrapOAEP, 0, flipped(oaep, 7), aesType, ErrDecrypt},
		{"oaep other key", other.priv, wrapOAEP, 0, oaep, aesType, ErrDecrypt},
		{"oaep other hash", kp.priv, wrapOAEP, hsmv1.Hash_HASH_SHA1, oaep, aesType, ErrDecrypt},
		{"rsa-aes tampered head", kp.priv, mechRSAAES, 0, flipped(rsaAES, 10), aesType, ErrDecrypt},
		{"rsa-aes tampered tail", kp.priv, mechRSAAES, 0, flipped(rsaAES, 260), aesType, ErrDecrypt},
		{"rsa-aes head only", kp.priv, mechRSAAES, 0, rsaAES[:256], aesType, ErrDecrypt},
		{"rsa-aes short", kp.priv, mechRSAAES, 0, rsaAES[:100], aesType, ErrDecrypt},
		{"rsa-aes other key", other.priv, mechRSAAES, 0, rsaAES, aesType, ErrDecrypt},
		{"rsa-aes as oaep", kp.priv, wrapOAEP, 0, rsaAES, aesType, ErrDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attrs, material, err := UnwrapKey(tc.key.attrs, tc.key.material, &hsmv1.UnwrapKeyRequest{
				Mechanism: tc.mech, Hash: tc.hash, Wrapped: tc.wrapped, Type: tc.typ,
			})
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, attrs)
			require.Nil(t, material)
		})
	}
	_, _, err = UnwrapKey(aes.attrs, aes.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, _, err = UnwrapKey(aes.attrs, aes.material, &hsmv1.UnwrapKeyRequest{Mechanism: wrapKW, Wrapped: kw, Type: aesType, Id: make([]byte, 129)})
	require.ErrorIs(t, err, ErrInvalidArgument)

	// A 16-byte AES key's bytes unwrap as a generic secret too: the type is the caller's.
	attrs, _, err := UnwrapKey(aes.attrs, aes.material, &hsmv1.UnwrapKeyRequest{Mechanism: wrapKW, Wrapped: kw, Type: hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET})
	require.NoError(t, err)
	require.Equal(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, attrs.GetType())
	require.Equal(t, uint32(128), attrs.GetSizeBits())
}

func TestUnwrapRSAKeySize(t *testing.T) {
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(small)
	require.NoError(t, err)
	wrapped, err := cryptocore.WrapKWP(aes.material, der)
	require.NoError(t, err)
	_, _, err = UnwrapKey(aes.attrs, aes.material, &hsmv1.UnwrapKeyRequest{
		Mechanism: wrapKWP, Wrapped: wrapped, Type: hsmv1.KeyType_KEY_TYPE_RSA,
	})
	require.ErrorIs(t, err, ErrInvalidArgument)
}
