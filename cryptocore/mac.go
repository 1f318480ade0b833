package cryptocore

import (
	"crypto/fips140"
	"crypto/hmac"
	"crypto/subtle"
	"fmt"
	"hash"
)

// MaxMACKeySize is the longest HMAC key, in bytes, that ComputeMAC, VerifyMAC,
// VerifyTruncatedMAC and CounterKDF take. HMAC itself takes keys of any length
// (RFC 2104 §2 hashes keys longer than the block size); the bound only keeps a
// request from making the HSM hash an arbitrarily large key. It is well above
// the HMAC key sizes AWS KMS generates (the hash's output size) and the
// largest CloudHSM generic secret key.
const MaxMACKeySize = 1024

// MinTruncatedMACSize is the shortest tag, in bytes, VerifyTruncatedMAC will
// check. RFC 2104 §5 recommends that a truncated HMAC output keep at least 80
// bits and at least half of the hash output; the first bound is enforced here,
// the second is left to the caller's minLen.
const MinTruncatedMACSize = 10

// macHash returns the hash.Hash constructor for h when h may key an HMAC.
// Only SHA-224, SHA-256, SHA-384 and SHA-512 may: AWS KMS offers HMAC keys
// for exactly these (HMAC_224 to HMAC_512), and SHA-1 is refused even though
// HMAC-SHA-1 is not broken, so that no new key is ever tied to SHA-1.
func macHash(h Hash) (func() hash.Hash, error) {
	switch h {
	case SHA224, SHA256, SHA384, SHA512:
		return h.New, nil
	case SHA1:
		return nil, fmt.Errorf("HMAC with SHA-1: %w", ErrUnsupported)
	default:
		return nil, fmt.Errorf("HMAC with an unknown hash: %w", ErrUnsupported)
	}
}

// newHMAC checks h and key and returns a keyed HMAC. Keys must be 1 to
// MaxMACKeySize bytes long. When the program runs with GODEBUG=fips140=only,
// crypto/hmac panics on keys shorter than 112 bits (SP 800-131A); such keys
// are refused here with ErrKeySize instead.
func newHMAC(h Hash, key []byte) (hash.Hash, error) {
	newHash, err := macHash(h)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 || len(key) > MaxMACKeySize {
		return nil, fmt.Errorf("HMAC key of %d bytes, want 1 to %d: %w", len(key), MaxMACKeySize, ErrKeySize)
	}
	if fips140.Enforced() && len(key) < 112/8 {
		return nil, fmt.Errorf("HMAC key of %d bytes is shorter than 112 bits in FIPS 140-only mode: %w", len(key), ErrKeySize)
	}
	return hmac.New(newHash, key), nil
}

// ComputeMAC returns HMAC-h(key, msg) as defined in RFC 2104 and FIPS 198-1,
// h.Size() bytes long. h must be SHA224, SHA256, SHA384 or SHA512; SHA-1 and
// unknown hashes give ErrUnsupported. key must be 1 to MaxMACKeySize bytes
// long, else ErrKeySize. msg may be empty.
func ComputeMAC(h Hash, key, msg []byte) ([]byte, error) {
	mac, err := newHMAC(h, key)
	if err != nil {
		return nil, err
	}
	mac.Write(msg)
	return mac.Sum(nil), nil
}

// VerifyMAC checks that tag is HMAC-h(key, msg). Like the AWS KMS VerifyMac
// operation, it takes only the full-length MAC (h.Size() bytes): a tag of any
// other length, or one that differs, gives ErrInvalidMAC. The comparison is
// constant-time. Errors for h and key are those of ComputeMAC.
func VerifyMAC(h Hash, key, msg, tag []byte) error {
	if _, err := macHash(h); err != nil {
		return err
	}
	return verifyMAC(h, key, msg, tag, h.Size())
}

// VerifyTruncatedMAC checks that tag is HMAC-h(key, msg) truncated to its
// leftmost len(tag) bytes, as RFC 2104 §5 and NIST SP 800-107r1 §5.3.3
// describe, for a tag of minLen to h.Size() bytes. A tag outside those
// lengths, or one that differs, gives ErrInvalidMAC; the comparison is
// constant-time. minLen must be between MinTruncatedMACSize and h.Size(),
// else ErrInputSize. Errors for h and key are those of ComputeMAC.
//
// minLen is the caller's policy, not something read from the tag: a verifier
// that let the tag choose its own length would accept a 1-byte forgery.
func VerifyTruncatedMAC(h Hash, key, msg, tag []byte, minLen int) error {
	if _, err := macHash(h); err != nil {
		return err
	}
	if minLen < MinTruncatedMACSize || minLen > h.Size() {
		return fmt.Errorf("minimum truncated MAC length %d, want %d to %d: %w", minLen, MinTruncatedMACSize, h.Size(), ErrInputSize)
	}
	return verifyMAC(h, key, msg, tag, minLen)
}

// verifyMAC computes the MAC before looking at the tag's length, so that
// errors for h and key come first, then compares tag with its prefix.
func verifyMAC(h Hash, key, msg, tag []byte, minLen int) error {
	want, err := ComputeMAC(h, key, msg)
	if err != nil {
		return err
	}
	defer Zero(want)
	if len(tag) < minLen || len(tag) > len(want) {
		return fmt.Errorf("MAC of %d bytes, want %d to %d: %w", len(tag), minLen, len(want), ErrInvalidMAC)
	}
	if subtle.ConstantTimeCompare(want[:len(tag)], tag) != 1 {
		return ErrInvalidMAC
	}
	return nil
}
