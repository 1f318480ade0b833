package kms_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
)

// A connected store follows its cluster's HSMs: an HSM added after the
// connection serves the store's crypto once the others are gone, as AWS
// KMS uses the HSMs a cluster gains without a reconnect.
func TestConnectedStoreFollowsTheClustersHSMs(t *testing.T) {
	e := newEnv(t)
	const pw = "kmsuser-pass-1"
	cust := newCustomer(t, 3, pw)
	custID := e.addCluster(cust, []int{0, 1})
	id, err := e.createStore("follow", custID, string(cust.CustomerCA.CertPEM()), pw)
	require.NoError(t, err)
	require.NoError(t, e.connect(id))
	e.waitSettled(id, types.ConnectionStateTypeConnected, "")
	key := e.createCustomKey(id)
	cust.WaitConverged()

	// The cluster gains HSM 2 and loses HSM 0; HSM 1 stops too, so only
	// the HSM KMS did not know at connect time is left to serve.
	added := clusterRecord(cust, []int{2}).Hsms[0]
	e.editCluster(custID, func(c *cluster.Cluster) {
		added.ClusterID = c.ClusterID
		c.Hsms = append(c.Hsms[1:], added)
	})
	time.Sleep(3 * time.Second) // more than a refresh of the store's HSMs
	cust.Stop(0)
	cust.Stop(1)
	out, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("served by the added HSM")})
	require.NoError(t, err)
	dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: out.CiphertextBlob, KeyId: aws.String(*key.KeyId)})
	require.NoError(t, err)
	require.Equal(t, "served by the added HSM", string(dec.Plaintext))
}

// After a restart, a store recorded CONNECTED serves its keys at once:
// requests wait for the connection the endpoint resumes instead of failing
// with KMSInvalidStateException while kmsuser logs in again.
func TestRequestsWaitForTheResumedConnection(t *testing.T) {
	e := newEnv(t)
	const pw = "kmsuser-pass-1"
	cust := newCustomer(t, 2, pw)
	custID := e.addCluster(cust, nil)
	id, err := e.createStore("resume", custID, string(cust.CustomerCA.CertPEM()), pw)
	require.NoError(t, err)
	require.NoError(t, e.connect(id))
	e.waitSettled(id, types.ConnectionStateTypeConnected, "")
	key := e.createCustomKey(id)

	for range 3 {
		e.restart()
		_, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("right after a restart")})
		require.NoError(t, err)
		_, err = e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(16), CustomKeyStoreId: aws.String(id)})
		require.NoError(t, err)
	}
}
