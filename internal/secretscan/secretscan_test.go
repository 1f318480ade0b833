package secretscan_test

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/secretscan"
)

func TestFind(t *testing.T) {
	secret := []byte("0123456789abcdefghijklmnopqrstuv")
	patterns := secretscan.Patterns("key", secret)
	tests := []struct {
		name  string
		data  string
		found bool
	}{
		{"raw", "x" + string(secret) + "y", true},
		{"hex", "x" + hex.EncodeToString(secret), true},
		{"HEX", strings.ToUpper(hex.EncodeToString(secret)) + "y", true},
		{"base64 at offset 0", base64.StdEncoding.EncodeToString(secret), true},
		{"base64 at offset 1", base64.StdEncoding.EncodeToString(append([]byte{0}, secret...)), true},
		{"base64 at offset 2", base64.StdEncoding.EncodeToString(append([]byte{0, 0}, secret...)), true},
		{"base64url at offset 1", base64.RawURLEncoding.EncodeToString(append([]byte{0}, secret...)), true},
		{"a part of it", string(secret[:8]), false},
		{"nothing", "nothing here", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.found, len(secretscan.Find([]byte(tt.data), patterns)) > 0)
		})
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("a secret of some length")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "clean"), []byte("nothing"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "leak"), []byte(hex.EncodeToString(secret)), 0o600))
	scanned, found, err := secretscan.Dir(dir, secretscan.Patterns("s", secret))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"clean", filepath.Join("sub", "leak")}, scanned)
	require.Equal(t, map[string][]string{filepath.Join(dir, "sub", "leak"): {"s hex"}}, found)
}
