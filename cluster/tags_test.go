package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
)

// newRecordsOnly returns a Manager with no provisioner, for tests that
// never start an HSM.
func newRecordsOnly(t *testing.T) *cluster.Manager {
	t.Helper()
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	return cluster.NewManager(store, nil, pki, nil)
}

// addBackup records a READY backup of clusterID without an HSM.
func addBackup(t *testing.T, mgr *cluster.Manager, clusterID string) *cluster.Backup {
	t.Helper()
	b := &cluster.Backup{BackupID: cluster.NewID("backup"), ClusterID: clusterID, State: cluster.BackupReady, CreatedAt: time.Now().UTC()}
	require.NoError(t, mgr.Store().Update(func(st *cluster.State) error {
		st.Backups = append(st.Backups, b)
		return nil
	}))
	return b
}

func TestTags(t *testing.T) {
	ctx := context.Background()
	mgr := newRecordsOnly(t)
	c, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1], Tags: map[string]string{"env": "dev"}})
	require.NoError(t, err)
	b := addBackup(t, mgr, c.ClusterID)

	for _, r := range []struct{ name, id string }{{"cluster", c.ClusterID}, {"backup", b.BackupID}} {
		id := r.id
		t.Run(r.name, func(t *testing.T) {
			got, err := mgr.TagResource(id, map[string]string{"team": "blue", "env": "prod"})
			require.NoError(t, err)
			require.Equal(t, "prod", got["env"], "a tag's value is replaced")
			require.Equal(t, "blue", got["team"])
			require.NoError(t, mgr.UntagResource(id, []string{"env", "absent"}))
			tags, err := mgr.Tags(id)
			require.NoError(t, err)
			require.Equal(t, map[string]string{"team": "blue"}, tags)

			many := map[string]string{}
			for i := range cluster.MaxTags {
				many[fmt.Sprintf("k%02d", i)] = "v"
			}
			_, err = mgr.TagResource(id, many)
			require.ErrorIs(t, err, cluster.ErrTagLimit)
			tags, err = mgr.Tags(id)
			require.NoError(t, err)
			require.Len(t, tags, 1, "a refused TagResource changes nothing")
		})
	}

	t.Run("unknown and deleted resources", func(t *testing.T) {
		for _, id := range []string{"cluster-aaaaaaaaaaa", "backup-aaaaaaaaaaa", "hsm-aaaaaaaaaaa"} {
			_, err := mgr.Tags(id)
			require.ErrorIs(t, err, cluster.ErrNotFound, id)
		}
		_, err := mgr.DeleteCluster(ctx, c.ClusterID)
		require.NoError(t, err)
		_, err = mgr.TagResource(c.ClusterID, map[string]string{"a": "b"})
		require.ErrorIs(t, err, cluster.ErrNotFound)
	})

	t.Run("the KMS fleet", func(t *testing.T) {
		fleet, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1],
			Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}})
		require.NoError(t, err)
		require.True(t, fleet.IsKMSFleet())
		other, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1]})
		require.NoError(t, err)
		require.False(t, other.IsKMSFleet())
	})
}
