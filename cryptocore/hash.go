package cryptocore

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Hash names a hash function cryptocore offers: SHA-1 (FIPS 180-4 §6.1),
// SHA-224 and SHA-256 (§6.3, §6.2) and SHA-384 and SHA-512 (§6.5, §6.4).
// The zero Hash names no function: every method on it, and on any value
// other than the named constants, reports it as unsupported.
type Hash int

// The hash functions cryptocore offers. SHA-1 is offered only where a
// standard still names it (OAEP and MGF1 parameters, RFC 8017 §7.1); it is
// refused for signatures.
const (
	SHA1 Hash = iota + 1
	SHA224
	SHA256
	SHA384
	SHA512
)

// hashNames holds the names Hash.String returns and ParseHash accepts, as
// Wycheproof and RFC 8017 Appendix B.1 write them.
var hashNames = map[Hash]string{
	SHA1:   "SHA-1",
	SHA224: "SHA-224",
	SHA256: "SHA-256",
	SHA384: "SHA-384",
	SHA512: "SHA-512",
}

// ParseHash returns the Hash with the given name: one of "SHA-1", "SHA-224",
// "SHA-256", "SHA-384" or "SHA-512", exactly as Hash.String writes them. Any
// other name returns ErrUnsupported.
func ParseHash(name string) (Hash, error) {
	for h, n := range hashNames {
		if n == name {
			return h, nil
		}
	}
	return 0, fmt.Errorf("hash %q: %w", name, ErrUnsupported)
}

// String returns the hash's name as ParseHash accepts it, or "Hash(N)" for a
// value that names no hash.
func (h Hash) String() string {
	if n, ok := hashNames[h]; ok {
		return n
	}
	return fmt.Sprintf("Hash(%d)", int(h))
}

// Valid reports whether h names one of the hash functions cryptocore offers.
func (h Hash) Valid() bool {
	_, ok := hashNames[h]
	return ok
}

// CryptoHash returns the crypto.Hash that h names, or ErrUnsupported when h
// names none of cryptocore's hashes.
func (h Hash) CryptoHash() (crypto.Hash, error) {
	switch h {
	case SHA1:
		return crypto.SHA1, nil
	case SHA224:
		return crypto.SHA224, nil
	case SHA256:
		return crypto.SHA256, nil
	case SHA384:
		return crypto.SHA384, nil
	case SHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("hash %v: %w", h, ErrUnsupported)
}

// New returns a new hash.Hash computing h. It returns nil when h is not
// Valid; callers that take a Hash from outside check it with Valid,
// CryptoHash or ParseHash first.
func (h Hash) New() hash.Hash {
	switch h {
	case SHA1:
		return sha1.New()
	case SHA224:
		return sha256.New224()
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	return nil
}

// Size returns the length in bytes of h's digest, or 0 when h is not Valid.
func (h Hash) Size() int {
	switch h {
	case SHA1:
		return sha1.Size
	case SHA224:
		return sha256.Size224
	case SHA256:
		return sha256.Size
	case SHA384:
		return sha512.Size384
	case SHA512:
		return sha512.Size
	}
	return 0
}

// Digest returns the digest of msg under h, or ErrUnsupported when h is not
// Valid.
func (h Hash) Digest(msg []byte) ([]byte, error) {
	switch h {
	case SHA1:
		d := sha1.Sum(msg)
		return d[:], nil
	case SHA224:
		d := sha256.Sum224(msg)
		return d[:], nil
	case SHA256:
		d := sha256.Sum256(msg)
		return d[:], nil
	case SHA384:
		d := sha512.Sum384(msg)
		return d[:], nil
	case SHA512:
		d := sha512.Sum512(msg)
		return d[:], nil
	}
	return nil, fmt.Errorf("hash %v: %w", h, ErrUnsupported)
}

// signatureHash checks that h is one of the hashes cryptocore signs with
// (SHA-256, SHA-384, SHA-512, the ones AWS KMS offers for RSA and ECDSA
// signing) and that digest has its length. It returns the crypto.Hash.
func signatureHash(h Hash, digest []byte) (crypto.Hash, error) {
	switch h {
	case SHA256, SHA384, SHA512:
	default:
		return 0, fmt.Errorf("signature hash %v: %w", h, ErrUnsupported)
	}
	if len(digest) != h.Size() {
		return 0, fmt.Errorf("%v digest of %d bytes, want %d: %w", h, len(digest), h.Size(), ErrInputSize)
	}
	return h.CryptoHash()
}

// signatureInput returns the digest to sign or verify: input itself when
// isDigest is true, its h digest otherwise. The hash is checked as by
// signatureHash.
func signatureInput(h Hash, input []byte, isDigest bool) ([]byte, error) {
	if isDigest {
		return input, nil
	}
	switch h {
	case SHA256, SHA384, SHA512:
		return h.Digest(input)
	}
	return nil, fmt.Errorf("signature hash %v: %w", h, ErrUnsupported)
}
