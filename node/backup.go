package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Backups, after CloudHSM's (reference §5.4): a backup holds the cluster
// secrets (certificate id, domain key, cluster key and certificate, trust
// anchor) and a snapshot of the key database, whose key records stay sealed
// under the domain key. The whole is sealed under the deployment's
// persistent backup key, which only the deployment's HSMs hold, so a backup
// restores only onto them. hsmsim seals with the backup key directly where
// CloudHSM wraps an ephemeral key: the envelope's fresh nonce plays that part.

// Audit event names of backups (the audit log accepts any snake_case name).
const (
	// eventBackupCreate is a backup taken for the control plane (fields:
	// index, certificate_id).
	eventBackupCreate = "backup_create"
	// eventClusterRestore is a cluster restored from a backup at start
	// (fields: cluster_id, certificate_id, source_cluster_id).
	eventClusterRestore = "cluster_restore"
)

// backupFormatVersion is the hsmfsm.v1.Backup format this code writes and
// reads.
const backupFormatVersion = 1

// backupKeyID names the backup key in a backup envelope's header, and
// backupAAD binds the envelope to its purpose and format.
var (
	backupKeyID = []byte("backup")
	backupAAD   = []byte("hsmsim-backup-v1")
)

// restoreTimeout bounds the wait for leadership and the snapshot install of
// a restore when Start's context has no deadline.
const restoreTimeout = 30 * time.Second

// Backup errors.
var (
	// ErrNoBackupKey is returned when a backup is taken or restored on an
	// HSM that was not given the deployment's backup key.
	ErrNoBackupKey = errors.New("no backup key: the HSM was not given the deployment's backup key")
	// ErrBackupInvalid is returned when a backup does not open under the
	// backup key (another deployment's, or corrupted) or its content is
	// not a valid backup.
	ErrBackupInvalid = errors.New("backup cannot be restored")
)

// createBackup seals a backup of this HSM's replica under the backup key.
func (n *Node) createBackup() (*hsmv1.CreateBackupResponse, error) {
	if len(n.cfg.BackupKey) == 0 {
		return nil, ErrNoBackupKey
	}
	if _, err := n.raftNode(); err != nil {
		return nil, err
	}
	if n.db.Cluster().State == hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED {
		return nil, ErrNotInitialized
	}
	secrets, err := barrier.LoadSecrets(n.cfg.DataDir, n.deviceKey)
	if err != nil {
		return nil, err
	}
	defer secrets.Zero()
	snap, err := n.db.Snapshot()
	if err != nil {
		return nil, err
	}
	// The index the snapshot reflects, read from the snapshot itself: the
	// replica may apply more meanwhile.
	var header hsmfsmv1.Snapshot
	if err := proto.Unmarshal(snap, &header); err != nil {
		return nil, fmt.Errorf("node: backup snapshot: %w", err)
	}
	b := &hsmfsmv1.Backup{
		FormatVersion:   backupFormatVersion,
		CertificateId:   secrets.ClusterID,
		DomainKey:       secrets.DomainKey,
		ClusterKeyPkcs8: secrets.ClusterKeyPKCS8,
		ClusterCertPem:  secrets.ClusterCertPEM,
		TrustAnchorPem:  secrets.TrustAnchorPEM,
		Snapshot:        snap,
		AppliedIndex:    header.GetAppliedIndex(),
		SourceClusterId: n.cfg.ClusterID,
		SourceNodeId:    n.cfg.NodeID,
		CreatedAtUnix:   n.now().Unix(),
	}
	sealed, err := sealBackup(n.cfg.BackupKey, b)
	if err != nil {
		return nil, err
	}
	return &hsmv1.CreateBackupResponse{Backup: sealed, Index: b.GetAppliedIndex(), CertificateId: secrets.ClusterID}, nil
}

// sealBackup encodes b deterministically and seals it under key.
func sealBackup(key []byte, b *hsmfsmv1.Backup) ([]byte, error) {
	aead, err := cryptocore.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("node: backup key: %w", err)
	}
	plain, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("node: encode backup: %w", err)
	}
	defer cryptocore.Zero(plain)
	return cryptocore.SealEnvelope(aead, backupKeyID, 1, plain, backupAAD)
}

