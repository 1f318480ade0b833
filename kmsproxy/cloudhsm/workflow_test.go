package cloudhsm_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// describe returns one cluster as DescribeClusters shows it.
func (e *env) describe(ctx context.Context, id string) types.Cluster {
	e.t.Helper()
	out, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {id}}})
	require.NoError(e.t, err)
	require.Len(e.t, out.Clusters, 1)
	return out.Clusters[0]
}

// activate does what a customer does with the CloudHSM CLI after
// InitializeCluster: log in as the unactivated admin and set the admin
// password.
func (e *env) activate(ctx context.Context, clusterID string) {
	e.t.Helper()
	c, err := e.mgr.Cluster(clusterID)
	require.NoError(e.t, err)
	anchor := mustParseCert(e.t, c.TrustAnchor)
	cfg := client.Config{TrustAnchor: anchor, CertificateID: c.CertificateID,
		Username: "admin", Password: "password", Role: hsmv1.Role_ROLE_UNACTIVATED_ADMIN}
	for _, h := range c.Hsms {
		cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: h.HsmID, AZ: h.AvailabilityZone, Addr: h.Runtime.APIAddr})
	}
	cl, err := client.New(ctx, cfg)
	require.NoError(e.t, err)
	defer cl.Close()
	_, err = hsmv1.NewHsmServiceClient(cl).ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: "admin-pass-1"})
	require.NoError(e.t, err)
}

func mustParseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	require.NotNil(t, block, "a PEM certificate")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

