package cryptocore_test

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
)

func kwHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// kwSeq returns n bytes start, start+7, start+14, ... (mod 256).
func kwSeq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i*7)
	}
	return b
}

// refWrap is an independent reference of RFC 3394 §2.2.1 in its first
// (shift-register) form, with an arbitrary initial value. It lets the tests
// build wrapped data with initial values WrapKW and WrapKWP never use.
func refWrap(t testing.TB, kek, iv, p []byte) []byte {
	t.Helper()
	require.Len(t, iv, 8)
	require.Zero(t, len(p)%8)
	b, err := aes.NewCipher(kek)
	require.NoError(t, err)
	n := len(p) / 8
	a := append([]byte(nil), iv...)
	r := make([][]byte, n)
	for i := range r {
		r[i] = append([]byte(nil), p[8*i:8*i+8]...)
	}
	var t64 uint64
	blk := make([]byte, 16)
	for s := 0; s < 6*n; s++ {
		t64++
		copy(blk, a)
		copy(blk[8:], r[0])
		b.Encrypt(blk, blk)
		binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(blk[:8])^t64)
		// R[1..n-1] = R[2..n]; R[n] = LSB(64, B).
		copy(r, r[1:])
		r[n-1] = append([]byte(nil), blk[8:]...)
	}
	out := append([]byte(nil), a...)
	for _, ri := range r {
		out = append(out, ri...)
	}
	return out
}

// refWrapKWP builds an RFC 5649 wrapping of the already padded semiblocks
// padded with the initial value prefix | mli, whatever they hold.
func refWrapKWP(t testing.TB, kek []byte, prefix uint32, mli uint32, padded []byte) []byte {
	t.Helper()
	iv := make([]byte, 8)
	binary.BigEndian.PutUint32(iv, prefix)
	binary.BigEndian.PutUint32(iv[4:], mli)
	if len(padded) == 8 {
		b, err := aes.NewCipher(kek)
		require.NoError(t, err)
		out := append(iv, padded...)
		b.Encrypt(out, out)
		return out
	}
	return refWrap(t, kek, iv, padded)
}

var (
	kwKEK128 = kwSeq(0x10, 16)
	kwKEK192 = kwSeq(0x20, 24)
	kwKEK256 = kwSeq(0x30, 32)
	kwKEKs   = []struct {
		name string
		kek  []byte
	}{{"AES-128", kwKEK128}, {"AES-192", kwKEK192}, {"AES-256", kwKEK256}}
)

