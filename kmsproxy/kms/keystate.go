package kms

import (
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// KeyState is the state KMS reports for a key (botocore KeyState): the
// stored state, or Unavailable for a key of a custom key store that is not
// connected (unless it is PendingDeletion).
type KeyState string

// Key states (reference §3).
const (
	StateCreating               KeyState = "Creating"
	StateEnabled                KeyState = "Enabled"
	StateDisabled               KeyState = "Disabled"
	StatePendingDeletion        KeyState = "PendingDeletion"
	StatePendingImport          KeyState = "PendingImport"
	StatePendingReplicaDeletion KeyState = "PendingReplicaDeletion"
	StateUnavailable            KeyState = "Unavailable"
	StateUpdating               KeyState = "Updating"
)

// allStates are the KeyState enum's values.
var allStates = []KeyState{StateCreating, StateEnabled, StateDisabled, StatePendingDeletion,
	StatePendingImport, StatePendingReplicaDeletion, StateUnavailable, StateUpdating}

// derivedState is the state reported for a key whose stored state is
// stored and whose custom key store (if any) is in connection state cs:
// Unavailable when the store is not CONNECTED, except for PendingDeletion
// (reference §3 footnote 13). Reconnecting restores the stored state.
func derivedState(stored store.KeyState, customStore bool, cs store.ConnectionState) KeyState {
	if customStore && cs != store.Connected && stored != store.KeyPendingDeletion {
		return StateUnavailable
	}
	return KeyState(stored)
}

// verdict is one cell of the key-state table: whether an operation may run
// on a key in a state, and the footnote error when it may not.
type verdict int

const (
	// ok: the operation runs.
	ok verdict = iota
	// disabled is footnote [1]: DisabledException "<ARN> is disabled."
	disabled
	// pendingDeletion is footnote [3] (and [10] for UpdateAlias's target):
	// KMSInvalidStateException "<ARN> is pending deletion."
	pendingDeletion
	// notPendingDeletion is footnote [4]: KMSInvalidStateException
	// "<ARN> is not pending deletion."
	notPendingDeletion
	// pendingImport is footnote [5]: KMSInvalidStateException "<ARN> is
	// pending import."
	pendingImport
	// unavailable is footnote [11]: KMSInvalidStateException "<ARN> is
	// unavailable."
	unavailable
	// creating is footnote [14]: KMSInvalidStateException "<ARN> is creating."
	creating
	// updating is footnote [15]: KMSInvalidStateException "<ARN> is updating."
	updating
)

// err returns the verdict's exception for the key arn, or nil for ok.
func (v verdict) err(arn string) *awsjson.Error {
	switch v {
	case disabled:
		return newErr(excDisabled, "%s is disabled.", arn)
	case pendingDeletion:
		return newErr(excInvalidState, "%s is pending deletion.", arn)
	case notPendingDeletion:
		return newErr(excInvalidState, "%s is not pending deletion.", arn)
	case pendingImport:
		return newErr(excInvalidState, "%s is pending import.", arn)
	case unavailable:
		return newErr(excInvalidState, "%s is unavailable.", arn)
	case creating:
		return newErr(excInvalidState, "%s is creating.", arn)
	case updating:
		return newErr(excInvalidState, "%s is updating.", arn)
	}
	return nil
}

// Operation classes of the key-state table: the operations that share a
// row of reference §3's table.
const (
	// rowCrypto: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext),
	// GenerateDataKeyPair(WithoutPlaintext), Sign, Verify, GenerateMac,
	// VerifyMac, GetPublicKey, DeriveSharedSecret (as Sign, reference §3).
	// (The table marks PendingImport and
	// Unavailable "n/a" for the asymmetric and HMAC operations: a key in
	// a custom key store is never asymmetric or HMAC; an EXTERNAL
	// asymmetric or HMAC key waiting for its material gets footnote [5].)
	rowCrypto = "crypto"
	// rowAnyState: DescribeKey, GetKeyPolicy, PutKeyPolicy,
	// ListKeyPolicies, ListResourceTags, ListAliases, DeleteAlias,
	// ListGrants, RetireGrant, RevokeGrant; and, not in the 2023 table,
	// GetKeyRotationStatus and ListKeyRotations (their key-type rules,
	// UnsupportedOperationException, are checked before the state) and
	// GetKeyLastUsage.
	rowAnyState = "any-state"
	// rowGrant: CreateGrant (an Unavailable key accepts grants).
	rowGrant = "create-grant"
	// rowRotation: EnableKeyRotation, DisableKeyRotation and (not in the
	// 2023 table; its model errors are the same) RotateKeyOnDemand, for
	// the keys that rotate: footnote [1] when Disabled, [3] when pending
	// deletion. Footnotes [6] and [7] (EXTERNAL, custom key store) are
	// key-type rules checked before the state.
	rowRotation = "rotation"
	// rowImportParameters: GetParametersForImport (footnote [8] when
	// pending deletion, [15] when updating; [9] is a key-type rule).
	rowImportParameters = "import-parameters"
	// rowImport: ImportKeyMaterial (as GetParametersForImport, but
	// allowed while Updating).
	rowImport = "import"
	// rowDeleteImport: DeleteImportedKeyMaterial (any state of an
	// EXTERNAL key, but Creating and Updating).
	rowDeleteImport = "delete-import"
	// rowMetadata: CreateAlias, TagResource, UntagResource,
	// UpdateKeyDescription.
	rowMetadata = "metadata"
	// rowAliasTarget: the new target key of UpdateAlias (footnote [10];
	// the old target may be in any state).
	rowAliasTarget = "alias-target"
	// rowEnableDisable: EnableKey, DisableKey. On Unavailable they succeed
	// and take effect when the store reconnects (footnote [12]).
	rowEnableDisable = "enable-disable"
	// rowSchedule: ScheduleKeyDeletion.
	rowSchedule = "schedule-deletion"
	// rowCancel: CancelKeyDeletion.
	rowCancel = "cancel-deletion"
)

// keyStateTable is reference §3's table (state × operation → error) for
// the operations this endpoint serves. For crypto on PendingDeletion the
// documentation allows [2] or [3]; the service answers [3]
// (KMSInvalidStateException), as reference §10 says.
var keyStateTable = map[string]map[KeyState]verdict{
	rowCrypto: {
		StateEnabled: ok, StateDisabled: disabled, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: pendingImport,
		StateUnavailable: unavailable, StateCreating: creating, StateUpdating: ok,
	},
	rowAnyState: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: ok, StatePendingReplicaDeletion: ok,
		StatePendingImport: ok, StateUnavailable: ok, StateCreating: ok, StateUpdating: ok,
	},
	rowMetadata: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: ok,
		StateUnavailable: ok, StateCreating: ok, StateUpdating: ok,
	},
	rowAliasTarget: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: ok,
		StateUnavailable: ok, StateCreating: ok, StateUpdating: ok,
	},
	rowEnableDisable: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: pendingImport,
		StateUnavailable: ok, StateCreating: creating, StateUpdating: updating,
	},
	rowSchedule: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: ok,
		StateUnavailable: ok, StateCreating: ok, StateUpdating: updating,
	},
	rowGrant: {
		StateEnabled: ok, StateDisabled: disabled, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: pendingImport,
		StateUnavailable: ok, StateCreating: creating, StateUpdating: ok,
	},
	rowRotation: {
		StateEnabled: ok, StateDisabled: disabled, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: pendingImport,
		StateUnavailable: unavailable, StateCreating: creating, StateUpdating: ok,
	},
	rowImportParameters: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: ok,
		StateUnavailable: unavailable, StateCreating: creating, StateUpdating: updating,
	},
	rowImport: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: pendingDeletion,
		StatePendingReplicaDeletion: pendingDeletion, StatePendingImport: ok,
		StateUnavailable: unavailable, StateCreating: creating, StateUpdating: ok,
	},
	rowDeleteImport: {
		StateEnabled: ok, StateDisabled: ok, StatePendingDeletion: ok,
		StatePendingReplicaDeletion: ok, StatePendingImport: ok,
		StateUnavailable: unavailable, StateCreating: creating, StateUpdating: updating,
	},
	rowCancel: {
		StateEnabled: notPendingDeletion, StateDisabled: notPendingDeletion, StatePendingDeletion: ok,
		StatePendingReplicaDeletion: ok, StatePendingImport: notPendingDeletion,
		StateUnavailable: notPendingDeletion, StateCreating: notPendingDeletion, StateUpdating: notPendingDeletion,
	},
}

