package cryptocore

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// EnvelopeVersion1 is the only envelope version this code writes and reads.
const EnvelopeVersion1 byte = 1

// Envelope limits.
const (
	// MaxKeyIDSize is the longest key identifier an envelope can carry.
	MaxKeyIDSize = 255
	// MaxEnvelopePlaintext is the largest plaintext an envelope seals.
	MaxEnvelopePlaintext = 1 << 20
)

// envelopeFixed is the size of the header without the key identifier:
// version, key id length, material version, nonce and sealed length.
const envelopeFixed = 1 + 1 + 4 + NonceSize + 4

// Envelope is a parsed, still sealed envelope. Its byte layout (DESIGN.md):
//
//	offset   size  field
//	0        1     version (1)
//	1        1     key identifier length L, 1..255
//	2        L     key identifier (opaque bytes, usually UTF-8)
//	2+L      4     key material version, big endian
//	6+L      12    GCM nonce
//	18+L     4     sealed length N = len(ciphertext) + 16, big endian
//	22+L     N     ciphertext || tag
//
// The whole header (bytes 0 to 22+L) is authenticated: AES-256-GCM's
// additional data is header || the caller's additional data, so changing
// any field, or opening with other additional data, fails authentication.
type Envelope struct {
	// Version is the format version, EnvelopeVersion1.
	Version byte
	// KeyID names the key that sealed the envelope.
	KeyID []byte
	// MaterialVersion names the version of that key's material.
	MaterialVersion uint32
	// Nonce is the GCM nonce.
	Nonce []byte
	// Sealed is ciphertext || tag.
	Sealed []byte

	header []byte
}

// SealEnvelope seals plaintext under a, naming keyID and materialVersion in the
// header and binding aad, and returns the envelope's bytes.
func SealEnvelope(a *AEAD, keyID []byte, materialVersion uint32, plaintext, aad []byte) ([]byte, error) {
	if len(keyID) < 1 || len(keyID) > MaxKeyIDSize {
		return nil, fmt.Errorf("envelope: key id of %d bytes, want 1..%d: %w", len(keyID), MaxKeyIDSize, ErrInputSize)
	}
	if len(plaintext) > MaxEnvelopePlaintext {
		return nil, fmt.Errorf("envelope: plaintext of %d bytes, limit %d: %w", len(plaintext), MaxEnvelopePlaintext, ErrInputSize)
	}
	nonce, err := RandomBytes(NonceSize)
	if err != nil {
		return nil, err
	}
	headerLen := envelopeFixed + len(keyID)
	out := make([]byte, headerLen, headerLen+len(plaintext)+TagSize)
	out[0] = EnvelopeVersion1
	out[1] = byte(len(keyID))
	n := 2 + copy(out[2:], keyID)
	binary.BigEndian.PutUint32(out[n:], materialVersion)
	n += 4
	n += copy(out[n:], nonce)
	binary.BigEndian.PutUint32(out[n:], uint32(len(plaintext)+TagSize))

	full := envelopeAAD(out, aad)
	return a.sealWithNonce(out, nonce, plaintext, full), nil
}

// ParseEnvelope parses b strictly without opening it. It returns ErrTruncated,
// ErrTrailingData, ErrUnknownVersion or ErrMalformed for input that is not
// exactly one well-formed envelope. The returned Envelope aliases b.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("envelope: empty: %w", ErrTruncated)
	}
	if b[0] != EnvelopeVersion1 {
		return nil, fmt.Errorf("envelope: version %d: %w", b[0], ErrUnknownVersion)
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("envelope: no key id length: %w", ErrTruncated)
	}
	idLen := int(b[1])
	if idLen == 0 {
		return nil, fmt.Errorf("envelope: empty key id: %w", ErrMalformed)
	}
	headerLen := envelopeFixed + idLen
	if len(b) < headerLen {
		return nil, fmt.Errorf("envelope: %d bytes, header needs %d: %w", len(b), headerLen, ErrTruncated)
	}
	n := 2
	e := &Envelope{Version: b[0], KeyID: b[n : n+idLen : n+idLen]}
	n += idLen
	e.MaterialVersion = binary.BigEndian.Uint32(b[n:])
	n += 4
	e.Nonce = b[n : n+NonceSize : n+NonceSize]
	n += NonceSize
	sealedLen := binary.BigEndian.Uint32(b[n:])
	if sealedLen < TagSize || sealedLen > MaxEnvelopePlaintext+TagSize {
		return nil, fmt.Errorf("envelope: sealed length %d: %w", sealedLen, ErrMalformed)
	}
	rest := len(b) - headerLen
	switch {
	case rest < int(sealedLen):
		return nil, fmt.Errorf("envelope: %d sealed bytes, header says %d: %w", rest, sealedLen, ErrTruncated)
	case rest > int(sealedLen):
		return nil, fmt.Errorf("envelope: %d bytes after the sealed payload: %w", rest-int(sealedLen), ErrTrailingData)
	}
	e.header = b[:headerLen:headerLen]
	e.Sealed = b[headerLen:]
	return e, nil
}

// Open authenticates and decrypts the envelope with a and aad. It returns
// ErrAuthFailed when a is not the key that sealed it, or when anything in the
// envelope or aad changed.
func (e *Envelope) Open(a *AEAD, aad []byte) ([]byte, error) {
	return a.openWithNonce(nil, e.Nonce, e.Sealed, envelopeAAD(e.header, aad))
}

// OpenEnvelope parses b, checks that it names keyID and materialVersion
// (ErrWrongKey otherwise), and opens it with a and aad.
func OpenEnvelope(a *AEAD, keyID []byte, materialVersion uint32, b, aad []byte) ([]byte, error) {
	e, err := ParseEnvelope(b)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(e.KeyID, keyID) != 1 || e.MaterialVersion != materialVersion {
		return nil, fmt.Errorf("envelope: sealed under key material version %d: %w", e.MaterialVersion, ErrWrongKey)
	}
	return e.Open(a, aad)
}

// envelopeAAD returns header || aad in a new slice.
func envelopeAAD(header, aad []byte) []byte {
	full := make([]byte, 0, len(header)+len(aad))
	full = append(full, header...)
	return append(full, aad...)
}
