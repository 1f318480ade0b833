package kms_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/middleware"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

func TestKeyLastUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)
	other := e.createKey(nil)
	last := func(keyID string) *kmssdk.GetKeyLastUsageOutput {
		t.Helper()
		out, err := e.kms.GetKeyLastUsage(ctx, &kmssdk.GetKeyLastUsageInput{KeyId: aws.String(keyID)})
		require.NoError(t, err)
		return out
	}
	u := last(*md.KeyId)
	require.Equal(t, *md.Arn, *u.KeyId)
	require.Nil(t, u.KeyLastUsage, "not used yet")
	require.WithinDuration(t, *md.CreationDate, *u.KeyCreationDate, time.Millisecond)
	require.WithinDuration(t, *md.CreationDate, *u.TrackingStartDate, time.Millisecond, "tracking starts at creation, after the Service's start")

	enc, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
	require.NoError(t, err)
	reqID, _ := middleware.GetRequestIDMetadata(enc.ResultMetadata)
	u = last(*md.Arn)
	require.Equal(t, "Encrypt", string(u.KeyLastUsage.Operation))
	require.Equal(t, reqID, *u.KeyLastUsage.KmsRequestId)
	require.NotEmpty(t, *u.KeyLastUsage.CloudTrailEventId)
	require.NotNil(t, u.KeyLastUsage.Timestamp)

	// ReEncrypt uses both keys; a failed call uses none.
	_, err = e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: other.KeyId})
	require.NoError(t, err)
	require.Equal(t, "ReEncrypt", string(last(*md.KeyId).KeyLastUsage.Operation))
	require.Equal(t, "ReEncrypt", string(last(*other.KeyId).KeyLastUsage.Operation))
	_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"wrong": "context"}})
	requireAPIError(t, err, "InvalidCiphertextException")
	require.Equal(t, "ReEncrypt", string(last(*md.KeyId).KeyLastUsage.Operation))
	_, err = e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: md.KeyId})
	require.NoError(t, err)
	require.Equal(t, "ReEncrypt", string(last(*md.KeyId).KeyLastUsage.Operation), "DescribeKey is not cryptographic")

	mac := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	_, err = e.kms.GenerateMac(ctx, &kmssdk.GenerateMacInput{KeyId: mac.KeyId, Message: []byte("m"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	require.NoError(t, err)
	require.Equal(t, "GenerateMac", string(last(*mac.KeyId).KeyLastUsage.Operation))

	// Any state; key ids and ARNs only.
	moveTo(t, e, *md.KeyId, types.KeyStatePendingDeletion)
	require.NotNil(t, last(*md.KeyId).KeyLastUsage)
	_, err = e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/usage"), TargetKeyId: other.KeyId})
	require.NoError(t, err)
	_, err = e.kms.GetKeyLastUsage(ctx, &kmssdk.GetKeyLastUsageInput{KeyId: aws.String("alias/usage")})
	requireAPIError(t, err, "NotFoundException")

	// Tracking restarts with the Service.
	e.restart()
	u = last(*other.KeyId)
	require.Nil(t, u.KeyLastUsage)
	require.True(t, u.TrackingStartDate.After(*other.CreationDate))
}
