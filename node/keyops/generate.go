package keyops

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// GenerateSymmetric generates an AES key (128, 192 or 256 bits) or a generic
// secret key (128 to 4096 bits, a multiple of 8) as req describes, and
// returns its attributes and its material (the raw key bytes).
//
// The attributes have class SECRET, the type and size, token set, the
// request's label, id and usage flags, and the key check value
// (cryptocore.KCVAES or cryptocore.KCVGenericSecret). Handle, owner and
// record_id are left for the node to set. The caller owns material and
// should zero it once sealed.
func GenerateSymmetric(req *hsmv1.GenerateSymmetricKeyRequest) (attrs *hsmv1.KeyAttributes, material []byte, err error) {
	if req == nil {
		return nil, nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	if err := validateLabelID(req.GetLabel(), req.GetId()); err != nil {
		return nil, nil, err
	}
	bits := req.GetSizeBits()
	switch req.GetType() {
	case hsmv1.KeyType_KEY_TYPE_AES:
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, nil, fmt.Errorf("AES key of %d bits, want 128, 192 or 256: %w", bits, ErrInvalidArgument)
		}
	case hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET:
		if bits < MinGenericSecretBits || bits > MaxGenericSecretBits || bits%8 != 0 {
			return nil, nil, fmt.Errorf("generic secret of %d bits, want %d..%d in steps of 8: %w",
				bits, MinGenericSecretBits, MaxGenericSecretBits, ErrInvalidArgument)
		}
	default:
		return nil, nil, fmt.Errorf("symmetric key type %v: %w", req.GetType(), ErrInvalidArgument)
	}
	material, err = cryptocore.RandomBytes(int(bits / 8))
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	attrs, err = secretAttributes(req.GetType(), material, req.GetLabel(), req.GetId(), req.GetUsage())
	if err != nil {
		cryptocore.Zero(material)
		return nil, nil, err
	}
	return attrs, material, nil
}

