package keyops

import (
	"errors"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Encrypt encrypts req.plaintext (at most MaxDataSize bytes) with the key
// object attrs, whose material is material, under req.mechanism:
//
//   - AES_GCM: an AES secret key. The result is nonce || ciphertext || tag
//     with a random 12-byte nonce; req.aad is the additional data. The hash
//     fields are ignored.
//   - RSA_OAEP: an RSA public or private key object (the public key is taken
//     from public_key, or from the material). req.hash and req.mgf_hash
//     default to SHA-256; req.aad is the OAEP label. The plaintext must fit
//     the modulus (k − 2·hLen − 2 bytes).
//
// The key's encrypt attribute must be set (ErrPermission). A mechanism that
// does not fit the key, or an oversize plaintext, is ErrInvalidArgument.
func Encrypt(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.EncryptRequest) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	if n := len(req.GetPlaintext()); n > MaxDataSize {
		return nil, fmt.Errorf("plaintext of %d bytes, at most %d: %w", n, MaxDataSize, ErrInvalidArgument)
	}
	switch req.GetMechanism() {
	case hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM:
		if err := requireKey(attrs, "AES-GCM", hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyClass_KEY_CLASS_SECRET); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetEncrypt(), "encrypt"); err != nil {
			return nil, err
		}
		key, err := aesKey(attrs, material)
		if err != nil {
			return nil, err
		}
		return sealGCM(key, req.GetPlaintext(), req.GetAad())
	case hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP:
		if err := requireKey(attrs, "RSA-OAEP encryption", hsmv1.KeyType_KEY_TYPE_RSA,
			hsmv1.KeyClass_KEY_CLASS_PUBLIC, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetEncrypt(), "encrypt"); err != nil {
			return nil, err
		}
		h, mgf, err := oaepHashes(req.GetHash(), req.GetMgfHash())
		if err != nil {
			return nil, err
		}
		pub, err := rsaPublic(attrs, material)
		if err != nil {
			return nil, err
		}
		ct, err := cryptocore.EncryptOAEP(pub, h, mgf, req.GetPlaintext(), req.GetAad())
		if err != nil {
			return nil, oaepEncryptError("RSA-OAEP plaintext", err)
		}
		return ct, nil
	}
	return nil, fmt.Errorf("encryption mechanism %v: %w", req.GetMechanism(), ErrInvalidArgument)
}

// Decrypt reverses Encrypt: it decrypts req.ciphertext with the key object
// attrs, whose material is material, under req.mechanism, with the same aad
// and hashes. AES_GCM needs an AES secret key; RSA_OAEP needs an RSA private
// key. The key's decrypt attribute must be set (ErrPermission). A
// ciphertext that does not decrypt or authenticate is ErrDecrypt, whatever
// the cause.
func Decrypt(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.DecryptRequest) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	if n, limit := len(req.GetCiphertext()), MaxDataSize+gcmNonceSize+cryptocore.TagSize; n > limit {
		return nil, fmt.Errorf("ciphertext of %d bytes, at most %d: %w", n, limit, ErrInvalidArgument)
	}
	switch req.GetMechanism() {
	case hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM:
		if err := requireKey(attrs, "AES-GCM", hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyClass_KEY_CLASS_SECRET); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetDecrypt(), "decrypt"); err != nil {
			return nil, err
		}
		key, err := aesKey(attrs, material)
		if err != nil {
			return nil, err
		}
		return openGCM(key, req.GetCiphertext(), req.GetAad())
	case hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP:
		if err := requireKey(attrs, "RSA-OAEP decryption", hsmv1.KeyType_KEY_TYPE_RSA, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetDecrypt(), "decrypt"); err != nil {
			return nil, err
		}
		h, mgf, err := oaepHashes(req.GetHash(), req.GetMgfHash())
		if err != nil {
			return nil, err
		}
		priv, err := rsaPrivate(material)
		if err != nil {
			return nil, err
		}
		pt, err := cryptocore.DecryptOAEP(priv, h, mgf, req.GetCiphertext(), req.GetAad())
		if err != nil {
			return nil, oaepDecryptError("RSA-OAEP decryption", err)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("encryption mechanism %v: %w", req.GetMechanism(), ErrInvalidArgument)
}

// sealGCM encrypts with AES-GCM under key (16, 24 or 32 bytes) and a fresh
// random nonce, returning nonce || ciphertext || tag.
func sealGCM(key, plaintext, aad []byte) ([]byte, error) {
	if len(key) == cryptocore.KeySize {
		a, err := cryptocore.NewAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("AES-GCM: %w: %w", ErrKeyMaterial, err)
		}
		return a.Seal(nil, plaintext, aad)
	}
	nonce, err := cryptocore.RandomBytes(gcmNonceSize)
	if err != nil {
		return nil, fmt.Errorf("AES-GCM nonce: %w", err)
	}
	ct, err := cryptocore.SealGCM(key, nonce, plaintext, aad)
	if err != nil {
		return nil, fmt.Errorf("AES-GCM: %w: %w", ErrKeyMaterial, err)
	}
	return append(nonce, ct...), nil
}

// openGCM reverses sealGCM. Every failure that depends on sealed is
// ErrDecrypt.
func openGCM(key, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < gcmNonceSize+cryptocore.TagSize {
		return nil, decryptFailed("AES-GCM", cryptocore.ErrInputSize)
	}
	var (
		pt  []byte
		err error
	)
	if len(key) == cryptocore.KeySize {
		a, aerr := cryptocore.NewAEAD(key)
		if aerr != nil {
			return nil, fmt.Errorf("AES-GCM: %w: %w", ErrKeyMaterial, aerr)
		}
		pt, err = a.Open(nil, sealed, aad)
	} else {
		pt, err = cryptocore.OpenGCM(key, sealed[:gcmNonceSize], sealed[gcmNonceSize:], aad)
	}
	if err != nil {
		return nil, decryptFailed("AES-GCM", err)
	}
	return pt, nil
}

// oaepHashes returns RSA-OAEP's hash and MGF1 hash, SHA-256 when unset.
func oaepHashes(hash, mgfHash hsmv1.Hash) (cryptocore.Hash, cryptocore.Hash, error) {
	h, err := hashOf(hash)
	if err != nil {
		return 0, 0, err
	}
	mgf, err := hashOf(mgfHash)
	if err != nil {
		return 0, 0, err
	}
	return h, mgf, nil
}

// oaepEncryptError classifies an error of cryptocore.EncryptOAEP: an input
// too long for the modulus or an unsupported hash is the request's fault,
// anything else the key's.
func oaepEncryptError(what string, err error) error {
	if errors.Is(err, cryptocore.ErrInputSize) || errors.Is(err, cryptocore.ErrUnsupported) {
		return invalid(what+" does not fit the RSA key", err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrKeyMaterial, err)
}

// oaepDecryptError classifies an error of cryptocore.DecryptOAEP: every
// failure that depends on the ciphertext is ErrDecrypt, an unsupported hash
// ErrInvalidArgument, anything else the key's.
func oaepDecryptError(what string, err error) error {
	switch {
	case errors.Is(err, cryptocore.ErrDecryptFailed):
		return decryptFailed(what, err)
	case errors.Is(err, cryptocore.ErrUnsupported):
		return invalid(what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrKeyMaterial, err)
}
