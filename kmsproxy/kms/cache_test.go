package kms_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// TestKeyStateIsCurrent checks that every request reads the key's current
// state, whatever the store's record cache holds: each change of state or
// alias, acknowledged, is what the next request sees, and so is the state
// after a restart.
func TestKeyStateIsCurrent(t *testing.T) {
	e := newEnv(t)
	k := e.createKey(nil)
	other := e.createKey(nil)
	_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/current"), TargetKeyId: k.KeyId})
	require.NoError(t, err)

	// encryptErr encrypts three times (the first read fills the cache, the
	// others are served from it) and returns the last error.
	encryptErr := func(keyID string) (*kmssdk.EncryptOutput, error) {
		var out *kmssdk.EncryptOutput
		var err error
		for range 3 {
			out, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
		}
		return out, err
	}
	_, err = encryptErr(*k.KeyId)
	require.NoError(t, err)

	_, err = e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: k.KeyId})
	require.NoError(t, err)
	_, err = encryptErr(*k.KeyId)
	requireAPIError(t, err, "DisabledException")

	_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: k.KeyId})
	require.NoError(t, err)
	_, err = encryptErr(*k.KeyId)
	require.NoError(t, err)

	_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: k.KeyId, PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	_, err = encryptErr(*k.KeyId)
	requireAPIError(t, err, "KMSInvalidStateException", "pending deletion")
	_, err = encryptErr("alias/current")
	requireAPIError(t, err, "KMSInvalidStateException", "pending deletion")

	// Cancelling leaves the key Disabled (AWS's rule).
	_, err = e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: k.KeyId})
	require.NoError(t, err)
	_, err = encryptErr(*k.KeyId)
	requireAPIError(t, err, "DisabledException")

	// An alias moved is followed at once.
	_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String("alias/current"), TargetKeyId: other.KeyId})
	require.NoError(t, err)
	out, err := encryptErr("alias/current")
	require.NoError(t, err)
	require.Equal(t, *other.Arn, *out.KeyId)

	// After a restart the state is the stored one.
	e.restart()
	_, err = encryptErr(*k.KeyId)
	requireAPIError(t, err, "DisabledException")
	require.Equal(t, types.KeyStateDisabled, e.describe(*k.KeyId).KeyState)
	_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: k.KeyId})
	require.NoError(t, err)
	_, err = encryptErr(*k.KeyId)
	require.NoError(t, err)
}
