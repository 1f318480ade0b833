package cryptocore

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
)

// KCVSize is the size of a key check value in bytes.
const KCVSize = 3

// KCVAES returns the key check value CloudHSM shows for an AES key: the first
// three bytes of the key's AES-ECB encryption of one all-zero block. It tells
// two keys apart without revealing either.
func KCVAES(key []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kcv: aes key of %d bytes: %w", len(key), ErrKeySize)
	}
	var buf [aes.BlockSize]byte
	block.Encrypt(buf[:], buf[:])
	return append([]byte(nil), buf[:KCVSize]...), nil
}

// KCVPublicKey returns the key check value CloudHSM shows for a key pair: the
// first three bytes of SHA-1 over the public key, here its DER
// SubjectPublicKeyInfo (MarshalPublicKey). Both halves of a pair share it.
func KCVPublicKey(publicKeyDER []byte) ([]byte, error) {
	if len(publicKeyDER) == 0 {
		return nil, fmt.Errorf("kcv: empty public key: %w", ErrInvalidKey)
	}
	sum := sha1.Sum(publicKeyDER)
	return append([]byte(nil), sum[:KCVSize]...), nil
}

// KCVGenericSecret returns a key check value for a generic secret (HMAC) key.
// CloudHSM does not document one; hsmsim uses the first three bytes of
// HMAC-SHA-256 keyed with the secret over one all-zero 16-byte block, which,
// like the AES check value, is a one-way function of the key.
func KCVGenericSecret(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("kcv: empty secret: %w", ErrKeySize)
	}
	m := hmac.New(sha256.New, key)
	m.Write(make([]byte, aes.BlockSize))
	return m.Sum(nil)[:KCVSize], nil
}
