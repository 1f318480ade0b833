package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	hsmtypes "github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
)

const (
	adminPassword   = "admin-password-1"
	kmsuserPassword = "kmsuser-password-1"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestSeedWorkflowSDK is the workflow hsmsim exists for, with the AWS SDK
// for Go: a CloudHSM cluster with HSMs in two AZs, initialized with the
// customer's CA and activated, kmsuser, a custom key store bound to it and
// connected, and KMS keys in it used, disconnected, reconnected and deleted.
func TestSeedWorkflowSDK(t *testing.T) {
	ctx := ctxT(t)
	d, _ := up(t, "--bare")
	hsm, k := d.cloudhsm(), d.kms()

	// CloudHSM: a cluster, its first HSM and its CSR.
	created, err := hsm.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{
		HsmType: aws.String("hsm2m.medium"), SubnetIds: []string{"subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"},
	})
	require.NoError(t, err)
	clusterID := aws.ToString(created.Cluster.ClusterId)
	require.Regexp(t, `^cluster-[2-7a-z]{11,16}$`, clusterID)
	first, err := hsm.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(clusterID), AvailabilityZone: aws.String("us-east-1a")})
	require.NoError(t, err)
	require.Equal(t, hsmtypes.HsmStateActive, first.Hsm.State)
	desc, err := hsm.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: map[string][]string{"clusterIds": {clusterID}}})
	require.NoError(t, err)
	require.Len(t, desc.Clusters, 1)
	require.Equal(t, hsmtypes.ClusterStateUninitialized, desc.Clusters[0].State)
	csr := aws.ToString(desc.Clusters[0].Certificates.ClusterCsr)
	require.Contains(t, csr, "CERTIFICATE REQUEST")

	// The customer signs the CSR with their own CA and initializes.
	ca, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	signed, err := ca.SignCSR(csr)
	require.NoError(t, err)
	_, err = hsm.InitializeCluster(ctx, &cloudhsmv2.InitializeClusterInput{ClusterId: aws.String(clusterID),
		SignedCert: aws.String(signed), TrustAnchor: aws.String(ca.CertPEM())})
	require.NoError(t, err)

	// HSM side: activate, a second HSM in another AZ, kmsuser.
	d.hsmctl("cluster", "activate", "--cluster-id", clusterID, "--password", adminPassword)
	_, err = hsm.CreateHsm(ctx, &cloudhsmv2.CreateHsmInput{ClusterId: aws.String(clusterID), AvailabilityZone: aws.String("us-east-1b")})
	require.NoError(t, err)
	d.hsmctl("user", "create", "--cluster-id", clusterID, "--username", "admin", "--role", "admin", "--password", adminPassword,
		"--new-username", "kmsuser", "--new-role", "crypto-user", "--new-password", kmsuserPassword)

	// KMS: the custom key store.
	store, err := k.CreateCustomKeyStore(ctx, &kms.CreateCustomKeyStoreInput{CustomKeyStoreName: aws.String("seed"),
		CloudHsmClusterId: aws.String(clusterID), TrustAnchorCertificate: aws.String(ca.CertPEM()), KeyStorePassword: aws.String(kmsuserPassword)})
	require.NoError(t, err)
	storeID := store.CustomKeyStoreId
	require.Regexp(t, `^cks-[0-9a-f]{17}$`, aws.ToString(storeID))
	_, err = k.ConnectCustomKeyStore(ctx, &kms.ConnectCustomKeyStoreInput{CustomKeyStoreId: storeID})
	require.NoError(t, err)
	waitState(t, k, storeID, kmstypes.ConnectionStateTypeConnected)

	// Keys in it, used.
	key, err := k.CreateKey(ctx, &kms.CreateKeyInput{Origin: kmstypes.OriginTypeAwsCloudhsm, CustomKeyStoreId: storeID, Description: aws.String("seed key")})
	require.NoError(t, err)
	require.Equal(t, kmstypes.KeyStateEnabled, key.KeyMetadata.KeyState)
	require.Equal(t, clusterID, aws.ToString(key.KeyMetadata.CloudHsmClusterId))
	keyID := key.KeyMetadata.KeyId
	encCtx := map[string]string{"purpose": "seed"}
	enc, err := k.Encrypt(ctx, &kms.EncryptInput{KeyId: keyID, Plaintext: []byte("hello, HSM"), EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(key.KeyMetadata.Arn), aws.ToString(enc.KeyId), "responses echo the key ARN")
	dec, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, []byte("hello, HSM"), dec.Plaintext)
	_, err = k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"purpose": "Seed"}})
	require.Equal(t, "InvalidCiphertextException", apiCode(err), "the encryption context is exact")

	dk, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: keyID, KeySpec: kmstypes.DataKeySpecAes256})
	require.NoError(t, err)
	require.Len(t, dk.Plaintext, 32)
	dkDec, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	require.NoError(t, err)
	require.Equal(t, dk.Plaintext, dkDec.Plaintext)

	defaultKey, err := k.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	re, err := k.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: encCtx,
		DestinationKeyId: defaultKey.KeyMetadata.KeyId})
	require.NoError(t, err)
	reDec, err := k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob})
	require.NoError(t, err)
	require.Equal(t, []byte("hello, HSM"), reDec.Plaintext)

	// Disconnect: the store's keys are Unavailable; reconnect restores them.
	_, err = k.DisconnectCustomKeyStore(ctx, &kms.DisconnectCustomKeyStoreInput{CustomKeyStoreId: storeID})
	require.NoError(t, err)
	waitState(t, k, storeID, kmstypes.ConnectionStateTypeDisconnected)
	described, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: keyID})
	require.NoError(t, err)
	require.Equal(t, kmstypes.KeyStateUnavailable, described.KeyMetadata.KeyState)
	_, err = k.Encrypt(ctx, &kms.EncryptInput{KeyId: keyID, Plaintext: []byte("x")})
	require.Equal(t, "KMSInvalidStateException", apiCode(err))
	// KMS rotated kmsuser's password when it connected: the customer must
	// reset it and tell KMS before reconnecting (reference §4.3).
	d.hsmctl("user", "change-password", "--cluster-id", clusterID, "--username", "admin", "--role", "admin", "--password", adminPassword,
		"--target-username", "kmsuser", "--new-password", "kmsuser-password-2")
	_, err = k.UpdateCustomKeyStore(ctx, &kms.UpdateCustomKeyStoreInput{CustomKeyStoreId: storeID, KeyStorePassword: aws.String("kmsuser-password-2")})
	require.NoError(t, err)
	_, err = k.ConnectCustomKeyStore(ctx, &kms.ConnectCustomKeyStoreInput{CustomKeyStoreId: storeID})
	require.NoError(t, err)
	waitState(t, k, storeID, kmstypes.ConnectionStateTypeConnected)
	described, err = k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: keyID})
	require.NoError(t, err)
	require.Equal(t, kmstypes.KeyStateEnabled, described.KeyMetadata.KeyState)
	dec, err = k.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	require.NoError(t, err)
	require.Equal(t, []byte("hello, HSM"), dec.Plaintext)

	// Deletion: schedule, advance the clock past the window, the key is gone.
	sched, err := k.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: keyID, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	require.Equal(t, kmstypes.KeyStatePendingDeletion, sched.KeyState)
	d.hsmctl("clock", "advance", "8d")
	require.Eventually(t, func() bool {
		_, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: keyID})
		return apiCode(err) == "NotFoundException"
	}, 30*time.Second, 200*time.Millisecond, "the key is deleted once its window has passed")
}

func waitState(t *testing.T, k *kms.Client, id *string, want kmstypes.ConnectionStateType) {
	t.Helper()
	require.Eventually(t, func() bool {
		out, err := k.DescribeCustomKeyStores(ctxT(t), &kms.DescribeCustomKeyStoresInput{CustomKeyStoreId: id})
		require.NoError(t, err)
		s := out.CustomKeyStores[0]
		require.NotEqual(t, kmstypes.ConnectionStateTypeFailed, s.ConnectionState, "FAILED: %s", s.ConnectionErrorCode)
		return s.ConnectionState == want
	}, 60*time.Second, 100*time.Millisecond, "store %s never reached %s", aws.ToString(id), want)
}
