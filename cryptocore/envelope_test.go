package cryptocore_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

func mustSeal(t testing.TB, a *cryptocore.AEAD, keyID string, version uint32, pt, aad []byte) []byte {
	t.Helper()
	b, err := cryptocore.SealEnvelope(a, []byte(keyID), version, pt, aad)
	require.NoError(t, err)
	return b
}

func TestEnvelopeLayout(t *testing.T) {
	a := mustAEAD(t)
	pt := []byte("key material")
	b := mustSeal(t, a, "key-1", 7, pt, []byte("aad"))

	// The layout fixed in DESIGN.md, byte by byte.
	require.Equal(t, byte(1), b[0], "version")
	require.Equal(t, byte(5), b[1], "key id length")
	require.Equal(t, []byte("key-1"), b[2:7], "key id")
	require.Equal(t, uint32(7), binary.BigEndian.Uint32(b[7:11]), "material version")
	sealedLen := binary.BigEndian.Uint32(b[23:27])
	require.Equal(t, uint32(len(pt)+cryptocore.TagSize), sealedLen, "sealed length")
	require.Len(t, b, 27+int(sealedLen))

	e, err := cryptocore.ParseEnvelope(b)
	require.NoError(t, err)
	require.Equal(t, cryptocore.EnvelopeVersion1, e.Version)
	require.Equal(t, []byte("key-1"), e.KeyID)
	require.Equal(t, uint32(7), e.MaterialVersion)
	require.Equal(t, b[11:23], e.Nonce)
	got, err := e.Open(a, []byte("aad"))
	require.NoError(t, err)
	require.Equal(t, pt, got)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	a := mustAEAD(t)
	tests := []struct {
		name  string
		keyID string
		pt    []byte
		aad   []byte
	}{
		{"empty plaintext", "k", []byte{}, nil},
		{"small", "alias/x", []byte("x"), []byte("a")},
		{"max key id", string(bytes.Repeat([]byte("i"), cryptocore.MaxKeyIDSize)), []byte("pt"), nil},
		{"max plaintext", "big", make([]byte, cryptocore.MaxEnvelopePlaintext), []byte("aad")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustSeal(t, a, tt.keyID, 1, tt.pt, tt.aad)
			got, err := cryptocore.OpenEnvelope(a, []byte(tt.keyID), 1, b, tt.aad)
			require.NoError(t, err)
			require.True(t, bytes.Equal(tt.pt, got))
		})
	}
}

func TestSealEnvelopeRejects(t *testing.T) {
	a := mustAEAD(t)
	_, err := cryptocore.SealEnvelope(a, nil, 1, []byte("x"), nil)
	require.ErrorIs(t, err, cryptocore.ErrInputSize)
	_, err = cryptocore.SealEnvelope(a, make([]byte, cryptocore.MaxKeyIDSize+1), 1, []byte("x"), nil)
	require.ErrorIs(t, err, cryptocore.ErrInputSize)
	_, err = cryptocore.SealEnvelope(a, []byte("k"), 1, make([]byte, cryptocore.MaxEnvelopePlaintext+1), nil)
	require.ErrorIs(t, err, cryptocore.ErrInputSize)
}

func TestEnvelopeParseErrors(t *testing.T) {
	a := mustAEAD(t)
	good := mustSeal(t, a, "key-1", 3, []byte("secret"), nil)
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, cryptocore.ErrTruncated},
		{"version only", good[:1], cryptocore.ErrTruncated},
		{"unknown version 0", with(func(b []byte) []byte { b[0] = 0; return b }), cryptocore.ErrUnknownVersion},
		{"unknown version 2", with(func(b []byte) []byte { b[0] = 2; return b }), cryptocore.ErrUnknownVersion},
		{"empty key id", with(func(b []byte) []byte { b[1] = 0; return b }), cryptocore.ErrMalformed},
		{"header cut", good[:20], cryptocore.ErrTruncated},
		{"payload cut", good[:len(good)-1], cryptocore.ErrTruncated},
		{"extended", append(bytes.Clone(good), 0), cryptocore.ErrTrailingData},
		{"sealed length below tag", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 15); return b }), cryptocore.ErrMalformed},
		{"sealed length huge", with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 1<<31); return b }), cryptocore.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cryptocore.ParseEnvelope(tt.in)
			require.ErrorIs(t, err, tt.want)
			_, err = cryptocore.OpenEnvelope(a, []byte("key-1"), 3, tt.in, nil)
			require.ErrorIs(t, err, tt.want)
		})
	}
	// Every strict prefix is refused as truncated.
	for n := range len(good) {
		_, err := cryptocore.ParseEnvelope(good[:n])
		require.ErrorIs(t, err, cryptocore.ErrTruncated, "prefix of %d bytes", n)
	}
}

func TestEnvelopeOpenErrors(t *testing.T) {
	a := mustAEAD(t)
	aad := []byte("keys/1")
	good := mustSeal(t, a, "key-1", 3, []byte("secret"), aad)

	t.Run("wrong key", func(t *testing.T) {
		_, err := cryptocore.OpenEnvelope(mustAEAD(t), []byte("key-1"), 3, good, aad)
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("wrong key id", func(t *testing.T) {
		_, err := cryptocore.OpenEnvelope(a, []byte("key-2"), 3, good, aad)
		require.ErrorIs(t, err, cryptocore.ErrWrongKey)
	})
	t.Run("wrong material version", func(t *testing.T) {
		_, err := cryptocore.OpenEnvelope(a, []byte("key-1"), 4, good, aad)
		require.ErrorIs(t, err, cryptocore.ErrWrongKey)
	})
	t.Run("wrong aad", func(t *testing.T) {
		_, err := cryptocore.OpenEnvelope(a, []byte("key-1"), 3, good, []byte("keys/2"))
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("header fields are authenticated", func(t *testing.T) {
		// Change the key id and the material version consistently: the parser
		// accepts the result, authentication must not.
		b := bytes.Clone(good)
		b[6] = '2'
		binary.BigEndian.PutUint32(b[7:], 9)
		e, err := cryptocore.ParseEnvelope(b)
		require.NoError(t, err)
		_, err = e.Open(a, aad)
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("every byte after the length fields", func(t *testing.T) {
		for i := 11; i < len(good); i++ {
			if i >= 23 && i < 27 {
				continue // the sealed length: a parse error, tested above
			}
			b := bytes.Clone(good)
			b[i] ^= 0x80
			_, err := cryptocore.OpenEnvelope(a, []byte("key-1"), 3, b, aad)
			require.ErrorIs(t, err, cryptocore.ErrAuthFailed, "byte %d", i)
		}
	})
}
