package cryptocore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"slices"
)

// Sizes of AES-256-GCM as hsmsim uses it.
const (
	// KeySize is the size of an AES-256 key in bytes.
	KeySize = 32
	// NonceSize is the size of a GCM nonce in bytes (96 bits, NIST SP 800-38D §8.2).
	NonceSize = 12
	// TagSize is the size of a GCM authentication tag in bytes.
	TagSize = 16
)

// AEAD is AES-256-GCM under one key with random 96-bit nonces. It is safe for
// concurrent use. With random nonces a key must seal fewer than 2^32 messages
// (NIST SP 800-38D §8.3); hsmsim's keys are far below that.
type AEAD struct {
	gcm cipher.AEAD
}

// NewAEAD returns an AEAD for a 32-byte key. The AEAD keeps an expanded copy of
// the key; the caller may zero key afterwards.
func NewAEAD(key []byte) (*AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("aes-256-gcm: key of %d bytes, want %d: %w", len(key), KeySize, ErrKeySize)
	}
	gcm, err := newGCM(key, NonceSize)
	if err != nil {
		return nil, err
	}
	return &AEAD{gcm: gcm}, nil
}

// Seal encrypts and authenticates plaintext and aad under a fresh random nonce
// and appends nonce || ciphertext || tag to dst.
func (a *AEAD) Seal(dst, plaintext, aad []byte) ([]byte, error) {
	// The nonce is read straight into dst: no allocation when dst has room.
	start := len(dst)
	dst = slices.Grow(dst, NonceSize+len(plaintext)+TagSize)[:start+NonceSize]
	nonce := dst[start:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("aes-256-gcm: nonce: %w", err)
	}
	return a.gcm.Seal(dst, nonce, plaintext, aad), nil
}

// Open authenticates and decrypts nonce || ciphertext || tag as produced by
// Seal. It returns ErrInputSize for input shorter than a nonce and a tag and
// ErrAuthFailed for anything that does not authenticate.
func (a *AEAD) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+TagSize {
		return nil, fmt.Errorf("aes-256-gcm: sealed input of %d bytes: %w", len(sealed), ErrInputSize)
	}
	return a.openWithNonce(dst, sealed[:NonceSize], sealed[NonceSize:], aad)
}

func (a *AEAD) sealWithNonce(dst, nonce, plaintext, aad []byte) []byte {
	return a.gcm.Seal(dst, nonce, plaintext, aad)
}

func (a *AEAD) openWithNonce(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	out, err := a.gcm.Open(dst, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("aes-256-gcm: %w", ErrAuthFailed)
	}
	return out, nil
}

// SealGCM is AES-GCM with an explicit nonce, for callers that manage nonces
// themselves (interoperability and test vectors). key is 16, 24 or 32 bytes;
// nonce is 1 to 1024 bytes, where 12 is the only size NIST recommends. It
// returns ciphertext || tag. Never reuse a nonce under the same key.
func SealGCM(key, nonce, plaintext, aad []byte) ([]byte, error) {
	gcm, err := newGCM(key, len(nonce))
	if err != nil {
		return nil, err
	}
	return gcm.Seal(nil, nonce, plaintext, aad), nil
}

// OpenGCM reverses SealGCM. It returns ErrAuthFailed for anything that does not authenticate.
func OpenGCM(key, nonce, sealed, aad []byte) ([]byte, error) {
	gcm, err := newGCM(key, len(nonce))
	if err != nil {
		return nil, err
	}
	if len(sealed) < TagSize {
		return nil, fmt.Errorf("aes-gcm: sealed input of %d bytes: %w", len(sealed), ErrInputSize)
	}
	out, err := gcm.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("aes-gcm: %w", ErrAuthFailed)
	}
	return out, nil
}

// maxNonceSize bounds explicit GCM nonces; longer ones are hashed by GHASH
// anyway and only cost time.
const maxNonceSize = 1024

func newGCM(key []byte, nonceSize int) (cipher.AEAD, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("aes-gcm: key of %d bytes: %w", len(key), ErrKeySize)
	}
	if nonceSize < 1 || nonceSize > maxNonceSize {
		return nil, fmt.Errorf("aes-gcm: nonce of %d bytes: %w", nonceSize, ErrNonceSize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes-gcm: %w", ErrKeySize)
	}
	if nonceSize == NonceSize {
		return cipher.NewGCM(block)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("aes-gcm: nonce of %d bytes: %w", nonceSize, ErrNonceSize)
	}
	return gcm, nil
}
