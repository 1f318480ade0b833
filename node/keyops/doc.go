// Package keyops is the cryptographic core behind the HSM's key and crypto
// RPCs: key generation, encryption, signatures, MACs and key wrapping over
// hsmv1 key attributes and plaintext key material.
//
// Every function is pure: no I/O, no Raft, no sessions, no clock. The node's
// gRPC handlers call them after they have authorized the caller, looked the
// key up in the local replica and unsealed its material with the barrier.
// keyops checks what the key object itself allows (its usage attributes,
// extractable, its class and type against the mechanism) and the sizes of
// the request; it does not know who the caller is.
//
// # Material formats
//
//   - AES and generic secret keys: the raw key bytes.
//   - RSA and EC private keys: PKCS #8 DER (cryptocore.MarshalPrivateKey).
//   - Public keys: no material; the DER SubjectPublicKeyInfo is in
//     KeyAttributes.public_key (set on both halves of a pair).
//
// # Mechanisms
//
// Encrypt and Decrypt: AES-GCM with a random 96-bit nonce (output nonce ||
// ciphertext || tag) and RSA-OAEP (hash and MGF1 hash default to SHA-256,
// aad is the OAEP label). Sign and Verify: RSA PKCS #1 v1.5, RSA-PSS (salt
// length = hash length) and ECDSA (DER), with SHA-256, SHA-384 or SHA-512
// over a message or a precomputed digest. GenerateMac and VerifyMac: HMAC
// with SHA-224 to SHA-512 under a generic secret key, allowed by the sign
// and verify attributes as in CloudHSM. WrapKey and UnwrapKey: AES-KW (RFC
// 3394), AES-KWP (RFC 5649), RSA-OAEP, and RSA-AES (PKCS #11
// CKM_RSA_AES_KEY_WRAP: the RSA-OAEP encryption of a fresh AES-256 key,
// modulus-size bytes, followed by the AES-KWP wrapping of the key under it).
// A hash left unspecified means SHA-256 everywhere.
//
// # Errors
//
// Every error wraps one of the sentinels in errors.go, which the node maps
// to gRPC codes. No error message contains key material or plaintext.
package keyops
