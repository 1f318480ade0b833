package cryptocore_test

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
)

func kdfSeq(from, to int) []byte {
	b := make([]byte, 0, to-from)
	for i := from; i < to; i++ {
		b = append(b, byte(i))
	}
	return b
}

// TestHKDFRFC5869 runs RFC 5869 Appendix A.1–A.3 (HKDF-SHA-256).
func TestHKDFRFC5869(t *testing.T) {
	tests := []struct {
		name            string
		ikm, salt, info []byte
		length          int
		want            string
	}{
		{
			name: "A.1 basic", ikm: bytes.Repeat([]byte{0x0b}, 22),
			salt: kdfSeq(0x00, 0x0d), info: kdfSeq(0xf0, 0xfa), length: 42,
			want: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf" +
				"34007208d5b887185865",
		},
		{
			name: "A.2 longer inputs and outputs", ikm: kdfSeq(0x00, 0x50),
			salt: kdfSeq(0x60, 0xb0), info: kdfSeq(0xb0, 0x100), length: 82,
			want: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
				"59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
				"cc30c58179ec3e87c14c01d5c1f3434f1d87",
		},
		{
			name: "A.3 zero-length salt and info", ikm: bytes.Repeat([]byte{0x0b}, 22),
			salt: nil, info: nil, length: 42,
			want: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d" +
				"9d201395faa4b61a96c8",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cryptocore.HKDF(cryptocore.SHA256, tc.ikm, tc.salt, tc.info, tc.length)
			require.NoError(t, err)
			require.Equal(t, macKDFHex(t, tc.want), got)
		})
	}
	// RFC 5869 §2.2: an absent salt is HashLen zero bytes.
	a, err := cryptocore.HKDF(cryptocore.SHA256, []byte("ikm"), nil, nil, 32)
	require.NoError(t, err)
	b, err := cryptocore.HKDF(cryptocore.SHA256, []byte("ikm"), make([]byte, 32), nil, 32)
	require.NoError(t, err)
	require.Equal(t, a, b)
}

// hkdfByHand is RFC 5869 §2.2–2.3 written out with crypto/hmac, as an
// independent reference that does not go through crypto/hkdf.
func hkdfByHand(h cryptocore.Hash, ikm, salt, info []byte, length int) []byte {
	if len(salt) == 0 {
		salt = make([]byte, h.Size())
	}
	ext := hmac.New(h.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, t []byte
	for i := 1; len(okm) < length; i++ {
		m := hmac.New(h.New, prk)
		m.Write(t)
		m.Write(info)
		m.Write([]byte{byte(i)})
		t = m.Sum(nil)
		okm = append(okm, t...)
	}
	return okm[:length]
}

func TestHKDFAllHashes(t *testing.T) {
	ikm := []byte("input keying material")
	salt := []byte("salt")
	info := []byte("info")
	for _, h := range macHashes {
		t.Run(h.String(), func(t *testing.T) {
			maxLen := 255 * h.Size()
			for _, n := range []int{1, h.Size() - 1, h.Size(), h.Size() + 1, 3*h.Size() + 7, maxLen} {
				got, err := cryptocore.HKDF(h, ikm, salt, info, n)
				require.NoError(t, err, "length %d", n)
				require.Len(t, got, n)
				require.Equal(t, hkdfByHand(h, ikm, salt, info, n), got, "length %d", n)
			}
			// Shorter outputs are prefixes of longer ones (RFC 5869 §2.3).
			short, err := cryptocore.HKDF(h, ikm, salt, info, 17)
			require.NoError(t, err)
			long, err := cryptocore.HKDF(h, ikm, salt, info, maxLen)
			require.NoError(t, err)
			require.Equal(t, long[:17], short)

			// Each input changes the output.
			for _, v := range [][3][]byte{
				{[]byte("input keying materiaL"), salt, info},
				{ikm, []byte("Salt"), info},
				{ikm, salt, []byte("Info")},
				{ikm, nil, info},
				{ikm, salt, nil},
			} {
				other, err := cryptocore.HKDF(h, v[0], v[1], v[2], 17)
				require.NoError(t, err)
				require.NotEqual(t, short, other)
			}

			_, err = cryptocore.HKDF(h, ikm, salt, info, maxLen+1)
			require.ErrorIs(t, err, cryptocore.ErrInputSize)
		})
	}
}

func TestHKDFErrors(t *testing.T) {
	ikm := []byte("input keying material")
	tests := []struct {
		name   string
		h      cryptocore.Hash
		ikm    []byte
		length int
		want   error
	}{
		{"SHA-1", cryptocore.SHA1, ikm, 32, cryptocore.ErrUnsupported},
		{"zero Hash", cryptocore.Hash(0), ikm, 32, cryptocore.ErrUnsupported},
		{"unknown Hash", cryptocore.Hash(42), ikm, 32, cryptocore.ErrUnsupported},
		{"nil ikm", cryptocore.SHA256, nil, 32, cryptocore.ErrKeySize},
		{"empty ikm", cryptocore.SHA256, []byte{}, 32, cryptocore.ErrKeySize},
		{"zero length", cryptocore.SHA256, ikm, 0, cryptocore.ErrInputSize},
		{"negative length", cryptocore.SHA256, ikm, -1, cryptocore.ErrInputSize},
		{"SHA-224 too long", cryptocore.SHA224, ikm, 255*28 + 1, cryptocore.ErrInputSize},
		{"SHA-256 too long", cryptocore.SHA256, ikm, 255*32 + 1, cryptocore.ErrInputSize},
		{"SHA-384 too long", cryptocore.SHA384, ikm, 255*48 + 1, cryptocore.ErrInputSize},
		{"SHA-512 too long", cryptocore.SHA512, ikm, 255*64 + 1, cryptocore.ErrInputSize},
		{"huge length", cryptocore.SHA512, ikm, 1 << 40, cryptocore.ErrInputSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cryptocore.HKDF(tc.h, tc.ikm, []byte("salt"), []byte("info"), tc.length)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, out)
		})
	}
}

