package keyops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Request limits. The label and id bounds are the key database's
// (keydb.MaxLabelLen and keydb.MaxKeyIDLen), repeated here so that keyops
// refuses a request before the node generates anything for it.
const (
	// MaxDataSize is the largest plaintext, message or MAC input, in bytes,
	// that one request may carry (64 KiB, the hsmv1 API's bound).
	MaxDataSize = 64 << 10
	// MaxLabelLen is the longest key label, in bytes.
	MaxLabelLen = 127
	// MaxKeyIDLen is the longest key id, in bytes.
	MaxKeyIDLen = 128
	// MaxWrappedSize is the largest wrapped key, in bytes, UnwrapKey takes:
	// far above a wrapped RSA-4096 private key (about 3 KiB with RSA-AES).
	MaxWrappedSize = 16 << 10
)

// Key sizes.
const (
	// MinGenericSecretBits is the smallest generic secret key; its size is
	// also a multiple of 8 bits.
	MinGenericSecretBits = 128
	// MaxGenericSecretBits is the largest generic secret key.
	MaxGenericSecretBits = 4096
	// MinRSABits is the smallest RSA modulus UnwrapKey imports; generated
	// keys are 2048, 3072 or 4096 bits.
	MinRSABits = 2048
	// MaxRSABits is the largest RSA modulus UnwrapKey imports.
	MaxRSABits = 4096
)

// gcmNonceSize is the AES-GCM nonce length (NIST SP 800-38D §8.2).
const gcmNonceSize = cryptocore.NonceSize

// validateLabelID checks a new key's label and id against the key
// database's bounds.
func validateLabelID(label string, id []byte) error {
	if len(label) > MaxLabelLen {
		return fmt.Errorf("label of %d bytes, at most %d: %w", len(label), MaxLabelLen, ErrInvalidArgument)
	}
	if len(id) > MaxKeyIDLen {
		return fmt.Errorf("id of %d bytes, at most %d: %w", len(id), MaxKeyIDLen, ErrInvalidArgument)
	}
	return nil
}

// newAttributes returns the attributes every new key gets: label, a copy of
// id, class, type, token, and the usage flags of u (nil means none).
func newAttributes(class hsmv1.KeyClass, typ hsmv1.KeyType, label string, id []byte, u *hsmv1.KeyUsage) *hsmv1.KeyAttributes {
	return &hsmv1.KeyAttributes{
		Label:       label,
		Id:          append([]byte(nil), id...),
		Class:       class,
		Type:        typ,
		Token:       true,
		Extractable: u.GetExtractable(),
		Encrypt:     u.GetEncrypt(),
		Decrypt:     u.GetDecrypt(),
		Wrap:        u.GetWrap(),
		Unwrap:      u.GetUnwrap(),
		Sign:        u.GetSign(),
		Verify:      u.GetVerify(),
	}
}

// hashOf maps an API hash to cryptocore's; HASH_UNSPECIFIED means SHA-256.
// Whether the operation accepts the hash is left to cryptocore (SHA-1 is
// only offered for OAEP).
func hashOf(h hsmv1.Hash) (cryptocore.Hash, error) {
	switch h {
	case hsmv1.Hash_HASH_UNSPECIFIED, hsmv1.Hash_HASH_SHA256:
		return cryptocore.SHA256, nil
	case hsmv1.Hash_HASH_SHA1:
		return cryptocore.SHA1, nil
	case hsmv1.Hash_HASH_SHA224:
		return cryptocore.SHA224, nil
	case hsmv1.Hash_HASH_SHA384:
		return cryptocore.SHA384, nil
	case hsmv1.Hash_HASH_SHA512:
		return cryptocore.SHA512, nil
	}
	return 0, fmt.Errorf("hash %v: %w", h, ErrInvalidArgument)
}

// curveOf maps an API curve to cryptocore's, with its size in bits.
func curveOf(c hsmv1.Curve) (cryptocore.Curve, uint32, error) {
	switch c {
	case hsmv1.Curve_CURVE_P256:
		return cryptocore.P256, 256, nil
	case hsmv1.Curve_CURVE_P384:
		return cryptocore.P384, 384, nil
	case hsmv1.Curve_CURVE_P521:
		return cryptocore.P521, 521, nil
	}
	return 0, 0, fmt.Errorf("curve %v: %w", c, ErrInvalidArgument)
}

// apiCurve maps a cryptocore curve back to the API's, with its size in bits.
func apiCurve(c cryptocore.Curve) (hsmv1.Curve, uint32, error) {
	switch c {
	case cryptocore.P256:
		return hsmv1.Curve_CURVE_P256, 256, nil
	case cryptocore.P384:
		return hsmv1.Curve_CURVE_P384, 384, nil
	case cryptocore.P521:
		return hsmv1.Curve_CURVE_P521, 521, nil
	}
	return 0, 0, fmt.Errorf("curve %v: %w", c, ErrInvalidArgument)
}