// TestAWSWorkflow follows the CloudHSM getting-started guide through the
// SDK: create a cluster, an HSM, sign the CSR, initialize, activate, then
// backups, deletion and a restore from a backup.
func TestAWSWorkflow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	subnets := []string{"subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"}

	created, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: subnets,
		BackupRetentionPolicy: &types.BackupRetentionPolicy{Type: types.BackupRetentionTypeDays, Value: aws.String("30")},
		TagList:               []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}},
	})
	require.NoError(t, err)
	c := *created.Cluster
	id := aws.ToString(c.ClusterId)
	require.Regexp(t, `^cluster-[2-7a-z]{11}$`, id)
	require.Equal(t, types.ClusterStateUninitialized, c.State)
	require.Equal(t, map[string]string{"us-east-1a": subnets[0], "us-east-1b": subnets[1]}, c.SubnetMapping)
	require.Equal(t, "30", aws.ToString(c.BackupRetentionPolicy.Value))
	require.Equal(t, types.BackupRetentionTypeDays, c.BackupRetentionPolicy.Type)
	require.Equal(t, types.BackupPolicyDefault, c.BackupPolicy)
	require.Equal(t, types.ClusterModeFips, c.Mode)
	require.Equal(t, "hsm2m.medium", aws.ToString(c.HsmType))
	require.Regexp(t, `^vpc-[0-9a-f]+$`, aws.ToString(c.VpcId))
	require.Regexp(t, `^sg-[0-9a-f]{8,17}$`, aws.ToString(c.SecurityGroup))
	require.WithinDuration(t, time.Now(), aws.ToTime(c.CreateTimestamp), time.Minute)
	require.Empty(t, c.Hsms)
	require.Equal(t, []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}}, c.TagList)

	// The first HSM: the cluster shows its CSR and the HSM's certificate.
	hsm, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(id), AvailabilityZone: aws.String("us-east-1a")})
	require.NoError(t, err)
	h := *hsm.Hsm
	require.Regexp(t, `^hsm-[2-7a-z]{11}$`, aws.ToString(h.HsmId))
	require.Equal(t, types.HsmStateActive, h.State)
	require.Equal(t, subnets[0], aws.ToString(h.SubnetId))
	require.Equal(t, "127.0.0.1", aws.ToString(h.EniIp))
	require.Regexp(t, `^eni-[0-9a-f]{17}$`, aws.ToString(h.EniId))
	require.Equal(t, id, aws.ToString(h.ClusterId))
	require.Equal(t, "hsm2m.medium", aws.ToString(h.HsmType))

	_, err = e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(id), AvailabilityZone: aws.String("us-east-1b")})
	requireAPIError(t, err, "CloudHsmInvalidRequestException", "not initialized")
	_, err = e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(id), AvailabilityZone: aws.String("us-east-1c")})
	requireAPIError(t, err, "CloudHsmInvalidRequestException")

	c = e.describe(ctx, id)
	require.Len(t, c.Hsms, 1)
	certs := c.Certificates
	require.Contains(t, aws.ToString(certs.ClusterCsr), "BEGIN CERTIFICATE REQUEST")
	hardware := mustParseCert(t, aws.ToString(certs.ManufacturerHardwareCertificate))
	require.True(t, hardware.Equal(e.mgr.PKI().CA))
	device := mustParseCert(t, aws.ToString(certs.HsmCertificate))
	require.Equal(t, aws.ToString(h.HsmId), device.Subject.CommonName)
	roots := x509.NewCertPool()
	roots.AddCert(hardware)
	_, err = device.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err, "the HSM certificate chains to the manufacturer's")
	require.Empty(t, aws.ToString(certs.ClusterCertificate))

	// Sign the CSR as the customer and initialize.
	ca, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	other, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	signed, err := ca.SignCSR(aws.ToString(certs.ClusterCsr))
	require.NoError(t, err)
	_, err = e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: aws.String(id),
		SignedCert: aws.String(signed), TrustAnchor: aws.String(other.CertPEM())})
	requireAPIError(t, err, "CloudHsmInvalidRequestException", "not signed by the trust anchor")
	init, err := e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: aws.String(id),
		SignedCert: aws.String(signed), TrustAnchor: aws.String(ca.CertPEM())})
	require.NoError(t, err)
	require.Equal(t, types.ClusterStateInitialized, init.State)
	require.NotEmpty(t, aws.ToString(init.StateMessage))
	c = e.describe(ctx, id)
	require.Equal(t, types.ClusterStateInitialized, c.State)
	require.Empty(t, aws.ToString(c.Certificates.ClusterCsr), "the CSR is shown only while UNINITIALIZED")
	require.Equal(t, signed, aws.ToString(c.Certificates.ClusterCertificate))
	_, err = e.api.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: aws.String(id),
		SignedCert: aws.String(signed), TrustAnchor: aws.String(ca.CertPEM())})
	requireAPIError(t, err, "CloudHsmInvalidRequestException", "INITIALIZED")

	// Activation happens HSM-side; DescribeClusters sees it and the
	// control plane takes a backup.
	e.activate(ctx, id)
	c = e.describe(ctx, id)
	require.Equal(t, types.ClusterStateActive, c.State)
	backups, err := e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"clusterIds": {id}}})
	require.NoError(t, err)
	require.Len(t, backups.Backups, 1)
	b := backups.Backups[0]
	bid := aws.ToString(b.BackupId)
	require.Regexp(t, `^backup-[2-7a-z]{11}$`, bid)
	require.Equal(t, fmt.Sprintf("arn:aws:cloudhsm:%s:%s:backup/%s", region, account, bid), aws.ToString(b.BackupArn))
	require.Equal(t, types.BackupStateReady, b.BackupState)
	require.Equal(t, id, aws.ToString(b.ClusterId))
	require.Equal(t, "hsm2m.medium", aws.ToString(b.HsmType))
	require.Equal(t, types.ClusterModeFips, b.Mode)
	require.False(t, aws.ToBool(b.NeverExpires))
	require.Nil(t, b.DeleteTimestamp)
	require.WithinDuration(t, time.Now(), aws.ToTime(b.CreateTimestamp), time.Minute)

	t.Run("backup attributes, tags, delete and restore", func(t *testing.T) {
		mod, err := e.api.ModifyBackupAttributes(ctx, &cloudhsmv2.ModifyBackupAttributesInput{BackupId: aws.String(bid), NeverExpires: aws.Bool(true)})
		require.NoError(t, err)
		require.True(t, aws.ToBool(mod.Backup.NeverExpires))
		never, err := e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{Filters: map[string][]string{"neverExpires": {"true"}}})
		require.NoError(t, err)
		require.Len(t, never.Backups, 1)

		_, err = e.api.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(bid),
			TagList: []types.Tag{{Key: aws.String("keep"), Value: aws.String("yes")}}})
		require.NoError(t, err)
		tags, err := e.api.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(bid)})
		require.NoError(t, err)
		require.Equal(t, []types.Tag{{Key: aws.String("keep"), Value: aws.String("yes")}}, tags.TagList)

		deleted, err := e.api.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: aws.String(bid)})
		require.NoError(t, err)
		require.Equal(t, types.BackupStatePendingDeletion, deleted.Backup.BackupState)
		require.WithinDuration(t, time.Now().Add(7*24*time.Hour), aws.ToTime(deleted.Backup.DeleteTimestamp), time.Minute,
			"the backup can be restored for 7 days")
		_, err = e.api.DeleteBackup(ctx, &cloudhsmv2.DeleteBackupInput{BackupId: aws.String(bid)})
		requireAPIError(t, err, "CloudHsmInvalidRequestException", "PENDING_DELETION")

		restored, err := e.api.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: aws.String(bid)})
		require.NoError(t, err)
		require.Equal(t, types.BackupStateReady, restored.Backup.BackupState)
		require.Nil(t, restored.Backup.DeleteTimestamp)
		_, err = e.api.RestoreBackup(ctx, &cloudhsmv2.RestoreBackupInput{BackupId: aws.String(bid)})
		requireAPIError(t, err, "CloudHsmInvalidRequestException", "not PENDING_DELETION")
	})

	// A cluster with HSMs cannot be deleted; without them it can.
	_, err = e.api.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)})
	requireAPIError(t, err, "CloudHsmInvalidRequestException", "HSMs first")
	delHsm, err := e.api.DeleteHsm(ctx, &cloudhsmv2.DeleteHsmInput{ClusterId: aws.String(id), EniId: h.EniId})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(h.HsmId), aws.ToString(delHsm.HsmId))
	require.Empty(t, e.describe(ctx, id).Hsms)
	delCluster, err := e.api.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, types.ClusterStateDeleted, delCluster.Cluster.State)
	all, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	require.NoError(t, err)
	require.Empty(t, all.Clusters, "a deleted cluster is listed only on request")
	gone, err := e.api.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"states": {"DELETED"}}})
	require.NoError(t, err)
	require.Len(t, gone.Clusters, 1)
	_, err = e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(id), AvailabilityZone: aws.String("us-east-1a")})
	requireAPIError(t, err, "CloudHsmResourceNotFoundException")

	// Removing the HSM took a backup; restore the newest into a new cluster
	// in the same subnets (DescribeClusters' ids keep their AZs).
	newest, err := e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(1)})
	require.NoError(t, err)
	require.Len(t, newest.Backups, 1)
	require.NotNil(t, newest.NextToken, "two backups, one per page")
	require.NotEqual(t, bid, aws.ToString(newest.Backups[0].BackupId), "newest first")
	oldest, err := e.api.DescribeBackups(ctx, &cloudhsmv2.DescribeBackupsInput{MaxResults: aws.Int32(1), SortAscending: aws.Bool(true)})
	require.NoError(t, err)
	require.Equal(t, bid, aws.ToString(oldest.Backups[0].BackupId), "oldest first on request")
	fromBackup, err := e.api.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{subnets[1], subnets[0]},
		SourceBackupId: newest.Backups[0].BackupArn,
	})
	require.NoError(t, err)
	rid := aws.ToString(fromBackup.Cluster.ClusterId)
	require.Equal(t, aws.ToString(newest.Backups[0].BackupId), aws.ToString(fromBackup.Cluster.SourceBackupId))
	require.Equal(t, c.SubnetMapping, fromBackup.Cluster.SubnetMapping)
	require.Equal(t, aws.ToString(c.VpcId), aws.ToString(fromBackup.Cluster.VpcId), "known subnets keep their VPC")
	rh, err := e.api.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(rid), AvailabilityZone: aws.String("us-east-1b")})
	require.NoError(t, err)
	require.Equal(t, subnets[1], aws.ToString(rh.Hsm.SubnetId))
	rc := e.describe(ctx, rid)
	require.Equal(t, types.ClusterStateActive, rc.State, "the first HSM restores the backup")
	require.Equal(t, signed, aws.ToString(rc.Certificates.ClusterCertificate), "the restored cluster keeps its source's certificate")

	// An HSM that stops answering degrades the cluster.
	require.NoError(t, e.mgr.Kill(aws.ToString(rh.Hsm.HsmId)))
	rc = e.describe(ctx, rid)
	require.Equal(t, types.ClusterStateDegraded, rc.State)
	require.Equal(t, types.HsmStateDegraded, rc.Hsms[0].State)
	require.NotEmpty(t, aws.ToString(rc.StateMessage))
}