func TestKWRFC3394Vectors(t *testing.T) {
	// RFC 3394 §4.1 to §4.6.
	const kek = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
	const key = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
	tests := []struct {
		name     string
		kekLen   int
		keyLen   int
		wrapped  string
		sections string
	}{
		{"128 bits with 128-bit KEK", 16, 16, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5", "4.1"},
		{"128 bits with 192-bit KEK", 24, 16, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D", "4.2"},
		{"128 bits with 256-bit KEK", 32, 16, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7", "4.3"},
		{"192 bits with 192-bit KEK", 24, 24, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2", "4.4"},
		{"192 bits with 256-bit KEK", 32, 24, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1", "4.5"},
		{"256 bits with 256-bit KEK", 32, 32, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21", "4.6"},
	}
	for _, tc := range tests {
		t.Run(tc.sections+" "+tc.name, func(t *testing.T) {
			k := kwHex(t, kek)[:tc.kekLen]
			p := kwHex(t, key)[:tc.keyLen]
			want := kwHex(t, tc.wrapped)

			got, err := cryptocore.WrapKW(k, p)
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, want, refWrap(t, k, kwHex(t, "A6A6A6A6A6A6A6A6"), p), "reference wrap")

			unwrapped, err := cryptocore.UnwrapKW(k, want)
			require.NoError(t, err)
			require.Equal(t, p, unwrapped)
		})
	}
}

func TestKWPRFC5649Vectors(t *testing.T) {
	// RFC 5649 §6.
	kek := kwHex(t, "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8")
	tests := []struct {
		name    string
		key     string
		wrapped string
	}{
		{"20 octets", "c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"7 octets", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := kwHex(t, tc.key)
			want := kwHex(t, tc.wrapped)

			got, err := cryptocore.WrapKWP(kek, p)
			require.NoError(t, err)
			require.Equal(t, want, got)

			unwrapped, err := cryptocore.UnwrapKWP(kek, want)
			require.NoError(t, err)
			require.Equal(t, p, unwrapped)
		})
	}
}

func TestKWRoundTrip(t *testing.T) {
	lengths := []int{16, 24, 32, 40, 48, 64, 256, 264, 4096, 8200, cryptocore.MaxKeyWrapInput}
	for _, k := range kwKEKs {
		for _, n := range lengths {
			t.Run(fmt.Sprintf("%s/%d", k.name, n), func(t *testing.T) {
				p := kwSeq(byte(n), n)
				w, err := cryptocore.WrapKW(k.kek, p)
				require.NoError(t, err)
				require.Len(t, w, n+8)
				require.NotEqual(t, p, w[8:], "wrapping must change the data")
				if n <= 4096 {
					require.Equal(t, refWrap(t, k.kek, kwHex(t, "A6A6A6A6A6A6A6A6"), p), w, "reference wrap")
				}
				got, err := cryptocore.UnwrapKW(k.kek, w)
				require.NoError(t, err)
				require.Equal(t, p, got)
			})
		}
	}
}

func TestKWPRoundTrip(t *testing.T) {
	lengths := []int{cryptocore.MaxKeyWrapInput - 1, cryptocore.MaxKeyWrapInput}
	for n := 1; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	for _, k := range kwKEKs {
		for _, n := range lengths {
			p := kwSeq(byte(n), n)
			w, err := cryptocore.WrapKWP(k.kek, p)
			require.NoError(t, err, "%s/%d", k.name, n)
			require.Len(t, w, (n+7)/8*8+8, "%s/%d", k.name, n)
			if n <= 300 {
				padded := make([]byte, (n+7)/8*8)
				copy(padded, p)
				require.Equal(t, refWrapKWP(t, k.kek, 0xA65959A6, uint32(n), padded), w, "%s/%d: reference wrap", k.name, n)
			}
			got, err := cryptocore.UnwrapKWP(k.kek, w)
			require.NoError(t, err, "%s/%d", k.name, n)
			require.Equal(t, p, got, "%s/%d", k.name, n)
		}
	}
}

// TestKWPSingleBlock checks RFC 5649 §4.1's special case: a plaintext of at
// most 8 bytes is wrapped by one AES encryption of AIV | P, zero padded.
func TestKWPSingleBlock(t *testing.T) {
	for _, k := range kwKEKs {
		b, err := aes.NewCipher(k.kek)
		require.NoError(t, err)
		for n := 1; n <= 8; n++ {
			p := kwSeq(0xF0, n)
			want := make([]byte, 16)
			copy(want, []byte{0xA6, 0x59, 0x59, 0xA6, 0, 0, 0, byte(n)})
			copy(want[8:], p)
			b.Encrypt(want, want)

			got, err := cryptocore.WrapKWP(k.kek, p)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s/%d", k.name, n)
		}
	}
}

func TestUnwrapKWTampered(t *testing.T) {
	for _, k := range kwKEKs {
		for _, n := range []int{16, 24, 40} {
			w, err := cryptocore.WrapKW(k.kek, kwSeq(1, n))
			require.NoError(t, err)
			for i := range w {
				for _, mask := range []byte{0x01, 0x80, 0xFF} {
					bad := bytes.Clone(w)
					bad[i] ^= mask
					out, err := cryptocore.UnwrapKW(k.kek, bad)
					require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed, "%s/%d: byte %d ^ %#x", k.name, n, i, mask)
					require.Nil(t, out)
				}
			}
			// Semiblocks swapped, truncated or extended.
			swapped := bytes.Clone(w)
			copy(swapped[8:16], w[16:24])
			copy(swapped[16:24], w[8:16])
			_, err = cryptocore.UnwrapKW(k.kek, swapped)
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
			if n > 16 {
				_, err = cryptocore.UnwrapKW(k.kek, w[:len(w)-8])
				require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
			}
			_, err = cryptocore.UnwrapKW(k.kek, append(bytes.Clone(w), w[8:16]...))
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
		}
	}
}

func TestUnwrapKWPTampered(t *testing.T) {
	for _, k := range kwKEKs {
		for _, n := range []int{1, 7, 8, 9, 16, 20, 33} {
			w, err := cryptocore.WrapKWP(k.kek, kwSeq(1, n))
			require.NoError(t, err)
			for i := range w {
				for _, mask := range []byte{0x01, 0x80, 0xFF} {
					bad := bytes.Clone(w)
					bad[i] ^= mask
					out, err := cryptocore.UnwrapKWP(k.kek, bad)
					require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed, "%s/%d: byte %d ^ %#x", k.name, n, i, mask)
					require.Nil(t, out)
				}
			}
			_, err = cryptocore.UnwrapKWP(k.kek, append(bytes.Clone(w), w[8:16]...))
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
		}
	}
}

func TestUnwrapWrongKEK(t *testing.T) {
	p := kwSeq(9, 32)
	for _, k := range kwKEKs {
		wrong := bytes.Clone(k.kek)
		wrong[len(wrong)-1] ^= 1
		// Same key bytes, other size: the prefix of a longer KEK.
		other := kwKEK256[:16]
		if len(k.kek) == 16 {
			other = kwKEK256[:24]
		}
		for _, kk := range [][]byte{wrong, other} {
			w, err := cryptocore.WrapKW(k.kek, p)
			require.NoError(t, err)
			out, err := cryptocore.UnwrapKW(kk, w)
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed, k.name)
			require.Nil(t, out)

			for _, n := range []int{5, 8, 32} {
				w, err = cryptocore.WrapKWP(k.kek, p[:n])
				require.NoError(t, err)
				out, err = cryptocore.UnwrapKWP(kk, w)
				require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed, k.name)
				require.Nil(t, out)
			}
		}
	}
}

