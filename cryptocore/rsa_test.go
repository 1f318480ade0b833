package cryptocore_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

// RSA keys are slow to make, so each test key is made once per test binary.
var (
	rsaTestKeyA    = sync.OnceValues(func() (*rsa.PrivateKey, error) { return cryptocore.GenerateRSAKey(2048) })
	rsaTestKeyB    = sync.OnceValues(func() (*rsa.PrivateKey, error) { return cryptocore.GenerateRSAKey(2048) })
	rsaTestKey3072 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return cryptocore.GenerateRSAKey(3072) })
	rsaTestKey4096 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return cryptocore.GenerateRSAKey(4096) })
)

// rsaTestKey returns the key one of the variables above makes.
func rsaTestKey(t testing.TB, make func() (*rsa.PrivateKey, error)) *rsa.PrivateKey {
	t.Helper()
	k, err := make()
	require.NoError(t, err)
	return k
}

// rsaAllHashes lists every Hash, for OAEP and MGF1.
var rsaAllHashes = []cryptocore.Hash{cryptocore.SHA1, cryptocore.SHA224, cryptocore.SHA256, cryptocore.SHA384, cryptocore.SHA512}

// rsaSigHashes lists the hashes cryptocore signs with.
var rsaSigHashes = []cryptocore.Hash{cryptocore.SHA256, cryptocore.SHA384, cryptocore.SHA512}

func TestGenerateRSAKey(t *testing.T) {
	for _, tc := range []struct {
		bits int
		key  func() (*rsa.PrivateKey, error)
	}{
		{2048, rsaTestKeyA},
		{3072, rsaTestKey3072},
		{4096, rsaTestKey4096},
	} {
		t.Run(fmt.Sprint(tc.bits), func(t *testing.T) {
			k := rsaTestKey(t, tc.key)
			require.Equal(t, tc.bits, k.N.BitLen())
			require.Equal(t, 65537, k.E)
			require.Len(t, k.Primes, 2)
			require.NoError(t, k.Validate())
		})
	}
	require.NotEqual(t, 0, rsaTestKey(t, rsaTestKeyA).N.Cmp(rsaTestKey(t, rsaTestKeyB).N), "two generated keys are equal")

	for _, bits := range []int{-1, 0, 512, 1024, 2047, 2049, 4095, 8192} {
		k, err := cryptocore.GenerateRSAKey(bits)
		require.ErrorIs(t, err, cryptocore.ErrKeySize, "%d bits", bits)
		require.Nil(t, k)
	}
}

func TestRSASchemeString(t *testing.T) {
	require.Equal(t, "RSASSA_PSS", cryptocore.RSAPSS.String())
	require.Equal(t, "RSASSA_PKCS1_V1_5", cryptocore.RSAPKCS1v15.String())
	require.Equal(t, "RSAScheme(0)", cryptocore.RSAScheme(0).String())
}

// oaepMax returns the longest message OAEP takes: k − 2·hLen − 2 (RFC 8017 §7.1.1 step 1.b).
func oaepMax(pub *rsa.PublicKey, h cryptocore.Hash) int {
	return pub.Size() - 2*h.Size() - 2
}

