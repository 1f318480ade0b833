// Package kms is the KMS API of the endpoint for symmetric keys: keys in
// the default key store (backed by the KMS fleet, an HSM cluster KMS
// owns) and in CloudHSM custom key stores (backed by a customer's
// cluster, through its kmsuser crypto user), aliases, tags, key policies
// and custom key stores. It serves AWS's JSON protocol through an
// awsjson.Mux; shapes follow the botocore model, errors the reference
// (/work/shared/reference/aws-kms-cloudhsm.md §2–§4).
//
// # No key material
//
// A KMS key is metadata (package store) naming HSM keys by handle: one
// AES-256 key per material version, generated in the HSM, non-extractable,
// usable only to encrypt and decrypt, labelled with the key's ARN, its id
// attribute the 32 bytes of the KeyMaterialId. Encrypt and Decrypt are
// AES-GCM in the HSM; data keys come from the HSM's generator. The
// endpoint sees plaintext only on its way to or from the caller who sent
// or asked for it, and no key material ever.
//
// # Ciphertext
//
// Version 1 of kmsproxy/DESIGN.md: version byte, key id, material version,
// then the HSM's nonce || ciphertext || tag. The AES-GCM additional data
// is the header and the canonical encryption context (sorted by key, each
// key and value prefixed by its 4-byte big-endian length), so tampering
// with any part, or a different context, fails in the HSM
// (InvalidCiphertextException). The blob names its key: a KeyId given to
// Decrypt that names another key is IncorrectKeyException; a blob whose
// key no longer exists is AccessDeniedException, as AWS answers.
//
// # Key state
//
// keystate.go is reference §3's table, operation × state → footnote
// error. The stored state is what the user set; the reported one is
// derived: a custom-key-store key whose store is not CONNECTED is
// Unavailable unless PendingDeletion. EnableKey and DisableKey on an
// Unavailable key change the stored state, which shows once the store
// reconnects.
//
// # Custom key stores
//
// Create, Update and Delete enforce reference §4.1's rules with AWS's
// exceptions. Connect is asynchronous: the
// request marks the store CONNECTING and a goroutine logs kmsuser in
// (first once, on one HSM, so that a wrong password costs one failed
// attempt towards kmsuser's lock and not one per HSM; then through a
// cluster/client on every HSM), rotates kmsuser's password to a random
// 32-character one (sealed and recorded as pending first, current after,
// so a crash between the HSM's change and the record loses nothing), and
// marks the store CONNECTED; or FAILED with AWS's connection error code.
// The rotation happens before CONNECTED shows, so a caller who sees
// CONNECTED knows the password it gave no longer works. A rotation that
// fails (a cluster that lost its Raft leader cannot change a password)
// leaves the old password and the store connects anyway. The store's
// client lives in the Service; Disconnect closes it. After a restart,
// stores recorded CONNECTED reconnect in the background with the stored
// password, retrying while the failure may pass, and turning FAILED if
// the password is refused (retrying it would lock kmsuser).
//
// Passwords are never stored in the clear: the fleet's internal AES key
// (label "hsmsim:kms-internal", created on first use) seals them, with
// the store's id as additional data.
//
// # HSM health
//
// The rules that count HSMs (two active HSMs in different AZs for
// CreateKey, CreateCustomKeyStore and UpdateCustomKeyStore; one to
// connect) count the HSMs that answer now: the control plane's record
// says which HSMs exist, and a GetStatus probe (TLS verified against the
// cluster's trust anchor, no credentials) says which answer. The record
// alone lags (it changes when the control plane refreshes it), and so does
// a client's Health (an HSM turns unhealthy only after a call to it
// fails). A DEGRADED cluster counts as active: it is an activated cluster
// one of whose HSMs did not answer, which the probe judges itself.
//
// Crypto in a custom key store goes through the store's client, which
// spreads calls over the HSMs and retries elsewhere, so losing an HSM
// does not stop it; any failure the client cannot hide is
// KMSInvalidStateException ("KMS cannot communicate with your CloudHSM
// cluster"), as AWS answers for custom key stores.
//
// # Time
//
// Deletion dates follow the endpoint's Clock, which an admin call
// advances. A sweeper (and Sweep, which tests call) deletes the keys
// whose date has passed: metadata and aliases first, in one transaction,
// then the HSM keys, best effort.
//
// # Departures from AWS
//
//   - Only SYMMETRIC_DEFAULT keys with Origin AWS_KMS or AWS_CLOUDHSM;
//     other specs and origins, multi-Region keys, external key stores
//     and Recipient are UnsupportedOperationException.
//   - Key policies are validated and kept, not evaluated; grants are not
//     implemented (grant tokens are validated and ignored).
//   - USER_NOT_FOUND is reported only if an HSM says so; hsmsim's HSMs
//     answer an unknown user like a wrong password, which is
//     INVALID_CREDENTIALS. USER_LOGGED_IN never happens.
//   - Disconnect is synchronous: DISCONNECTING is never observed.
//   - Names under "alias/aws/" are refused with InvalidAliasNameException,
//     and ListAliases does not list AWS managed aliases.
package kms
