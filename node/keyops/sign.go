package keyops

import (
	"errors"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// maxSignatureSize bounds a signature Verify looks at: far above an RSA-4096
// signature (512 bytes) or a DER ECDSA P-521 one (139 bytes).
const maxSignatureSize = 4096

// Sign signs req.message with the private key object attrs, whose material
// is material (PKCS #8), under req.mechanism: RSA_PKCS1_V15 and RSA_PSS
// (salt length = hash length) need an RSA key, ECDSA (DER signature) an EC
// key. req.hash is SHA-256 (the default when unset), SHA-384 or SHA-512.
// When req.is_digest is set, req.message is the digest and must be the
// hash's size; otherwise it is the message, at most MaxDataSize bytes.
//
// The key's sign attribute must be set (ErrPermission).
func Sign(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.SignRequest) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	h, err := signatureInput(req.GetHash(), req.GetMessage(), req.GetIsDigest())
	if err != nil {
		return nil, err
	}
	var sig []byte
	switch mech := req.GetMechanism(); mech {
	case hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15, hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS:
		if err := requireKey(attrs, mech.String(), hsmv1.KeyType_KEY_TYPE_RSA, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetSign(), "sign"); err != nil {
			return nil, err
		}
		priv, err := rsaPrivate(material)
		if err != nil {
			return nil, err
		}
		sig, err = cryptocore.SignRSA(priv, rsaScheme(mech), h, req.GetMessage(), req.GetIsDigest())
		if err != nil {
			return nil, signatureError("RSA signature", err)
		}
	case hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA:
		if err := requireKey(attrs, "ECDSA", hsmv1.KeyType_KEY_TYPE_EC, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return nil, err
		}
		if err := permit(attrs.GetSign(), "sign"); err != nil {
			return nil, err
		}
		priv, err := ecPrivate(material)
		if err != nil {
			return nil, err
		}
		sig, err = cryptocore.SignEC(priv, h, req.GetMessage(), req.GetIsDigest())
		if err != nil {
			return nil, signatureError("ECDSA signature", err)
		}
	default:
		return nil, fmt.Errorf("signature mechanism %v: %w", mech, ErrInvalidArgument)
	}
	return sig, nil
}

// Verify checks req.signature over req.message with the key object attrs,
// a public or private key (the public key is taken from public_key, or from
// the material), under the mechanism, hash and message rules of Sign. A
// signature that does not verify returns false and no error. The key's
// verify attribute must be set (ErrPermission).
func Verify(attrs *hsmv1.KeyAttributes, material []byte, req *hsmv1.VerifyRequest) (valid bool, err error) {
	if req == nil {
		return false, fmt.Errorf("no request: %w", ErrInvalidArgument)
	}
	h, err := signatureInput(req.GetHash(), req.GetMessage(), req.GetIsDigest())
	if err != nil {
		return false, err
	}
	if n := len(req.GetSignature()); n > maxSignatureSize {
		return false, fmt.Errorf("signature of %d bytes, at most %d: %w", n, maxSignatureSize, ErrInvalidArgument)
	}
	switch mech := req.GetMechanism(); mech {
	case hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15, hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS:
		if err := requireKey(attrs, mech.String(), hsmv1.KeyType_KEY_TYPE_RSA,
			hsmv1.KeyClass_KEY_CLASS_PUBLIC, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return false, err
		}
		if err := permit(attrs.GetVerify(), "verify"); err != nil {
			return false, err
		}
		pub, err := rsaPublic(attrs, material)
		if err != nil {
			return false, err
		}
		err = cryptocore.VerifyRSA(pub, rsaScheme(mech), h, req.GetMessage(), req.GetIsDigest(), req.GetSignature())
		return verifyResult("RSA signature", err)
	case hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA:
		if err := requireKey(attrs, "ECDSA", hsmv1.KeyType_KEY_TYPE_EC,
			hsmv1.KeyClass_KEY_CLASS_PUBLIC, hsmv1.KeyClass_KEY_CLASS_PRIVATE); err != nil {
			return false, err
		}
		if err := permit(attrs.GetVerify(), "verify"); err != nil {
			return false, err
		}
		pub, err := ecPublic(attrs, material)
		if err != nil {
			return false, err
		}
		err = cryptocore.VerifyEC(pub, h, req.GetMessage(), req.GetIsDigest(), req.GetSignature())
		return verifyResult("ECDSA signature", err)
	}
	return false, fmt.Errorf("signature mechanism %v: %w", req.GetMechanism(), ErrInvalidArgument)
}

// signatureInput checks a Sign or Verify request's hash and message: a
// message of at most MaxDataSize bytes, or a digest of the hash's size. It
// returns the hash, SHA-256 when unset.
func signatureInput(hash hsmv1.Hash, msg []byte, isDigest bool) (cryptocore.Hash, error) {
	h, err := hashOf(hash)
	if err != nil {
		return 0, err
	}
	switch h {
	case cryptocore.SHA256, cryptocore.SHA384, cryptocore.SHA512:
	default:
		return 0, fmt.Errorf("signature hash %v, want SHA-256, SHA-384 or SHA-512: %w", h, ErrInvalidArgument)
	}
	if isDigest && len(msg) != h.Size() {
		return 0, fmt.Errorf("%v digest of %d bytes, want %d: %w", h, len(msg), h.Size(), ErrInvalidArgument)
	}
	if len(msg) > MaxDataSize {
		return 0, fmt.Errorf("message of %d bytes, at most %d: %w", len(msg), MaxDataSize, ErrInvalidArgument)
	}
	return h, nil
}

// rsaScheme maps an RSA signature mechanism to cryptocore's scheme.
func rsaScheme(m hsmv1.SignatureMechanism) cryptocore.RSAScheme {
	if m == hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS {
		return cryptocore.RSAPSS
	}
	return cryptocore.RSAPKCS1v15
}

// signatureError classifies a cryptocore signing or verification error: a
// hash or input size the primitive refuses is the request's fault, anything
// else the key's.
func signatureError(what string, err error) error {
	if errors.Is(err, cryptocore.ErrInputSize) || errors.Is(err, cryptocore.ErrUnsupported) {
		return invalid(what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrKeyMaterial, err)
}

// verifyResult turns a cryptocore verification result into Verify's.
func verifyResult(what string, err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cryptocore.ErrInvalidSignature):
		return false, nil
	}
	return false, signatureError(what, err)
}
