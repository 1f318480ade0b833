package kms

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// TestKeyStateTable checks every cell of reference §3's table for the
// operations served here, written out again from the reference rather
// than derived from the code's table: "" means the operation runs,
// otherwise the exception and its message for the key's ARN.
func TestKeyStateTable(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	type cell struct{ typ, msg string }
	var (
		okCell     = cell{}
		dis        = cell{"DisabledException", arn + " is disabled."}
		pd         = cell{"KMSInvalidStateException", arn + " is pending deletion."}
		notPD      = cell{"KMSInvalidStateException", arn + " is not pending deletion."}
		pi         = cell{"KMSInvalidStateException", arn + " is pending import."}
		unav       = cell{"KMSInvalidStateException", arn + " is unavailable."}
		creatingC  = cell{"KMSInvalidStateException", arn + " is creating."}
		updatingC  = cell{"KMSInvalidStateException", arn + " is updating."}
		columns    = []KeyState{StateEnabled, StateDisabled, StatePendingDeletion, StatePendingReplicaDeletion, StatePendingImport, StateUnavailable, StateCreating, StateUpdating}
		cryptoRow  = []cell{okCell, dis, pd, pd, pi, unav, creatingC, okCell}
		anyRow     = []cell{okCell, okCell, okCell, okCell, okCell, okCell, okCell, okCell}
		metaRow    = []cell{okCell, okCell, pd, pd, okCell, okCell, okCell, okCell}
		enableRow  = []cell{okCell, okCell, pd, pd, pi, okCell, creatingC, updatingC}
		scheduleRw = []cell{okCell, okCell, pd, pd, okCell, okCell, okCell, updatingC}
		cancelRow  = []cell{notPD, notPD, okCell, okCell, notPD, notPD, notPD, notPD}
		grantRow   = []cell{okCell, dis, pd, pd, pi, okCell, creatingC, okCell}
		rotateRow  = []cell{okCell, dis, pd, pd, pi, unav, creatingC, okCell}
		paramsRow  = []cell{okCell, okCell, pd, pd, okCell, unav, creatingC, updatingC}
		importRow  = []cell{okCell, okCell, pd, pd, okCell, unav, creatingC, okCell}
		delImpRow  = []cell{okCell, okCell, okCell, okCell, okCell, unav, creatingC, updatingC}
	)
	rows := map[string][]cell{
		"Encrypt": cryptoRow, "Decrypt": cryptoRow, "ReEncrypt": cryptoRow,
		"GenerateDataKey": cryptoRow, "GenerateDataKeyWithoutPlaintext": cryptoRow,
		"GenerateDataKeyPair": cryptoRow, "GenerateDataKeyPairWithoutPlaintext": cryptoRow,
		"DeriveSharedSecret": cryptoRow,
		"Sign":               cryptoRow, "Verify": cryptoRow, "GenerateMac": cryptoRow, "VerifyMac": cryptoRow, "GetPublicKey": cryptoRow,
		"PutKeyPolicy": anyRow, "ListGrants": anyRow, "RetireGrant": anyRow, "RevokeGrant": anyRow,
		"GetKeyRotationStatus": anyRow, "ListKeyRotations": anyRow, "GetKeyLastUsage": anyRow,
		"CreateGrant":       grantRow,
		"EnableKeyRotation": rotateRow, "DisableKeyRotation": rotateRow, "RotateKeyOnDemand": rotateRow,
		"GetParametersForImport": paramsRow, "ImportKeyMaterial": importRow, "DeleteImportedKeyMaterial": delImpRow,
		"DescribeKey": anyRow, "GetKeyPolicy": anyRow, "ListKeyPolicies": anyRow, "ListResourceTags": anyRow,
		"ListAliases": anyRow, "DeleteAlias": anyRow,
		"CreateAlias": metaRow, "TagResource": metaRow, "UntagResource": metaRow, "UpdateKeyDescription": metaRow,
		"UpdateAlias": metaRow,
		"EnableKey":   enableRow, "DisableKey": enableRow,
		"ScheduleKeyDeletion": scheduleRw,
		"CancelKeyDeletion":   cancelRow,
	}
	require.Len(t, rows, len(opRows), "every operation of the code's table is checked")
	require.Len(t, columns, len(allStates))
	for op, row := range rows {
		for i, st := range columns {
			t.Run(op+"/"+string(st), func(t *testing.T) {
				err := checkState(op, st, arn)
				want := row[i]
				if want.typ == "" {
					require.Nil(t, err)
					return
				}
				require.NotNil(t, err)
				require.Equal(t, want.typ, err.Type)
				require.Equal(t, want.msg, err.Message)
				wantStatus := http.StatusConflict // KMSInvalidState and Disabled are 409.
				require.Equal(t, wantStatus, err.Status)
			})
		}
	}
	t.Run("unknown operation fails closed", func(t *testing.T) {
		err := checkState("ReplicateKey", StateEnabled, arn)
		require.NotNil(t, err)
		require.Equal(t, "KMSInternalException", err.Type)
		err = checkState("Encrypt", KeyState("Bogus"), arn)
		require.NotNil(t, err)
		require.Equal(t, "KMSInternalException", err.Type)
	})
}

func TestDerivedState(t *testing.T) {
	tests := []struct {
		stored store.KeyState
		custom bool
		cs     store.ConnectionState
		want   KeyState
	}{
		{store.KeyEnabled, false, "", StateEnabled},
		{store.KeyDisabled, false, "", StateDisabled},
		{store.KeyPendingDeletion, false, "", StatePendingDeletion},
		{store.KeyEnabled, true, store.Connected, StateEnabled},
		{store.KeyDisabled, true, store.Connected, StateDisabled},
		{store.KeyEnabled, true, store.Disconnected, StateUnavailable},
		{store.KeyDisabled, true, store.Failed, StateUnavailable},
		{store.KeyEnabled, true, store.Connecting, StateUnavailable},
		{store.KeyEnabled, true, store.Disconnecting, StateUnavailable},
		// Footnote 13: PendingDeletion survives a disconnection.
		{store.KeyPendingDeletion, true, store.Disconnected, StatePendingDeletion},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, derivedState(tt.stored, tt.custom, tt.cs), "%+v", tt)
	}
}
