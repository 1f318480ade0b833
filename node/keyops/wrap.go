package keyops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// rsaAESKeySize is the size of the fresh AES key WRAP_MECHANISM_RSA_AES
// wraps the target key under (AES-256).
const rsaAESKeySize = 32

// WrapKey wraps the key object keyAttrs, whose material is keyMaterial,
// under the key object wrappingAttrs, whose material is wrappingMaterial,
// with req.mechanism, and returns the wrapped bytes. What is wrapped is the
// key's material: the raw bytes of an AES or generic secret key, the PKCS
// #8 DER of a private key. Public key objects are not wrapped (their key is
// the public_key attribute).
//
//   - AES_KW (RFC 3394) and AES_KWP (RFC 5649): the wrapping key is an AES
//     secret key. AES_KW needs a key of a multiple of 8 bytes, at least 16.
//   - RSA_OAEP: the wrapping key is an RSA public or private key object;
//     the key bytes are encrypted with RSA-OAEP, req.hash (default SHA-256)
//     as both the OAEP and MGF1 hash, no label. They must fit the modulus.
//   - RSA_AES (PKCS #11 CKM_RSA_AES_KEY_WRAP): a fresh AES-256 key is
//     encrypted as for RSA_OAEP and the key is wrapped with AES-KWP under it;
//     the result is the RSA-OAEP ciphertext (the modulus size) followed by
//     the AES-KWP output.
//
// The key to wrap must be extractable and the wrapping key must have the
// wrap attribute (ErrPermission).
func WrapKey(wrappingAttrs *hsmv1.KeyAttributes, wrappingMaterial []byte, keyAttrs *hsmv1.KeyAttributes, keyMaterial []byte, req *hsmv1.WrapKeyRequest) ([]byte, error) {
	if req == nil || keyAttrs == nil {
		return nil, fmt.Errorf("no request or key: %w", ErrInvalidArgument)
	}
	if err := permit(keyAttrs.GetExtractable(), "extractable"); err != nil {
		return nil, err
	}
	if err := checkWrappable(keyAttrs, keyMaterial); err != nil {
		return nil, err
	}
	switch mech := req.GetMechanism(); mech {
	case hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW, hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP:
		if err := requireKey(wrappingAttrs, mech.String(), hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyClass_KEY_CLASS_SECRET); err != nil {
			return nil, err
		}
		if err := permit(wrappingAttrs.GetWrap(), "wrap"); err != nil {
			return nil, err
		}
		kek, err := aesKey(wrappingAttrs, wrappingMaterial)
		if err != nil {
			return nil, err
		}
		var wrapped []byte
		if mech == hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW {
			if n := len(keyMaterial); n < 16 || n%8 != 0 {
				return nil, fmt.Errorf("AES-KW wraps keys of a multiple of 8 bytes, at least 16, not %d (use AES-KWP): %w", n, ErrInvalidArgument)
			}
			wrapped, err = cryptocore.WrapKW(kek, keyMaterial)
		} else {
			wrapped, err = cryptocore.WrapKWP(kek, keyMaterial)
		}
		if err != nil {
			return nil, invalid(mech.String(), err)
		}
		return wrapped, nil
	case hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES:
		if err := requireKey(wrappingAttrs, mech.String(), hsmv1.KeyType_KEY_TYPE_RSA,
			hsmv1.KeyClass_KEY_CLASS_PUBLIC, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(wrappingAttrs.GetWrap(), "wrap"); err != nil {
			return nil, err
		}
		h, err := hashOf(req.GetHash())
		if err != nil {
			return nil, err
		}
		pub, err := rsaPublic(wrappingAttrs, wrappingMaterial)
		if err != nil {
			return nil, err
		}
		if mech == hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP {
			wrapped, err := cryptocore.EncryptOAEP(pub, h, h, keyMaterial, nil)
			if err != nil {
				return nil, oaepEncryptError("RSA-OAEP key wrap", err)
			}
			return wrapped, nil
		}
		return wrapRSAAES(pub, h, keyMaterial)
	}
	return nil, fmt.Errorf("wrap mechanism %v: %w", req.GetMechanism(), ErrInvalidArgument)
}

// wrapRSAAES is CKM_RSA_AES_KEY_WRAP: RSA-OAEP(pub, fresh AES-256 key) ||
// AES-KWP(fresh key, keyMaterial).
func wrapRSAAES(pub *rsa.PublicKey, h cryptocore.Hash, keyMaterial []byte) ([]byte, error) {
	eph, err := cryptocore.RandomBytes(rsaAESKeySize)
	if err != nil {
		return nil, fmt.Errorf("RSA-AES key wrap: %w", err)
	}
	defer cryptocore.Zero(eph)
	head, err := cryptocore.EncryptOAEP(pub, h, h, eph, nil)
	if err != nil {
		return nil, oaepEncryptError("RSA-AES key wrap", err)
	}
	tail, err := cryptocore.WrapKWP(eph, keyMaterial)
	if err != nil {
		return nil, invalid("RSA-AES key wrap", err)
	}
	return append(head, tail...), nil
}

// checkWrappable checks that keyAttrs is a secret or private key whose
// material fits its type.
func checkWrappable(keyAttrs *hsmv1.KeyAttributes, keyMaterial []byte) error {
	switch keyAttrs.GetClass() {
	case hsmv1.KeyClass_KEY_CLASS_SECRET:
		switch keyAttrs.GetType() {
		case hsmv1.KeyType_KEY_TYPE_AES:
			_, err := aesKey(keyAttrs, keyMaterial)
			return err
		case hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET:
			_, err := secretKey(keyAttrs, keyMaterial)
			return err
		}
	case hsmv1.KeyClass_KEY_CLASS_PRIVATE:
		switch keyAttrs.GetType() {
		case hsmv1.KeyType_KEY_TYPE_RSA:
			_, err := rsaPrivate(keyMaterial)
			return err
		case hsmv1.KeyType_KEY_TYPE_EC:
			_, err := ecPrivate(keyMaterial)
			return err
		}
	case hsmv1.KeyClass_KEY_CLASS_PUBLIC:
		return fmt.Errorf("a public key is not wrapped; read its public_key: %w", ErrInvalidArgument)
	}
	return fmt.Errorf("cannot wrap a %v %v key: %w", keyAttrs.GetClass(), keyAttrs.GetType(), ErrInvalidArgument)
}

// UnwrapKey reverses WrapKey: it unwraps req.wrapped with the key object
// unwrappingAttrs, whose material is unwrappingMaterial, under
// req.mechanism, and returns the new key's attributes and material. AES_KW
// and AES_KWP need an AES secret key; RSA_OAEP and RSA_AES an RSA private
// key (req.hash as in WrapKey). The unwrapping key must have the unwrap
// attribute (ErrPermission).
//
// req.type says what the result is: an AES key (16, 24 or 32 bytes), a
// generic secret (16 to 512 bytes), or an RSA (2048 to 4096 bits) or EC
// (P-256, P-384, P-521) private key as PKCS #8, whose type must match. A
// result that does not is ErrInvalidArgument; wrapped bytes that do not
// unwrap are ErrDecrypt. The attributes are filled as the generators fill
// them (label, id and usage from the request; for a private key, public_key
// and its key check value), and a private key's material is re-encoded
// canonically. Handle, owner and record_id are left for the node to set.
func UnwrapKey(unwrappingAttrs *hsmv1.KeyAttributes, unwrappingMaterial []byte, req *hsmv1.UnwrapKeyRequest) (attrs *hsmv1.KeyAttributes, material []byte, err error) {
	if req == nil {
		return nil, nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	if err := validateLabelID(req.GetLabel(), req.GetId()); err != nil {
		return nil, nil, err
	}
	switch req.GetType() {
	case hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, hsmv1.KeyType_KEY_TYPE_RSA, hsmv1.KeyType_KEY_TYPE_EC:
	default:
		return nil, nil, fmt.Errorf("unwrapped key type %v: %w", req.GetType(), ErrInvalidArgument)
	}
	if n := len(req.GetWrapped()); n == 0 || n > MaxWrappedSize {
		return nil, nil, fmt.Errorf("wrapped key of %d bytes, want 1..%d: %w", n, MaxWrappedSize, ErrInvalidArgument)
	}
	plain, err := unwrapBytes(unwrappingAttrs, unwrappingMaterial, req)
	if err != nil {
		return nil, nil, err
	}
	return importKey(req, plain)
}

// unwrapBytes recovers the wrapped key bytes of req.
func unwrapBytes(unwrappingAttrs *hsmv1.KeyAttributes, unwrappingMaterial []byte, req *hsmv1.UnwrapKeyRequest) ([]byte, error) {
	wrapped := req.GetWrapped()
	switch mech := req.GetMechanism(); mech {
	case hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW, hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP:
		if err := requireKey(unwrappingAttrs, mech.String(), hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyClass_KEY_CLASS_SECRET); err != nil {
			return nil, err
		}
		if err := permit(unwrappingAttrs.GetUnwrap(), "unwrap"); err != nil {
			return nil, err
		}
		kek, err := aesKey(unwrappingAttrs, unwrappingMaterial)
		if err != nil {
			return nil, err
		}
		var plain []byte
		if mech == hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KW {
			plain, err = cryptocore.UnwrapKW(kek, wrapped)
		} else {
			plain, err = cryptocore.UnwrapKWP(kek, wrapped)
		}
		if err != nil {
			return nil, decryptFailed(mech.String(), err)
		}
		return plain, nil
	case hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES:
		if err := requireKey(unwrappingAttrs, mech.String(), hsmv1.KeyType_KEY_TYPE_RSA, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(unwrappingAttrs.GetUnwrap(), "unwrap"); err != nil {
			return nil, err
		}
		h, err := hashOf(req.GetHash())
		if err != nil {
			return nil, err
		}
		priv, err := rsaPrivate(unwrappingMaterial)
		if err != nil {
			return nil, err
		}
		if mech == hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP {
			plain, err := cryptocore.DecryptOAEP(priv, h, h, wrapped, nil)
			if err != nil {
				return nil, oaepDecryptError("RSA-OAEP key unwrap", err)
			}
			return plain, nil
		}
		return unwrapRSAAES(priv, h, wrapped)
	}
	return nil, fmt.Errorf("wrap mechanism %v: %w", req.GetMechanism(), ErrInvalidArgument)
}

// unwrapRSAAES reverses wrapRSAAES. The temporary AES key may be 16, 24 or
// 32 bytes, as CKM_RSA_AES_KEY_WRAP allows.
func unwrapRSAAES(priv *rsa.PrivateKey, h cryptocore.Hash, wrapped []byte) ([]byte, error) {
	k := priv.Size()
	if len(wrapped) <= k {
		return nil, decryptFailed("RSA-AES key unwrap", cryptocore.ErrInputSize)
	}
	eph, err := cryptocore.DecryptOAEP(priv, h, h, wrapped[:k], nil)
	if err != nil {
		return nil, oaepDecryptError("RSA-AES key unwrap", err)
	}
	defer cryptocore.Zero(eph)
	switch len(eph) {
	case 16, 24, 32:
	default:
		return nil, decryptFailed("RSA-AES key unwrap", cryptocore.ErrKeySize)
	}
	plain, err := cryptocore.UnwrapKWP(eph, wrapped[k:])
	if err != nil {
		return nil, decryptFailed("RSA-AES key unwrap", err)
	}
	return plain, nil
}

// importKey checks unwrapped key bytes against req.type and returns the new
// key's attributes and material. It takes ownership of plain: it is either
// returned as the material or zeroed.
func importKey(req *hsmv1.UnwrapKeyRequest, plain []byte) (*hsmv1.KeyAttributes, []byte, error) {
	typ := req.GetType()
	switch typ {
	case hsmv1.KeyType_KEY_TYPE_AES, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET:
		n := len(plain)
		if typ == hsmv1.KeyType_KEY_TYPE_AES && n != 16 && n != 24 && n != 32 {
			cryptocore.Zero(plain)
			return nil, nil, fmt.Errorf("unwrapped AES key of %d bytes, want 16, 24 or 32: %w", n, ErrInvalidArgument)
		}
		if typ == hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET && (8*n < MinGenericSecretBits || 8*n > MaxGenericSecretBits) {
			cryptocore.Zero(plain)
			return nil, nil, fmt.Errorf("unwrapped generic secret of %d bytes, want %d..%d: %w",
				n, MinGenericSecretBits/8, MaxGenericSecretBits/8, ErrInvalidArgument)
		}
		attrs, err := secretAttributes(typ, plain, req.GetLabel(), req.GetId(), req.GetUsage())
		if err != nil {
			cryptocore.Zero(plain)
			return nil, nil, err
		}
		return attrs, plain, nil
	}
	defer cryptocore.Zero(plain)
	key, err := cryptocore.ParsePrivateKey(plain)
	if err != nil {
		return nil, nil, invalid("unwrapped key is not a PKCS #8 RSA or EC private key", err)
	}
	switch key.(type) {
	case *rsa.PrivateKey:
		if typ != hsmv1.KeyType_KEY_TYPE_RSA {
			return nil, nil, fmt.Errorf("unwrapped key is an RSA key, not %v: %w", typ, ErrInvalidArgument)
		}
	case *ecdsa.PrivateKey:
		if typ != hsmv1.KeyType_KEY_TYPE_EC {
			return nil, nil, fmt.Errorf("unwrapped key is an EC key, not %v: %w", typ, ErrInvalidArgument)
		}
	}
	attrs, err := privateAttributes(key, req.GetLabel(), req.GetId(), req.GetUsage())
	if err != nil {
		return nil, nil, err
	}
	material, err := cryptocore.MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding unwrapped key: %w", err)
	}
	return attrs, material, nil
}
