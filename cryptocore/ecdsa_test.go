//lint:file-ignore SA1019 these tests build malformed keys from raw coordinates on purpose.

package cryptocore_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ecTestCurves lists the curves cryptocore signs on, with crypto/elliptic's.
var ecTestCurves = []struct {
	curve cryptocore.Curve
	name  string
	ec    elliptic.Curve
}{
	{cryptocore.P256, "P-256", elliptic.P256()},
	{cryptocore.P384, "P-384", elliptic.P384()},
	{cryptocore.P521, "P-521", elliptic.P521()},
}

func TestCurveNames(t *testing.T) {
	for _, tc := range ecTestCurves {
		require.Equal(t, tc.name, tc.curve.String())
		c, err := cryptocore.ParseCurve(tc.name)
		require.NoError(t, err)
		require.Equal(t, tc.curve, c)
	}
	c, err := cryptocore.ParseCurve("secp256k1")
	require.NoError(t, err)
	require.Equal(t, cryptocore.Secp256k1, c)
	require.Equal(t, "secp256k1", cryptocore.Secp256k1.String())
	require.Equal(t, "Curve(0)", cryptocore.Curve(0).String())
	for _, name := range []string{"", "p-256", "P256", "secp256r1", "P-224", "Curve(1)"} {
		_, err := cryptocore.ParseCurve(name)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%q", name)
	}
}

func TestGenerateECKey(t *testing.T) {
	for _, tc := range ecTestCurves {
		t.Run(tc.name, func(t *testing.T) {
			k, err := cryptocore.GenerateECKey(tc.curve)
			require.NoError(t, err)
			require.Equal(t, tc.ec, k.Curve)
			c, err := cryptocore.CurveOf(&k.PublicKey)
			require.NoError(t, err)
			require.Equal(t, tc.curve, c)
			k2, err := cryptocore.GenerateECKey(tc.curve)
			require.NoError(t, err)
			require.False(t, k.Equal(k2), "two generated keys are equal")
		})
	}
	// secp256k1 is in neither the standard library nor golang.org/x/crypto.
	for _, c := range []cryptocore.Curve{cryptocore.Secp256k1, 0, cryptocore.Secp256k1 + 1, -1} {
		k, err := cryptocore.GenerateECKey(c)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%v", c)
		require.Nil(t, k)
	}
}

