// Package kms is the KMS API of the endpoint: symmetric, asymmetric (RSA,
// ECC) and HMAC keys in the default key store (backed by the KMS fleet, an
// HSM cluster KMS owns), with generated or imported (BYOK) material and
// rotation; symmetric keys in CloudHSM custom key stores (backed by a
// customer's cluster, through its kmsuser crypto user); data keys and data
// key pairs; aliases, tags, key policies, grants and custom key stores. It
// serves AWS's JSON protocol through an awsjson.Mux; shapes follow the
// botocore model, errors the reference
// (/work/shared/reference/aws-kms-cloudhsm.md §2–§4, §7, §8).
//
// # No key material
//
// A KMS key is metadata (package store) naming HSM keys by handle, one
// per material version, each labelled with the key's ARN and
// non-extractable: an AES-256 key (SYMMETRIC_DEFAULT, usable only to
// encrypt and decrypt), an RSA or EC key pair (the private half signs or
// decrypts, the public half verifies or encrypts), or a generic secret
// (HMAC keys, usable only for MACs). A generated key's id attribute is
// the 32 bytes of its KeyMaterialId. Encrypt and Decrypt are AES-GCM (or
// RSA-OAEP) in the HSM, Sign, Verify, GenerateMac and VerifyMac run there
// too, GetPublicKey reads the HSM's public key object, and data keys come
// from the HSM's generator. The endpoint sees plaintext only on its way to
// or from the caller who sent or asked for it, and no key material ever,
// but the private key of a data key pair, which the caller asked for.
//
// # Key specs
//
// keyspec.go is reference §2.1's table: RSA_2048/3072/4096 (ENCRYPT_DECRYPT
// with RSAES_OAEP_SHA_1/256, or SIGN_VERIFY with the six RSASSA
// algorithms), ECC_NIST_P256/P384/P521 (SIGN_VERIFY, ECDSA with the
// curve's hash), HMAC_224/256/384/512 (GENERATE_VERIFY_MAC). ECC_SECG_P256K1
// is UnsupportedOperationException: the HSMs have no secp256k1 (their
// cryptocore implements P-256, P-384 and P-521 only); so are SM2 (China
// Regions), ML-DSA, Ed25519 and KEY_AGREEMENT usage. Asymmetric ciphertext
// is raw RSA-OAEP (no header): Decrypt then needs the KeyId and the
// algorithm, and anyone with the public key can encrypt offline. A DIGEST
// message must have the hash's length. A verification or MAC check that
// fails is KMSInvalidSignatureException or KMSInvalidMacException. RSA
// key pairs take seconds to generate, so they are generated through a
// second session of the fleet's user (keygen), whose attempts may last
// KeyGenTimeout; the main session is then told the Raft index the keygen
// session observed, so that its calls see the pair on any HSM.
//
// # Data key pairs
//
// GenerateDataKeyPair generates the pair in the fleet, as an extractable
// key pair, and takes its private key out wrapped: the endpoint draws a
// one-time AES-256 key, sends it into the fleet RSA-OAEP-encrypted under
// the fleet's transport key pair (label "hsmsim:kms-transport", its
// private half never leaves the fleet), has the HSM wrap the private key
// with AES-KWP under it, unwraps the PKCS #8 in memory, and deletes the
// temporary HSM keys (label "hsmsim:kms-temporary"; any a crash left are
// deleted at start). The private key is then encrypted under the symmetric
// KMS key as an ordinary ciphertext blob. Specs the HSMs lack
// (ECC_SECG_P256K1, SM2, Ed25519) are UnsupportedOperationException.
//
// # Rotation
//
// Symmetric keys of the default key store rotate: each rotation adds an
// AES-256 HSM key as the next material version, which new blobs name in
// their header; older versions stay, so every earlier ciphertext
// decrypts. RotateKeyOnDemand (at most 25 per key) rotates now;
// automatic rotation (90 to 2560 days, default 365) happens in the
// sweeper when the Service's clock passes the next rotation date (one
// rotation per due date, Enabled keys only). Other keys (asymmetric,
// HMAC, EXTERNAL, custom key store) are UnsupportedOperationException
// "<ARN> origin is X (or key spec is X) which is not valid for this
// operation.", footnote [6]'s words.
//
// # Imported key material
//
// An EXTERNAL key (any served spec) is PendingImport until
// ImportKeyMaterial. GetParametersForImport generates an RSA wrapping key
// pair in the fleet (private half non-extractable, unwrap only) and an
// import token naming the key and that pair, valid 24 hours on the clock;
// each call replaces the previous parameters. ImportKeyMaterial unwraps in
// the HSM (UnwrapKey, RSA-OAEP or RSA-AES key wrap) into a new backing key.
// A reimport must bring the same material: the HSM's key check value and
// a check only the same material passes (it decrypts an AES-GCM value the
// first material made, or reproduces an HMAC, or has the same public key)
// tell; otherwise IncorrectKeyMaterialException. Material whose ValidTo
// passed is deleted by the sweeper and the key returns to PendingImport.
//
// # Policies and grants
//
// Key policies and grants are data: validated and kept with AWS's rules
// and formats (the default policy exactly as reference §8 writes it, the
// 32 KB quota, principals of a valid form; grant ids of 64 hex digits,
// URL-safe base64 grant tokens naming the grant, operations the key
// supports, constraints only for operations that take an encryption
// context, 50,000 grants per key), not evaluated: no request is refused
// for lack of permission.
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
// CreateKey, which runs at load-test rates, asks a health view instead
// of probing afresh (health.go): persistent verified connections to the
// cluster's HSMs, probed every 250 ms while CreateKeys come, an HSM
// counting while its latest answer (at most a second old; an older one is
// refreshed first) was "active" and its connection is up. A killed HSM's
// connection drops at once, so CreateKey is refused within milliseconds;
// an HSM that comes back counts again within about half a second. The
// cluster record CreateKey reads is at most 250 ms old. Create and
// UpdateCustomKeyStore and connections keep the fresh probe.
//
// Crypto in a custom key store goes through the store's client, which
// spreads calls over the HSMs and retries elsewhere, so losing an HSM
// does not stop it; any failure the client cannot hide is
// KMSInvalidStateException ("KMS cannot communicate with your CloudHSM
// cluster"), as AWS answers for custom key stores.
//
// # Time
//
// Deletion dates, rotation dates, import tokens and imported material's
// ValidTo follow the endpoint's Clock, which an admin call advances. A
// sweeper (and Sweep, which tests call) deletes the keys whose date has
// passed (metadata, aliases and grants first, in one transaction, then the
// HSM keys, best effort), rotates the keys that are due and expires
// imported material and import parameters. GetKeyLastUsage's record is
// kept in memory: its TrackingStartDate is the Service's start.
//
// # Departures from AWS
//
//   - Multi-Region keys, KEY_AGREEMENT keys, external key stores,
//     Recipient (Nitro attestation), and the specs ECC_SECG_P256K1, SM2,
//     ML_DSA_* and ECC_NIST_EDWARDS25519 are UnsupportedOperationException
//     at CreateKey. Since no such key exists, ReplicateKey and
//     UpdatePrimaryRegion answer UnsupportedOperationException (not a
//     multi-Region key) and DeriveSharedSecret InvalidKeyUsageException,
//     as AWS does for the keys that can exist here.
//   - Key policies and grants are validated and kept, not evaluated;
//     grant tokens in requests are validated and ignored.
//   - An imported key has one material: ImportType NEW_KEY_MATERIAL on a
//     key that has material (on-demand rotation of imported keys) is
//     UnsupportedOperationException, and EXTERNAL keys do not rotate.
//   - Only the latest GetParametersForImport's token imports (an older
//     unexpired one is InvalidImportTokenException).
//   - Rotation and import errors whose text AWS does not document use
//     footnote [6]'s pattern; InvalidKeyUsageException and the
//     ValidationExceptions for specs, digests and plaintext sizes have
//     hsmsim's own messages.
//   - UpdateAlias to a key of another type or usage is
//     ValidationException (AWS documents the rule, not the exception).
//   - Disconnect is synchronous: DISCONNECTING is never observed.
//   - Names under "alias/aws/" are refused with InvalidAliasNameException,
//     and ListAliases does not list AWS managed aliases.
package kms
