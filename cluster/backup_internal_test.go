package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExpireBackups checks the retention rules of reference §5.4 on records
// alone: no HSM is needed.
func TestExpireBackups(t *testing.T) {
	store, err := NewStore(t.TempDir())
	require.NoError(t, err)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	m := &Manager{store: store, now: func() time.Time { return now }}
	day := 24 * time.Hour
	file := func(id string) string {
		p := filepath.Join(store.Dir(), id)
		require.NoError(t, os.WriteFile(p, []byte("sealed"), 0o600))
		return p
	}
	deleted := now.Add(-8 * day)
	recentlyDeleted := now.Add(-2 * day)
	require.NoError(t, store.Update(func(st *State) error {
		st.Clusters = []*Cluster{{ClusterID: "cluster-a", BackupRetentionDays: 30}, {ClusterID: "cluster-b", BackupRetentionDays: 7}}
		st.Backups = []*Backup{
			{BackupID: "old", ClusterID: "cluster-a", State: BackupReady, CreatedAt: now.Add(-40 * day), File: file("old")},
			{BackupID: "old-kept", ClusterID: "cluster-a", State: BackupReady, CreatedAt: now.Add(-40 * day), NeverExpires: true, File: file("old-kept")},
			{BackupID: "young", ClusterID: "cluster-a", State: BackupReady, CreatedAt: now.Add(-10 * day), File: file("young")},
			{BackupID: "latest-b", ClusterID: "cluster-b", State: BackupReady, CreatedAt: now.Add(-100 * day), File: file("latest-b")},
			{BackupID: "purged", ClusterID: "cluster-a", State: BackupPendingDeletion, CreatedAt: now.Add(-20 * day), DeletedAt: &deleted, File: file("purged")},
			{BackupID: "restorable", ClusterID: "cluster-a", State: BackupPendingDeletion, CreatedAt: now.Add(-20 * day), DeletedAt: &recentlyDeleted, File: file("restorable")},
		}
		return nil
	}))
	removed, err := m.ExpireBackups(now)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"old", "purged"}, removed)

	st, err := store.Load()
	require.NoError(t, err)
	want := map[string]BackupState{"old": BackupDeleted, "old-kept": BackupReady, "young": BackupReady,
		"latest-b": BackupReady, "purged": BackupDeleted, "restorable": BackupPendingDeletion}
	for id, state := range want {
		require.Equal(t, state, st.Backup(id).State, id)
	}
	require.NoFileExists(t, filepath.Join(store.Dir(), "old"), "an expired backup's file is removed")
	require.FileExists(t, filepath.Join(store.Dir(), "latest-b"), "a cluster's last backup is never deleted")

	// Listing applies the policy too.
	now = now.Add(30 * day)
	list, err := m.Backups("cluster-a")
	require.NoError(t, err)
	for _, b := range list {
		if b.BackupID == "young" {
			require.Equal(t, BackupReady, b.State, "young is now cluster-a's newest READY backup, so it stays")
		}
	}
}
