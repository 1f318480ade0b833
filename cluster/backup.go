package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hsmsim/hsmsim/internal/atomicfile"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// CreateBackup takes a backup of the cluster from its Raft leader: the
// sealed key database, sealed again under the deployment's backup key, so
// it holds no plaintext key material and only the deployment's HSMs can
// restore it. trigger says why (activation, hsm_add, hsm_remove, on_demand).
func (m *Manager) CreateBackup(ctx context.Context, clusterID, trigger string) (*Backup, error) {
	c, err := m.Cluster(clusterID)
	if err != nil {
		return nil, err
	}
	if c.State != ClusterActive && c.State != ClusterDegraded {
		return nil, fmt.Errorf("%w: cluster %s is %s; only an active cluster is backed up", ErrInvalidRequest, clusterID, c.State)
	}
	conn, err := m.leader(ctx, c)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := hsmv1.NewClusterServiceClient(conn).CreateBackup(ctx, &hsmv1.CreateBackupRequest{})
	if err != nil {
		return nil, fmt.Errorf("%w: backup: %w", ErrHSM, err)
	}
	b := &Backup{
		BackupID: NewID("backup"), ClusterID: clusterID, State: BackupReady, CreatedAt: m.now().UTC(),
		CertificateID: resp.GetCertificateId(), Trigger: trigger, SourceCluster: clusterID,
	}
	b.File = filepath.Join(m.store.Dir(), "backups", b.BackupID+".backup")
	if err := os.MkdirAll(filepath.Dir(b.File), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(b.File, resp.GetBackup(), 0o600); err != nil {
		return nil, err
	}
	if err := m.store.Update(func(st *State) error {
		st.Backups = append(st.Backups, b)
		return nil
	}); err != nil {
		return nil, err
	}
	m.log.Info("backup created", "cluster_id", clusterID, "backup_id", b.BackupID, "trigger", trigger)
	if _, err := m.ExpireBackups(m.now()); err != nil {
		m.log.Warn("applying backup retention failed", "error", err)
	}
	return b, nil
}

// Backups lists backups, optionally of one cluster, after applying the
// retention policy (the control plane has no timer of its own: retention
// is applied whenever backups are listed or taken).
func (m *Manager) Backups(clusterID string) ([]*Backup, error) {
	if _, err := m.ExpireBackups(m.now()); err != nil {
		return nil, err
	}
	st, err := m.store.Load()
	if err != nil {
		return nil, err
	}
	var out []*Backup
	for _, b := range st.Backups {
		if clusterID == "" || b.ClusterID == clusterID {
			out = append(out, b)
		}
	}
	return out, nil
}

// DeleteBackup marks a backup PENDING_DELETION; RestoreBackup can bring it
// back for 7 days, after which ExpireBackups removes it.
func (m *Manager) DeleteBackup(backupID string) (*Backup, error) {
	return m.setBackup(backupID, func(b *Backup) error {
		if b.State != BackupReady {
			return fmt.Errorf("%w: backup %s is %s", ErrInvalidRequest, backupID, b.State)
		}
		now := m.now().UTC()
		b.State, b.DeletedAt = BackupPendingDeletion, &now
		return nil
	})
}

// RestoreBackup returns a PENDING_DELETION backup to READY.
func (m *Manager) RestoreBackup(backupID string) (*Backup, error) {
	return m.setBackup(backupID, func(b *Backup) error {
		if b.State != BackupPendingDeletion {
			return fmt.Errorf("%w: backup %s is %s, not PENDING_DELETION", ErrInvalidRequest, backupID, b.State)
		}
		b.State, b.DeletedAt = BackupReady, nil
		return nil
	})
}

// SetNeverExpires exempts a backup from the retention policy, or not.
func (m *Manager) SetNeverExpires(backupID string, never bool) (*Backup, error) {
	return m.setBackup(backupID, func(b *Backup) error {
		b.NeverExpires = never
		return nil
	})
}

func (m *Manager) setBackup(backupID string, f func(*Backup) error) (*Backup, error) {
	var out Backup
	err := m.store.Update(func(st *State) error {
		b := st.Backup(backupID)
		if b == nil || b.State == BackupDeleted {
			return fmt.Errorf("%w: backup %s", ErrNotFound, backupID)
		}
		if err := f(b); err != nil {
			return err
		}
		out = *b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ExpireBackups applies the retention policy at now: a READY backup older
// than its cluster's retention is deleted unless it never expires or is the
// cluster's last backup, and a PENDING_DELETION backup is removed 7 days
// after its deletion. It returns the ids it removed.
func (m *Manager) ExpireBackups(now time.Time) ([]string, error) {
	var removed []string
	err := m.store.Update(func(st *State) error {
		latest := map[string]*Backup{}
		for _, b := range st.Backups {
			if b.State == BackupReady && (latest[b.ClusterID] == nil || b.CreatedAt.After(latest[b.ClusterID].CreatedAt)) {
				latest[b.ClusterID] = b
			}
		}
		for _, b := range st.Backups {
			retention := DefaultBackupRetentionDays
			if c := st.Cluster(b.ClusterID); c != nil {
				retention = c.BackupRetentionDays
			}
			expired := b.State == BackupReady && !b.NeverExpires && latest[b.ClusterID] != b &&
				now.Sub(b.CreatedAt) > time.Duration(retention)*24*time.Hour
			purged := b.State == BackupPendingDeletion && b.DeletedAt != nil && now.Sub(*b.DeletedAt) > 7*24*time.Hour
			if expired || purged {
				b.State = BackupDeleted
				os.Remove(b.File)
				removed = append(removed, b.BackupID)
			}
		}
		return nil
	})
	return removed, err
}
