// Package cryptocore holds hsmsim's cryptographic primitives and formats: the
// versioned AES-256-GCM envelope that seals key records, AES key wrap (RFC 3394
// and RFC 5649), RSA-OAEP, RSA-PSS and PKCS #1 v1.5 signatures, ECDSA, HMAC,
// HKDF, the NIST SP 800-108 counter-mode KDF, Argon2id password hashing and
// CloudHSM key check values.
//
// The package has no I/O and no state. It depends only on the standard library
// and golang.org/x/crypto; randomness comes only from crypto/rand. Every
// primitive is checked against Project Wycheproof vectors. Errors are the
// sentinels in errors.go and never carry secret bytes.
//
// DESIGN.md beside this file fixes the envelope's byte layout and the key
// hierarchy (device key → domain key → key records).
package cryptocore
