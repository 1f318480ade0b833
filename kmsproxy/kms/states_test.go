package kms_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// cellOp is one operation of reference §3's table as a client calls it:
// prep runs while the key is Enabled (a blob to decrypt, an alias to
// delete), run once the key is in the state under test.
type cellOp struct {
	name string
	prep func(t *testing.T, e *env, keyID, helper string) string
	run  func(e *env, keyID, helper, prepared string) error
}

// cell is an expected outcome: "" runs; otherwise the exception and the
// end of its message, after the key's ARN.
type cell struct{ code, suffix string }

var (
	cellOK       = cell{}
	cellDisabled = cell{"DisabledException", " is disabled."}
	cellPD       = cell{"KMSInvalidStateException", " is pending deletion."}
	cellNotPD    = cell{"KMSInvalidStateException", " is not pending deletion."}
	cellUnavail  = cell{"KMSInvalidStateException", " is unavailable."}
)

// expectedCells is reference §3's table for the states a client can put a
// key in: crypto fails unless Enabled; metadata changes fail only while
// PendingDeletion; Enable/Disable run on Unavailable keys (footnote 12).
var expectedCells = map[string]map[types.KeyState]cell{}

func init() {
	row := func(en, dis, pd, unav cell) map[types.KeyState]cell {
		return map[types.KeyState]cell{types.KeyStateEnabled: en, types.KeyStateDisabled: dis, types.KeyStatePendingDeletion: pd, types.KeyStateUnavailable: unav}
	}
	crypto := row(cellOK, cellDisabled, cellPD, cellUnavail)
	any := row(cellOK, cellOK, cellOK, cellOK)
	meta := row(cellOK, cellOK, cellPD, cellOK)
	for _, op := range []string{"Encrypt", "Decrypt", "ReEncrypt (source)", "ReEncrypt (destination)", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"} {
		expectedCells[op] = crypto
	}
	expectedCells["CreateGrant"] = row(cellOK, cellDisabled, cellPD, cellOK)
	for _, op := range []string{"DescribeKey", "GetKeyPolicy", "ListKeyPolicies", "ListResourceTags", "ListAliases", "DeleteAlias",
		"PutKeyPolicy", "ListGrants", "RetireGrant", "RevokeGrant"} {
		expectedCells[op] = any
	}
	for _, op := range []string{"CreateAlias", "TagResource", "UntagResource", "UpdateKeyDescription", "UpdateAlias (target)", "EnableKey", "DisableKey", "ScheduleKeyDeletion"} {
		expectedCells[op] = meta
	}
	expectedCells["CancelKeyDeletion"] = row(cellNotPD, cellNotPD, cellOK, cellNotPD)
}

func blobFor(t *testing.T, e *env, keyID string) string {
	return string(e.encrypt(keyID, []byte("cell"), nil))
}

// grantFor creates a grant on a key and returns its token.
func grantFor(t *testing.T, e *env, keyID string) string {
	t.Helper()
	out, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: aws.String(keyID), GranteePrincipal: aws.String(grantee),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	require.NoError(t, err)
	return *out.GrantToken
}

func aliasFor(t *testing.T, e *env, keyID, prefix string) string {
	t.Helper()
	name := "alias/" + prefix + "-" + keyID[:13]
	_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyID)})
	require.NoError(t, err)
	return name
}

