package cryptocore_test

import (
	"crypto/sha1"
	"encoding/hex"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

func TestKCVAES(t *testing.T) {
	// FIPS 197 Appendix C.1 / C.3 keys; the zero-block encryption was computed
	// independently with `openssl enc -aes-128-ecb -nopad` and
	// `openssl enc -aes-256-ecb -nopad` over 16 zero bytes.
	tests := []struct {
		key  string
		want string
	}{
		{"000102030405060708090a0b0c0d0e0f", "c6a13b"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "f29000"},
	}
	for _, tt := range tests {
		key, _ := hex.DecodeString(tt.key)
		got, err := cryptocore.KCVAES(key)
		require.NoError(t, err)
		require.Equal(t, tt.want, hex.EncodeToString(got))
	}
	_, err := cryptocore.KCVAES(make([]byte, 7))
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
}

func TestKCVPublicKey(t *testing.T) {
	der := []byte("not really DER, the KCV does not parse it")
	got, err := cryptocore.KCVPublicKey(der)
	require.NoError(t, err)
	sum := sha1.Sum(der)
	require.Equal(t, sum[:3], got)
	_, err = cryptocore.KCVPublicKey(nil)
	require.ErrorIs(t, err, cryptocore.ErrInvalidKey)
}

func TestKCVGenericSecret(t *testing.T) {
	a, err := cryptocore.KCVGenericSecret([]byte("secret-a"))
	require.NoError(t, err)
	b, err := cryptocore.KCVGenericSecret([]byte("secret-b"))
	require.NoError(t, err)
	require.Len(t, a, cryptocore.KCVSize)
	require.NotEqual(t, a, b)
	_, err = cryptocore.KCVGenericSecret(nil)
	require.ErrorIs(t, err, cryptocore.ErrKeySize)
}