// TestKWAndKWPAreSeparated checks that the two initial values keep the
// algorithms apart: data wrapped with one never unwraps with the other.
func TestKWAndKWPAreSeparated(t *testing.T) {
	for _, k := range kwKEKs {
		for _, n := range []int{16, 24, 32} {
			p := kwSeq(3, n)
			kw, err := cryptocore.WrapKW(k.kek, p)
			require.NoError(t, err)
			_, err = cryptocore.UnwrapKWP(k.kek, kw)
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)

			kwp, err := cryptocore.WrapKWP(k.kek, p)
			require.NoError(t, err)
			require.NotEqual(t, kw, kwp)
			_, err = cryptocore.UnwrapKW(k.kek, kwp)
			require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
		}
	}
}

// TestUnwrapKWPIntegrityChecks builds wrapped data whose RFC 5649 §3 checks
// fail one at a time, with an otherwise correct wrapping.
func TestUnwrapKWPIntegrityChecks(t *testing.T) {
	const aiv = 0xA65959A6
	withPad := func(p []byte, padLen int, fill byte) []byte {
		out := append(bytes.Clone(p), make([]byte, padLen)...)
		for i := len(p); i < len(out); i++ {
			out[i] = fill
		}
		return out
	}
	tests := []struct {
		name   string
		prefix uint32
		mli    uint32
		padded []byte
		ok     bool
	}{
		{"correct, 1 block", aiv, 5, withPad(kwSeq(1, 5), 3, 0), true},
		{"correct, 3 blocks", aiv, 20, withPad(kwSeq(1, 20), 4, 0), true},
		{"correct, no padding", aiv, 24, kwSeq(1, 24), true},
		{"RFC 3394 IV, 1 block", 0xA6A6A6A6, 8, kwSeq(1, 8), false},
		{"RFC 3394 IV, 3 blocks", 0xA6A6A6A6, 24, kwSeq(1, 24), false},
		{"prefix off by one bit", aiv ^ 1, 20, withPad(kwSeq(1, 20), 4, 0), false},
		{"prefix off by one high bit", aiv ^ 0x80000000, 5, withPad(kwSeq(1, 5), 3, 0), false},
		{"MLI 0, 1 block", aiv, 0, make([]byte, 8), false},
		{"MLI 0, 2 blocks", aiv, 0, make([]byte, 16), false},
		{"MLI 9, 1 block", aiv, 9, kwSeq(1, 8), false},
		{"MLI 16, 1 block", aiv, 16, kwSeq(1, 8), false},
		{"MLI = 8(n-1)", aiv, 16, withPad(kwSeq(1, 16), 8, 0), false},
		{"MLI < 8(n-1)", aiv, 3, withPad(kwSeq(1, 3), 21, 0), false},
		{"MLI = 8n+1", aiv, 25, kwSeq(1, 24), false},
		{"MLI 2^31+8", aiv, 1<<31 + 8, kwSeq(1, 8), false},
		{"MLI 2^32-1", aiv, 1<<32 - 1, kwSeq(1, 16), false},
		{"MLI 2^32-1, 1 block", aiv, 1<<32 - 1, kwSeq(1, 8), false},
	}
	// Every non-zero padding byte position, for each amount of padding.
	for mli := 9; mli <= 15; mli++ {
		for pos := mli; pos < 16; pos++ {
			padded := withPad(kwSeq(1, mli), 16-mli, 0)
			padded[pos] = 0x01
			tests = append(tests, struct {
				name   string
				prefix uint32
				mli    uint32
				padded []byte
				ok     bool
			}{fmt.Sprintf("MLI %d, non-zero padding byte %d", mli, pos), aiv, uint32(mli), padded, false})
		}
	}
	for mli := 1; mli <= 7; mli++ {
		padded := withPad(kwSeq(1, mli), 8-mli, 0)
		padded[7] = 0x80
		tests = append(tests, struct {
			name   string
			prefix uint32
			mli    uint32
			padded []byte
			ok     bool
		}{fmt.Sprintf("1 block, MLI %d, non-zero last byte", mli), aiv, uint32(mli), padded, false})
	}
	for _, k := range kwKEKs {
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				w := refWrapKWP(t, k.kek, tc.prefix, tc.mli, tc.padded)
				out, err := cryptocore.UnwrapKWP(k.kek, w)
				if tc.ok {
					require.NoError(t, err)
					require.Equal(t, tc.padded[:tc.mli], out)
					re, err := cryptocore.WrapKWP(k.kek, out)
					require.NoError(t, err)
					require.Equal(t, w, re)
					return
				}
				require.ErrorIs(t, err, cryptocore.ErrUnwrapFailed)
				require.Nil(t, out)
			})
		}
	}
}