var cellOps = []cellOp{
	{name: "Encrypt", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
		return err
	}},
	{name: "Decrypt", prep: func(t *testing.T, e *env, id, _ string) string { return blobFor(t, e, id) },
		run: func(e *env, _, _, blob string) error {
			_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: []byte(blob)})
			return err
		}},
	{name: "ReEncrypt (source)", prep: func(t *testing.T, e *env, id, _ string) string { return blobFor(t, e, id) },
		run: func(e *env, _, helper, blob string) error {
			_, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: []byte(blob), DestinationKeyId: aws.String(helper)})
			return err
		}},
	{name: "ReEncrypt (destination)", prep: func(t *testing.T, e *env, _, helper string) string { return blobFor(t, e, helper) },
		run: func(e *env, id, _, blob string) error {
			_, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: []byte(blob), DestinationKeyId: aws.String(id)})
			return err
		}},
	{name: "GenerateDataKey", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
		return err
	}},
	{name: "GenerateDataKeyWithoutPlaintext", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.GenerateDataKeyWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), NumberOfBytes: aws.Int32(16)})
		return err
	}},
	{name: "DescribeKey", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "GetKeyPolicy", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: aws.String(id), PolicyName: aws.String("default")})
		return err
	}},
	{name: "ListKeyPolicies", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.ListKeyPolicies(ctx, &kmssdk.ListKeyPoliciesInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "ListResourceTags", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "ListAliases", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.ListAliases(ctx, &kmssdk.ListAliasesInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "DeleteAlias", prep: func(t *testing.T, e *env, id, _ string) string { return aliasFor(t, e, id, "del") },
		run: func(e *env, _, _, alias string) error {
			_, err := e.kms.DeleteAlias(ctx, &kmssdk.DeleteAliasInput{AliasName: aws.String(alias)})
			return err
		}},
	{name: "CreateAlias", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/new-" + id[:13]), TargetKeyId: aws.String(id)})
		return err
	}},
	{name: "TagResource", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}})
		return err
	}},
	{name: "UntagResource", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.UntagResource(ctx, &kmssdk.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"k"}})
		return err
	}},
	{name: "UpdateKeyDescription", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.UpdateKeyDescription(ctx, &kmssdk.UpdateKeyDescriptionInput{KeyId: aws.String(id), Description: aws.String("d")})
		return err
	}},
	{name: "UpdateAlias (target)", prep: func(t *testing.T, e *env, id, helper string) string { return aliasFor(t, e, helper, "upd-"+id[:8]) },
		run: func(e *env, id, _, alias string) error {
			_, err := e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(id)})
			return err
		}},
	{name: "EnableKey", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "DisableKey", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "ScheduleKeyDeletion", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
		return err
	}},
	{name: "CreateGrant", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: aws.String(id), GranteePrincipal: aws.String(grantee),
			Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		return err
	}},
	{name: "PutKeyPolicy", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: aws.String(id), Policy: aws.String(defaultPolicy)})
		return err
	}},
	{name: "ListGrants", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: aws.String(id)})
		return err
	}},
	{name: "RetireGrant", prep: func(t *testing.T, e *env, id, _ string) string { return grantFor(t, e, id) },
		run: func(e *env, _, _, token string) error {
			_, err := e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: aws.String(token)})
			return err
		}},
	{name: "RevokeGrant", prep: func(t *testing.T, e *env, id, _ string) string { return grantFor(t, e, id) },
		run: func(e *env, id, _, token string) error {
			grants, err := e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: aws.String(id)})
			if err != nil {
				return err
			}
			_, err = e.kms.RevokeGrant(ctx, &kmssdk.RevokeGrantInput{KeyId: aws.String(id), GrantId: grants.Grants[0].GrantId})
			return err
		}},
	{name: "CancelKeyDeletion", run: func(e *env, id, _, _ string) error {
		_, err := e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: aws.String(id)})
		return err
	}},
}

// runStateCells checks every operation on a key in state: one fresh key
// per operation (newKey), prepared while Enabled, then all moved to the
// state at once (move), then each operation run and its outcome compared
// with expectedCells. helper keys (default store, Enabled) serve as the
// other key of ReEncrypt and UpdateAlias.
func runStateCells(t *testing.T, e *env, state types.KeyState, newKey func(*testing.T) string, move func(*testing.T, []string)) {
	t.Helper()
	require.Len(t, expectedCells, len(cellOps))
	helper := *e.createKey(nil).KeyId
	ids := make([]string, len(cellOps))
	prepared := make([]string, len(cellOps))
	for i, op := range cellOps {
		ids[i] = newKey(t)
		if op.prep != nil {
			prepared[i] = op.prep(t, e, ids[i], helper)
		}
	}
	move(t, ids)
	for i, op := range cellOps {
		t.Run(op.name, func(t *testing.T) {
			want, found := expectedCells[op.name][state]
			require.True(t, found, "no expectation for %s in %s", op.name, state)
			err := op.run(e, ids[i], helper, prepared[i])
			if want.code == "" {
				require.NoError(t, err)
				return
			}
			requireAPIError(t, err, want.code, "arn:aws:kms:us-east-1:111122223333:key/"+ids[i]+want.suffix)
		})
	}
}

// moveTo puts a default-store key in a state a client can reach.
func moveTo(t *testing.T, e *env, id string, st types.KeyState) {
	t.Helper()
	var err error
	switch st {
	case types.KeyStateEnabled:
	case types.KeyStateDisabled:
		_, err = e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: aws.String(id)})
	case types.KeyStatePendingDeletion:
		_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
	default:
		t.Fatalf("cannot move a key to %s", st)
	}
	require.NoError(t, err)
	require.Equal(t, st, e.describe(id).KeyState)
}
