package cryptocore_test

import (
	"strings"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

// cheap keeps the tests fast; the format and the checks do not depend on cost.
var cheap = cryptocore.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordRoundTrip(t *testing.T) {
	h, err := cryptocore.HashPassword([]byte("correct horse"), cheap)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$"), h)
	require.NotContains(t, h, "correct horse")
	require.NoError(t, cryptocore.VerifyPassword(h, []byte("correct horse")))
	require.ErrorIs(t, cryptocore.VerifyPassword(h, []byte("correct horsE")), cryptocore.ErrPasswordMismatch)
	require.ErrorIs(t, cryptocore.VerifyPassword(h, []byte("")), cryptocore.ErrPasswordMismatch)

	h2, err := cryptocore.HashPassword([]byte("correct horse"), cheap)
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salts must differ")
}

func TestPasswordDefaultParams(t *testing.T) {
	h, err := cryptocore.HashPassword([]byte("password1"), cryptocore.DefaultPasswordParams)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	require.NoError(t, cryptocore.VerifyPassword(h, []byte("password1")))
}

func TestHashPasswordRejects(t *testing.T) {
	_, err := cryptocore.HashPassword(nil, cheap)
	require.ErrorIs(t, err, cryptocore.ErrInputSize)
	_, err = cryptocore.HashPassword(make([]byte, 1025), cheap)
	require.ErrorIs(t, err, cryptocore.ErrInputSize)
	bad := cheap
	bad.Time = 0
	_, err = cryptocore.HashPassword([]byte("pw"), bad)
	require.ErrorIs(t, err, cryptocore.ErrInvalidHash)
}

func TestVerifyPasswordInvalidHash(t *testing.T) {
	good, err := cryptocore.HashPassword([]byte("pw"), cheap)
	require.NoError(t, err)
	parts := strings.Split(good, "$")
	join := func(p ...string) string { return strings.Join(p, "$") }
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"argon2i", join("", "argon2i", parts[2], parts[3], parts[4], parts[5])},
		{"version 16", join("", "argon2id", "v=16", parts[3], parts[4], parts[5])},
		{"version with junk", join("", "argon2id", "v=19x", parts[3], parts[4], parts[5])},
		{"params junk", join("", "argon2id", parts[2], "m=64,t=1", parts[4], parts[5])},
		{"memory too large", join("", "argon2id", parts[2], "m=999999999,t=1,p=1", parts[4], parts[5])},
		{"time too large", join("", "argon2id", parts[2], "m=64,t=1000,p=1", parts[4], parts[5])},
		{"zero threads", join("", "argon2id", parts[2], "m=64,t=1,p=0", parts[4], parts[5])},
		{"bad salt base64", join("", "argon2id", parts[2], parts[3], "!!!", parts[5])},
		{"short salt", join("", "argon2id", parts[2], parts[3], "AAAA", parts[5])},
		{"bad hash base64", join("", "argon2id", parts[2], parts[3], parts[4], "$$")},
		{"extra field", good + "$x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, cryptocore.VerifyPassword(tt.encoded, []byte("pw")), cryptocore.ErrInvalidHash)
		})
	}
}
