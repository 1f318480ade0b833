// Package cluster is hsmsim's CloudHSM control plane: the model of
// clusters, HSMs and backups with their states and AWS-format ids, the
// Manager that runs their lifecycle over a durable Store and a Provisioner,
// the deployment's PKI, and fault injection. DESIGN.md explains the split
// between this control plane and the HSMs; it never imports package node.
package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// ClusterState is a cluster's lifecycle state, as CloudHSM names them.
type ClusterState string

// Cluster states (reference §5.1).
const (
	ClusterCreateInProgress     ClusterState = "CREATE_IN_PROGRESS"
	ClusterUninitialized        ClusterState = "UNINITIALIZED"
	ClusterInitializeInProgress ClusterState = "INITIALIZE_IN_PROGRESS"
	ClusterInitialized          ClusterState = "INITIALIZED"
	ClusterActive               ClusterState = "ACTIVE"
	ClusterDegraded             ClusterState = "DEGRADED"
	ClusterDeleteInProgress     ClusterState = "DELETE_IN_PROGRESS"
	ClusterDeleted              ClusterState = "DELETED"
)

// HsmState is an HSM's lifecycle state.
type HsmState string

// HSM states (reference §5.1).
const (
	HsmCreateInProgress HsmState = "CREATE_IN_PROGRESS"
	HsmActive           HsmState = "ACTIVE"
	HsmDegraded         HsmState = "DEGRADED"
	HsmDeleteInProgress HsmState = "DELETE_IN_PROGRESS"
	HsmDeleted          HsmState = "DELETED"
)

// BackupState is a backup's state.
type BackupState string

// Backup states (reference §5.1).
const (
	BackupCreateInProgress BackupState = "CREATE_IN_PROGRESS"
	BackupReady            BackupState = "READY"
	BackupDeleted          BackupState = "DELETED"
	BackupPendingDeletion  BackupState = "PENDING_DELETION"
)

// DefaultAZs are the availability zones of a local deployment.
var DefaultAZs = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// DefaultBackupRetentionDays is CloudHSM's default backup retention.
const DefaultBackupRetentionDays = 90

// Cluster is one CloudHSM cluster.
type Cluster struct {
	ClusterID    string       `json:"cluster_id"`
	State        ClusterState `json:"state"`
	StateMessage string       `json:"state_message,omitempty"`
	CreatedAt    time.Time    `json:"created_at"`
	HsmType      string       `json:"hsm_type"`
	Mode         string       `json:"mode"`
	VpcID        string       `json:"vpc_id"`
	// SecurityGroup is the cluster's security group, "sg-...".
	SecurityGroup string `json:"security_group"`
	// SubnetMapping maps each AZ to its subnet id.
	SubnetMapping       map[string]string `json:"subnet_mapping"`
	BackupRetentionDays int               `json:"backup_retention_days"`
	// SourceBackupID is the backup the cluster was created from, if any.
	SourceBackupID string `json:"source_backup_id,omitempty"`
	// CSR is the cluster CSR (PEM), shown while the cluster is UNINITIALIZED.
	CSR string `json:"csr,omitempty"`
	// Certificate is the customer-signed cluster certificate (PEM).
	Certificate string `json:"certificate,omitempty"`
	// TrustAnchor is the customer's CA certificate (PEM).
	TrustAnchor string `json:"trust_anchor,omitempty"`
	// CertificateID is the common name of the cluster certificate: the id of
	// the first cluster of its backup lineage.
	CertificateID string            `json:"certificate_id"`
	Hsms          []*HSM            `json:"hsms"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// HSM is one HSM of a cluster, with where it runs.
type HSM struct {
	HsmID            string   `json:"hsm_id"`
	ClusterID        string   `json:"cluster_id"`
	AvailabilityZone string   `json:"availability_zone"`
	SubnetID         string   `json:"subnet_id"`
	EniID            string   `json:"eni_id"`
	EniIP            string   `json:"eni_ip"`
	State            HsmState `json:"state"`
	StateMessage     string   `json:"state_message,omitempty"`
	// Runtime says where the HSM process is; set by the provisioner.
	Runtime Runtime `json:"runtime"`
}

// Runtime is where an HSM process runs and how to reach it.
type Runtime struct {
	APIAddr  string `json:"api_addr"`
	RaftAddr string `json:"raft_addr"`
	PID      int    `json:"pid"`
	DataDir  string `json:"data_dir"`
	LogFile  string `json:"log_file"`
	// Args are the process's arguments, for a restart.
	Args []string `json:"args,omitempty"`
	// Binary is the program's path; empty means the provisioner's hsmd.
	Binary string `json:"binary,omitempty"`
}

// Backup is a backup of a cluster's sealed key database.
type Backup struct {
	BackupID      string      `json:"backup_id"`
	ClusterID     string      `json:"cluster_id"`
	State         BackupState `json:"state"`
	CreatedAt     time.Time   `json:"created_at"`
	NeverExpires  bool        `json:"never_expires"`
	DeletedAt     *time.Time  `json:"deleted_at,omitempty"`
	SourceBackup  string      `json:"source_backup,omitempty"`
	SourceCluster string      `json:"source_cluster,omitempty"`
	CertificateID string      `json:"certificate_id"`
	// Trigger says why it was taken: activation, hsm_add, hsm_remove, on_demand.
	Trigger string `json:"trigger"`
	// File holds the sealed backup.
	File string `json:"file"`
	// Tags are the backup's tags (CloudHSM's TagResource on a backup id).
	Tags map[string]string `json:"tags,omitempty"`
}

// ActiveHsms returns the cluster's HSMs in state ACTIVE.
func (c *Cluster) ActiveHsms() []*HSM {
	var out []*HSM
	for _, h := range c.Hsms {
		if h.State == HsmActive {
			out = append(out, h)
		}
	}
	return out
}

// Hsm returns the cluster's HSM with id, or nil.
func (c *Cluster) Hsm(id string) *HSM {
	for _, h := range c.Hsms {
		if h.HsmID == id {
			return h
		}
	}
	return nil
}

// base32Lower is the alphabet of CloudHSM ids: [2-7a-z].
const base32Lower = "abcdefghijklmnopqrstuvwxyz234567"

// NewID returns prefix + "-" + 11 characters of [2-7a-z], the format of
// CloudHSM cluster, HSM and backup ids (cluster-[2-7a-zA-Z]{11,16}).
func NewID(prefix string) string {
	return prefix + "-" + randomFrom(base32Lower, 11)
}

// newHexID returns prefix + "-" + n lower-case hex digits (subnet-, eni-, sg-, vpc- ids).
func newHexID(prefix string, n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // crypto/rand.Read never fails on supported platforms
	}
	return prefix + "-" + hex.EncodeToString(b)[:n]
}

func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
