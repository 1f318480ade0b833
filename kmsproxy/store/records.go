package store

import "time"

// KeyState is a KMS key's state as the user set it. The state KMS reports
// is derived from it (a key of a custom key store that is not connected is
// Unavailable); package kms derives it.
type KeyState string

// Stored key states (reference §3). Unavailable, Creating, Updating and
// PendingReplicaDeletion are never stored.
const (
	KeyEnabled         KeyState = "Enabled"
	KeyDisabled        KeyState = "Disabled"
	KeyPendingDeletion KeyState = "PendingDeletion"
	KeyPendingImport   KeyState = "PendingImport"
)

// Key origins (botocore OriginType).
const (
	OriginAWSKMS      = "AWS_KMS"
	OriginAWSCloudHSM = "AWS_CLOUDHSM"
	OriginExternal    = "EXTERNAL"
)

// Import states of a key material (botocore ImportState).
const (
	Imported      = "IMPORTED"
	PendingImport = "PENDING_IMPORT"
)

// Key is one KMS key's metadata. It holds no key material: the material
// lives in an HSM, named by the backing keys' handles.
type Key struct {
	// ID is the key id, a UUID.
	ID string `json:"id"`
	// ARN is arn:aws:kms:<region>:<account>:key/<id>.
	ARN         string   `json:"arn"`
	Description string   `json:"description"`
	State       KeyState `json:"state"`
	// KeySpec and KeyUsage are botocore's (SYMMETRIC_DEFAULT and
	// ENCRYPT_DECRYPT, RSA_2048 and SIGN_VERIFY, HMAC_256 and
	// GENERATE_VERIFY_MAC, ...).
	KeySpec  string `json:"key_spec"`
	KeyUsage string `json:"key_usage"`
	// Origin is AWS_KMS (the default key store, backed by the KMS fleet),
	// AWS_CLOUDHSM (a custom key store) or EXTERNAL (imported material,
	// in the fleet).
	Origin string `json:"origin"`
	// CustomKeyStoreID and ClusterID are set for AWS_CLOUDHSM keys.
	CustomKeyStoreID string    `json:"custom_key_store_id,omitempty"`
	ClusterID        string    `json:"cluster_id,omitempty"`
	CreationDate     time.Time `json:"creation_date"`
	// DeletionDate and PendingWindowInDays are set while PendingDeletion.
	DeletionDate        time.Time `json:"deletion_date,omitzero"`
	PendingWindowInDays int       `json:"pending_window_in_days,omitempty"`
	// BackingKeys are the HSM keys that hold the key's material, one per
	// material version, oldest first; the last is current. An EXTERNAL
	// key has none until its first import.
	BackingKeys []BackingKey `json:"backing_keys"`
	// Policy is the key policy document (JSON text).
	Policy string `json:"policy"`
	// Tags are sorted by key.
	Tags []Tag `json:"tags,omitempty"`
	// RotationEnabled says automatic rotation is on (symmetric AWS_KMS
	// keys); RotationPeriodInDays is kept when it is turned off, and
	// NextRotationDate is set while it is on.
	RotationEnabled      bool      `json:"rotation_enabled,omitempty"`
	RotationPeriodInDays int       `json:"rotation_period_in_days,omitempty"`
	NextRotationDate     time.Time `json:"next_rotation_date,omitzero"`
	// Import is the latest GetParametersForImport of an EXTERNAL key.
	Import *ImportParameters `json:"import,omitempty"`
}

// OnDemandRotations counts the key's on-demand rotations.
func (k *Key) OnDemandRotations() int {
	n := 0
	for _, b := range k.BackingKeys {
		if b.RotationType == RotationOnDemand {
			n++
		}
	}
	return n
}

// DueDate is the earliest date at which the passing of time alone can
// change the key, and false when there is none: its deletion date while
// PendingDeletion, its next automatic rotation while rotation is on, the
// expiry of its current imported material and of its import parameters.
// The sweeper reads only the keys whose DueDate has come (Tx.KeysDueBy),
// so DueDate must be no later than any date at which the sweeper would
// act on the key; an earlier one only costs the sweeper a read.
func (k *Key) DueDate() (time.Time, bool) {
	var due time.Time
	found := false
	consider := func(t time.Time) {
		if !found || t.Before(due) {
			due, found = t, true
		}
	}
	if k.State == KeyPendingDeletion {
		consider(k.DeletionDate)
	}
	if k.RotationEnabled {
		consider(k.NextRotationDate)
	}
	if cur, ok := k.Current(); ok && !cur.ValidTo.IsZero() {
		consider(cur.ValidTo)
	}
	if k.Import != nil && k.Import.PrivateHandle != 0 {
		consider(k.Import.ValidTo)
	}
	return due, found
}

// Rotation types (botocore RotationType).
const (
	RotationAutomatic = "AUTOMATIC"
	RotationOnDemand  = "ON_DEMAND"
)

// ImportParameters are the wrapping key pair and import token of an
// EXTERNAL key: the pair lives in the fleet (its private half never
// leaves it) and the token names it.
type ImportParameters struct {
	// TokenID is the random part of the import token, which also names
	// the key; a token whose id differs is not this key's latest.
	TokenID           []byte `json:"token_id"`
	WrappingAlgorithm string `json:"wrapping_algorithm"`
	WrappingKeySpec   string `json:"wrapping_key_spec"`
	// PrivateHandle and PublicHandle are the wrapping key pair's HSM
	// keys; 0 once deleted (after the token expired).
	PrivateHandle uint64    `json:"private_handle,omitempty"`
	PublicHandle  uint64    `json:"public_handle,omitempty"`
	ValidTo       time.Time `json:"valid_to"`
}

