package cloudhsm

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// The output shapes of the model cloudhsmv2/2017-04-28, member for member
// (those hsmsim has a value for).

// tag is the model's Tag.
type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// retentionPolicy is the model's BackupRetentionPolicy.
type retentionPolicy struct {
	Type  *string `json:"Type,omitempty"`
	Value *string `json:"Value,omitempty"`
}

// certificates is the model's Certificates.
type certificates struct {
	ClusterCSR                      string `json:"ClusterCsr,omitempty"`
	HsmCertificate                  string `json:"HsmCertificate,omitempty"`
	AwsHardwareCertificate          string `json:"AwsHardwareCertificate,omitempty"`
	ManufacturerHardwareCertificate string `json:"ManufacturerHardwareCertificate,omitempty"`
	ClusterCertificate              string `json:"ClusterCertificate,omitempty"`
}

// hsmShape is the model's Hsm.
type hsmShape struct {
	AvailabilityZone string `json:"AvailabilityZone"`
	ClusterID        string `json:"ClusterId"`
	SubnetID         string `json:"SubnetId"`
	EniID            string `json:"EniId"`
	EniIP            string `json:"EniIp"`
	HsmID            string `json:"HsmId"`
	HsmType          string `json:"HsmType"`
	State            string `json:"State"`
	StateMessage     string `json:"StateMessage,omitempty"`
}

// clusterShape is the model's Cluster.
type clusterShape struct {
	BackupPolicy          string             `json:"BackupPolicy"`
	BackupRetentionPolicy retentionPolicy    `json:"BackupRetentionPolicy"`
	ClusterID             string             `json:"ClusterId"`
	CreateTimestamp       *awsjson.Timestamp `json:"CreateTimestamp,omitempty"`
	Hsms                  []hsmShape         `json:"Hsms"`
	HsmType               string             `json:"HsmType"`
	SecurityGroup         string             `json:"SecurityGroup,omitempty"`
	SourceBackupID        string             `json:"SourceBackupId,omitempty"`
	State                 string             `json:"State"`
	StateMessage          string             `json:"StateMessage,omitempty"`
	SubnetMapping         map[string]string  `json:"SubnetMapping"`
	VpcID                 string             `json:"VpcId,omitempty"`
	NetworkType           string             `json:"NetworkType"`
	Certificates          certificates       `json:"Certificates"`
	TagList               []tag              `json:"TagList,omitempty"`
	Mode                  string             `json:"Mode"`
}

// backupShape is the model's Backup.
type backupShape struct {
	BackupID        string             `json:"BackupId"`
	BackupARN       string             `json:"BackupArn"`
	BackupState     string             `json:"BackupState"`
	ClusterID       string             `json:"ClusterId"`
	CreateTimestamp *awsjson.Timestamp `json:"CreateTimestamp,omitempty"`
	NeverExpires    bool               `json:"NeverExpires"`
	SourceRegion    string             `json:"SourceRegion,omitempty"`
	SourceBackup    string             `json:"SourceBackup,omitempty"`
	SourceCluster   string             `json:"SourceCluster,omitempty"`
	DeleteTimestamp *awsjson.Timestamp `json:"DeleteTimestamp,omitempty"`
	TagList         []tag              `json:"TagList,omitempty"`
	HsmType         string             `json:"HsmType,omitempty"`
	Mode            string             `json:"Mode,omitempty"`
}

// backupPurgeDelay is how long a PENDING_DELETION backup can be restored.
const backupPurgeDelay = 7 * 24 * time.Hour

// tagList returns tags sorted by key, or nil.
func tagList(tags map[string]string) []tag {
	var out []tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, tag{Key: k, Value: tags[k]})
	}
	return out
}

// clusterOut renders a cluster record.
func (s *Service) clusterOut(c *cluster.Cluster) clusterShape {
	days := strconv.Itoa(c.BackupRetentionDays)
	out := clusterShape{
		BackupPolicy:          "DEFAULT",
		BackupRetentionPolicy: retentionPolicy{Type: ptr("DAYS"), Value: &days},
		ClusterID:             c.ClusterID,
		CreateTimestamp:       awsjson.TimeOf(c.CreatedAt),
		Hsms:                  []hsmShape{},
		HsmType:               c.HsmType,
		SecurityGroup:         c.SecurityGroup,
		SourceBackupID:        c.SourceBackupID,
		State:                 string(c.State),
		StateMessage:          c.StateMessage,
		SubnetMapping:         c.SubnetMapping,
		VpcID:                 c.VpcID,
		NetworkType:           "IPV4",
		TagList:               tagList(c.Tags),
		Mode:                  c.Mode,
	}
	if out.SubnetMapping == nil {
		out.SubnetMapping = map[string]string{}
	}
	for _, h := range c.Hsms {
		out.Hsms = append(out.Hsms, hsmOut(c, h))
	}
	if len(c.Hsms) > 0 || c.Certificate != "" {
		hw := string(pemCert(s.mgr.PKI().CA.Raw))
		out.Certificates.AwsHardwareCertificate = hw
		out.Certificates.ManufacturerHardwareCertificate = hw
	}
	if c.State == cluster.ClusterUninitialized {
		out.Certificates.ClusterCSR = c.CSR
	}
	if len(c.Hsms) > 0 {
		out.Certificates.HsmCertificate = s.knownHsmCert(c.Hsms[0].HsmID)
	}
	out.Certificates.ClusterCertificate = c.Certificate
	return out
}

func hsmOut(c *cluster.Cluster, h *cluster.HSM) hsmShape {
	return hsmShape{
		AvailabilityZone: h.AvailabilityZone, ClusterID: h.ClusterID, SubnetID: h.SubnetID,
		EniID: h.EniID, EniIP: h.EniIP, HsmID: h.HsmID, HsmType: c.HsmType,
		State: string(h.State), StateMessage: h.StateMessage,
	}
}

// backupOut renders a backup record; st gives its cluster's type and mode.
func (s *Service) backupOut(st *cluster.State, b *cluster.Backup) backupShape {
	out := backupShape{
		BackupID:        b.BackupID,
		BackupARN:       s.backupARN(b.BackupID),
		BackupState:     string(b.State),
		ClusterID:       b.ClusterID,
		CreateTimestamp: awsjson.TimeOf(b.CreatedAt),
		NeverExpires:    b.NeverExpires,
		SourceBackup:    b.SourceBackup,
		SourceCluster:   b.SourceCluster,
		TagList:         tagList(b.Tags),
	}
	if b.SourceBackup != "" {
		out.SourceRegion = s.region
	}
	if b.DeletedAt != nil {
		out.DeleteTimestamp = awsjson.TimeOf(b.DeletedAt.Add(backupPurgeDelay))
	}
	if c := st.Cluster(b.ClusterID); c != nil {
		out.HsmType, out.Mode = c.HsmType, c.Mode
	}
	return out
}

// backupARN is arn:aws:cloudhsm:<region>:<account>:backup/<id>.
func (s *Service) backupARN(id string) string {
	return fmt.Sprintf("arn:aws:cloudhsm:%s:%s:backup/%s", s.region, s.account, id)
}

func ptr[T any](v T) *T { return &v }