// secretAttributes returns the attributes of a secret key of type typ with
// the given material, whose length has been checked.
func secretAttributes(typ hsmv1.KeyType, material []byte, label string, id []byte, u *hsmv1.KeyUsage) (*hsmv1.KeyAttributes, error) {
	var kcv []byte
	var err error
	switch typ {
	case hsmv1.KeyType_KEY_TYPE_AES:
		kcv, err = cryptocore.KCVAES(material)
	case hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET:
		kcv, err = cryptocore.KCVGenericSecret(material)
	default:
		err = fmt.Errorf("secret key type %v: %w", typ, ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("key check value: %w", err)
	}
	attrs := newAttributes(hsmv1.KeyClass_KEY_CLASS_SECRET, typ, label, id, u)
	attrs.SizeBits = uint32(8 * len(material))
	attrs.Kcv = kcv
	return attrs, nil
}

// GenerateKeyPair generates an RSA key pair (modulus_bits 2048, 3072 or
// 4096; curve unset) or an EC key pair (curve P-256, P-384 or P-521;
// modulus_bits unset) as req describes. It returns the attributes of both
// halves and the private key's material as PKCS #8 DER.
//
// The private half has class PRIVATE and the request's usage flags,
// extractable included. The public half has class PUBLIC, is extractable
// (it holds nothing secret), and gets encrypt, verify and wrap as the
// private half has decrypt, sign and unwrap. Both carry the label, id,
// public_key (DER SubjectPublicKeyInfo) and the same key check value
// (cryptocore.KCVPublicKey); size_bits is the modulus size for RSA and the
// curve's size (256, 384, 521) for EC. Handles, pair_handle, owner and
// record_id are left for the node to set. The caller owns privMaterial and
// should zero it once sealed.
func GenerateKeyPair(req *hsmv1.GenerateKeyPairRequest) (pub, priv *hsmv1.KeyAttributes, privMaterial []byte, err error) {
	if req == nil {
		return nil, nil, nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	if err := validateLabelID(req.GetLabel(), req.GetId()); err != nil {
		return nil, nil, nil, err
	}
	var key crypto.Signer
	switch req.GetType() {
	case hsmv1.KeyType_KEY_TYPE_RSA:
		bits := req.GetModulusBits()
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, nil, nil, fmt.Errorf("RSA modulus of %d bits, want 2048, 3072 or 4096: %w", bits, ErrInvalidArgument)
		}
		if req.GetCurve() != hsmv1.Curve_CURVE_UNSPECIFIED {
			return nil, nil, nil, fmt.Errorf("curve given for an RSA key: %w", ErrInvalidArgument)
		}
		k, err := cryptocore.GenerateRSAKey(int(bits))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("generating RSA key: %w", err)
		}
		key = k
	case hsmv1.KeyType_KEY_TYPE_EC:
		if req.GetModulusBits() != 0 {
			return nil, nil, nil, fmt.Errorf("modulus_bits given for an EC key: %w", ErrInvalidArgument)
		}
		c, _, err := curveOf(req.GetCurve())
		if err != nil {
			return nil, nil, nil, err
		}
		k, err := cryptocore.GenerateECKey(c)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("generating EC key: %w", err)
		}
		key = k
	default:
		return nil, nil, nil, fmt.Errorf("key pair type %v: %w", req.GetType(), ErrInvalidArgument)
	}
	priv, err = privateAttributes(key, req.GetLabel(), req.GetId(), req.GetUsage())
	if err != nil {
		return nil, nil, nil, err
	}
	privMaterial, err = cryptocore.MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	u := req.GetUsage()
	pub = newAttributes(hsmv1.KeyClass_KEY_CLASS_PUBLIC, priv.GetType(), req.GetLabel(), req.GetId(), &hsmv1.KeyUsage{
		Extractable: true,
		Encrypt:     u.GetDecrypt(),
		Verify:      u.GetSign(),
		Wrap:        u.GetUnwrap(),
	})
	pub.SizeBits = priv.GetSizeBits()
	pub.Curve = priv.GetCurve()
	pub.PublicKey = append([]byte(nil), priv.GetPublicKey()...)
	pub.Kcv = append([]byte(nil), priv.GetKcv()...)
	return pub, priv, privMaterial, nil
}

// privateAttributes returns the attributes of a private key object for key:
// class PRIVATE, type, size, curve, public_key, key check value, and the
// label, id and usage given. RSA keys must have MinRSABits to MaxRSABits
// bits.
func privateAttributes(key crypto.Signer, label string, id []byte, u *hsmv1.KeyUsage) (*hsmv1.KeyAttributes, error) {
	var (
		typ   hsmv1.KeyType
		bits  uint32
		curve hsmv1.Curve
	)
	switch k := key.(type) {
	case *rsa.PrivateKey:
		n := k.N.BitLen()
		if n < MinRSABits || n > MaxRSABits {
			return nil, fmt.Errorf("RSA modulus of %d bits, want %d..%d: %w", n, MinRSABits, MaxRSABits, ErrInvalidArgument)
		}
		typ, bits = hsmv1.KeyType_KEY_TYPE_RSA, uint32(n)
	case *ecdsa.PrivateKey:
		c, err := cryptocore.CurveOf(&k.PublicKey)
		if err != nil {
			return nil, invalid("EC key", err)
		}
		curve, bits, err = apiCurve(c)
		if err != nil {
			return nil, err
		}
		typ = hsmv1.KeyType_KEY_TYPE_EC
	default:
		return nil, fmt.Errorf("private key of type %T: %w", key, ErrInvalidArgument)
	}
	der, err := cryptocore.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	kcv, err := cryptocore.KCVPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key check value: %w", err)
	}
	attrs := newAttributes(hsmv1.KeyClass_KEY_CLASS_PRIVATE, typ, label, id, u)
	attrs.SizeBits = bits
	attrs.Curve = curve
	attrs.PublicKey = der
	attrs.Kcv = kcv
	return attrs, nil
}
