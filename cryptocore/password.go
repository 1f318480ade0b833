package cryptocore

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the Argon2id parameters (RFC 9106) of a password hash.
type PasswordParams struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are the salt and output sizes in bytes.
	SaltLen, KeyLen uint32
}

// DefaultPasswordParams are OWASP's minimum Argon2id configuration
// (m = 19 MiB, t = 2, p = 1; OWASP Password Storage Cheat Sheet), with a
// 16-byte salt and a 32-byte output. An HSM user logs in once per session,
// and a KMS connection logs in once per HSM, so a login costs tens of
// milliseconds; RFC 9106's heavier first recommendation (2 GiB) would not fit
// a laptop running many HSMs.
var DefaultPasswordParams = PasswordParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds accepted when parsing a stored hash, so that a forged hash cannot
// make verification allocate or spin without limit.
const (
	maxPasswordMemoryKiB = 256 * 1024
	maxPasswordTime      = 16
	maxPasswordThreads   = 16
	maxPasswordLen       = 1024
)

// HashPassword hashes password with Argon2id and params and returns the PHC
// string form: $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash>,
// salt and hash in unpadded standard base64.
func HashPassword(password []byte, params PasswordParams) (string, error) {
	if len(password) == 0 || len(password) > maxPasswordLen {
		return "", fmt.Errorf("password: length %d, want 1..%d: %w", len(password), maxPasswordLen, ErrInputSize)
	}
	if err := params.validate(); err != nil {
		return "", err
	}
	salt, err := RandomBytes(int(params.SaltLen))
	if err != nil {
		return "", err
	}
	sum := argon2.IDKey(password, salt, params.Time, params.MemoryKiB, params.Threads, params.KeyLen)
	defer Zero(sum)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		params.MemoryKiB, params.Time, params.Threads, b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// VerifyPassword checks password against a hash from HashPassword in
// constant time. It returns ErrPasswordMismatch when they differ and
// ErrInvalidHash when encoded cannot be parsed.
func VerifyPassword(encoded string, password []byte) error {
	params, salt, want, err := parsePasswordHash(encoded)
	if err != nil {
		return err
	}
	if len(password) > maxPasswordLen {
		return ErrPasswordMismatch
	}
	got := argon2.IDKey(password, salt, params.Time, params.MemoryKiB, params.Threads, params.KeyLen)
	defer Zero(got)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

func (p PasswordParams) validate() error {
	if p.Time < 1 || p.Time > maxPasswordTime || p.MemoryKiB < 8*uint32(p.Threads) ||
		p.MemoryKiB > maxPasswordMemoryKiB || p.Threads < 1 || p.Threads > maxPasswordThreads ||
		p.SaltLen < 8 || p.SaltLen > 64 || p.KeyLen < 16 || p.KeyLen > 64 {
		return fmt.Errorf("password: parameters out of range (t=%d m=%d p=%d salt=%d key=%d): %w",
			p.Time, p.MemoryKiB, p.Threads, p.SaltLen, p.KeyLen, ErrInvalidHash)
	}
	return nil
}

func parsePasswordHash(encoded string) (PasswordParams, []byte, []byte, error) {
	var p PasswordParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("password: not an argon2id hash: %w", ErrInvalidHash)
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version ||
		parts[2] != fmt.Sprintf("v=%d", version) {
		return p, nil, nil, fmt.Errorf("password: argon2 version: %w", ErrInvalidHash)
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil ||
		threads > maxPasswordThreads || parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, threads) {
		return p, nil, nil, fmt.Errorf("password: argon2 parameters: %w", ErrInvalidHash)
	}
	p.Threads = uint8(threads)
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("password: salt: %w", ErrInvalidHash)
	}
	sum, err := b64.DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, fmt.Errorf("password: hash: %w", ErrInvalidHash)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(sum))
	if err := p.validate(); err != nil {
		return p, nil, nil, err
	}
	return p, salt, sum, nil
}
