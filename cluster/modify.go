package cluster

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
)

// HSM types and modes CloudHSM offers (reference §5.1).
const (
	HsmTypeHsm1  = "hsm1.medium"
	HsmTypeHsm2m = "hsm2m.medium"
	ModeFIPS     = "FIPS"
	ModeNonFIPS  = "NON_FIPS"
)

// HsmTypes are the HSM types a cluster may have.
var HsmTypes = []string{HsmTypeHsm1, HsmTypeHsm2m}

// ClusterSetup is what CloudHSM's CreateCluster sets beyond
// CreateClusterInput: the HSM type, the mode and the customer's own subnet
// and VPC ids. Empty fields leave the record's values.
type ClusterSetup struct {
	HsmType string
	// Mode is FIPS or NON_FIPS (hsm2m.medium only). A cluster made from a
	// backup must have its source's mode.
	Mode string
	// VpcID replaces the generated VPC id.
	VpcID string
	// Subnets maps each of the cluster's AZs to a subnet id; it must name
	// exactly the AZs the cluster was created with.
	Subnets map[string]string
}

// SetupCluster applies setup to a new cluster, one that has no HSM yet (an
// HSM records its subnet). It returns the cluster afterwards.
func (m *Manager) SetupCluster(clusterID string, setup ClusterSetup) (*Cluster, error) {
	return m.updateCluster(clusterID, func(st *State, c *Cluster) error {
		if len(c.Hsms) > 0 {
			return fmt.Errorf("%w: cluster %s already has HSMs", ErrInvalidRequest, clusterID)
		}
		hsmType, mode := c.HsmType, c.Mode
		if setup.HsmType != "" {
			hsmType = setup.HsmType
		}
		if setup.Mode != "" {
			mode = setup.Mode
		}
		if !slices.Contains(HsmTypes, hsmType) {
			return fmt.Errorf("%w: HSM type %s is not supported; use one of %v", ErrInvalidRequest, hsmType, HsmTypes)
		}
		switch mode {
		case ModeFIPS:
		case ModeNonFIPS:
			if hsmType != HsmTypeHsm2m {
				return fmt.Errorf("%w: NON_FIPS mode needs HSM type %s", ErrInvalidRequest, HsmTypeHsm2m)
			}
		default:
			return fmt.Errorf("%w: mode %s is neither FIPS nor NON_FIPS", ErrInvalidRequest, mode)
		}
		if c.SourceBackupID != "" {
			if b := st.Backup(c.SourceBackupID); b != nil {
				if src := st.Cluster(b.ClusterID); src != nil && src.Mode != mode {
					return fmt.Errorf("%w: backup %s is of a %s cluster; it restores only into a %s cluster", ErrInvalidRequest, b.BackupID, src.Mode, src.Mode)
				}
			}
		}
		if setup.Subnets != nil {
			if !slices.Equal(slices.Sorted(maps.Keys(setup.Subnets)), slices.Sorted(maps.Keys(c.SubnetMapping))) {
				return fmt.Errorf("%w: the subnets must be in the cluster's availability zones", ErrInvalidRequest)
			}
			c.SubnetMapping = maps.Clone(setup.Subnets)
		}
		if setup.VpcID != "" {
			c.VpcID = setup.VpcID
		}
		c.HsmType, c.Mode = hsmType, mode
		return nil
	})
}

// ModifyClusterInput changes a cluster. Zero fields leave it as it is.
type ModifyClusterInput struct {
	// HsmType migrates the cluster's HSMs; only hsm1.medium → hsm2m.medium
	// is a migration CloudHSM offers. The simulated HSMs are the same
	// program either way, so the migration is immediate.
	HsmType string
	// BackupRetentionDays is 7..379.
	BackupRetentionDays int
}

// ModifyCluster changes a cluster's HSM type or backup retention.
func (m *Manager) ModifyCluster(ctx context.Context, clusterID string, in ModifyClusterInput) (*Cluster, error) {
	c, err := m.updateCluster(clusterID, func(_ *State, c *Cluster) error {
		if in.BackupRetentionDays != 0 && (in.BackupRetentionDays < 7 || in.BackupRetentionDays > 379) {
			return fmt.Errorf("%w: backup retention must be 7 to 379 days", ErrInvalidRequest)
		}
		if in.HsmType != "" && in.HsmType != c.HsmType {
			if c.HsmType != HsmTypeHsm1 || in.HsmType != HsmTypeHsm2m {
				return fmt.Errorf("%w: a cluster of %s cannot be migrated to %s", ErrInvalidRequest, c.HsmType, in.HsmType)
			}
			c.HsmType = in.HsmType
		}
		if in.BackupRetentionDays != 0 {
			c.BackupRetentionDays = in.BackupRetentionDays
		}
		return nil
	})
	if err == nil {
		m.log.Info("cluster modified", "cluster_id", clusterID, "hsm_type", c.HsmType, "backup_retention_days", c.BackupRetentionDays)
	}
	return c, err
}

// updateCluster lets f change a cluster that is not deleted, in one store
// update, and returns a copy of it afterwards.
func (m *Manager) updateCluster(clusterID string, f func(*State, *Cluster) error) (*Cluster, error) {
	var out Cluster
	err := m.store.Update(func(st *State) error {
		c := st.Cluster(clusterID)
		if c == nil || c.State == ClusterDeleted {
			return fmt.Errorf("%w: cluster %s", ErrNotFound, clusterID)
		}
		if err := f(st, c); err != nil {
			return err
		}
		out = *c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveClusters forgets every cluster keep does not keep, with its backups
// (records and files), and stops its HSMs. It is a reset, not CloudHSM's
// DeleteCluster: no backup is taken and no record stays behind. It returns
// the removed clusters' ids. An HSM that does not stop is logged, not
// returned: the records are already gone.
func (m *Manager) RemoveClusters(ctx context.Context, keep func(*Cluster) bool) ([]string, error) {
	var removed []*Cluster
	var files []string
	err := m.store.Update(func(st *State) error {
		kept := map[string]bool{}
		var clusters []*Cluster
		for _, c := range st.Clusters {
			if keep(c) {
				kept[c.ClusterID] = true
				clusters = append(clusters, c)
			} else {
				removed = append(removed, c)
			}
		}
		var backups []*Backup
		for _, b := range st.Backups {
			if kept[b.ClusterID] {
				backups = append(backups, b)
			} else if b.File != "" {
				files = append(files, b.File)
			}
		}
		st.Clusters, st.Backups = clusters, backups
		return nil
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(removed))
	for _, c := range removed {
		ids = append(ids, c.ClusterID)
		for _, h := range c.Hsms {
			if err := m.prov.Stop(ctx, h.Runtime); err != nil {
				m.log.Warn("stop hsm of a removed cluster", "cluster_id", c.ClusterID, "hsm_id", h.HsmID, "error", err)
			}
		}
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			m.log.Warn("remove backup file", "file", f, "error", err)
		}
	}
	if len(ids) > 0 {
		m.log.Info("clusters removed", "cluster_ids", ids)
	}
	return ids, nil
}