// openBackup opens a backup sealed by sealBackup and checks its format. The
// caller zeroes the secrets it holds.
func openBackup(key, sealed []byte) (*hsmfsmv1.Backup, error) {
	if len(key) == 0 {
		return nil, ErrNoBackupKey
	}
	aead, err := cryptocore.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("node: backup key: %w", err)
	}
	plain, err := cryptocore.OpenEnvelope(aead, backupKeyID, 1, sealed, backupAAD)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open under this deployment's backup key: %w", ErrBackupInvalid, err)
	}
	defer cryptocore.Zero(plain)
	b := new(hsmfsmv1.Backup)
	if err := proto.Unmarshal(plain, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackupInvalid, err)
	}
	switch {
	case b.GetFormatVersion() != backupFormatVersion:
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrBackupInvalid, b.GetFormatVersion(), backupFormatVersion)
	case b.GetCertificateId() == "" || len(b.GetDomainKey()) != cryptocore.KeySize || len(b.GetClusterKeyPkcs8()) == 0:
		return nil, fmt.Errorf("%w: incomplete cluster secrets", ErrBackupInvalid)
	}
	cert, err := parseSingleCert("backup cluster certificate", b.GetClusterCertPem())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackupInvalid, err)
	}
	if cert.Subject.CommonName != b.GetCertificateId() {
		return nil, fmt.Errorf("%w: the cluster certificate names %q, not %q", ErrBackupInvalid, cert.Subject.CommonName, b.GetCertificateId())
	}
	return b, nil
}

// restoreBackup makes this HSM, which holds no cluster secrets, the first
// member of a cluster restored from Config.RestoreFrom: it bootstraps a
// one-member Raft group, waits to lead it and installs the backup's snapshot
// with Raft's user restore, so that the snapshot reaches every HSM that
// joins later. The secrets are saved last: an HSM that stops before the end
// has none and restores again at its next start (a snapshot already
// installed is not installed twice).
func (n *Node) restoreBackup(ctx context.Context) error {
	b, err := openBackup(n.cfg.BackupKey, n.cfg.RestoreFrom)
	if err != nil {
		return err
	}
	secrets := &barrier.Secrets{
		ClusterID: b.GetCertificateId(), DomainKey: b.GetDomainKey(), ClusterKeyPKCS8: b.GetClusterKeyPkcs8(),
		ClusterCertPEM: b.GetClusterCertPem(), TrustAnchorPEM: b.GetTrustAnchorPem(),
	}
	defer secrets.Zero()
	// Validate the snapshot before anything starts.
	if _, err := keydb.PrepareRestore(b.GetSnapshot(), n.selfMember(), b.GetAppliedIndex()); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupInvalid, err)
	}
	if err := n.becomeMember(cloneSecrets(secrets), true); err != nil {
		return err
	}
	r, err := n.raftNode()
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, restoreTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.State() != raft.Leader {
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: restore: no leadership of the new cluster: %w", ctx.Err())
		case <-tick.C:
		}
	}
	timeout := restoreTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	// Wait for the leader's first entries to apply: nothing else writes
	// before Start returns, so the last index is stable from here on.
	if err := r.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	if n.db.Cluster().State == hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED {
		// Raft installs the snapshot at max(meta.Index, last index) + 1: the
		// key database records that index as its applied index.
		index := max(b.GetAppliedIndex(), r.LastIndex())
		snap, err := keydb.PrepareRestore(b.GetSnapshot(), n.selfMember(), index+1)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBackupInvalid, err)
		}
		meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: int64(len(snap))}
		if err := r.Restore(meta, bytes.NewReader(snap), timeout); err != nil {
			return fmt.Errorf("node: restore snapshot: %w", err)
		}
	}
	if err := barrier.SaveSecrets(n.cfg.DataDir, n.deviceKey, secrets); err != nil {
		return err
	}
	n.log.Info("cluster restored from a backup", "cluster_id", n.cfg.ClusterID, "certificate_id", b.GetCertificateId(),
		"source_cluster_id", b.GetSourceClusterId(), "backup_index", b.GetAppliedIndex())
	n.record(eventClusterRestore, "", nil, "cluster_id", n.cfg.ClusterID, "certificate_id", b.GetCertificateId(),
		"source_cluster_id", b.GetSourceClusterId())
	return nil
}

// cloneSecrets returns a deep copy of s.
func cloneSecrets(s *barrier.Secrets) *barrier.Secrets {
	c := *s
	c.DomainKey = bytes.Clone(s.DomainKey)
	c.ClusterKeyPKCS8 = bytes.Clone(s.ClusterKeyPKCS8)
	return &c
}
