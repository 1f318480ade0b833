package cryptocore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
)

// Curve names an elliptic curve for ECDSA. The zero Curve names none.
type Curve int

// The curves cryptocore knows. P256, P384 and P521 are the NIST curves of
// FIPS 186-5 / SP 800-186 §3.2.1 (secp256r1, secp384r1, secp521r1 in SEC 2).
// Secp256k1 (SEC 2 §2.4.1) is named so that requests for it, which AWS KMS
// offers as ECC_SECG_P256K1, can be told apart from unknown curves, but
// neither the standard library nor golang.org/x/crypto implements it, so
// every operation on it returns ErrUnsupported.
const (
	P256 Curve = iota + 1
	P384
	P521
	Secp256k1
)

// curveNames holds the names Curve.String returns and ParseCurve accepts.
var curveNames = map[Curve]string{
	P256:      "P-256",
	P384:      "P-384",
	P521:      "P-521",
	Secp256k1: "secp256k1",
}

// ParseCurve returns the Curve with the given name, as Curve.String writes
// it ("P-256", "P-384", "P-521", "secp256k1"). Any other name returns
// ErrUnsupported.
func ParseCurve(name string) (Curve, error) {
	for c, n := range curveNames {
		if n == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("curve %q: %w", name, ErrUnsupported)
}

// String returns the curve's name, or "Curve(N)" for a value that names none.
func (c Curve) String() string {
	if n, ok := curveNames[c]; ok {
		return n
	}
	return fmt.Sprintf("Curve(%d)", int(c))
}

// ellipticCurve returns the crypto/elliptic curve for c, or ErrUnsupported when c
// is not one of P256, P384 and P521.
func (c Curve) ellipticCurve() (elliptic.Curve, error) {
	switch c {
	case P256:
		return elliptic.P256(), nil
	case P384:
		return elliptic.P384(), nil
	case P521:
		return elliptic.P521(), nil
	}
	return nil, fmt.Errorf("curve %v: %w", c, ErrUnsupported)
}

// curveOf returns the Curve of an elliptic.Curve, or ErrUnsupported when it
// is not one of the standard library's P-256, P-384 and P-521 (a custom
// implementation with the same parameters is refused too).
func curveOf(ec elliptic.Curve) (Curve, error) {
	switch ec {
	case elliptic.P256():
		return P256, nil
	case elliptic.P384():
		return P384, nil
	case elliptic.P521():
		return P521, nil
	}
	return 0, fmt.Errorf("elliptic curve: %w", ErrUnsupported)
}

// CurveOf returns the Curve of pub, ErrInvalidKey when pub is nil and
// ErrUnsupported when its curve is not one cryptocore offers.
func CurveOf(pub *ecdsa.PublicKey) (Curve, error) {
	if pub == nil || pub.Curve == nil {
		return 0, fmt.Errorf("missing ECDSA public key: %w", ErrInvalidKey)
	}
	return curveOf(pub.Curve)
}

// checkECPublic checks that pub is on a supported curve and that its point
// is a valid one: on the curve and not the point at infinity (SP 800-56A
// Rev. 3 §5.6.2.3.3 full public key validation, done by crypto/ecdh).
func checkECPublic(pub *ecdsa.PublicKey) error {
	if _, err := CurveOf(pub); err != nil {
		return err
	}
	//lint:ignore SA1019 a key built by hand may lack its coordinates; ECDH() would panic on nil ones
	if pub.X == nil || pub.Y == nil {
		return fmt.Errorf("ECDSA public key has no point: %w", ErrInvalidKey)
	}
	if _, err := pub.ECDH(); err != nil {
		return fmt.Errorf("ECDSA public key is not a valid point: %w", ErrInvalidKey)
	}
	return nil
}

// checkECPrivate checks priv's public half as checkECPublic does, that its
// scalar d is in [1, n − 1] and that the public point is d·G (the pairwise
// consistency FIPS 186-5 §6.2 key pairs have; crypto/ecdsa would otherwise
// sign with d alone and make signatures that the public key rejects).
func checkECPrivate(priv *ecdsa.PrivateKey) error {
	if priv == nil {
		return fmt.Errorf("missing ECDSA private key: %w", ErrInvalidKey)
	}
	if err := checkECPublic(&priv.PublicKey); err != nil {
		return err
	}
	//lint:ignore SA1019 a key built by hand may lack its scalar; ECDH() would panic on a nil one
	if priv.D == nil {
		return fmt.Errorf("ECDSA private key has no scalar: %w", ErrInvalidKey)
	}
	dh, err := priv.ECDH()
	if err != nil {
		return fmt.Errorf("ECDSA private scalar out of range: %w", ErrInvalidKey)
	}
	pub, err := priv.PublicKey.ECDH()
	if err != nil || !dh.PublicKey().Equal(pub) {
		return fmt.Errorf("ECDSA private scalar does not match the public key: %w", ErrInvalidKey)
	}
	return nil
}

// GenerateECKey returns a new ECDSA key on curve, which must be P256, P384 or
// P521 (FIPS 186-5 §A.2 key pair generation, as crypto/ecdsa does it).
// Secp256k1 and unknown curves return ErrUnsupported.
func GenerateECKey(curve Curve) (*ecdsa.PrivateKey, error) {
	ec, err := curve.ellipticCurve()
	if err != nil {
		return nil, err
	}
	priv, err := ecdsa.GenerateKey(ec, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ECDSA key generation failed: %w", ErrUnsupported)
	}
	return priv, nil
}

// SignECDSA signs digest, the h digest of a message, with priv (FIPS 186-5
// §6.4.1, with hedged nonces as crypto/ecdsa makes them) and returns the
// signature as the DER SEQUENCE of r and s of RFC 3279 §2.2.3. h must be
// SHA256, SHA384 or SHA512 (ErrUnsupported otherwise) and digest exactly
// h.Size() bytes (ErrInputSize otherwise); a digest longer than the curve
// order is truncated to its leftmost bits as §6.4.1 step 3 says.
func SignECDSA(priv *ecdsa.PrivateKey, h Hash, digest []byte) ([]byte, error) {
	if _, err := signatureHash(h, digest); err != nil {
		return nil, err
	}
	if err := checkECPrivate(priv); err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, priv, digest)
	if err != nil {
		return nil, fmt.Errorf("ECDSA signing failed: %w", ErrInvalidKey)
	}
	return sig, nil
}