func TestCurveOfErrors(t *testing.T) {
	_, err := cryptocore.CurveOf(nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	_, err = cryptocore.CurveOf(&ecdsa.PublicKey{})
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	_, err = cryptocore.CurveOf(&p224.PublicKey)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
}

// derSig encodes r and s as an ECDSA-Sig-Value (RFC 3279 §2.2.3).
func derSig(t *testing.T, r, s *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	sig, err := b.Bytes()
	require.NoError(t, err)
	return sig
}

// parseSig decodes an ECDSA-Sig-Value.
func parseSig(t *testing.T, sig []byte) (r, s *big.Int) {
	in := cryptobyte.String(sig)
	var inner cryptobyte.String
	r, s = new(big.Int), new(big.Int)
	require.True(t, in.ReadASN1(&inner, cbasn1.SEQUENCE) && in.Empty() &&
		inner.ReadASN1Integer(r) && inner.ReadASN1Integer(s) && inner.Empty())
	return r, s
}

func TestECDSASignatures(t *testing.T) {
	for _, tc := range ecTestCurves {
		priv, err := cryptocore.GenerateECKey(tc.curve)
		require.NoError(t, err)
		pub := &priv.PublicKey
		other, err := cryptocore.GenerateECKey(tc.curve)
		require.NoError(t, err)
		for _, h := range rsaSigHashes {
			t.Run(tc.name+"/"+h.String(), func(t *testing.T) {
				msg := []byte("message to sign")
				digest, err := h.Digest(msg)
				require.NoError(t, err)

				sig, err := cryptocore.SignECDSA(priv, h, digest)
				require.NoError(t, err)
				require.NoError(t, cryptocore.VerifyECDSA(pub, h, digest, sig))

				// Interop with crypto/ecdsa, both ways.
				require.True(t, ecdsa.VerifyASN1(pub, digest, sig))
				goSig, err := ecdsa.SignASN1(rand.Reader, priv, digest)
				require.NoError(t, err)
				require.NoError(t, cryptocore.VerifyECDSA(pub, h, digest, goSig))

				// The message and digest helpers agree with the digest functions.
				for _, isDigest := range []bool{true, false} {
					input := msg
					if isDigest {
						input = digest
					}
					s, err := cryptocore.SignEC(priv, h, input, isDigest)
					require.NoError(t, err)
					require.NoError(t, cryptocore.VerifyECDSA(pub, h, digest, s))
					require.NoError(t, cryptocore.VerifyEC(pub, h, input, isDigest, sig))
				}
				s, err := cryptocore.SignEC(priv, h, nil, false)
				require.NoError(t, err)
				require.NoError(t, cryptocore.VerifyEC(pub, h, []byte{}, false, s))
				require.ErrorIs(t, cryptocore.VerifyEC(pub, h, []byte("another message"), false, sig), cryptocore.ErrInvalidSignature)

				// Signatures are randomized.
				sig2, err := cryptocore.SignECDSA(priv, h, digest)
				require.NoError(t, err)
				require.NotEqual(t, sig, sig2)

				r, sv := parseSig(t, sig)
				n := tc.ec.Params().N
				// Flip a leading bit: trailing bits of a digest longer than
				// the order are truncated away (TestECDSADigestTruncation).
				otherDigest := bytes.Clone(digest)
				otherDigest[0] ^= 1
				// A SEQUENCE length one byte longer than needed: BER, not DER.
				var ber []byte
				switch {
				case sig[1] < 0x80:
					ber = append([]byte{0x30, 0x81, sig[1]}, sig[2:]...)
				case sig[1] == 0x81: // P-521 signatures need the long form already.
					ber = append([]byte{0x30, 0x82, 0x00, sig[2]}, sig[3:]...)
				default:
					t.Fatalf("unexpected signature header %x", sig[:2])
				}
				// An INTEGER with a superfluous leading zero byte.
				rBytes := append([]byte{0x00}, r.Bytes()...)
				if r.Bytes()[0] >= 0x80 { // one zero is needed there; two are not
					rBytes = append([]byte{0x00}, rBytes...)
				}
				var pb cryptobyte.Builder
				pb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(rBytes) })
					b.AddASN1BigInt(sv)
				})
				padded, err := pb.Bytes()
				require.NoError(t, err)

				for _, bad := range []struct {
					name   string
					pub    *ecdsa.PublicKey
					digest []byte
					sig    []byte
				}{
					{"last byte flipped", pub, digest, flipByte(sig, len(sig)-1)},
					{"r flipped", pub, digest, derSig(t, new(big.Int).Xor(r, big.NewInt(1)), sv)},
					{"other digest", pub, otherDigest, sig},
					{"wrong key", &other.PublicKey, digest, sig},
					{"empty", pub, digest, nil},
					{"truncated", pub, digest, sig[:len(sig)-1]},
					{"trailing byte", pub, digest, append(bytes.Clone(sig), 0)},
					{"BER length", pub, digest, ber},
					{"non-minimal INTEGER", pub, digest, padded},
					{"r = 0", pub, digest, derSig(t, big.NewInt(0), sv)},
					{"s = 0", pub, digest, derSig(t, r, big.NewInt(0))},
					{"r + n", pub, digest, derSig(t, new(big.Int).Add(r, n), sv)},
					{"s + n", pub, digest, derSig(t, r, new(big.Int).Add(sv, n))},
					{"negative r", pub, digest, derSig(t, new(big.Int).Neg(r), sv)},
					{"r and s swapped", pub, digest, derSig(t, sv, r)},
					{"raw r||s", pub, digest, append(r.FillBytes(make([]byte, (n.BitLen()+7)/8)), sv.FillBytes(make([]byte, (n.BitLen()+7)/8))...)},
				} {
					require.ErrorIs(t, cryptocore.VerifyECDSA(bad.pub, h, bad.digest, bad.sig), cryptocore.ErrInvalidSignature, bad.name)
				}
				// The re-encoded pair itself verifies: derSig is right.
				require.NoError(t, cryptocore.VerifyECDSA(pub, h, digest, derSig(t, r, sv)))
			})
		}
	}
}

// TestECDSADigestTruncation shows FIPS 186-5 §6.4.1 step 3 at work: a
// digest longer than the curve order is cut to the order's bit length, so
// with SHA-512 on P-256 only the first 256 bits of the digest are signed.
// The caller picks the hash; AWS KMS pairs P-256 with SHA-256.
func TestECDSADigestTruncation(t *testing.T) {
	priv, err := cryptocore.GenerateECKey(cryptocore.P256)
	require.NoError(t, err)
	digest, err := cryptocore.SHA512.Digest([]byte("m"))
	require.NoError(t, err)
	sig, err := cryptocore.SignECDSA(priv, cryptocore.SHA512, digest)
	require.NoError(t, err)
	tail := bytes.Clone(digest)
	tail[63] ^= 1
	require.NoError(t, cryptocore.VerifyECDSA(&priv.PublicKey, cryptocore.SHA512, tail, sig))
	head := bytes.Clone(digest)
	head[31] ^= 1
	require.ErrorIs(t, cryptocore.VerifyECDSA(&priv.PublicKey, cryptocore.SHA512, head, sig), cryptocore.ErrInvalidSignature)
}