func TestOAEPRoundTrip(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	pub := &priv.PublicKey
	for _, h := range rsaAllHashes {
		for _, mgf := range rsaAllHashes {
			t.Run(h.String()+"/MGF1-"+mgf.String(), func(t *testing.T) {
				ch, err := h.CryptoHash()
				require.NoError(t, err)
				cm, err := mgf.CryptoHash()
				require.NoError(t, err)
				max := oaepMax(pub, h)
				full := bytes.Repeat([]byte{0xa5}, max)
				for _, tc := range []struct {
					name       string
					msg, label []byte
				}{
					{"empty", nil, nil},
					{"empty with label", []byte{}, []byte("label")},
					{"one byte", []byte{0}, nil},
					{"maximal", full, nil},
					{"maximal with label", full, bytes.Repeat([]byte{1}, 1000)},
				} {
					ct, err := cryptocore.EncryptOAEP(pub, h, mgf, tc.msg, tc.label)
					require.NoError(t, err, tc.name)
					require.Len(t, ct, pub.Size(), tc.name)

					got, err := cryptocore.DecryptOAEP(priv, h, mgf, ct, tc.label)
					require.NoError(t, err, tc.name)
					require.Equal(t, len(tc.msg), len(got), tc.name)
					require.True(t, bytes.Equal(tc.msg, got), tc.name)

					// Interop: crypto/rsa decrypts what cryptocore encrypts...
					got, err = priv.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: ch, MGFHash: cm, Label: tc.label})
					require.NoError(t, err, tc.name)
					require.True(t, bytes.Equal(tc.msg, got), tc.name)

					// ... and the other way round.
					ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, tc.msg, &rsa.OAEPOptions{Hash: ch, MGFHash: cm, Label: tc.label})
					require.NoError(t, err, tc.name)
					got, err = cryptocore.DecryptOAEP(priv, h, mgf, ct, tc.label)
					require.NoError(t, err, tc.name)
					require.True(t, bytes.Equal(tc.msg, got), tc.name)
				}

				// One byte more than the maximum does not fit.
				_, err = cryptocore.EncryptOAEP(pub, h, mgf, append(full, 0), nil)
				require.ErrorIs(t, err, cryptocore.ErrInputSize)
			})
		}
	}
}

func TestOAEPLargeKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func() (*rsa.PrivateKey, error)
		h    cryptocore.Hash
	}{
		{"3072/SHA-384", rsaTestKey3072, cryptocore.SHA384},
		{"4096/SHA-512", rsaTestKey4096, cryptocore.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv := rsaTestKey(t, tc.key)
			msg := bytes.Repeat([]byte{7}, oaepMax(&priv.PublicKey, tc.h))
			ct, err := cryptocore.EncryptOAEP(&priv.PublicKey, tc.h, tc.h, msg, []byte("l"))
			require.NoError(t, err)
			got, err := cryptocore.DecryptOAEP(priv, tc.h, tc.h, ct, []byte("l"))
			require.NoError(t, err)
			require.Equal(t, msg, got)
			_, err = cryptocore.EncryptOAEP(&priv.PublicKey, tc.h, tc.h, append(msg, 7), nil)
			require.ErrorIs(t, err, cryptocore.ErrInputSize)
		})
	}
}

func TestOAEPDecryptFailures(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	other := rsaTestKey(t, rsaTestKeyB)
	pub := &priv.PublicKey
	label := []byte("the label")
	msg := []byte("a secret")
	ct, err := cryptocore.EncryptOAEP(pub, cryptocore.SHA256, cryptocore.SHA256, msg, label)
	require.NoError(t, err)
	k := pub.Size()

	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	nMinus1 := new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, k))
	nPlus := new(big.Int).Add(new(big.Int).SetBytes(ct), pub.N)

	for _, tc := range []struct {
		name      string
		key       *rsa.PrivateKey
		h, mgf    cryptocore.Hash
		ct, label []byte
	}{
		{"first byte flipped", priv, cryptocore.SHA256, cryptocore.SHA256, flip(0), label},
		{"middle byte flipped", priv, cryptocore.SHA256, cryptocore.SHA256, flip(k / 2), label},
		{"last byte flipped", priv, cryptocore.SHA256, cryptocore.SHA256, flip(k - 1), label},
		{"wrong label", priv, cryptocore.SHA256, cryptocore.SHA256, ct, []byte("another label")},
		{"empty label", priv, cryptocore.SHA256, cryptocore.SHA256, ct, nil},
		{"wrong key", other, cryptocore.SHA256, cryptocore.SHA256, ct, label},
		{"wrong hash", priv, cryptocore.SHA384, cryptocore.SHA256, ct, label},
		{"wrong MGF1 hash", priv, cryptocore.SHA256, cryptocore.SHA1, ct, label},
		{"empty", priv, cryptocore.SHA256, cryptocore.SHA256, nil, label},
		{"truncated", priv, cryptocore.SHA256, cryptocore.SHA256, ct[1:], label},
		{"leading zero added", priv, cryptocore.SHA256, cryptocore.SHA256, append([]byte{0}, ct...), label},
		{"trailing byte added", priv, cryptocore.SHA256, cryptocore.SHA256, append(bytes.Clone(ct), 0), label},
		{"zero", priv, cryptocore.SHA256, cryptocore.SHA256, make([]byte, k), label},
		{"one", priv, cryptocore.SHA256, cryptocore.SHA256, append(make([]byte, k-1), 1), label},
		{"n - 1", priv, cryptocore.SHA256, cryptocore.SHA256, nMinus1, label},
		{"n", priv, cryptocore.SHA256, cryptocore.SHA256, pub.N.FillBytes(make([]byte, k)), label},
		{"c + n", priv, cryptocore.SHA256, cryptocore.SHA256, nPlus.Bytes(), label},
		{"all ones", priv, cryptocore.SHA256, cryptocore.SHA256, bytes.Repeat([]byte{0xff}, k), label},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cryptocore.DecryptOAEP(tc.key, tc.h, tc.mgf, tc.ct, tc.label)
			require.ErrorIs(t, err, cryptocore.ErrDecryptFailed)
			// Exactly the sentinel: no wrapping that could tell causes apart.
			require.Equal(t, cryptocore.ErrDecryptFailed, err)
			require.Nil(t, got)
		})
	}
}