// TestCounterKDFOpenSSL checks CounterKDF against OpenSSL 3's KBKDF in counter
// mode, whose defaults (32-bit counter before the fixed input, separator byte
// and 32-bit [L] in bits both on) give the same fixed input, Label || 0x00 ||
// Context || [L]_32. Each expected value is the output of
//
//	openssl kdf -keylen LEN -kdfopt digest:DIGEST -kdfopt mac:HMAC \
//	    -kdfopt hexkey:KEY -kdfopt hexsalt:LABEL -kdfopt hexinfo:CONTEXT KBKDF
//
// run with OpenSSL 3.0.19, with
//
//	KEY     = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
//	LABEL   = 68736d73696d2d6b6d732d64656b ("hsmsim-kms-dek")
//	CONTEXT = a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
//
// and LEN and DIGEST as in the table (the "empty" rows pass hexsalt: and
// hexinfo: with empty values).
func TestCounterKDFOpenSSL(t *testing.T) {
	key := kdfSeq(0x00, 0x20)
	label := []byte("hsmsim-kms-dek")
	context := kdfSeq(0xa0, 0xc0)
	tests := []struct {
		name           string
		h              cryptocore.Hash
		key            []byte
		label, context []byte
		want           string
	}{
		{
			name: "SHA2-256 32 bytes", h: cryptocore.SHA256, key: key, label: label, context: context,
			want: "13a40af328d3bea85ae3dc8203bbd3536ca57157511cedd41f31a05d9ad51ae0",
		},
		{
			name: "SHA2-256 80 bytes", h: cryptocore.SHA256, key: key, label: label, context: context,
			want: "1a71398a90bc46b53c824052fd31846f52131108173127a17de50da7487cab5e" +
				"8ea9ef6c8db27f866bdc67d43926e71a2b2ad2fbf2179e65167c1dd790819290" +
				"01c3504597f0dcc49870746a7174c699",
		},
		{
			name: "SHA2-224 20 bytes", h: cryptocore.SHA224, key: key, label: label, context: context,
			want: "b80d1cb778941910c276e4d2e27429c78acea3f8",
		},
		{
			name: "SHA2-384 48 bytes", h: cryptocore.SHA384, key: key, label: label, context: context,
			want: "a41c55e236c60a476f34ae4d913c5ab67d7aac377a853bf8ce7612c73d5980fc" +
				"d76fe8aaab02bbd06cfa67b6d7c466e4",
		},
		{
			name: "SHA2-512 100 bytes", h: cryptocore.SHA512, key: key, label: label, context: context,
			want: "cafcab0d6d7d73dec1fb91dbb72c67aa47c72f072e22f967e947104e0b548005" +
				"0c15ca32542b26aedba1418d5e473b9c94390c580b55d1c1a4ad930259c504ca" +
				"47dfc9cf4e8e834dfca0c1741878314568c5550efa5183f1661066dcda8bea42" +
				"47e47ccd",
		},
		{
			name: "SHA2-256 32 bytes, empty label and context", h: cryptocore.SHA256, key: key,
			want: "be27b734b68c7782d866819ae95ae24560bbd593476e9f8c0bf87db0b30a0316",
		},
		{
			// hexkey:0b
			name: "SHA2-256 32 bytes, one-byte key, empty label and context", h: cryptocore.SHA256, key: []byte{0x0b},
			want: "8963da011582f1a8a274399b836ae1478aea358fd230b00c8cceab0b62d40037",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := macKDFHex(t, tc.want)
			got, err := cryptocore.CounterKDF(tc.h, tc.key, tc.label, tc.context, len(want))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// counterKDFByHand is NIST SP 800-108r1 §4.1 written out with crypto/hmac, one
// HMAC per block over the whole message, as a reference built by another
// route than CounterKDF's.
func counterKDFByHand(h cryptocore.Hash, key, label, context []byte, length int) []byte {
	var msg []byte
	var out []byte
	for i := uint32(1); len(out) < length; i++ {
		msg = msg[:0]
		msg = binary.BigEndian.AppendUint32(msg, i)
		msg = append(msg, label...)
		msg = append(msg, 0)
		msg = append(msg, context...)
		msg = binary.BigEndian.AppendUint32(msg, uint32(length*8))
		m := hmac.New(h.New, key)
		m.Write(msg)
		out = m.Sum(out)
	}
	return out[:length]
}

func TestCounterKDFByHand(t *testing.T) {
	key := []byte("a 32-byte key for the counter KDF")
	label := []byte("label")
	context := []byte("context")
	for _, h := range macHashes {
		t.Run(h.String(), func(t *testing.T) {
			for _, n := range []int{1, h.Size() - 1, h.Size(), h.Size() + 1, 5*h.Size() + 3, cryptocore.MaxCounterKDFLength} {
				got, err := cryptocore.CounterKDF(h, key, label, context, n)
				require.NoError(t, err, "length %d", n)
				require.Len(t, got, n)
				require.Equal(t, counterKDFByHand(h, key, label, context, n), got, "length %d", n)
			}
			maxKey := bytes.Repeat([]byte{0xee}, cryptocore.MaxMACKeySize)
			got, err := cryptocore.CounterKDF(h, maxKey, nil, nil, 32)
			require.NoError(t, err)
			require.Equal(t, counterKDFByHand(h, maxKey, nil, nil, 32), got)
		})
	}
}

// TestCounterKDFSeparation checks that every input, including the output
// length through [L]_32, changes the whole output.
func TestCounterKDFSeparation(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	base, err := cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("label"), []byte("context"), 32)
	require.NoError(t, err)
	again, err := cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("label"), []byte("context"), 32)
	require.NoError(t, err)
	require.Equal(t, base, again, "the KDF must be deterministic")

	otherKey := bytes.Clone(key)
	otherKey[31] ^= 1
	variants := map[string]func() ([]byte, error){
		"key": func() ([]byte, error) {
			return cryptocore.CounterKDF(cryptocore.SHA256, otherKey, []byte("label"), []byte("context"), 32)
		},
		"label": func() ([]byte, error) {
			return cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("labeL"), []byte("context"), 32)
		},
		"context": func() ([]byte, error) {
			return cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("label"), []byte("contexT"), 32)
		},
		"split": func() ([]byte, error) {
			return cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("labelc"), []byte("ontext"), 32)
		},
		"hash": func() ([]byte, error) {
			return cryptocore.CounterKDF(cryptocore.SHA512, key, []byte("label"), []byte("context"), 32)
		},
		"length": func() ([]byte, error) {
			out, err := cryptocore.CounterKDF(cryptocore.SHA256, key, []byte("label"), []byte("context"), 64)
			if err != nil {
				return nil, err
			}
			return out[:32], nil
		},
	}
	for name, f := range variants {
		out, err := f()
		require.NoError(t, err, name)
		require.Len(t, out, 32, name)
		require.NotEqual(t, base, out, name)
		// The change must reach both halves, not only some bytes.
		require.NotEqual(t, base[:16], out[:16], name)
		require.NotEqual(t, base[16:], out[16:], name)
	}
}

