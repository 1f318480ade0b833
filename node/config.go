package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cryptocore"
)

// Config configures one HSM. Fill it from DefaultConfig and check it with
// Validate; New does both.
type Config struct {
	// NodeID names the HSM (CloudHSM's "hsm-..." id); also its Raft server id.
	NodeID string
	// AZ is the simulated availability zone, e.g. "us-east-1a".
	AZ string
	// ClusterID is the cluster the HSM belongs to; the cluster CSR names it.
	ClusterID string
	// DataDir holds the Raft log, snapshots, the device key and the sealed
	// cluster secrets.
	DataDir string

	// APIAddr is the gRPC listen address; ignored when APIListener is set.
	APIAddr string
	// RaftAddr is the Raft listen address; ignored when RaftListener is set.
	RaftAddr string
	// APIListener and RaftListener, when set, are used instead of listening
	// (tests pass 127.0.0.1:0 listeners).
	APIListener, RaftListener net.Listener
	// AdvertiseAPI and AdvertiseRaft are the addresses peers reach this HSM
	// at; default the listeners' addresses.
	AdvertiseAPI, AdvertiseRaft string
	// MetricsAddr, when set, serves Prometheus metrics at /metrics.
	MetricsAddr string

	// DeviceCert is the HSM's device certificate and key, signed by the
	// hardware CA.
	DeviceCert tls.Certificate
	// HardwareCA is the simulated manufacturer's CA: device certificates and
	// the control plane's client certificate chain to it.
	HardwareCA *x509.Certificate

	// Join, when set and the HSM holds no cluster secrets yet, makes the HSM
	// join an existing cluster instead of waiting to be initialized.
	Join *JoinConfig

	// BackupKey is the deployment's persistent backup key (32 bytes, CloudHSM's
	// PBK), given to every HSM by the provisioner. CreateBackup seals backups
	// under it and RestoreFrom is opened with it, so a backup restores only
	// onto an HSM of the deployment. Optional: without it CreateBackup fails
	// with FailedPrecondition "no backup key".
	BackupKey []byte
	// RestoreFrom, when set and the HSM holds no cluster secrets yet, is a
	// backup (CreateBackupResponse.backup) that Start restores: the HSM
	// becomes the only member of a new Raft group holding the source's users,
	// keys and cluster certificate, under ClusterID. Needs BackupKey; excludes
	// Join. Ignored once the HSM holds cluster secrets.
	RestoreFrom []byte

	// Clock is the HSM's clock for quorum tokens (issue and use times);
	// default time.Now. Tests pass a clock they can advance.
	Clock func() time.Time

	// Raft timing. Defaults suit a LAN; tests shorten them.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot.
	TrailingLogs uint64

	// PasswordParams are the Argon2id parameters for new password hashes.
	PasswordParams cryptocore.PasswordParams
	// ReadYourWritesTimeout bounds how long a request waits for this replica
	// to apply its session's last write.
	ReadYourWritesTimeout time.Duration
	// MaxSessions bounds the sessions this HSM holds.
	MaxSessions int

	// Logger receives structured logs; default hclog's default logger.
	Logger hclog.Logger
}

// JoinConfig tells a new HSM where its cluster is.
type JoinConfig struct {
	// Addrs are members' API addresses to fetch the cluster secrets from.
	Addrs []string
	// TrustAnchorPEM is the cluster's trust anchor, to authenticate members.
	TrustAnchorPEM string
	// CertificateID is the common name the members' cluster certificate
	// carries; default the HSM's ClusterID. A cluster restored from a backup
	// keeps the source's certificate, so its certificate id is the source's.
	CertificateID string
}

// DefaultConfig returns a Config with every optional field at its default.
//
// Raft timings are half of hashicorp/raft's defaults: 500 ms heartbeat and
// election timeouts and a 250 ms leader lease. A follower notices a dead
// leader after one to two heartbeat timeouts (randomized), but hashicorp/raft
// followers refuse a (pre-)vote while they still know a leader, so an
// election succeeds only once the *last* follower has noticed. With the
// library's 1 s defaults the chaos suite measured a median of 2.3 s from a
// leader's kill to the first write on the new leader; with these, 1.7 s.
// Heartbeats go out every 50 ms, ample on loopback or a LAN; the lease only
// bounds how long a cut-off leader keeps accepting writes.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       10240,
		PasswordParams:     cryptocore.DefaultPasswordParams,
		// Shorter than the multi-HSM client's 3 s attempt timeout, so that a
		// lagging replica answers "replica behind" rather than looking dead.
		ReadYourWritesTimeout: 2 * time.Second,
		MaxSessions:           1024,
		Clock:                 time.Now,
	}
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node: NodeID is required")
	case c.AZ == "":
		return errors.New("node: AZ is required")
	case c.ClusterID == "":
		return errors.New("node: ClusterID is required")
	case c.DataDir == "":
		return errors.New("node: DataDir is required")
	case c.APIListener == nil && c.APIAddr == "":
		return errors.New("node: APIAddr or APIListener is required")
	case c.RaftListener == nil && c.RaftAddr == "":
		return errors.New("node: RaftAddr or RaftListener is required")
	case len(c.DeviceCert.Certificate) == 0 || c.DeviceCert.PrivateKey == nil:
		return errors.New("node: DeviceCert is required")
	case c.HardwareCA == nil:
		return errors.New("node: HardwareCA is required")
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond:
		return fmt.Errorf("node: Raft timeouts too short (heartbeat %v, election %v)", c.HeartbeatTimeout, c.ElectionTimeout)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("node: LeaderLeaseTimeout %v exceeds HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.ReadYourWritesTimeout <= 0:
		return errors.New("node: ReadYourWritesTimeout must be positive")
	case c.MaxSessions < 1:
		return errors.New("node: MaxSessions must be positive")
	case c.Join != nil && (len(c.Join.Addrs) == 0 || c.Join.TrustAnchorPEM == ""):
		return errors.New("node: Join needs Addrs and TrustAnchorPEM")
	case c.BackupKey != nil && len(c.BackupKey) != cryptocore.KeySize:
		return fmt.Errorf("node: BackupKey has %d bytes, want %d", len(c.BackupKey), cryptocore.KeySize)
	case c.RestoreFrom != nil && c.BackupKey == nil:
		return errors.New("node: RestoreFrom needs BackupKey (no backup key)")
	case c.RestoreFrom != nil && c.Join != nil:
		return errors.New("node: RestoreFrom and Join exclude each other")
	}
	return nil
}