// rsaSmallKey returns a 512-bit key, which crypto/rsa only makes with the
// rsa1024min=0 GODEBUG setting; t must not be parallel.
func rsaSmallKey(t *testing.T) *rsa.PrivateKey {
	t.Setenv("GODEBUG", "rsa1024min=0")
	k, err := rsa.GenerateKey(rand.Reader, 512)
	require.NoError(t, err)
	return k
}

func TestOAEPParameterErrors(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	pub := &priv.PublicKey
	ct, err := cryptocore.EncryptOAEP(pub, cryptocore.SHA256, cryptocore.SHA256, []byte("m"), nil)
	require.NoError(t, err)

	for _, h := range []cryptocore.Hash{0, cryptocore.SHA512 + 1} {
		_, err := cryptocore.EncryptOAEP(pub, h, cryptocore.SHA256, nil, nil)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
		_, err = cryptocore.EncryptOAEP(pub, cryptocore.SHA256, h, nil, nil)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
		_, err = cryptocore.DecryptOAEP(priv, h, cryptocore.SHA256, ct, nil)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
		_, err = cryptocore.DecryptOAEP(priv, cryptocore.SHA256, h, ct, nil)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	}

	_, err = cryptocore.EncryptOAEP(nil, cryptocore.SHA256, cryptocore.SHA256, nil, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	_, err = cryptocore.EncryptOAEP(&rsa.PublicKey{}, cryptocore.SHA256, cryptocore.SHA256, nil, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	_, err = cryptocore.EncryptOAEP(&rsa.PublicKey{N: pub.N, E: 65536}, cryptocore.SHA256, cryptocore.SHA256, nil, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	_, err = cryptocore.DecryptOAEP(nil, cryptocore.SHA256, cryptocore.SHA256, ct, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	_, err = cryptocore.DecryptOAEP(&rsa.PrivateKey{PublicKey: *pub}, cryptocore.SHA256, cryptocore.SHA256, ct, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)

	// A multi-prime key is refused.
	multi := *priv
	multi.Primes = []*big.Int{priv.Primes[0], priv.Primes[1], big.NewInt(3)}
	_, err = cryptocore.DecryptOAEP(&multi, cryptocore.SHA256, cryptocore.SHA256, ct, nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)

	// Keys below 1024 bits are refused.
	small := rsaSmallKey(t)
	_, err = cryptocore.EncryptOAEP(&small.PublicKey, cryptocore.SHA1, cryptocore.SHA1, nil, nil)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	_, err = cryptocore.DecryptOAEP(small, cryptocore.SHA1, cryptocore.SHA1, make([]byte, 64), nil)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
}

func TestOAEPRandomized(t *testing.T) {
	pub := &rsaTestKey(t, rsaTestKeyA).PublicKey
	a, err := cryptocore.EncryptOAEP(pub, cryptocore.SHA256, cryptocore.SHA256, []byte("m"), nil)
	require.NoError(t, err)
	b, err := cryptocore.EncryptOAEP(pub, cryptocore.SHA256, cryptocore.SHA256, []byte("m"), nil)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

// rsaSignFuncs pairs each scheme with its digest functions and crypto/rsa's.
var rsaSignFuncs = []struct {
	scheme   cryptocore.RSAScheme
	sign     func(*rsa.PrivateKey, cryptocore.Hash, []byte) ([]byte, error)
	verify   func(*rsa.PublicKey, cryptocore.Hash, []byte, []byte) error
	goSign   func(*rsa.PrivateKey, crypto.Hash, []byte) ([]byte, error)
	goVerify func(*rsa.PublicKey, crypto.Hash, []byte, []byte) error
}{
	{
		cryptocore.RSAPSS, cryptocore.SignPSS, cryptocore.VerifyPSS,
		func(k *rsa.PrivateKey, h crypto.Hash, d []byte) ([]byte, error) {
			return rsa.SignPSS(rand.Reader, k, h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		},
		func(k *rsa.PublicKey, h crypto.Hash, d, s []byte) error {
			return rsa.VerifyPSS(k, h, d, s, &rsa.PSSOptions{SaltLength: h.Size()})
		},
	},
	{
		cryptocore.RSAPKCS1v15, cryptocore.SignPKCS1v15, cryptocore.VerifyPKCS1v15,
		func(k *rsa.PrivateKey, h crypto.Hash, d []byte) ([]byte, error) {
			return rsa.SignPKCS1v15(rand.Reader, k, h, d)
		},
		rsa.VerifyPKCS1v15,
	},
}

func TestRSASignatures(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	pub := &priv.PublicKey
	other := &rsaTestKey(t, rsaTestKeyB).PublicKey
	for _, fn := range rsaSignFuncs {
		for _, h := range rsaSigHashes {
			t.Run(fn.scheme.String()+"/"+h.String(), func(t *testing.T) {
				ch, err := h.CryptoHash()
				require.NoError(t, err)
				msg := []byte("message to sign")
				digest, err := h.Digest(msg)
				require.NoError(t, err)

				sig, err := fn.sign(priv, h, digest)
				require.NoError(t, err)
				require.Len(t, sig, pub.Size())
				require.NoError(t, fn.verify(pub, h, digest, sig))

				// Interop with crypto/rsa, both ways.
				require.NoError(t, fn.goVerify(pub, ch, digest, sig))
				goSig, err := fn.goSign(priv, ch, digest)
				require.NoError(t, err)
				require.NoError(t, fn.verify(pub, h, digest, goSig))

				// The message and digest helpers agree with the digest functions.
				for _, isDigest := range []bool{true, false} {
					input := msg
					if isDigest {
						input = digest
					}
					s, err := cryptocore.SignRSA(priv, fn.scheme, h, input, isDigest)
					require.NoError(t, err)
					require.NoError(t, fn.verify(pub, h, digest, s))
					require.NoError(t, cryptocore.VerifyRSA(pub, fn.scheme, h, input, isDigest, sig))
					require.NoError(t, cryptocore.VerifyRSA(pub, fn.scheme, h, input, isDigest, s))
				}
				// An empty message is a message like any other.
				s, err := cryptocore.SignRSA(priv, fn.scheme, h, nil, false)
				require.NoError(t, err)
				require.NoError(t, cryptocore.VerifyRSA(pub, fn.scheme, h, []byte{}, false, s))

				otherDigest := bytes.Clone(digest)
				otherDigest[0] ^= 1
				for _, bad := range []struct {
					name   string
					pub    *rsa.PublicKey
					digest []byte
					sig    []byte
				}{
					{"first byte flipped", pub, digest, flipByte(sig, 0)},
					{"last byte flipped", pub, digest, flipByte(sig, len(sig)-1)},
					{"other digest", pub, otherDigest, sig},
					{"wrong key", other, digest, sig},
					{"empty", pub, digest, nil},
					{"truncated", pub, digest, sig[1:]},
					{"extended", pub, digest, append(bytes.Clone(sig), 0)},
					{"leading zero", pub, digest, append([]byte{0}, sig...)},
					{"zero", pub, digest, make([]byte, len(sig))},
					{"n", pub, digest, pub.N.Bytes()},
				} {
					err := fn.verify(bad.pub, h, bad.digest, bad.sig)
					require.ErrorIs(t, err, cryptocore.ErrInvalidSignature, bad.name)
				}
				// The message helper rejects a signature over another message.
				err = cryptocore.VerifyRSA(pub, fn.scheme, h, []byte("another message"), false, sig)
				require.ErrorIs(t, err, cryptocore.ErrInvalidSignature)
			})
		}
	}
}

// flipByte returns a copy of b with one bit of b[i] flipped.
func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x80
	return c
}

func TestRSASignatureSchemesDiffer(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	pub := &priv.PublicKey
	digest, err := cryptocore.SHA256.Digest([]byte("m"))
	require.NoError(t, err)

	pss, err := cryptocore.SignPSS(priv, cryptocore.SHA256, digest)
	require.NoError(t, err)
	pkcs, err := cryptocore.SignPKCS1v15(priv, cryptocore.SHA256, digest)
	require.NoError(t, err)
	require.ErrorIs(t, cryptocore.VerifyPKCS1v15(pub, cryptocore.SHA256, digest, pss), cryptocore.ErrInvalidSignature)
	require.ErrorIs(t, cryptocore.VerifyPSS(pub, cryptocore.SHA256, digest, pkcs), cryptocore.ErrInvalidSignature)

	// PSS is randomized; PKCS #1 v1.5 is deterministic.
	pss2, err := cryptocore.SignPSS(priv, cryptocore.SHA256, digest)
	require.NoError(t, err)
	require.NotEqual(t, pss, pss2)
	pkcs2, err := cryptocore.SignPKCS1v15(priv, cryptocore.SHA256, digest)
	require.NoError(t, err)
	require.Equal(t, pkcs, pkcs2)

	// A PSS signature with another salt length is refused: the salt length is
	// the hash length exactly.
	for _, salt := range []int{rsa.PSSSaltLengthAuto, 0, 20, 33} {
		s, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: salt})
		require.NoError(t, err)
		require.ErrorIs(t, cryptocore.VerifyPSS(pub, cryptocore.SHA256, digest, s), cryptocore.ErrInvalidSignature, "salt %d", salt)
	}
	// A PKCS #1 v1.5 signature naming another hash in its DigestInfo is refused.
	sha512d, err := cryptocore.SHA512.Digest([]byte("m"))
	require.NoError(t, err)
	s, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA512_256, sha512d[:32])
	require.NoError(t, err)
	require.ErrorIs(t, cryptocore.VerifyPKCS1v15(pub, cryptocore.SHA256, sha512d[:32], s), cryptocore.ErrInvalidSignature)
}

func TestRSASignatureLargeKey(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKey4096)
	for _, scheme := range []cryptocore.RSAScheme{cryptocore.RSAPSS, cryptocore.RSAPKCS1v15} {
		sig, err := cryptocore.SignRSA(priv, scheme, cryptocore.SHA512, []byte("m"), false)
		require.NoError(t, err)
		require.Len(t, sig, 512)
		require.NoError(t, cryptocore.VerifyRSA(&priv.PublicKey, scheme, cryptocore.SHA512, []byte("m"), false, sig))
	}
}

func TestRSASignatureErrors(t *testing.T) {
	priv := rsaTestKey(t, rsaTestKeyA)
	pub := &priv.PublicKey
	d256, err := cryptocore.SHA256.Digest([]byte("m"))
	require.NoError(t, err)
	sig, err := cryptocore.SignPSS(priv, cryptocore.SHA256, d256)
	require.NoError(t, err)

	for _, fn := range rsaSignFuncs {
		t.Run(fn.scheme.String(), func(t *testing.T) {
			// Hashes cryptocore does not sign with.
			for _, h := range []cryptocore.Hash{0, cryptocore.SHA1, cryptocore.SHA224, cryptocore.SHA512 + 1} {
				d := make([]byte, h.Size())
				_, err := fn.sign(priv, h, d)
				require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%v", h)
				require.ErrorIs(t, fn.verify(pub, h, d, sig), cryptocore.ErrUnsupported, "%v", h)
				_, err = cryptocore.SignRSA(priv, fn.scheme, h, []byte("m"), false)
				require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%v", h)
				require.ErrorIs(t, cryptocore.VerifyRSA(pub, fn.scheme, h, []byte("m"), false, sig), cryptocore.ErrUnsupported, "%v", h)
			}
			// Digests of the wrong length, including another hash's digest.
			for _, d := range [][]byte{nil, {}, d256[:31], append(bytes.Clone(d256), 0), make([]byte, 48)} {
				_, err := fn.sign(priv, cryptocore.SHA256, d)
				require.ErrorIs(t, err, cryptocore.ErrInputSize, "%d bytes", len(d))
				require.ErrorIs(t, fn.verify(pub, cryptocore.SHA256, d, sig), cryptocore.ErrInputSize, "%d bytes", len(d))
				_, err = cryptocore.SignRSA(priv, fn.scheme, cryptocore.SHA256, d, true)
				require.ErrorIs(t, err, cryptocore.ErrInputSize, "%d bytes", len(d))
				require.ErrorIs(t, cryptocore.VerifyRSA(pub, fn.scheme, cryptocore.SHA256, d, true, sig), cryptocore.ErrInputSize)
			}
			// Missing or broken keys.
			_, err := fn.sign(nil, cryptocore.SHA256, d256)
			require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
			_, err = fn.sign(&rsa.PrivateKey{PublicKey: *pub}, cryptocore.SHA256, d256)
			require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
			require.ErrorIs(t, fn.verify(nil, cryptocore.SHA256, d256, sig), cryptocore.ErrInvalidKey)
			require.ErrorIs(t, fn.verify(&rsa.PublicKey{E: 65537}, cryptocore.SHA256, d256, sig), cryptocore.ErrInvalidKey)
			// A private key whose parts do not match is caught by crypto/rsa.
			broken := *priv
			broken.D = new(big.Int).Add(priv.D, big.NewInt(2))
			broken.Precomputed = rsa.PrecomputedValues{}
			if s, err := fn.sign(&broken, cryptocore.SHA256, d256); err == nil {
				// crypto/rsa may sign with the CRT values alone; the result
				// must then still verify, never be a wrong signature.
				require.NoError(t, fn.verify(pub, cryptocore.SHA256, d256, s))
			} else {
				require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
			}
		})
	}

	_, err = cryptocore.SignRSA(priv, cryptocore.RSAScheme(0), cryptocore.SHA256, d256, true)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	require.ErrorIs(t, cryptocore.VerifyRSA(pub, cryptocore.RSAScheme(3), cryptocore.SHA256, d256, true, sig), cryptocore.ErrUnsupported)
}

func TestRSASignatureSmallKeys(t *testing.T) {
	small := rsaSmallKey(t)
	d, err := cryptocore.SHA256.Digest(nil)
	require.NoError(t, err)
	_, err = cryptocore.SignPSS(small, cryptocore.SHA256, d)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	_, err = cryptocore.SignPKCS1v15(small, cryptocore.SHA256, d)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	require.ErrorIs(t, cryptocore.VerifyPSS(&small.PublicKey, cryptocore.SHA256, d, make([]byte, 64)), cryptocore.ErrKeySize)
	require.ErrorIs(t, cryptocore.VerifyPKCS1v15(&small.PublicKey, cryptocore.SHA256, d, make([]byte, 64)), cryptocore.ErrKeySize)
}

func TestRSAPSSKeyTooSmallForHash(t *testing.T) {
	// A 1024-bit key has emLen = 128 < 2·64 + 2, too small for PSS with
	// SHA-512 and a 64-byte salt (RFC 8017 §9.1.1 step 3).
	t.Setenv("GODEBUG", "rsa1024min=0")
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	d, err := cryptocore.SHA512.Digest(nil)
	require.NoError(t, err)
	_, err = cryptocore.SignPSS(k, cryptocore.SHA512, d)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	// SHA-256 fits: emLen = 128 ≥ 66.
	d, err = cryptocore.SHA256.Digest(nil)
	require.NoError(t, err)
	sig, err := cryptocore.SignPSS(k, cryptocore.SHA256, d)
	require.NoError(t, err)
	require.NoError(t, cryptocore.VerifyPSS(&k.PublicKey, cryptocore.SHA256, d, sig))
}

func TestMarshalParseKeys(t *testing.T) {
	rsaKey := rsaTestKey(t, rsaTestKeyA)
	p256, err := cryptocore.GenerateECKey(cryptocore.P256)
	require.NoError(t, err)
	p521, err := cryptocore.GenerateECKey(cryptocore.P521)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		priv crypto.Signer
	}{
		{"RSA", rsaKey},
		{"P-256", p256},
		{"P-521", p521},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := cryptocore.MarshalPrivateKey(tc.priv)
			require.NoError(t, err)
			// Interop: crypto/x509 reads it, and writes the same bytes.
			goKey, err := x509.ParsePKCS8PrivateKey(der)
			require.NoError(t, err)
			goDER, err := x509.MarshalPKCS8PrivateKey(goKey)
			require.NoError(t, err)
			require.Equal(t, der, goDER)

			parsed, err := cryptocore.ParsePrivateKey(der)
			require.NoError(t, err)
			require.True(t, parsed.(interface{ Equal(crypto.PrivateKey) bool }).Equal(tc.priv))

			pubDER, err := cryptocore.MarshalPublicKey(tc.priv.Public())
			require.NoError(t, err)
			goPubDER, err := x509.MarshalPKIXPublicKey(tc.priv.Public())
			require.NoError(t, err)
			require.Equal(t, goPubDER, pubDER)
			pub, err := cryptocore.ParsePublicKey(pubDER)
			require.NoError(t, err)
			require.True(t, pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.priv.Public()))

			// Malformed encodings.
			for _, bad := range []struct {
				name string
				der  []byte
			}{
				{"empty", nil},
				{"truncated", der[:len(der)-1]},
				{"trailing byte", append(bytes.Clone(der), 0)},
				{"trailing element", append(bytes.Clone(der), 0x30, 0x00)},
				{"header only", der[:4]},
				{"first byte changed", append([]byte{0x31}, der[1:]...)},
			} {
				_, err := cryptocore.ParsePrivateKey(bad.der)
				require.ErrorIs(t, err, cryptocore.ErrInvalidKey, "private %s", bad.name)
			}
			for _, bad := range [][]byte{nil, pubDER[:len(pubDER)-1], append(bytes.Clone(pubDER), 0), pubDER[:4]} {
				_, err := cryptocore.ParsePublicKey(bad)
				require.ErrorIs(t, err, cryptocore.ErrInvalidKey, "public %x", bad)
			}
			// Private and public encodings are not interchangeable.
			_, err = cryptocore.ParsePrivateKey(pubDER)
			require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
			_, err = cryptocore.ParsePublicKey(der)
			require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
		})
	}
}