func TestKeyWrapInputSize(t *testing.T) {
	maxIn := cryptocore.MaxKeyWrapInput
	tests := []struct {
		name string
		f    func(kek, in []byte) ([]byte, error)
		lens []int
	}{
		{"WrapKW", cryptocore.WrapKW, []int{0, 1, 7, 8, 15, 17, 23, 31, maxIn - 8 + 1, maxIn + 8}},
		{"UnwrapKW", cryptocore.UnwrapKW, []int{0, 1, 8, 15, 16, 17, 23, 25, maxIn + 9, maxIn + 16}},
		{"WrapKWP", cryptocore.WrapKWP, []int{0, maxIn + 1, maxIn + 8}},
		{"UnwrapKWP", cryptocore.UnwrapKWP, []int{0, 1, 7, 8, 9, 15, 17, 23, maxIn + 9, maxIn + 16}},
	}
	for _, tc := range tests {
		for _, n := range tc.lens {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				out, err := tc.f(kwKEK128, make([]byte, n))
				require.ErrorIs(t, err, cryptocore.ErrInputSize)
				require.Nil(t, out)
			})
		}
		t.Run(tc.name+"/nil", func(t *testing.T) {
			out, err := tc.f(kwKEK128, nil)
			require.ErrorIs(t, err, cryptocore.ErrInputSize)
			require.Nil(t, out)
		})
	}
}