// BackingKey is one version of a key's material: an HSM key.
type BackingKey struct {
	// Version is the material version that ciphertext blobs name.
	Version uint32 `json:"version"`
	// Handle is the HSM key's handle in its cluster.
	Handle uint64 `json:"handle"`
	// KeyMaterialID is 64 lower-case hex digits (KMS's KeyMaterialId); it
	// is also the HSM key's id attribute.
	KeyMaterialID string `json:"key_material_id"`
	// PublicHandle is the public half of an asymmetric key pair (0 for
	// secret keys and imported private keys, whose private key object
	// carries the public key).
	PublicHandle uint64 `json:"public_handle,omitempty"`
	// RotationDate and RotationType are set for the material a rotation
	// created (not for the key's first).
	RotationDate time.Time `json:"rotation_date,omitzero"`
	RotationType string    `json:"rotation_type,omitempty"`
	// ImportState, ExpirationModel and ValidTo describe imported material
	// (EXTERNAL keys). While PENDING_IMPORT (deleted or expired) Handle is
	// 0 and KCV and Check remain, so that a reimport must bring the same
	// material back.
	ImportState     string    `json:"import_state,omitempty"`
	ExpirationModel string    `json:"expiration_model,omitempty"`
	ValidTo         time.Time `json:"valid_to,omitzero"`
	Description     string    `json:"description,omitempty"`
	// KCV is the HSM's key check value of imported material, and Check an
	// HSM computation under it (AES-GCM of a fixed block, or an HMAC of a
	// fixed message, or the public key) that only the same material
	// reproduces. Neither reveals the material.
	KCV   []byte `json:"kcv,omitempty"`
	Check []byte `json:"check,omitempty"`
}

// Current returns the key's current backing key (the last), and false
// when it has none.
func (k *Key) Current() (BackingKey, bool) {
	if len(k.BackingKeys) == 0 {
		return BackingKey{}, false
	}
	return k.BackingKeys[len(k.BackingKeys)-1], true
}

// Backing returns the backing key of a material version.
func (k *Key) Backing(version uint32) (BackingKey, bool) {
	for _, b := range k.BackingKeys {
		if b.Version == version {
			return b, true
		}
	}
	return BackingKey{}, false
}

// Tag is a resource tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Alias names a key.
type Alias struct {
	// Name is "alias/...".
	Name            string    `json:"name"`
	KeyID           string    `json:"key_id"`
	CreationDate    time.Time `json:"creation_date"`
	LastUpdatedDate time.Time `json:"last_updated_date"`
}

// ConnectionState is a custom key store's connection state (botocore
// ConnectionStateType).
type ConnectionState string

// Connection states (reference §4.2).
const (
	Connected     ConnectionState = "CONNECTED"
	Connecting    ConnectionState = "CONNECTING"
	Failed        ConnectionState = "FAILED"
	Disconnected  ConnectionState = "DISCONNECTED"
	Disconnecting ConnectionState = "DISCONNECTING"
)

// CustomKeyStore is a CloudHSM key store: a binding of KMS to one cluster
// (and its backup lineage) through the cluster's kmsuser crypto user.
type CustomKeyStore struct {
	// ID is "cks-" and 17 hex digits.
	ID        string `json:"id"`
	Name      string `json:"name"`
	ClusterID string `json:"cluster_id"`
	// CertificateID is the cluster certificate's common name, which names
	// the cluster's backup lineage.
	CertificateID string `json:"certificate_id"`
	// TrustAnchor is the cluster's trust anchor certificate (PEM).
	TrustAnchor         string          `json:"trust_anchor"`
	ConnectionState     ConnectionState `json:"connection_state"`
	ConnectionErrorCode string          `json:"connection_error_code,omitempty"`
	CreationDate        time.Time       `json:"creation_date"`
	// SealedPassword is kmsuser's password, sealed by the KMS fleet; never
	// the password itself.
	SealedPassword []byte `json:"sealed_password"`
	// SealedPendingPassword, when set, is a password KMS is changing
	// kmsuser's to: if the change happened but was not recorded, the next
	// connection finds it here.
	SealedPendingPassword []byte `json:"sealed_pending_password,omitempty"`
}

// Grant is a KMS grant: data (KMS keeps and lists it; enforcement is not
// implemented).
type Grant struct {
	// ID is 64 lower-case hex digits.
	ID                string            `json:"id"`
	KeyID             string            `json:"key_id"`
	Name              string            `json:"name,omitempty"`
	CreationDate      time.Time         `json:"creation_date"`
	GranteePrincipal  string            `json:"grantee_principal"`
	RetiringPrincipal string            `json:"retiring_principal,omitempty"`
	IssuingAccount    string            `json:"issuing_account"`
	Operations        []string          `json:"operations"`
	Constraints       *GrantConstraints `json:"constraints,omitempty"`
}

// GrantConstraints are a grant's encryption context constraints.
type GrantConstraints struct {
	EncryptionContextSubset map[string]string `json:"encryption_context_subset,omitempty"`
	EncryptionContextEquals map[string]string `json:"encryption_context_equals,omitempty"`
}