func TestMarshalParseKeyErrors(t *testing.T) {
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	rsaKey := rsaTestKey(t, rsaTestKeyA)

	// Key types and curves cryptocore does not offer.
	for _, k := range []any{edPriv, p224, nil, "key", rsaKey.Public()} {
		_, err := cryptocore.MarshalPrivateKey(k)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%T", k)
	}
	for _, k := range []any{edPub, &p224.PublicKey, nil, rsaKey} {
		_, err := cryptocore.MarshalPublicKey(k)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%T", k)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edPriv)
	require.NoError(t, err)
	_, err = cryptocore.ParsePrivateKey(edDER)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	edPubDER, err := x509.MarshalPKIXPublicKey(edPub)
	require.NoError(t, err)
	_, err = cryptocore.ParsePublicKey(edPubDER)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	p224DER, err := x509.MarshalPKCS8PrivateKey(p224)
	require.NoError(t, err)
	_, err = cryptocore.ParsePrivateKey(p224DER)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	p224PubDER, err := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	require.NoError(t, err)
	_, err = cryptocore.ParsePublicKey(p224PubDER)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)

	// Nil and incomplete keys of supported types.
	for _, k := range []any{(*rsa.PrivateKey)(nil), &rsa.PrivateKey{}, (*ecdsa.PrivateKey)(nil), &ecdsa.PrivateKey{}} {
		_, err := cryptocore.MarshalPrivateKey(k)
		require.ErrorIs(t, err, cryptocore.ErrInvalidKey, "%#v", k)
	}
	for _, k := range []any{(*rsa.PublicKey)(nil), &rsa.PublicKey{}, (*ecdsa.PublicKey)(nil), &ecdsa.PublicKey{}, &ecdsa.PublicKey{Curve: elliptic.P256()}} {
		_, err := cryptocore.MarshalPublicKey(k)
		require.ErrorIs(t, err, cryptocore.ErrInvalidKey, "%#v", k)
	}
	multi := *rsaKey
	multi.Primes = []*big.Int{rsaKey.Primes[0], rsaKey.Primes[1], big.NewInt(3)}
	_, err = cryptocore.MarshalPrivateKey(&multi)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
}

