package keyops

import "errors"

// The errors keyops returns, wrapped with %w and context; test for them with
// errors.Is. None of them ever carries key material, plaintext or anything
// derived from either. Errors from cryptocore are wrapped as well, so
// errors.Is also finds the cryptocore sentinel that caused one.
var (
	// ErrInvalidArgument is returned for a request that cannot be served as
	// asked: a size out of range, an unknown or missing type, curve, hash or
	// mechanism, a mechanism that does not fit the key's class or type, an
	// oversize input, or a digest of the wrong length. The node maps it to
	// codes.InvalidArgument.
	ErrInvalidArgument = errors.New("keyops: invalid argument")

	// ErrPermission is returned when the key object does not allow the
	// operation: its usage attribute (encrypt, decrypt, sign, verify, wrap,
	// unwrap) is not set, or a key to be wrapped is not extractable. The node
	// maps it to codes.PermissionDenied.
	ErrPermission = errors.New("keyops: operation not permitted by the key's attributes")

	// ErrDecrypt is returned when decryption or unwrapping fails: a changed or
	// truncated ciphertext, the wrong key, a bad tag, padding or integrity
	// check. It does not say which, so that it cannot serve as an oracle. The
	// node maps it to codes.InvalidArgument with a fixed message.
	ErrDecrypt = errors.New("keyops: decryption failed")

	// ErrKeyMaterial is returned when a stored key's material does not fit
	// its attributes (a length that is not the key's size, a private key that
	// does not parse or is of another type, a missing public key). It means
	// the key database or the caller is broken, not the request: the node
	// maps it to codes.Internal.
	ErrKeyMaterial = errors.New("keyops: key material does not match its attributes")
)