func TestCounterKDFErrors(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	tests := []struct {
		name   string
		h      cryptocore.Hash
		key    []byte
		length int
		want   error
	}{
		{"SHA-1", cryptocore.SHA1, key, 32, cryptocore.ErrUnsupported},
		{"zero Hash", cryptocore.Hash(0), key, 32, cryptocore.ErrUnsupported},
		{"unknown Hash", cryptocore.Hash(7), key, 32, cryptocore.ErrUnsupported},
		{"nil key", cryptocore.SHA256, nil, 32, cryptocore.ErrKeySize},
		{"empty key", cryptocore.SHA256, []byte{}, 32, cryptocore.ErrKeySize},
		{"key too long", cryptocore.SHA256, make([]byte, cryptocore.MaxMACKeySize+1), 32, cryptocore.ErrKeySize},
		{"zero length", cryptocore.SHA256, key, 0, cryptocore.ErrInputSize},
		{"negative length", cryptocore.SHA256, key, -32, cryptocore.ErrInputSize},
		{"length one over the bound", cryptocore.SHA256, key, cryptocore.MaxCounterKDFLength + 1, cryptocore.ErrInputSize},
		{"SP 800-108 maximum", cryptocore.SHA256, key, (1<<32 - 1) / 8, cryptocore.ErrInputSize},
		{"huge length", cryptocore.SHA512, key, 1 << 40, cryptocore.ErrInputSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cryptocore.CounterKDF(tc.h, tc.key, []byte("label"), []byte("context"), tc.length)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, out)
		})
	}
}