// VerifyECDSA checks sig, a DER SEQUENCE of r and s (RFC 3279 §2.2.3), over
// digest with pub (FIPS 186-5 §6.4.2). The hash and digest are checked as in
// SignECDSA. The encoding must be strict DER (X.690 §10): minimal lengths,
// minimal non-negative INTEGERs, nothing after the SEQUENCE; r and s must be
// in [1, n − 1]. Anything else, and a signature that does not verify, returns
// ErrInvalidSignature.
func VerifyECDSA(pub *ecdsa.PublicKey, h Hash, digest, sig []byte) error {
	if _, err := signatureHash(h, digest); err != nil {
		return err
	}
	if err := checkECPublic(pub); err != nil {
		return err
	}
	// ecdsa.VerifyASN1 parses with cryptobyte, which accepts DER only.
	if !ecdsa.VerifyASN1(pub, digest, sig) {
		return ErrInvalidSignature
	}
	return nil
}

// SignEC signs input with priv: when isDigest is true input is the h digest
// of the message (AWS KMS's MessageType DIGEST) and SignEC is SignECDSA;
// otherwise input is the message itself, which SignEC hashes with h first
// (MessageType RAW).
func SignEC(priv *ecdsa.PrivateKey, h Hash, input []byte, isDigest bool) ([]byte, error) {
	digest, err := signatureInput(h, input, isDigest)
	if err != nil {
		return nil, err
	}
	return SignECDSA(priv, h, digest)
}

// VerifyEC checks sig over input, a digest or a message as for SignEC, with
// pub. It works as VerifyECDSA.
func VerifyEC(pub *ecdsa.PublicKey, h Hash, input []byte, isDigest bool, sig []byte) error {
	digest, err := signatureInput(h, input, isDigest)
	if err != nil {
		return err
	}
	return VerifyECDSA(pub, h, digest, sig)
}
