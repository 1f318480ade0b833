package kms_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const year = 365 * 24 * time.Hour

func (e *env) rotationStatus(keyID string) *kmssdk.GetKeyRotationStatusOutput {
	e.t.Helper()
	out, err := e.kms.GetKeyRotationStatus(ctx, &kmssdk.GetKeyRotationStatusInput{KeyId: aws.String(keyID)})
	require.NoError(e.t, err)
	return out
}

func (e *env) rotations(keyID string, include types.IncludeKeyMaterial, limit int32) []types.RotationsListEntry {
	e.t.Helper()
	var out []types.RotationsListEntry
	p := kmssdk.NewListKeyRotationsPaginator(e.kms, &kmssdk.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: include, Limit: aws.Int32(limit)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(e.t, err)
		require.LessOrEqual(e.t, len(page.Rotations), int(limit))
		out = append(out, page.Rotations...)
	}
	return out
}

func (e *env) advance(d time.Duration) {
	e.t.Helper()
	_, err := e.clock.Advance(d)
	require.NoError(e.t, err)
	_, err = e.svc.Sweep(ctx)
	require.NoError(e.t, err)
}

// TestRotation is the scenario: encrypt, rotate on demand twice,
// enable automatic rotation, advance the clock a year: all four
// ciphertexts decrypt, each with its own material, and ListKeyRotations
// lists the three rotations.
func TestRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)
	st := e.rotationStatus(*md.KeyId)
	require.False(t, st.KeyRotationEnabled)
	require.Equal(t, *md.Arn, *st.KeyId)
	require.Nil(t, st.NextRotationDate)

	type sealed struct {
		blob     []byte
		material string
	}
	var blobs []sealed
	seal := func(pt string) {
		t.Helper()
		out, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte(pt)})
		require.NoError(t, err)
		cur := *e.describe(*md.KeyId).CurrentKeyMaterialId
		blobs = append(blobs, sealed{out.CiphertextBlob, cur})
	}
	seal("before any rotation")
	for i := range 2 {
		out, err := e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *out.KeyId)
		seal(fmt.Sprintf("after on-demand rotation %d", i+1))
	}
	_, err := e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})
	require.NoError(t, err)
	enabledAt := e.clock.Now()
	st = e.rotationStatus(*md.KeyId)
	require.True(t, st.KeyRotationEnabled)
	require.Equal(t, int32(365), *st.RotationPeriodInDays)
	require.WithinDuration(t, enabledAt.Add(year), *st.NextRotationDate, 5*time.Second)

	e.advance(year - time.Hour)
	require.Len(t, e.rotations(*md.KeyId, "", 100), 2, "not due yet")
	e.advance(time.Hour + time.Minute)
	seal("after the automatic rotation")

	for i, b := range blobs {
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b.blob})
		require.NoError(t, err, i)
		require.Equal(t, b.material, *dec.KeyMaterialId, i)
		require.Equal(t, byte(i+1), b.blob[20], "the blob names material version %d", i+1)
	}
	require.Equal(t, []string{"before any rotation", "after on-demand rotation 1", "after on-demand rotation 2", "after the automatic rotation"},
		func() []string {
			var pts []string
			for _, b := range blobs {
				dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: b.blob})
				require.NoError(t, err)
				pts = append(pts, string(dec.Plaintext))
			}
			return pts
		}())
	seen := map[string]bool{}
	for _, b := range blobs {
		seen[b.material] = true
	}
	require.Len(t, seen, 4, "four materials")

	rot := e.rotations(*md.KeyId, types.IncludeKeyMaterialRotationsOnly, 1)
	require.Len(t, rot, 3)
	for i, want := range []types.RotationType{types.RotationTypeOnDemand, types.RotationTypeOnDemand, types.RotationTypeAutomatic} {
		require.Equal(t, want, rot[i].RotationType)
		require.Equal(t, *md.Arn, *rot[i].KeyId)
		require.Equal(t, blobs[i+1].material, *rot[i].KeyMaterialId)
		require.NotNil(t, rot[i].RotationDate)
		require.Empty(t, rot[i].ImportState)
	}
	require.Equal(t, types.KeyMaterialStateNonCurrent, rot[1].KeyMaterialState)
	require.Equal(t, types.KeyMaterialStateCurrent, rot[2].KeyMaterialState)
	require.WithinDuration(t, enabledAt.Add(year+time.Minute), *rot[2].RotationDate, 5*time.Second)
	all := e.rotations(*md.KeyId, types.IncludeKeyMaterialAllKeyMaterial, 3)
	require.Len(t, all, 4)
	require.Equal(t, blobs[0].material, *all[0].KeyMaterialId)
	require.Nil(t, all[0].RotationDate)
	require.Empty(t, all[0].RotationType)

	// The next automatic rotation is a period after this one.
	st = e.rotationStatus(*md.KeyId)
	require.WithinDuration(t, *rot[2].RotationDate, st.NextRotationDate.Add(-year), time.Second)
	// The material is four AES keys in the fleet.
	hk := e.hsmKeys(*md.Arn)
	require.Len(t, hk, 4)
	for _, k := range hk {
		require.Equal(t, hsmv1.KeyType_KEY_TYPE_AES, k.GetType())
		require.False(t, k.GetExtractable())
	}
	// A restart keeps everything.
	e.restart()
	require.Len(t, e.rotations(*md.KeyId, "", 10), 3)
	dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blobs[0].blob})
	require.NoError(t, err)
	require.Equal(t, "before any rotation", string(dec.Plaintext))
	require.True(t, e.rotationStatus(*md.KeyId).KeyRotationEnabled)

	_, err = e.kms.ListKeyRotations(ctx, &kmssdk.ListKeyRotationsInput{KeyId: md.KeyId, Marker: aws.String("x")})
	requireAPIError(t, err, "InvalidMarkerException")
}

func TestRotationRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("periods", func(t *testing.T) {
		md := e.createKey(nil)
		for _, days := range []int32{89, 2561} {
			_, err := e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(days)})
			requireAPIError(t, err, "ValidationException", "rotationPeriodInDays")
		}
		_, err := e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(2560)})
		require.NoError(t, err)
		start := e.clock.Now()
		require.Equal(t, int32(2560), *e.rotationStatus(*md.KeyId).RotationPeriodInDays)
		// A shorter period counts from when rotation was turned on.
		e.advance(30 * 24 * time.Hour)
		_, err = e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(90)})
		require.NoError(t, err)
		st := e.rotationStatus(*md.KeyId)
		require.Equal(t, int32(90), *st.RotationPeriodInDays)
		require.WithinDuration(t, start.Add(90*24*time.Hour), *st.NextRotationDate, 5*time.Second)
		// Turned off, nothing rotates; the period is remembered but not shown.
		_, err = e.kms.DisableKeyRotation(ctx, &kmssdk.DisableKeyRotationInput{KeyId: md.KeyId})
		require.NoError(t, err)
		st = e.rotationStatus(*md.KeyId)
		require.False(t, st.KeyRotationEnabled)
		require.Nil(t, st.NextRotationDate)
		e.advance(200 * 24 * time.Hour)
		require.Empty(t, e.rotations(*md.KeyId, "", 10))
		// Turned on again, the first rotation is a full (default) period later.
		_, err = e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, int32(365), *e.rotationStatus(*md.KeyId).RotationPeriodInDays)

		// A disabled key does not rotate; enabled again, an overdue
		// rotation happens at the next sweep.
		_, err = e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		e.advance(year + time.Hour)
		require.Empty(t, e.rotations(*md.KeyId, "", 10))
		_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		e.advance(time.Minute)
		rot := e.rotations(*md.KeyId, "", 10)
		require.Len(t, rot, 1)
		require.Equal(t, types.RotationTypeAutomatic, rot[0].RotationType)
	})

	t.Run("key states", func(t *testing.T) {
		md := e.createKey(nil)
		_, err := e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})
		require.NoError(t, err)
		moveTo(t, e, *md.KeyId, types.KeyStateDisabled)
		for name, err := range map[string]error{
			"enable":    errOf(e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})),
			"disable":   errOf(e.kms.DisableKeyRotation(ctx, &kmssdk.DisableKeyRotationInput{KeyId: md.KeyId})),
			"on demand": errOf(e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})),
		} {
			require.Error(t, err, name)
			requireAPIError(t, err, "DisabledException", *md.Arn+" is disabled.")
		}
		require.True(t, e.rotationStatus(*md.KeyId).KeyRotationEnabled, "the status reads in any state")
		_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		moveTo(t, e, *md.KeyId, types.KeyStatePendingDeletion)
		for name, err := range map[string]error{
			"enable":    errOf(e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId})),
			"disable":   errOf(e.kms.DisableKeyRotation(ctx, &kmssdk.DisableKeyRotationInput{KeyId: md.KeyId})),
			"on demand": errOf(e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})),
		} {
			require.Error(t, err, name)
			requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending deletion.")
		}
		require.False(t, e.rotationStatus(*md.KeyId).KeyRotationEnabled, "false while pending deletion")
		_, err = e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.True(t, e.rotationStatus(*md.KeyId).KeyRotationEnabled, "back once the deletion is cancelled")
		_, err = e.kms.ListKeyRotations(ctx, &kmssdk.ListKeyRotationsInput{KeyId: md.KeyId})
		require.NoError(t, err)
	})

	t.Run("at most 25 on-demand rotations", func(t *testing.T) {
		md := e.createKey(nil)
		for range 25 {
			_, err := e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})
			require.NoError(t, err)
		}
		_, err := e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})
		requireAPIError(t, err, "LimitExceededException", "25")
		require.Len(t, e.rotations(*md.KeyId, "", 7), 25)
		require.Len(t, e.hsmKeys(*md.Arn), 26, "the refused rotation left no HSM key")
		// Automatic rotations do not count.
		_, err = e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(90)})
		require.NoError(t, err)
		e.advance(91 * 24 * time.Hour)
		require.Len(t, e.rotations(*md.KeyId, "", 100), 26)
	})

	t.Run("conflict with an automatic rotation", func(t *testing.T) {
		md := e.createKey(nil)
		_, err := e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(90)})
		require.NoError(t, err)
		_, err = e.clock.Advance(90*24*time.Hour - 10*time.Minute)
		require.NoError(t, err)
		_, err = e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: md.KeyId})
		requireAPIError(t, err, "ConflictException")
	})

	t.Run("other kinds of key", func(t *testing.T) {
		external := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal})
		for _, tt := range []struct {
			md  *types.KeyMetadata
			msg string
		}{
			{e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify}), "key spec is RSA_2048 which is not valid for this operation."},
			{e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify}), "key spec is ECC_NIST_P256 which is not valid for this operation."},
			{e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}), "key spec is HMAC_256 which is not valid for this operation."},
			{external, "origin is EXTERNAL which is not valid for this operation."},
		} {
			for name, err := range map[string]error{
				"enable":    errOf(e.kms.EnableKeyRotation(ctx, &kmssdk.EnableKeyRotationInput{KeyId: tt.md.KeyId})),
				"disable":   errOf(e.kms.DisableKeyRotation(ctx, &kmssdk.DisableKeyRotationInput{KeyId: tt.md.KeyId})),
				"status":    errOf(e.kms.GetKeyRotationStatus(ctx, &kmssdk.GetKeyRotationStatusInput{KeyId: tt.md.KeyId})),
				"on demand": errOf(e.kms.RotateKeyOnDemand(ctx, &kmssdk.RotateKeyOnDemandInput{KeyId: tt.md.KeyId})),
			} {
				require.Error(t, err, name)
				requireAPIError(t, err, "UnsupportedOperationException", *tt.md.Arn+" "+tt.msg)
			}
			_, err := e.kms.ListKeyRotations(ctx, &kmssdk.ListKeyRotationsInput{KeyId: tt.md.KeyId})
			if tt.md == external {
				require.NoError(t, err, "an imported symmetric key lists its materials")
				continue
			}
			requireAPIError(t, err, "UnsupportedOperationException", *tt.md.Arn+" "+tt.msg)
		}
	})
}

// errOf drops an operation's output.
func errOf[T any](_ T, err error) error { return err }
