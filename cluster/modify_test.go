package cluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/local"
)

func TestSetupCluster(t *testing.T) {
	ctx := context.Background()
	mgr := newRecordsOnly(t)
	azs := cluster.DefaultAZs[:2]
	subnets := map[string]string{azs[0]: "subnet-0123456789abcdef0", azs[1]: "subnet-0123456789abcdef1"}

	tests := []struct {
		name    string
		setup   cluster.ClusterSetup
		wantErr error
	}{
		{"hsm1 FIPS with the customer's subnets", cluster.ClusterSetup{HsmType: cluster.HsmTypeHsm1, Mode: cluster.ModeFIPS, VpcID: "vpc-0123", Subnets: subnets}, nil},
		{"hsm2m NON_FIPS", cluster.ClusterSetup{HsmType: cluster.HsmTypeHsm2m, Mode: cluster.ModeNonFIPS}, nil},
		{"unknown HSM type", cluster.ClusterSetup{HsmType: "hsm9.huge"}, cluster.ErrInvalidRequest},
		{"NON_FIPS on hsm1", cluster.ClusterSetup{HsmType: cluster.HsmTypeHsm1, Mode: cluster.ModeNonFIPS}, cluster.ErrInvalidRequest},
		{"unknown mode", cluster.ClusterSetup{Mode: "LAX"}, cluster.ErrInvalidRequest},
		{"subnets in other AZs", cluster.ClusterSetup{Subnets: map[string]string{"us-east-1c": "subnet-0123456789abcdef2"}}, cluster.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs})
			require.NoError(t, err)
			got, err := mgr.SetupCluster(c.ClusterID, tt.setup)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				after, err := mgr.Cluster(c.ClusterID)
				require.NoError(t, err)
				require.Equal(t, c.HsmType, after.HsmType, "a refused setup changes nothing")
				require.Equal(t, c.SubnetMapping, after.SubnetMapping)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.setup.HsmType, got.HsmType)
			require.Equal(t, tt.setup.Mode, got.Mode)
			if tt.setup.Subnets != nil {
				require.Equal(t, subnets, got.SubnetMapping)
				require.Equal(t, "vpc-0123", got.VpcID)
			}
			stored, err := mgr.Cluster(c.ClusterID)
			require.NoError(t, err)
			require.Equal(t, got, stored)
		})
	}

	t.Run("a backup restores only into its mode", func(t *testing.T) {
		src, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs})
		require.NoError(t, err)
		_, err = mgr.SetupCluster(src.ClusterID, cluster.ClusterSetup{HsmType: cluster.HsmTypeHsm2m, Mode: cluster.ModeNonFIPS})
		require.NoError(t, err)
		b := addBackup(t, mgr, src.ClusterID)
		c, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs, SourceBackupID: b.BackupID})
		require.NoError(t, err)
		_, err = mgr.SetupCluster(c.ClusterID, cluster.ClusterSetup{Mode: cluster.ModeFIPS})
		require.ErrorIs(t, err, cluster.ErrInvalidRequest)
		_, err = mgr.SetupCluster(c.ClusterID, cluster.ClusterSetup{HsmType: cluster.HsmTypeHsm2m, Mode: cluster.ModeNonFIPS})
		require.NoError(t, err)
	})

	t.Run("unknown cluster", func(t *testing.T) {
		_, err := mgr.SetupCluster("cluster-aaaaaaaaaaa", cluster.ClusterSetup{})
		require.ErrorIs(t, err, cluster.ErrNotFound)
	})
}

func TestModifyCluster(t *testing.T) {
	ctx := context.Background()
	mgr := newRecordsOnly(t)
	tests := []struct {
		name          string
		from          string
		in            cluster.ModifyClusterInput
		wantErr       error
		wantType      string
		wantRetention int
	}{
		{"retention", cluster.HsmTypeHsm2m, cluster.ModifyClusterInput{BackupRetentionDays: 30}, nil, cluster.HsmTypeHsm2m, 30},
		{"retention too short", cluster.HsmTypeHsm2m, cluster.ModifyClusterInput{BackupRetentionDays: 6}, cluster.ErrInvalidRequest, "", 0},
		{"retention too long", cluster.HsmTypeHsm2m, cluster.ModifyClusterInput{BackupRetentionDays: 380}, cluster.ErrInvalidRequest, "", 0},
		{"migrate hsm1 to hsm2m", cluster.HsmTypeHsm1, cluster.ModifyClusterInput{HsmType: cluster.HsmTypeHsm2m}, nil, cluster.HsmTypeHsm2m, cluster.DefaultBackupRetentionDays},
		{"no way back", cluster.HsmTypeHsm2m, cluster.ModifyClusterInput{HsmType: cluster.HsmTypeHsm1}, cluster.ErrInvalidRequest, "", 0},
		{"the same type", cluster.HsmTypeHsm2m, cluster.ModifyClusterInput{HsmType: cluster.HsmTypeHsm2m}, nil, cluster.HsmTypeHsm2m, cluster.DefaultBackupRetentionDays},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1]})
			require.NoError(t, err)
			_, err = mgr.SetupCluster(c.ClusterID, cluster.ClusterSetup{HsmType: tt.from})
			require.NoError(t, err)
			got, err := mgr.ModifyCluster(ctx, c.ClusterID, tt.in)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				after, err := mgr.Cluster(c.ClusterID)
				require.NoError(t, err)
				require.Equal(t, tt.from, after.HsmType)
				require.Equal(t, cluster.DefaultBackupRetentionDays, after.BackupRetentionDays)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantType, got.HsmType)
			require.Equal(t, tt.wantRetention, got.BackupRetentionDays)
		})
	}
}

func TestRemoveClusters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	prov, err := local.New(local.Config{Dir: dir, PKI: pki, HsmdPath: hsmdPath})
	require.NoError(t, err)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
	mgr := cluster.NewManager(store, prov, pki, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		mgr.StopAll(ctx)
	})

	fleet, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1],
		Tags: map[string]string{cluster.RoleTag: cluster.RoleKMSFleet}})
	require.NoError(t, err)
	fleetBackup := addBackup(t, mgr, fleet.ClusterID)
	doomed, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:1]})
	require.NoError(t, err)
	h, err := mgr.CreateHsm(ctx, doomed.ClusterID, cluster.DefaultAZs[0])
	require.NoError(t, err)
	require.True(t, prov.Running(h.Runtime))
	doomedBackup := addBackup(t, mgr, doomed.ClusterID)
	doomedBackup.File = dir + "/backups/doomed.backup"
	require.NoError(t, os.MkdirAll(dir+"/backups", 0o700))
	require.NoError(t, os.WriteFile(doomedBackup.File, []byte("sealed"), 0o600))
	require.NoError(t, store.Update(func(st *cluster.State) error {
		st.Backup(doomedBackup.BackupID).File = doomedBackup.File
		return nil
	}))

	removed, err := mgr.RemoveClusters(ctx, (*cluster.Cluster).IsKMSFleet)
	require.NoError(t, err)
	require.Equal(t, []string{doomed.ClusterID}, removed)
	require.False(t, prov.Running(h.Runtime), "the removed cluster's HSM is stopped")
	require.NoFileExists(t, doomedBackup.File)

	st, err := store.Load()
	require.NoError(t, err)
	require.Len(t, st.Clusters, 1)
	require.Equal(t, fleet.ClusterID, st.Clusters[0].ClusterID)
	require.Len(t, st.Backups, 1)
	require.Equal(t, fleetBackup.BackupID, st.Backups[0].BackupID)
}
