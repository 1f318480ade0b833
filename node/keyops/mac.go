package keyops

import (
	"errors"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// GenerateMac returns HMAC-req.hash of req.message (at most MaxDataSize
// bytes) under the generic secret key attrs, whose material is material.
// req.hash is SHA-224, SHA-256 (the default when unset), SHA-384 or
// SHA-512. The key's sign attribute must be set (ErrPermission): CloudHSM
// uses sign and verify for HMAC keys.
func GenerateMac(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.GenerateMacRequest) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	h, key, err := macInput(attrs, material, req.GetHash(), req.GetMessage(), attrs.GetSign(), "sign")
	if err != nil {
		return nil, err
	}
	mac, err := cryptocore.ComputeMAC(h, key, req.GetMessage())
	if err != nil {
		return nil, macError(err)
	}
	return mac, nil
}

// VerifyMac checks that req.mac is the full-length HMAC of req.message under
// the generic secret key attrs, as GenerateMac computes it. A MAC that
// differs (or has another length) returns false and no error. The key's
// verify attribute must be set (ErrPermission).
func VerifyMac(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.VerifyMacRequest) (valid bool, err error) {
	if req == nil {
		return false, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	h, key, err := macInput(attrs, material, req.GetHash(), req.GetMessage(), attrs.GetVerify(), "verify")
	if err != nil {
		return false, err
	}
	switch err := cryptocore.VerifyMAC(h, key, req.GetMessage(), req.GetMac()); {
	case err == nil:
		return true, nil
	case errors.Is(err, cryptocore.ErrInvalidMAC):
		return false, nil
	default:
		return false, macError(err)
	}
}

// macInput checks a MAC request: the message size, the key, the usage
// attribute attr (allowed) and the hash. It returns the hash and the key.
func macInput(attrs *hsmv1.KeyAttributes, material []byte, hash hsmv1.Hash, msg []byte, allowed bool, attr string) (cryptocore.Hash, []byte, error) {
	if len(msg) > MaxDataSize {
		return 0, nil, fmt.Errorf("message of %d bytes, at most %d: %w", len(msg), MaxDataSize, ErrInvalidArgument)
	}
	if err := requireKey(attrs, "HMAC", hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, hsmv1.KeyClass_KEY_CLASS_SECRET); err != nil {
		return 0, nil, err
	}
	if err := permit(allowed, attr); err != nil {
		return 0, nil, err
	}
	h, err := hashOf(hash)
	if err != nil {
		return 0, nil, err
	}
	if h == cryptocore.SHA1 {
		return 0, nil, fmt.Errorf("HMAC hash %v, want SHA-224, SHA-256, SHA-384 or SHA-512: %w", h, ErrInvalidArgument)
	}
	key, err := secretKey(attrs, material)
	if err != nil {
		return 0, nil, err
	}
	return h, key, nil
}

// macError classifies a cryptocore HMAC error.
func macError(err error) error {
	if errors.Is(err, cryptocore.ErrUnsupported) {
		return invalid("HMAC", err)
	}
	return fmt.Errorf("HMAC: %w: %w", ErrKeyMaterial, err)
}