// opRows maps each operation that acts on a key to its row.
var opRows = map[string]string{
	"Encrypt": rowCrypto, "Decrypt": rowCrypto, "ReEncrypt": rowCrypto,
	"GenerateDataKey": rowCrypto, "GenerateDataKeyWithoutPlaintext": rowCrypto,
	"GenerateDataKeyPair": rowCrypto, "GenerateDataKeyPairWithoutPlaintext": rowCrypto,
	"Sign": rowCrypto, "Verify": rowCrypto, "GenerateMac": rowCrypto, "VerifyMac": rowCrypto, "GetPublicKey": rowCrypto,
	"DeriveSharedSecret": rowCrypto,
	"DescribeKey":        rowAnyState, "GetKeyPolicy": rowAnyState, "ListKeyPolicies": rowAnyState,
	"ListResourceTags": rowAnyState, "ListAliases": rowAnyState, "DeleteAlias": rowAnyState,
	"PutKeyPolicy": rowAnyState, "ListGrants": rowAnyState, "RetireGrant": rowAnyState, "RevokeGrant": rowAnyState,
	"GetKeyRotationStatus": rowAnyState, "ListKeyRotations": rowAnyState, "GetKeyLastUsage": rowAnyState,
	"CreateGrant":       rowGrant,
	"EnableKeyRotation": rowRotation, "DisableKeyRotation": rowRotation, "RotateKeyOnDemand": rowRotation,
	"GetParametersForImport":    rowImportParameters,
	"ImportKeyMaterial":         rowImport,
	"DeleteImportedKeyMaterial": rowDeleteImport,
	"CreateAlias":               rowMetadata, "TagResource": rowMetadata, "UntagResource": rowMetadata,
	"UpdateKeyDescription": rowMetadata,
	"UpdateAlias":          rowAliasTarget,
	"EnableKey":            rowEnableDisable, "DisableKey": rowEnableDisable,
	"ScheduleKeyDeletion": rowSchedule,
	"CancelKeyDeletion":   rowCancel,
}

// checkState returns the exception for operation op on a key arn in state
// st, or nil when the operation may run. An operation missing from the
// table is a programming error: it fails closed with an internal error.
func checkState(op string, st KeyState, arn string) *awsjson.Error {
	row, found := opRows[op]
	if !found {
		return internalErr()
	}
	v, found := keyStateTable[row][st]
	if !found {
		return internalErr()
	}
	return v.err(arn)
}
