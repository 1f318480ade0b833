package keyops

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// allUsage allows every operation and extraction.
func allUsage() *hsmv1.KeyUsage {
	return &hsmv1.KeyUsage{Extractable: true, Encrypt: true, Decrypt: true, Wrap: true, Unwrap: true, Sign: true, Verify: true}
}

// testKey is one key object: its attributes and material (nil for a public key).
type testKey struct {
	attrs    *hsmv1.KeyAttributes
	material []byte
}

// with returns a copy of k with the attributes changed by f.
func (k testKey) with(f func(a *hsmv1.KeyAttributes)) testKey {
	a := proto.Clone(k.attrs).(*hsmv1.KeyAttributes)
	f(a)
	return testKey{attrs: a, material: k.material}
}

// mustSymmetric generates a secret key allowing everything.
func mustSymmetric(t testing.TB, typ hsmv1.KeyType, bits uint32) testKey {
	t.Helper()
	attrs, material, err := GenerateSymmetric(&hsmv1.GenerateSymmetricKeyRequest{Type: typ, SizeBits: bits, Usage: allUsage()})
	require.NoError(t, err)
	return testKey{attrs: attrs, material: material}
}

// keyPair is a generated key pair.
type keyPair struct {
	pub, priv testKey
}

// mustKeyPair generates a key pair allowing everything.
func mustKeyPair(t testing.TB, typ hsmv1.KeyType, bits uint32, curve hsmv1.Curve) keyPair {
	t.Helper()
	pub, priv, material, err := GenerateKeyPair(&hsmv1.GenerateKeyPairRequest{Type: typ, ModulusBits: bits, Curve: curve, Usage: allUsage()})
	require.NoError(t, err)
	return keyPair{pub: testKey{attrs: pub}, priv: testKey{attrs: priv, material: material}}
}

// RSA-2048 key pairs shared by the tests (generation is slow under -race).
var (
	rsaOnce          sync.Once
	rsaKey, rsaOther keyPair
)

// rsa2048 returns two distinct RSA-2048 key pairs allowing everything.
func rsa2048(t testing.TB) (keyPair, keyPair) {
	t.Helper()
	rsaOnce.Do(func() {
		rsaKey = mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_RSA, 2048, hsmv1.Curve_CURVE_UNSPECIFIED)
		rsaOther = mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_RSA, 2048, hsmv1.Curve_CURVE_UNSPECIFIED)
	})
	require.NotNil(t, rsaKey.priv.attrs, "RSA fixture generation failed earlier")
	return rsaKey, rsaOther
}

// ecPairs returns one EC key pair per curve, allowing everything.
func ecPairs(t testing.TB) map[hsmv1.Curve]keyPair {
	t.Helper()
	m := map[hsmv1.Curve]keyPair{}
	for _, c := range []hsmv1.Curve{hsmv1.Curve_CURVE_P256, hsmv1.Curve_CURVE_P384, hsmv1.Curve_CURVE_P521} {
		m[c] = mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, c)
	}
	return m
}

// flipped returns a copy of b with bit 0 of byte i flipped.
func flipped(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}
