package cryptocore_test

import (
	"bytes"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

func mustKey(t testing.TB, n int) []byte {
	t.Helper()
	k, err := cryptocore.RandomBytes(n)
	require.NoError(t, err)
	return k
}

func mustAEAD(t testing.TB) *cryptocore.AEAD {
	t.Helper()
	a, err := cryptocore.NewAEAD(mustKey(t, cryptocore.KeySize))
	require.NoError(t, err)
	return a
}

func TestNewAEADKeySize(t *testing.T) {
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		_, err := cryptocore.NewAEAD(make([]byte, n))
		require.ErrorIs(t, err, cryptocore.ErrKeySize, "key of %d bytes", n)
	}
	_, err := cryptocore.NewAEAD(make([]byte, 32))
	require.NoError(t, err)
}

func TestAEADRoundTrip(t *testing.T) {
	a := mustAEAD(t)
	for _, n := range []int{0, 1, 15, 16, 17, 64, 1024, 4096, 1 << 16} {
		pt := mustKeyOrEmpty(t, n)
		aad := []byte("record/7")
		sealed, err := a.Seal(nil, pt, aad)
		require.NoError(t, err)
		require.Len(t, sealed, cryptocore.NonceSize+n+cryptocore.TagSize)
		got, err := a.Open(nil, sealed, aad)
		require.NoError(t, err)
		require.True(t, bytes.Equal(pt, got))
	}
}

func mustKeyOrEmpty(t testing.TB, n int) []byte {
	if n == 0 {
		return []byte{}
	}
	return mustKey(t, n)
}

func TestAEADNoncesDiffer(t *testing.T) {
	a := mustAEAD(t)
	seen := map[string]bool{}
	for range 1000 {
		sealed, err := a.Seal(nil, []byte("same"), nil)
		require.NoError(t, err)
		nonce := string(sealed[:cryptocore.NonceSize])
		require.False(t, seen[nonce], "nonce repeated")
		seen[nonce] = true
	}
}

func TestAEADRejects(t *testing.T) {
	a := mustAEAD(t)
	pt := []byte("attack at dawn")
	aad := []byte("context")
	sealed, err := a.Seal(nil, pt, aad)
	require.NoError(t, err)

	t.Run("every flipped bit", func(t *testing.T) {
		for i := range sealed {
			for bit := range 8 {
				c := bytes.Clone(sealed)
				c[i] ^= 1 << bit
				_, err := a.Open(nil, c, aad)
				require.ErrorIs(t, err, cryptocore.ErrAuthFailed, "byte %d bit %d", i, bit)
			}
		}
	})
	t.Run("wrong aad", func(t *testing.T) {
		_, err := a.Open(nil, sealed, []byte("Context"))
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
		_, err = a.Open(nil, sealed, nil)
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("wrong key", func(t *testing.T) {
		_, err := mustAEAD(t).Open(nil, sealed, aad)
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("too short", func(t *testing.T) {
		for n := range cryptocore.NonceSize + cryptocore.TagSize {
			_, err := a.Open(nil, sealed[:n], aad)
			require.ErrorIs(t, err, cryptocore.ErrInputSize, "length %d", n)
		}
	})
	t.Run("truncated tag", func(t *testing.T) {
		_, err := a.Open(nil, sealed[:len(sealed)-1], aad)
		require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
	})
	t.Run("error carries no plaintext", func(t *testing.T) {
		_, err := mustAEAD(t).Open(nil, sealed, aad)
		require.NotContains(t, err.Error(), string(pt))
	})
}

func TestSealOpenGCMExplicitNonce(t *testing.T) {
	tests := []struct {
		name     string
		keyLen   int
		nonceLen int
		wantErr  error
	}{
		{"aes-128 96-bit nonce", 16, 12, nil},
		{"aes-192 64-bit nonce", 24, 8, nil},
		{"aes-256 128-bit nonce", 32, 16, nil},
		{"aes-256 1-byte nonce", 32, 1, nil},
		{"empty nonce", 32, 0, cryptocore.ErrNonceSize},
		{"2056-bit nonce", 32, 257, nil},
		{"oversize nonce", 32, 1025, cryptocore.ErrNonceSize},
		{"bad key", 20, 12, cryptocore.ErrKeySize},
		{"empty key", 0, 12, cryptocore.ErrKeySize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, nonce := make([]byte, tt.keyLen), make([]byte, tt.nonceLen)
			sealed, err := cryptocore.SealGCM(key, nonce, []byte("msg"), []byte("aad"))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				_, err = cryptocore.OpenGCM(key, nonce, make([]byte, 32), nil)
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			got, err := cryptocore.OpenGCM(key, nonce, sealed, []byte("aad"))
			require.NoError(t, err)
			require.Equal(t, []byte("msg"), got)
			_, err = cryptocore.OpenGCM(key, nonce, sealed, []byte("aaD"))
			require.ErrorIs(t, err, cryptocore.ErrAuthFailed)
			_, err = cryptocore.OpenGCM(key, nonce, sealed[:cryptocore.TagSize-1], nil)
			require.ErrorIs(t, err, cryptocore.ErrInputSize)
		})
	}
}

func TestRandomBytes(t *testing.T) {
	for _, n := range []int{0, -1, cryptocore.MaxRandomBytes + 1} {
		_, err := cryptocore.RandomBytes(n)
		require.ErrorIs(t, err, cryptocore.ErrInputSize, "n=%d", n)
	}
	a, err := cryptocore.RandomBytes(32)
	require.NoError(t, err)
	b, err := cryptocore.RandomBytes(32)
	require.NoError(t, err)
	require.Len(t, a, 32)
	require.NotEqual(t, a, b)
	big, err := cryptocore.RandomBytes(cryptocore.MaxRandomBytes)
	require.NoError(t, err)
	require.Len(t, big, cryptocore.MaxRandomBytes)
}

func TestZero(t *testing.T) {
	b := []byte{1, 2, 3, 4}
	cryptocore.Zero(b)
	require.Equal(t, []byte{0, 0, 0, 0}, b)
	cryptocore.Zero(nil) // must not panic
}