// invalid wraps a cryptocore error about the request (a size, a hash, an
// input that does not fit) as ErrInvalidArgument, keeping the cause.
func invalid(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrInvalidArgument, err)
}

// decryptFailed wraps a decryption or unwrapping failure as ErrDecrypt.
func decryptFailed(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrDecrypt, err)
}

// requireKey checks that attrs names a key of one of the given classes and
// of type typ, for the operation op.
func requireKey(attrs *hsmv1.KeyAttributes, op string, typ hsmv1.KeyType, classes ...hsmv1.KeyClass) error {
	if attrs == nil {
		return fmt.Errorf("%s: no key: %w", op, ErrInvalidArgument)
	}
	if attrs.GetType() != typ {
		return fmt.Errorf("%s needs a %v key, not %v: %w", op, typ, attrs.GetType(), ErrInvalidArgument)
	}
	for _, c := range classes {
		if attrs.GetClass() == c {
			return nil
		}
	}
	return fmt.Errorf("%s cannot use a %v key object: %w", op, attrs.GetClass(), ErrInvalidArgument)
}

// permit returns ErrPermission unless allowed, the key's usage attribute
// named attr.
func permit(allowed bool, attr string) error {
	if !allowed {
		return fmt.Errorf("key attribute %s is not set: %w", attr, ErrPermission)
	}
	return nil
}

// aesKey checks that material is an AES key of the attributes' size.
func aesKey(attrs *hsmv1.KeyAttributes, material []byte) ([]byte, error) {
	switch len(material) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("AES key of %d bytes: %w", len(material), ErrKeyMaterial)
	}
	if s := attrs.GetSizeBits(); s != 0 && int(s) != 8*len(material) {
		return nil, fmt.Errorf("AES key of %d bytes, attributes say %d bits: %w", len(material), s, ErrKeyMaterial)
	}
	return material, nil
}

// secretKey checks that material is a generic secret of the attributes'
// size.
func secretKey(attrs *hsmv1.KeyAttributes, material []byte) ([]byte, error) {
	if n := len(material); n*8 < MinGenericSecretBits || n*8 > MaxGenericSecretBits {
		return nil, fmt.Errorf("generic secret of %d bytes: %w", n, ErrKeyMaterial)
	}
	if s := attrs.GetSizeBits(); s != 0 && int(s) != 8*len(material) {
		return nil, fmt.Errorf("generic secret of %d bytes, attributes say %d bits: %w", len(material), s, ErrKeyMaterial)
	}
	return material, nil
}

// rsaPrivate parses a private RSA key object's material.
func rsaPrivate(material []byte) (*rsa.PrivateKey, error) {
	k, err := cryptocore.ParsePrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("RSA private key: %w: %w", ErrKeyMaterial, err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("RSA key object holds a %T: %w", k, ErrKeyMaterial)
	}
	return priv, nil
}

// ecPrivate parses a private EC key object's material.
func ecPrivate(material []byte) (*ecdsa.PrivateKey, error) {
	k, err := cryptocore.ParsePrivateKey(material)
	if err != nil {
		return nil, fmt.Errorf("EC private key: %w: %w", ErrKeyMaterial, err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("EC key object holds a %T: %w", k, ErrKeyMaterial)
	}
	return priv, nil
}

// rsaPublic returns the RSA public key of a public or private RSA key
// object: from its public_key attribute, or for a private key without one,
// from its material.
func rsaPublic(attrs *hsmv1.KeyAttributes, material []byte) (*rsa.PublicKey, error) {
	if len(attrs.GetPublicKey()) == 0 {
		if attrs.GetClass() != hsmv1.KeyClass_KEY_CLASS_PRIVATE {
			return nil, fmt.Errorf("RSA public key object without public_key: %w", ErrKeyMaterial)
		}
		priv, err := rsaPrivate(material)
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	}
	k, err := cryptocore.ParsePublicKey(attrs.GetPublicKey())
	if err != nil {
		return nil, fmt.Errorf("RSA public key: %w: %w", ErrKeyMaterial, err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("RSA key object's public_key is a %T: %w", k, ErrKeyMaterial)
	}
	return pub, nil
}

// ecPublic is rsaPublic for EC keys.
func ecPublic(attrs *hsmv1.KeyAttributes, material []byte) (*ecdsa.PublicKey, error) {
	if len(attrs.GetPublicKey()) == 0 {
		if attrs.GetClass() != hsmv1.KeyClass_KEY_CLASS_PRIVATE {
			return nil, fmt.Errorf("EC public key object without public_key: %w", ErrKeyMaterial)
		}
		priv, err := ecPrivate(material)
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	}
	k, err := cryptocore.ParsePublicKey(attrs.GetPublicKey())
	if err != nil {
		return nil, fmt.Errorf("EC public key: %w: %w", ErrKeyMaterial, err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("EC key object's public_key is a %T: %w", k, ErrKeyMaterial)
	}
	return pub, nil
}
