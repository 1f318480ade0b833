package cryptocore

import "errors"

// The errors below are the only ones cryptocore returns, possibly wrapped with
// %w and more context; test for them with errors.Is. None of them ever carries
// key material, plaintext or a secret derived from either.
var (
	// ErrKeySize is returned when a key has a length the primitive does not take.
	ErrKeySize = errors.New("cryptocore: invalid key size")
	// ErrNonceSize is returned when a nonce or IV has a length the primitive does not take.
	ErrNonceSize = errors.New("cryptocore: invalid nonce size")
	// ErrInputSize is returned when an input is empty, too long, or of a length
	// the primitive does not take (for example key wrap input that is not a
	// multiple of 8 bytes).
	ErrInputSize = errors.New("cryptocore: invalid input size")
	// ErrAuthFailed is returned when authenticated decryption fails: the
	// ciphertext, tag or additional data was changed, or the key is not the one
	// that sealed it. The two cases cannot be told apart, by design.
	ErrAuthFailed = errors.New("cryptocore: message authentication failed")
	// ErrUnwrapFailed is returned when a key wrap integrity check fails (RFC 3394
	// and RFC 5649): wrong key-encryption key, or changed wrapped data.
	ErrUnwrapFailed = errors.New("cryptocore: key unwrap integrity check failed")
	// ErrDecryptFailed is returned when an RSA decryption fails. It is the same
	// error for every cause, so that it cannot serve as a padding oracle.
	ErrDecryptFailed = errors.New("cryptocore: decryption failed")
	// ErrInvalidSignature is returned when a signature does not verify.
	ErrInvalidSignature = errors.New("cryptocore: invalid signature")
	// ErrInvalidMAC is returned when a MAC does not verify.
	ErrInvalidMAC = errors.New("cryptocore: invalid MAC")
	// ErrUnsupported is returned for an algorithm, hash or curve cryptocore does not offer.
	ErrUnsupported = errors.New("cryptocore: unsupported algorithm")
	// ErrInvalidKey is returned when a key cannot be parsed or is not of the expected kind.
	ErrInvalidKey = errors.New("cryptocore: invalid key")

	// ErrTruncated is returned when an envelope ends before its header says it does.
	ErrTruncated = errors.New("cryptocore: envelope truncated")
	// ErrTrailingData is returned when an envelope has bytes after its sealed payload.
	ErrTrailingData = errors.New("cryptocore: envelope has trailing data")
	// ErrUnknownVersion is returned when an envelope's version byte is not one this code reads.
	ErrUnknownVersion = errors.New("cryptocore: unknown envelope version")
	// ErrMalformed is returned when an envelope field has a value the format forbids.
	ErrMalformed = errors.New("cryptocore: malformed envelope")
	// ErrWrongKey is returned when an envelope names a key identifier or
	// material version other than the one it is being opened with.
	ErrWrongKey = errors.New("cryptocore: envelope is for another key")

	// ErrPasswordMismatch is returned when a password does not match its hash.
	ErrPasswordMismatch = errors.New("cryptocore: password does not match")
	// ErrInvalidHash is returned when a stored password hash cannot be parsed.
	ErrInvalidHash = errors.New("cryptocore: invalid password hash")
)