func TestParseSmallRSAKeys(t *testing.T) {
	small := rsaSmallKey(t)
	der, err := x509.MarshalPKCS8PrivateKey(small)
	require.NoError(t, err)
	_, err = cryptocore.ParsePrivateKey(der)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	_, err = cryptocore.MarshalPrivateKey(small)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	pubDER, err := x509.MarshalPKIXPublicKey(&small.PublicKey)
	require.NoError(t, err)
	_, err = cryptocore.ParsePublicKey(pubDER)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
	_, err = cryptocore.MarshalPublicKey(&small.PublicKey)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
}

// FuzzDecryptOAEP checks that no ciphertext or label makes DecryptOAEP panic
// or return anything but a plaintext or exactly ErrDecryptFailed.
func FuzzDecryptOAEP(f *testing.F) {
	priv := rsaTestKey(f, rsaTestKeyA)
	ct, err := cryptocore.EncryptOAEP(&priv.PublicKey, cryptocore.SHA256, cryptocore.SHA256, []byte("seed"), []byte("l"))
	require.NoError(f, err)
	f.Add(ct, []byte("l"))
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, 256), []byte{})
	f.Fuzz(func(t *testing.T, ct, label []byte) {
		msg, err := cryptocore.DecryptOAEP(priv, cryptocore.SHA256, cryptocore.SHA256, ct, label)
		if err != nil {
			require.Equal(t, cryptocore.ErrDecryptFailed, err)
			require.Nil(t, msg)
		}
	})
}

