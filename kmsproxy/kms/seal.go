package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// The fleet's internal key seals secrets KMS keeps at rest (kmsuser
// passwords). It is an AES-256 HSM key of the fleet's crypto user,
// created on first use, found again by its label; its id attribute, unique
// in a cluster, keeps two endpoints from creating two.
const (
	internalKeyLabel = "hsmsim:kms-internal"
	sealVersion      = 0x01
)

var internalKeyID = []byte(internalKeyLabel)

// errSealed is returned for a sealed value that does not open.
var errSealed = errors.New("kms: sealed value does not open")

// internalKey returns the internal key's handle, finding or creating it.
func (s *Service) internalKey(ctx context.Context) (uint64, error) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if s.sealHandle != 0 {
		return s.sealHandle, nil
	}
	h, err := s.fleet.findKey(ctx, internalKeyLabel)
	if err != nil {
		return 0, err
	}
	if h == 0 {
		if h, err = s.fleet.GenerateKey(ctx, internalKeyLabel, internalKeyID); err != nil {
			return 0, err
		}
		s.log.Info("internal key created in the fleet", "handle", h)
	}
	s.sealHandle = h
	return h, nil
}

// sealAAD binds a sealed kmsuser password to its custom key store.
func sealAAD(cksID string) []byte {
	return []byte(internalKeyLabel + "/kmsuser-password/" + cksID)
}

// seal encrypts a custom key store's kmsuser password with the internal key.
func (s *Service) seal(ctx context.Context, cksID, password string) ([]byte, error) {
	ctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	h, err := s.internalKey(ctx)
	if err != nil {
		return nil, err
	}
	ct, err := s.fleet.Encrypt(ctx, h, []byte(password), sealAAD(cksID))
	if err != nil {
		s.forgetInternalKey(err)
		return nil, err
	}
	return append([]byte{sealVersion}, ct...), nil
}

// unseal reverses seal.
func (s *Service) unseal(ctx context.Context, cksID string, sealed []byte) (string, error) {
	if len(sealed) < 1 || sealed[0] != sealVersion {
		return "", errSealed
	}
	ctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	h, err := s.internalKey(ctx)
	if err != nil {
		return "", err
	}
	pt, err := s.fleet.Decrypt(ctx, h, sealed[1:], sealAAD(cksID))
	if err != nil {
		s.forgetInternalKey(err)
		return "", fmt.Errorf("%w: %w", errSealed, err)
	}
	return string(pt), nil
}

// forgetInternalKey drops the cached handle when the fleet no longer has it.
func (s *Service) forgetInternalKey(err error) {
	if errors.Is(err, ErrHSMKeyNotFound) {
		s.sealMu.Lock()
		s.sealHandle = 0
		s.sealMu.Unlock()
	}
}

// passwordAlphabet is what rotated kmsuser passwords are made of: 64
// characters, so that a random byte modulo 64 is uniform.
const passwordAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

// randomPassword returns a 32-character (192-bit) password from crypto/rand.
func randomPassword() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	for i := range b {
		b[i] = passwordAlphabet[b[i]&63]
	}
	return string(b)
}