func TestECDSAErrors(t *testing.T) {
	priv, err := cryptocore.GenerateECKey(cryptocore.P256)
	require.NoError(t, err)
	pub := &priv.PublicKey
	d256, err := cryptocore.SHA256.Digest([]byte("m"))
	require.NoError(t, err)
	sig, err := cryptocore.SignECDSA(priv, cryptocore.SHA256, d256)
	require.NoError(t, err)

	// Hashes cryptocore does not sign with.
	for _, h := range []cryptocore.Hash{0, cryptocore.SHA1, cryptocore.SHA224, cryptocore.SHA512 + 1} {
		d := make([]byte, h.Size())
		_, err := cryptocore.SignECDSA(priv, h, d)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%v", h)
		require.ErrorIs(t, cryptocore.VerifyECDSA(pub, h, d, sig), cryptocore.ErrUnsupported, "%v", h)
		_, err = cryptocore.SignEC(priv, h, []byte("m"), false)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%v", h)
		require.ErrorIs(t, cryptocore.VerifyEC(pub, h, []byte("m"), false, sig), cryptocore.ErrUnsupported, "%v", h)
	}
	// Digests of the wrong length.
	for _, d := range [][]byte{nil, {}, d256[:31], append(bytes.Clone(d256), 0), make([]byte, 64)} {
		_, err := cryptocore.SignECDSA(priv, cryptocore.SHA256, d)
		require.ErrorIs(t, err, cryptocore.ErrInputSize, "%d bytes", len(d))
		require.ErrorIs(t, cryptocore.VerifyECDSA(pub, cryptocore.SHA256, d, sig), cryptocore.ErrInputSize, "%d bytes", len(d))
		_, err = cryptocore.SignEC(priv, cryptocore.SHA256, d, true)
		require.ErrorIs(t, err, cryptocore.ErrInputSize, "%d bytes", len(d))
		require.ErrorIs(t, cryptocore.VerifyEC(pub, cryptocore.SHA256, d, true, sig), cryptocore.ErrInputSize)
	}

	// Missing, broken and unsupported keys.
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	d224, err := cryptocore.SHA256.Digest([]byte("m"))
	require.NoError(t, err)
	_, err = cryptocore.SignECDSA(p224, cryptocore.SHA256, d224)
	require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	require.ErrorIs(t, cryptocore.VerifyECDSA(&p224.PublicKey, cryptocore.SHA256, d224, sig), cryptocore.ErrUnsupported)

	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: pub.X, Y: new(big.Int).Add(pub.Y, big.NewInt(1))}
	for _, k := range []*ecdsa.PrivateKey{
		nil,
		{},
		{PublicKey: *pub},
		{PublicKey: *pub, D: big.NewInt(0)},
		{PublicKey: *pub, D: elliptic.P256().Params().N},
		{PublicKey: *offCurve, D: priv.D},
	} {
		_, err := cryptocore.SignECDSA(k, cryptocore.SHA256, d256)
		require.ErrorIs(t, err, cryptocore.ErrInvalidKey, "%#v", k)
	}
	// A scalar that does not match the public point is refused by crypto/ecdsa.
	mismatched := &ecdsa.PrivateKey{PublicKey: *pub, D: big.NewInt(12345)}
	_, err = cryptocore.SignECDSA(mismatched, cryptocore.SHA256, d256)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)

	for _, k := range []*ecdsa.PublicKey{
		nil,
		{},
		{Curve: elliptic.P256()},
		{Curve: elliptic.P256(), X: pub.X},
		offCurve,
		{Curve: elliptic.P256(), X: big.NewInt(0), Y: big.NewInt(0)},
	} {
		require.ErrorIs(t, cryptocore.VerifyECDSA(k, cryptocore.SHA256, d256, sig), cryptocore.ErrInvalidKey, "%#v", k)
	}
}

// FuzzVerifyECDSA checks that no signature makes VerifyECDSA panic or accept
// anything but the one signature it was given, re-encodings included.
func FuzzVerifyECDSA(f *testing.F) {
	priv, err := cryptocore.GenerateECKey(cryptocore.P256)
	require.NoError(f, err)
	digest, err := cryptocore.SHA256.Digest([]byte("fuzz"))
	require.NoError(f, err)
	sig, err := cryptocore.SignECDSA(priv, cryptocore.SHA256, digest)
	require.NoError(f, err)
	f.Add(sig)
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, s []byte) {
		err := cryptocore.VerifyECDSA(&priv.PublicKey, cryptocore.SHA256, digest, s)
		if err != nil {
			require.ErrorIs(t, err, cryptocore.ErrInvalidSignature)
			return
		}
		// Anything accepted is a strict DER encoding of a valid (r, s).
		r, sv := parseSig(t, s)
		require.Equal(t, derSig(t, r, sv), s)
	})
}
