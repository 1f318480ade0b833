package kms_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/nodetest"
)

// keyCount is the number of keys in a cluster, from an HSM's status (the
// keys themselves are kmsuser's, whose password only KMS knows).
func keyCount(c *nodetest.Cluster, i int) uint32 { return c.Nodes[i].Status().GetKeyCount() }

// TestCustomKeyStoreLifecycle runs a CloudHSM key store through its life:
// keys and crypto, every key-state cell while disconnected, the loss of
// HSMs, deletion, a restart of the endpoint and a reset.
func TestCustomKeyStoreLifecycle(t *testing.T) {
	e := newEnv(t)
	const pw = "kmsuser-pass-1"
	cust := newCustomer(t, 2, pw)
	custID := e.addCluster(cust, nil)
	storeID, err := e.createStore("lifecycle", custID, string(cust.CustomerCA.CertPEM()), pw)
	require.NoError(t, err)

	// Before CONNECTED, no key can be created there.
	_, err = e.kms.CreateKey(ctx, &kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String(storeID)})
	requireAPIError(t, err, "CustomKeyStoreInvalidStateException", "DISCONNECTED")
	_, err = e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String(storeID)})
	requireAPIError(t, err, "CustomKeyStoreInvalidStateException")
	require.NoError(t, e.connect(storeID))
	e.waitSettled(storeID, types.ConnectionStateTypeConnected, "")

	var md *types.KeyMetadata
	var blob []byte
	t.Run("only symmetric keys", func(t *testing.T) {
		for _, in := range []*kmssdk.CreateKeyInput{
			{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify},
			{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify},
			{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac},
		} {
			in.Origin, in.CustomKeyStoreId = types.OriginTypeAwsCloudhsm, aws.String(storeID)
			_, err := e.kms.CreateKey(ctx, in)
			requireAPIError(t, err, "UnsupportedOperationException", string(in.KeySpec), "custom key store")
		}
	})

	t.Run("keys and crypto", func(t *testing.T) {
		before := keyCount(cust, 0)
		md = e.createCustomKey(storeID)
		require.Equal(t, types.OriginTypeAwsCloudhsm, md.Origin)
		require.Equal(t, storeID, *md.CustomKeyStoreId)
		require.Equal(t, custID, *md.CloudHsmClusterId)
		require.Equal(t, types.KeyStateEnabled, md.KeyState)
		require.Regexp(t, keyARNRE, *md.Arn)
		cust.WaitConverged()
		require.Equal(t, before+1, keyCount(cust, 0), "the key material is in the customer's cluster")

		ec := map[string]string{"tenant": "a"}
		blob = e.encrypt(*md.KeyId, []byte("custom"), ec)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec})
		require.NoError(t, err)
		require.Equal(t, "custom", string(dec.Plaintext))
		require.Equal(t, *md.Arn, *dec.KeyId)
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob})
		requireAPIError(t, err, "InvalidCiphertextException")

		dk, err := e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		require.Len(t, dk.Plaintext, 32)
		// Between the stores, both ways.
		def := e.createKey(nil)
		re, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob, DestinationKeyId: def.KeyId})
		require.NoError(t, err)
		back, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: re.CiphertextBlob, DestinationKeyId: md.Arn})
		require.NoError(t, err)
		dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: back.CiphertextBlob, KeyId: md.Arn})
		require.NoError(t, err)
		require.Equal(t, dk.Plaintext, dec.Plaintext)

		r, err := e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(64), CustomKeyStoreId: aws.String(storeID)})
		require.NoError(t, err)
		require.Len(t, r.Plaintext, 64)
	})

	newCustomKey := func(*testing.T) string { return *e.createCustomKey(storeID).KeyId }
	t.Run("no rotation, key pairs or import", func(t *testing.T) {
		msg := *md.Arn + " origin is AWS_CLOUDHSM which is not valid for this operation."
		for name, err := range map[string]error{
			"enable":    errOf(e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})),
			"disable":   errOf(e.kms.DisableKeyRotation(ctx, &kmssdk.DisableKeyRotationInput{KeyId: md.KeyId})),
			"status":    errOf(e.kms.GetKeyRotationStatus(ctx, &kmssdk.GetKeyRotationStatusInput{KeyId: md.KeyId})),
			"on demand": errOf(e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})),
			"list":      errOf(e.kms.ListKeyRotations(ctx, &kmssdk.ListKeyRotationsInput{KeyId: md.KeyId})),
			"import parameters": errOf(e.kms.GetParametersForImport(ctx, &kmssdk.GetParametersForImportInput{KeyId: md.KeyId,
				WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})),
			"delete imported": errOf(e.kms.DeleteImportedKeyMaterial(ctx, &kmssdk.DeleteImportedKeyMaterialInput{KeyId: md.KeyId})),
		} {
			require.Error(t, err, name)
			requireAPIError(t, err, "UnsupportedOperationException", msg)
		}
		_, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: md.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		requireAPIError(t, err, "UnsupportedOperationException", "custom key store")
		_, err = e.kms.CreateKey(ctx, &kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, CustomKeyStoreId: aws.String(storeID)})
		requireAPIError(t, err, "ValidationException", "AWS_CLOUDHSM")
		_, err = e.kms.GenerateDataKeyPairWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyPairWithoutPlaintextInput{KeyId: md.KeyId, KeyPairSpec: types.DataKeyPairSpecRsa2048})
		requireAPIError(t, err, "UnsupportedOperationException", "custom key store")
	})

	t.Run("key states in a connected store", func(t *testing.T) {
		for _, st := range []types.KeyState{types.KeyStateEnabled, types.KeyStateDisabled, types.KeyStatePendingDeletion} {
			t.Run(string(st), func(t *testing.T) {
				runStateCells(t, e, st, newCustomKey, func(t *testing.T, ids []string) {
					for _, id := range ids {
						moveTo(t, e, id, st)
					}
				})
			})
		}
	})

	t.Run("key states in a disconnected store", func(t *testing.T) {
		var ids []string
		runStateCells(t, e, types.KeyStateUnavailable, newCustomKey, func(t *testing.T, keys []string) {
			ids = keys
			require.NoError(t, e.disconnect(storeID))
			require.Equal(t, types.KeyStateUnavailable, e.describe(keys[0]).KeyState)
		})
		byOp := map[string]string{}
		for i, op := range cellOps {
			byOp[op.name] = ids[i]
		}
		// Footnote 13: a key scheduled for deletion while unavailable
		// reports PendingDeletion, and its deletion can be cancelled.
		pd := byOp["ScheduleKeyDeletion"]
		require.Equal(t, types.KeyStatePendingDeletion, e.describe(pd).KeyState)
		_, err := e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: aws.String(pd)})
		require.NoError(t, err)
		require.Equal(t, types.KeyStateUnavailable, e.describe(pd).KeyState)
		_, err = e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String(storeID)})
		requireAPIError(t, err, "CustomKeyStoreInvalidStateException")

		// Reconnecting restores the stored states; DisableKey while
		// unavailable took effect (footnote 12).
		require.NoError(t, e.connect(storeID))
		e.waitSettled(storeID, types.ConnectionStateTypeConnected, "")
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
		require.Equal(t, types.KeyStateDisabled, e.describe(byOp["DisableKey"]).KeyState)
		require.Equal(t, types.KeyStateEnabled, e.describe(byOp["EnableKey"]).KeyState)
		require.Equal(t, types.KeyStateDisabled, e.describe(pd).KeyState)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "a"}})
		require.NoError(t, err)
		require.Equal(t, "custom", string(dec.Plaintext))
	})

	t.Run("HSM loss", func(t *testing.T) {
		cust.WaitConverged()
		// One of two HSMs down: crypto goes on, on the other; a new key
		// needs two HSMs in different AZs.
		cust.Stop(1)
		for range 4 {
			b := e.encrypt(*md.KeyId, []byte("one HSM left"), nil)
			dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b})
			require.NoError(t, err)
			require.Equal(t, "one HSM left", string(dec.Plaintext))
		}
		// CreateKey judges HSM health from the endpoint's health view,
		// which sees a stopped HSM within about a second.
		requireCreateKeyRefused(t, e, storeID, 2*time.Second)
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeID).ConnectionState)

		// Both down: the store stays CONNECTED, crypto fails as AWS says.
		cust.Stop(0)
		_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
		requireAPIError(t, err, "KMSInvalidStateException", "KMS cannot communicate with your CloudHSM cluster")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "a"}})
		requireAPIError(t, err, "KMSInvalidStateException", "KMS cannot communicate with your CloudHSM cluster")
		_, err = e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String(storeID)})
		requireAPIError(t, err, "KMSInvalidStateException")
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeID).ConnectionState)
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)

		// Back: the client logs in again (with the rotated password) and
		// crypto resumes; so do key creations.
		cust.Restart(0)
		cust.Restart(1)
		cust.WaitConverged()
		require.Eventually(t, func() bool {
			_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "a"}})
			return err == nil
		}, 30*time.Second, 50*time.Millisecond)
		requireCreateKeyWorks(t, e, storeID, 5*time.Second)
	})

	t.Run("deletion", func(t *testing.T) {
		k := e.createCustomKey(storeID)
		cust.WaitConverged()
		before := keyCount(cust, 0)
		_, err := e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: k.KeyId, PendingWindowInDays: aws.Int32(7)})
		require.NoError(t, err)
		_, err = e.clock.Advance(7*24*time.Hour + time.Second)
		require.NoError(t, err)
		_, err = e.svc.Sweep(ctx)
		require.NoError(t, err)
		_, err = e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: k.KeyId})
		requireAPIError(t, err, "NotFoundException")
		cust.WaitConverged()
		require.Less(t, keyCount(cust, 0), before, "the HSM key was deleted too")
	})

	t.Run("restart", func(t *testing.T) {
		def := e.createKey(nil)
		_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/custom"), TargetKeyId: md.KeyId})
		require.NoError(t, err)
		defBlob := e.encrypt(*def.KeyId, []byte("default"), nil)
		keysBefore := e.listKeyIDs()

		e.restart()
		require.Equal(t, keysBefore, e.listKeyIDs())
		require.Equal(t, *md.Arn, *e.describe("alias/custom").Arn)
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeID).ConnectionState)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: defBlob})
		require.NoError(t, err)
		require.Equal(t, "default", string(dec.Plaintext))
		// The store reconnects in the background with its sealed password.
		require.Eventually(t, func() bool {
			_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "a"}})
			return err == nil
		}, 30*time.Second, 50*time.Millisecond)
		b := e.encrypt("alias/custom", []byte("after restart"), nil)
		dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b})
		require.NoError(t, err)
		require.Equal(t, "after restart", string(dec.Plaintext))

		// Restarted while the cluster is down: the store stays CONNECTED,
		// its keys fail as AWS's do, and it reconnects when the HSMs are back.
		cust.WaitConverged()
		cust.Stop(0)
		cust.Stop(1)
		e.restart()
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeID).ConnectionState)
		require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b})
		requireAPIError(t, err, "KMSInvalidStateException", "KMS cannot communicate with your CloudHSM cluster")
		cust.Restart(0)
		cust.Restart(1)
		require.Eventually(t, func() bool {
			_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b})
			return err == nil
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeID).ConnectionState)
	})

	t.Run("reset", func(t *testing.T) {
		require.NoError(t, e.svc.Reset(ctx))
		require.Empty(t, e.listKeyIDs())
		stores, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{})
		require.NoError(t, err)
		require.Empty(t, stores.CustomKeyStores)
		aliases, err := e.kms.ListAliases(ctx, &kmssdk.ListAliasesInput{})
		require.NoError(t, err)
		require.Empty(t, aliases.Aliases)
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "a"}})
		requireAPIError(t, err, "AccessDeniedException")
		// The cluster may back a new store; the endpoint works as new.
		_, err = e.createStore("after-reset", custID, string(cust.CustomerCA.CertPEM()), pw)
		require.NoError(t, err)
		e.encrypt(*e.createKey(nil).KeyId, []byte("x"), nil)
	})
}
