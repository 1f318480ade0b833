package cryptocore

import (
	"crypto/fips140"
	"crypto/hkdf"
	"encoding/binary"
	"fmt"
	"math"
)

// MaxCounterKDFLength is the longest output, in bytes, CounterKDF derives.
// NIST SP 800-108r1 §4.1 allows up to (2^32-1) PRF blocks with a 32-bit
// counter, and CounterKDF's 32-bit [L] field allows up to (2^32-1)/8 bytes;
// the far lower bound here keeps a request from making the HSM allocate and
// compute hundreds of megabytes while still covering any key or key set.
const MaxCounterKDFLength = 1 << 16

// HKDF derives length bytes from the input keying material ikm with HKDF
// (RFC 5869 §2: HKDF-Extract with salt, then HKDF-Expand with info) over
// HMAC-h. h must be SHA224, SHA256, SHA384 or SHA512, else ErrUnsupported.
// ikm must not be empty, else ErrKeySize: RFC 5869 allows it, but deriving a
// key from no secret is always a mistake in an HSM. salt and info may be empty;
// an empty salt stands for h.Size() zero bytes (RFC 5869 §2.2). length must be
// 1 to 255*h.Size() (RFC 5869 §2.3), else ErrInputSize.
//
// When the program runs with GODEBUG=fips140=only, an ikm shorter than 112
// bits gives ErrKeySize, as crypto/hkdf refuses it in that mode.
func HKDF(h Hash, ikm, salt, info []byte, length int) ([]byte, error) {
	newHash, err := macHash(h)
	if err != nil {
		return nil, fmt.Errorf("HKDF: %w", err)
	}
	if len(ikm) == 0 {
		return nil, fmt.Errorf("HKDF with empty input keying material: %w", ErrKeySize)
	}
	if fips140.Enforced() && len(ikm) < 112/8 {
		return nil, fmt.Errorf("HKDF input keying material of %d bytes is shorter than 112 bits in FIPS 140-only mode: %w", len(ikm), ErrKeySize)
	}
	if length < 1 || length > 255*h.Size() {
		return nil, fmt.Errorf("HKDF output of %d bytes, want 1 to %d: %w", length, 255*h.Size(), ErrInputSize)
	}
	out, err := hkdf.Key(newHash, ikm, salt, string(info), length)
	if err != nil {
		// Unreachable: every case crypto/hkdf refuses is checked above. Its
		// message is not passed on, so that no future change to it can leak
		// anything into cryptocore's errors.
		return nil, fmt.Errorf("HKDF: %w", ErrUnsupported)
	}
	return out, nil
}

// CounterKDF derives length bytes from key with the KDF in counter mode of
// NIST SP 800-108r1 §4.1, with HMAC-h (FIPS 198-1) as the PRF:
//
//	n := ⌈L/h⌉, where L = 8*length bits and h = 8*h.Size() bits
//	K(i) := HMAC-h(key, [i]_32 || Label || 0x00 || Context || [L]_32), for i = 1..n
//	K_OUT := the leftmost L bits of K(1) || ... || K(n)
//
// [x]_32 is x as a 32-bit big-endian integer: the counter is r = 32 bits long
// and comes before the fixed input data, and the fixed input data is the one
// SP 800-108r1 §4 suggests, Label || 0x00 || Context || [L]_32, with L in bits.
// The AWS KMS cryptographic details describe deriving a per-request AES-256
// key from a KMS key's material and a fresh nonce with this KDF and
// HMAC-SHA-256; they do not publish KMS's fixed input layout, so the layout
// here is hsmsim's own choice. It is what OpenSSL's KBKDF computes in counter
// mode with its default options (salt = Label, info = Context).
//
// h must be SHA224, SHA256, SHA384 or SHA512, else ErrUnsupported. key must be
// 1 to MaxMACKeySize bytes long, else ErrKeySize. label and context may be
// empty; the 0x00 separator is always present, so the caller must not let a
// label contain 0x00 if two label/context splits of the same bytes must give
// different keys. length must be 1 to MaxCounterKDFLength, else ErrInputSize.
func CounterKDF(h Hash, key, label, context []byte, length int) ([]byte, error) {
	if _, err := macHash(h); err != nil {
		return nil, fmt.Errorf("counter KDF: %w", err)
	}
	if length < 1 || length > MaxCounterKDFLength {
		return nil, fmt.Errorf("counter KDF output of %d bytes, want 1 to %d: %w", length, MaxCounterKDFLength, ErrInputSize)
	}
	fixed := make([]byte, 0, len(label)+1+len(context)+4)
	fixed = append(fixed, label...)
	fixed = append(fixed, 0x00)
	fixed = append(fixed, context...)
	fixed = binary.BigEndian.AppendUint32(fixed, uint32(8*length)) // fits: 8*MaxCounterKDFLength < 2^32
	return counterKDF(h, key, fixed, length)
}

// counterKDF is the loop of NIST SP 800-108r1 §4.1 with HMAC-h as the PRF, a
// 32-bit big-endian counter before the fixed input data, and fixedInput taken
// as given: K(i) := HMAC-h(key, [i]_32 || fixedInput). It returns the first
// length bytes of K(1) || K(2) || .... This is the layout of the NIST CAVP
// KBKDF counter-mode vectors with CTRLOCATION=BEFORE_FIXED and RLEN=32_BITS.
// length must be 1 to MaxCounterKDFLength; errors are as for CounterKDF.
func counterKDF(h Hash, key, fixedInput []byte, length int) ([]byte, error) {
	mac, err := newHMAC(h, key)
	if err != nil {
		return nil, fmt.Errorf("counter KDF: %w", err)
	}
	if length < 1 || length > MaxCounterKDFLength {
		return nil, fmt.Errorf("counter KDF output of %d bytes, want 1 to %d: %w", length, MaxCounterKDFLength, ErrInputSize)
	}
	// SP 800-108r1 §4.1 step 2: n must not exceed 2^r - 1. With r = 32 and
	// the length bound above, n is at most 2^16, so this cannot fail; it is
	// kept so the invariant does not silently break if the bound grows.
	n := (length + h.Size() - 1) / h.Size()
	if uint64(n) > math.MaxUint32 {
		return nil, fmt.Errorf("counter KDF output of %d bytes needs more than 2^32-1 blocks: %w", length, ErrInputSize)
	}
	out := make([]byte, length)
	block := make([]byte, 0, h.Size())
	defer func() { Zero(block[:cap(block)]) }()
	var ctr [4]byte
	off := 0
	for i := 1; i <= n; i++ {
		binary.BigEndian.PutUint32(ctr[:], uint32(i))
		mac.Reset()
		mac.Write(ctr[:])
		mac.Write(fixedInput)
		block = mac.Sum(block[:0])
		off += copy(out[off:], block)
	}
	return out, nil
}