// FuzzParsePrivateKey checks that no input makes ParsePrivateKey panic, and
// that whatever it accepts re-encodes without error.
func FuzzParsePrivateKey(f *testing.F) {
	der, err := cryptocore.MarshalPrivateKey(rsaTestKey(f, rsaTestKeyA))
	require.NoError(f, err)
	f.Add(der)
	ec, err := cryptocore.GenerateECKey(cryptocore.P384)
	require.NoError(f, err)
	der, err = cryptocore.MarshalPrivateKey(ec)
	require.NoError(f, err)
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		k, err := cryptocore.ParsePrivateKey(der)
		if err != nil {
			require.Nil(t, k)
			return
		}
		_, err = cryptocore.MarshalPrivateKey(k)
		require.NoError(t, err)
	})
}

// FuzzParsePublicKey checks that no input makes ParsePublicKey panic, and
// that whatever it accepts re-encodes without error.
func FuzzParsePublicKey(f *testing.F) {
	der, err := cryptocore.MarshalPublicKey(rsaTestKey(f, rsaTestKeyA).Public())
	require.NoError(f, err)
	f.Add(der)
	ec, err := cryptocore.GenerateECKey(cryptocore.P256)
	require.NoError(f, err)
	der, err = cryptocore.MarshalPublicKey(ec.Public())
	require.NoError(f, err)
	f.Add(der)
	f.Fuzz(func(t *testing.T, der []byte) {
		k, err := cryptocore.ParsePublicKey(der)
		if err != nil {
			require.Nil(t, k)
			return
		}
		_, err = cryptocore.MarshalPublicKey(k)
		require.NoError(t, err)
	})
}