func TestKeyWrapKEKSize(t *testing.T) {
	funcs := []struct {
		name string
		f    func(kek, in []byte) ([]byte, error)
		in   []byte
	}{
		{"WrapKW", cryptocore.WrapKW, kwSeq(1, 16)},
		{"UnwrapKW", cryptocore.UnwrapKW, kwSeq(1, 24)},
		{"WrapKWP", cryptocore.WrapKWP, kwSeq(1, 5)},
		{"UnwrapKWP", cryptocore.UnwrapKWP, kwSeq(1, 16)},
	}
	for _, fn := range funcs {
		for _, n := range []int{0, 1, 8, 15, 17, 20, 23, 25, 31, 33, 48, 64} {
			t.Run(fmt.Sprintf("%s/%d", fn.name, n), func(t *testing.T) {
				out, err := fn.f(make([]byte, n), fn.in)
				require.ErrorIs(t, err, cryptocore.ErrKeySize)
				require.Nil(t, out)
			})
		}
		t.Run(fn.name+"/nil", func(t *testing.T) {
			_, err := fn.f(nil, fn.in)
			require.ErrorIs(t, err, cryptocore.ErrKeySize)
		})
		for _, k := range kwKEKs {
			t.Run(fn.name+"/"+k.name, func(t *testing.T) {
				_, err := fn.f(k.kek, fn.in)
				require.NotErrorIs(t, err, cryptocore.ErrKeySize)
			})
		}
	}
}

// TestKeyWrapDoesNotAliasInput checks that the functions neither change their
// inputs nor return slices sharing memory with them.
func TestKeyWrapDoesNotAliasInput(t *testing.T) {
	p := kwSeq(5, 32)
	pCopy := bytes.Clone(p)
	kek := bytes.Clone(kwKEK256)

	w, err := cryptocore.WrapKW(kek, p)
	require.NoError(t, err)
	wCopy := bytes.Clone(w)
	got, err := cryptocore.UnwrapKW(kek, w)
	require.NoError(t, err)
	require.Equal(t, wCopy, w)
	got[0] ^= 0xFF
	require.Equal(t, wCopy, w)

	w2, err := cryptocore.WrapKWP(kek, p)
	require.NoError(t, err)
	w2Copy := bytes.Clone(w2)
	got, err = cryptocore.UnwrapKWP(kek, w2)
	require.NoError(t, err)
	got[0] ^= 0xFF
	require.Equal(t, w2Copy, w2)

	require.Equal(t, pCopy, p)
	require.Equal(t, kwKEK256, kek)
}

// TestKeyWrapErrorsCarryNoSecrets checks that error strings name no key or
// plaintext bytes.
func TestKeyWrapErrorsCarryNoSecrets(t *testing.T) {
	kek := bytes.Repeat([]byte{0xC3}, 32)
	p := bytes.Repeat([]byte{0x5A}, 24)
	w, err := cryptocore.WrapKW(kek, p)
	require.NoError(t, err)
	w[10] ^= 1
	var errs []error
	_, err = cryptocore.UnwrapKW(kek, w)
	errs = append(errs, err)
	_, err = cryptocore.UnwrapKWP(kek, w)
	errs = append(errs, err)
	_, err = cryptocore.WrapKW(kek[:5], p)
	errs = append(errs, err)
	_, err = cryptocore.WrapKW(kek, p[:3])
	errs = append(errs, err)
	for _, err := range errs {
		require.Error(t, err)
		msg := strings.ToLower(err.Error())
		for _, secret := range []string{"c3c3", "5a5a", hex.EncodeToString(w[:8])} {
			require.NotContains(t, msg, secret)
		}
	}
}
