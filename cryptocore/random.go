package cryptocore

import (
	"crypto/rand"
	"fmt"
)

// MaxRandomBytes bounds one RandomBytes call; larger requests are refused
// rather than allocated.
const MaxRandomBytes = 1 << 20

// RandomBytes returns n bytes from crypto/rand, the only source of randomness
// in hsmsim. n must be between 1 and MaxRandomBytes.
func RandomBytes(n int) ([]byte, error) {
	if n < 1 || n > MaxRandomBytes {
		return nil, fmt.Errorf("random: %d bytes requested, want 1..%d: %w", n, MaxRandomBytes, ErrInputSize)
	}
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on the platforms Go supports
	// (it crashes the program instead, since Go 1.24), but the contract keeps one.
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	return b, nil
}

// Zero overwrites b with zeros. Use it on secrets (key material, plaintext
// keys, derived keys) once they are no longer needed. Go's garbage collector
// may have copied the bytes elsewhere, so this narrows exposure rather than
// guaranteeing erasure.
func Zero(b []byte) {
	clear(b)
}
