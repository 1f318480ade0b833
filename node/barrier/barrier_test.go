package barrier_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/stretchr/testify/require"
)

func recordID(b byte) []byte { return bytes.Repeat([]byte{b}, barrier.RecordIDSize) }

func mustUnsealed(t *testing.T, clusterID string, key []byte) *barrier.Barrier {
	t.Helper()
	b := barrier.New()
	require.NoError(t, b.Unseal(clusterID, key))
	return b
}

func TestBarrierSealed(t *testing.T) {
	b := barrier.New()
	require.True(t, b.Sealed())
	_, err := b.SealRecord(recordID(1), 1, []byte("k"))
	require.ErrorIs(t, err, barrier.ErrSealed)
	_, err = b.OpenRecord(recordID(1), 1, []byte("k"))
	require.ErrorIs(t, err, barrier.ErrSealed)
	require.ErrorIs(t, b.Unseal("cluster-x", make([]byte, 16)), cryptocore.ErrKeySize)
	require.Error(t, b.Unseal("", make([]byte, 32)))
	require.True(t, b.Sealed())
}

func TestBarrierRecords(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	b := mustUnsealed(t, "cluster-abc", key)
	require.False(t, b.Sealed())
	material := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := b.SealRecord(recordID(1), 1, material)
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed, material))

	got, err := b.OpenRecord(recordID(1), 1, sealed)
	require.NoError(t, err)
	require.Equal(t, material, got)

	tests := []struct {
		name    string
		b       *barrier.Barrier
		id      []byte
		version uint32
		want    error
	}{
		{"other record", b, recordID(2), 1, cryptocore.ErrAuthFailed},
		{"other version", b, recordID(1), 2, cryptocore.ErrAuthFailed},
		{"other cluster", mustUnsealed(t, "cluster-xyz", key), recordID(1), 1, cryptocore.ErrAuthFailed},
		{"other domain key", mustUnsealed(t, "cluster-abc", bytes.Repeat([]byte{8}, 32)), recordID(1), 1, cryptocore.ErrAuthFailed},
		{"short record id", b, []byte("short"), 1, cryptocore.ErrInputSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.b.OpenRecord(tt.id, tt.version, sealed)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestSecretsAtRest(t *testing.T) {
	dir := t.TempDir()
	dev, err := barrier.LoadOrCreateDeviceKey(dir)
	require.NoError(t, err)
	again, err := barrier.LoadOrCreateDeviceKey(dir)
	require.NoError(t, err)
	require.Equal(t, dev, again)
	st, err := os.Stat(filepath.Join(dir, barrier.DeviceKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	_, err = barrier.LoadSecrets(dir, dev)
	require.ErrorIs(t, err, barrier.ErrNoSecrets)

	domain := bytes.Repeat([]byte{0xd0}, 32)
	clusterKey := []byte("PKCS8-cluster-private-key-bytes!")
	s := &barrier.Secrets{ClusterID: "cluster-1", DomainKey: bytes.Clone(domain), ClusterKeyPKCS8: bytes.Clone(clusterKey), ClusterCertPEM: "cert", TrustAnchorPEM: "anchor"}
	require.NoError(t, barrier.SaveSecrets(dir, dev, s))

	raw, err := os.ReadFile(filepath.Join(dir, barrier.SecretsFile))
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, domain), "domain key in the clear")
	require.False(t, bytes.Contains(raw, clusterKey), "cluster key in the clear")

	got, err := barrier.LoadSecrets(dir, dev)
	require.NoError(t, err)
	require.Equal(t, s, got)

	other := bytes.Repeat([]byte{1}, 32)
	_, err = barrier.LoadSecrets(dir, other)
	require.ErrorIs(t, err, cryptocore.ErrAuthFailed)

	s.Zero()
	require.Equal(t, make([]byte, 32), s.DomainKey)
}

func TestDeviceKeyCorrupt(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, barrier.DeviceKeyFile), []byte("short"), 0o600))
	_, err := barrier.LoadOrCreateDeviceKey(dir)
	require.Error(t, err)
}
