package cryptocore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// RSA modulus sizes, in bits. Generation makes only the sizes AWS CloudHSM
// and KMS offer; operations take any two-prime key between the bounds, so
// that imported keys and test vectors can be used. The lower bound is the
// one crypto/rsa enforces; the upper one keeps a hostile key from costing
// unbounded time.
const (
	minRSABits = 1024
	maxRSABits = 16384
)

// RSAScheme names an RSA signature scheme.
type RSAScheme int

// The RSA signature schemes cryptocore offers.
const (
	// RSAPSS is RSASSA-PSS (RFC 8017 §8.1) with MGF1 over the message hash
	// and a salt as long as the hash, as AWS KMS's RSASSA_PSS_SHA_* use.
	RSAPSS RSAScheme = iota + 1
	// RSAPKCS1v15 is RSASSA-PKCS1-v1_5 (RFC 8017 §8.2).
	RSAPKCS1v15
)

// String returns the scheme's name as AWS KMS spells its prefix.
func (s RSAScheme) String() string {
	switch s {
	case RSAPSS:
		return "RSASSA_PSS"
	case RSAPKCS1v15:
		return "RSASSA_PKCS1_V1_5"
	}
	return fmt.Sprintf("RSAScheme(%d)", int(s))
}

// GenerateRSAKey returns a new two-prime RSA key with public exponent 65537
// and a modulus of bits bits, which must be 2048, 3072 or 4096 (ErrKeySize
// otherwise).
func GenerateRSAKey(bits int) (*rsa.PrivateKey, error) {
	switch bits {
	case 2048, 3072, 4096:
	default:
		return nil, fmt.Errorf("RSA key of %d bits: %w", bits, ErrKeySize)
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("RSA key generation failed: %w", ErrUnsupported)
	}
	return priv, nil
}

// checkRSAPublic checks that pub is usable: not nil, with a modulus of
// minRSABits to maxRSABits bits and an odd exponent greater than 1.
func checkRSAPublic(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 {
		return fmt.Errorf("missing RSA public key: %w", ErrInvalidKey)
	}
	if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return fmt.Errorf("RSA modulus of %d bits: %w", bits, ErrKeySize)
	}
	if pub.E < 3 || pub.E&1 == 0 {
		return fmt.Errorf("RSA public exponent: %w", ErrInvalidKey)
	}
	return nil
}

// checkRSAPrivate checks that priv is a usable two-prime key. Multi-prime
// keys are refused: crypto/rsa does not run them in constant time.
func checkRSAPrivate(priv *rsa.PrivateKey) error {
	if priv == nil {
		return fmt.Errorf("missing RSA private key: %w", ErrInvalidKey)
	}
	if err := checkRSAPublic(&priv.PublicKey); err != nil {
		return err
	}
	if priv.D == nil || len(priv.Primes) != 2 || priv.Primes[0] == nil || priv.Primes[1] == nil {
		return fmt.Errorf("RSA private key is not a two-prime key: %w", ErrInvalidKey)
	}
	return nil
}

// oaepHashes returns the crypto.Hash values for an OAEP hash and MGF1 hash.
func oaepHashes(h, mgfHash Hash) (crypto.Hash, crypto.Hash, error) {
	ch, err := h.CryptoHash()
	if err != nil {
		return 0, 0, fmt.Errorf("OAEP hash: %w", err)
	}
	cm, err := mgfHash.CryptoHash()
	if err != nil {
		return 0, 0, fmt.Errorf("OAEP MGF1 hash: %w", err)
	}
	return ch, cm, nil
}

// EncryptOAEP encrypts msg to pub with RSAES-OAEP (RFC 8017 §7.1.1), h as
// the label hash and mgfHash as MGF1's hash (any of the five Hash values for
// either). msg may be empty and may be at most k − 2·hLen − 2 bytes, where k
// is the modulus length in bytes and hLen h's size; a longer one returns
// ErrInputSize. The label may be empty; the same label must be given to
// DecryptOAEP.
func EncryptOAEP(pub *rsa.PublicKey, h Hash, mgfHash Hash, msg, label []byte) ([]byte, error) {
	ch, cm, err := oaepHashes(h, mgfHash)
	if err != nil {
		return nil, err
	}
	if err := checkRSAPublic(pub); err != nil {
		return nil, err
	}
	k := pub.Size()
	if maxLen := k - 2*h.Size() - 2; len(msg) > maxLen {
		return nil, fmt.Errorf("OAEP message of %d bytes for a %d-byte modulus and %v: %w", len(msg), k, h, ErrInputSize)
	}
	ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &rsa.OAEPOptions{Hash: ch, MGFHash: cm, Label: label})
	if err != nil {
		return nil, fmt.Errorf("OAEP encryption failed: %w", ErrInvalidKey)
	}
	return ct, nil
}

// DecryptOAEP decrypts ct with priv under RSAES-OAEP (RFC 8017 §7.1.2), with
// the same hashes and label that EncryptOAEP was given.
//
// An unsupported hash returns ErrUnsupported and an unusable key
// ErrInvalidKey or ErrKeySize; neither depends on ct. Every failure that
// depends on ct returns exactly ErrDecryptFailed, unwrapped, so that callers
// cannot tell the causes apart (the padding check itself is crypto/rsa's
// constant-time one): a ciphertext that is not exactly k bytes (RFC 8017
// §7.1.2 step 1.b), whose integer value is outside [2, n − 2] (NIST SP
// 800-56B Rev. 2 §7.1.2.1, which also rules out the fixed points 0, 1 and
// n − 1), a padding error, or a label that does not match.
func DecryptOAEP(priv *rsa.PrivateKey, h Hash, mgfHash Hash, ct, label []byte) ([]byte, error) {
	ch, cm, err := oaepHashes(h, mgfHash)
	if err != nil {
		return nil, err
	}
	if err := checkRSAPrivate(priv); err != nil {
		return nil, err
	}
	n := priv.N
	if len(ct) != priv.Size() {
		return nil, ErrDecryptFailed
	}
	// The ciphertext is public, so math/big's variable time is harmless here.
	c := new(big.Int).SetBytes(ct)
	nMinus1 := new(big.Int).Sub(n, big.NewInt(1))
	if c.Cmp(big.NewInt(2)) < 0 || c.Cmp(nMinus1) >= 0 {
		return nil, ErrDecryptFailed
	}
	msg, err := priv.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: ch, MGFHash: cm, Label: label})
	if err != nil {
		return nil, ErrDecryptFailed
	}
	return msg, nil
}

// pssOptions are the PSS parameters cryptocore signs and verifies with: a
// salt as long as the hash (RFC 8017 §9.1 recommends sLen = hLen; AWS KMS
// uses it), checked exactly on verification.
func pssOptions(ch crypto.Hash) *rsa.PSSOptions {
	return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: ch}
}

// SignPSS signs digest, the h digest of a message, with priv under
// RSASSA-PSS (RFC 8017 §8.1.1) with MGF1 over h and a salt of h's length.
// h must be SHA256, SHA384 or SHA512 (ErrUnsupported otherwise) and digest
// exactly h.Size() bytes (ErrInputSize otherwise). The modulus must be at
// least 2·hLen + 2 bytes (RFC 8017 §9.1.1 step 3), else ErrKeySize.
func SignPSS(priv *rsa.PrivateKey, h Hash, digest []byte) ([]byte, error) {
	ch, err := signatureHash(h, digest)
	if err != nil {
		return nil, err
	}
	if err := checkRSAPrivate(priv); err != nil {
		return nil, err
	}
	// emLen = ⌈(modBits − 1)/8⌉ ≥ hLen + sLen + 2 (RFC 8017 §9.1.1 step 3).
	if emLen := (priv.N.BitLen() - 1 + 7) / 8; emLen < 2*h.Size()+2 {
		return nil, fmt.Errorf("RSA key too small for PSS with %v: %w", h, ErrKeySize)
	}
	sig, err := rsa.SignPSS(rand.Reader, priv, ch, digest, pssOptions(ch))
	if err != nil {
		return nil, fmt.Errorf("PSS signing failed: %w", ErrInvalidKey)
	}
	return sig, nil
}

// VerifyPSS checks sig, made by SignPSS or any RSASSA-PSS signer using MGF1
// over h and a salt of h's length, against digest (RFC 8017 §8.1.2). The
// hash and digest are checked as in SignPSS; a signature that does not
// verify, including one of the wrong length or with another salt length,
// returns ErrInvalidSignature.
func VerifyPSS(pub *rsa.PublicKey, h Hash, digest, sig []byte) error {
	ch, err := signatureHash(h, digest)
	if err != nil {
		return err
	}
	if err := checkRSAPublic(pub); err != nil {
		return err
	}
	if len(sig) != pub.Size() {
		return ErrInvalidSignature
	}
	if err := rsa.VerifyPSS(pub, ch, digest, sig, pssOptions(ch)); err != nil {
		return ErrInvalidSignature
	}
	return nil
}

// SignPKCS1v15 signs digest, the h digest of a message, with priv under
// RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.1, EMSA-PKCS1-v1_5 encoding of §9.2 with
// the DigestInfo prefix for h). The hash and digest are checked as in
// SignPSS.
func SignPKCS1v15(priv *rsa.PrivateKey, h Hash, digest []byte) ([]byte, error) {
	ch, err := signatureHash(h, digest)
	if err != nil {
		return nil, err
	}
	if err := checkRSAPrivate(priv); err != nil {
		return nil, err
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, ch, digest)
	if err != nil {
		return nil, fmt.Errorf("PKCS #1 v1.5 signing failed: %w", ErrInvalidKey)
	}
	return sig, nil
}

// VerifyPKCS1v15 checks sig against digest under RSASSA-PKCS1-v1_5 (RFC 8017
// §8.2.2), comparing the whole encoded message, so no other encoding of the
// DigestInfo is accepted. The hash and digest are checked as in SignPSS; a
// signature that does not verify returns ErrInvalidSignature.
func VerifyPKCS1v15(pub *rsa.PublicKey, h Hash, digest, sig []byte) error {
	ch, err := signatureHash(h, digest)
	if err != nil {
		return err
	}
	if err := checkRSAPublic(pub); err != nil {
		return err
	}
	if len(sig) != pub.Size() {
		return ErrInvalidSignature
	}
	if err := rsa.VerifyPKCS1v15(pub, ch, digest, sig); err != nil {
		return ErrInvalidSignature
	}
	return nil
}

// SignRSA signs with priv under scheme and h. When isDigest is true, input is
// the digest of the message and must be h.Size() bytes (AWS KMS's
// MessageType DIGEST); otherwise input is the message itself, of any length,
// and SignRSA hashes it with h first (MessageType RAW). It then works as
// SignPSS or SignPKCS1v15. An unknown scheme returns ErrUnsupported.
func SignRSA(priv *rsa.PrivateKey, scheme RSAScheme, h Hash, input []byte, isDigest bool) ([]byte, error) {
	digest, err := signatureInput(h, input, isDigest)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case RSAPSS:
		return SignPSS(priv, h, digest)
	case RSAPKCS1v15:
		return SignPKCS1v15(priv, h, digest)
	}
	return nil, fmt.Errorf("RSA signature scheme %v: %w", scheme, ErrUnsupported)
}

// VerifyRSA checks sig over input, a digest or a message as for SignRSA,
// under scheme and h. It works as VerifyPSS or VerifyPKCS1v15; an unknown
// scheme returns ErrUnsupported.
func VerifyRSA(pub *rsa.PublicKey, scheme RSAScheme, h Hash, input []byte, isDigest bool, sig []byte) error {
	digest, err := signatureInput(h, input, isDigest)
	if err != nil {
		return err
	}
	switch scheme {
	case RSAPSS:
		return VerifyPSS(pub, h, digest, sig)
	case RSAPKCS1v15:
		return VerifyPKCS1v15(pub, h, digest, sig)
	}
	return fmt.Errorf("RSA signature scheme %v: %w", scheme, ErrUnsupported)
}

// singleDER checks that der is exactly one DER element (tag, minimal length
// and contents) with nothing after it, so that the parsers below never
// accept trailing bytes.
func singleDER(der []byte) error {
	s := cryptobyte.String(der)
	var elem cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&elem, &tag) || !s.Empty() || tag != cbasn1.SEQUENCE {
		return fmt.Errorf("key is not a single DER SEQUENCE: %w", ErrInvalidKey)
	}
	return nil
}

// MarshalPrivateKey encodes key, an *rsa.PrivateKey or an *ecdsa.PrivateKey
// on a curve cryptocore offers, as a PKCS #8 PrivateKeyInfo (RFC 5208 §5) in
// DER. Other key types return ErrUnsupported; a key that cannot be encoded
// returns ErrInvalidKey. The result holds the private key: callers zero it
// when done.
func MarshalPrivateKey(key any) ([]byte, error) {
	if err := checkPrivate(key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("cannot encode private key: %w", ErrInvalidKey)
	}
	return der, nil
}

// ParsePrivateKey decodes a PKCS #8 PrivateKeyInfo (RFC 5208 §5) in DER, as
// MarshalPrivateKey writes it. It returns an *rsa.PrivateKey (two primes,
// 1024 to 16384 bits, checked for consistency by crypto/x509) or an
// *ecdsa.PrivateKey on P-256, P-384 or P-521. Malformed input, including
// bytes after the DER element, returns ErrInvalidKey; another key type or
// curve returns ErrUnsupported or ErrInvalidKey; an RSA modulus out of
// bounds returns ErrKeySize. Errors never quote the input.
func ParsePrivateKey(der []byte) (crypto.Signer, error) {
	if err := singleDER(der); err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse PKCS #8 private key: %w", ErrInvalidKey)
	}
	if err := checkPrivate(key); err != nil {
		return nil, err
	}
	return key.(crypto.Signer), nil
}

// checkPrivate checks an *rsa.PrivateKey or *ecdsa.PrivateKey; any other
// type is ErrUnsupported.
func checkPrivate(key any) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return checkRSAPrivate(k)
	case *ecdsa.PrivateKey:
		return checkECPrivate(k)
	}
	return fmt.Errorf("private key of type %T: %w", key, ErrUnsupported)
}

// checkPublic checks an *rsa.PublicKey or *ecdsa.PublicKey; any other type
// is ErrUnsupported.
func checkPublic(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return checkRSAPublic(k)
	case *ecdsa.PublicKey:
		return checkECPublic(k)
	}
	return fmt.Errorf("public key of type %T: %w", pub, ErrUnsupported)
}

// MarshalPublicKey encodes pub, an *rsa.PublicKey or an *ecdsa.PublicKey on a
// curve cryptocore offers, as a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7; RFC
// 3279 §2.3.1 for RSA, RFC 5480 §2 for EC, uncompressed point) in DER. Other
// key types return ErrUnsupported.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("cannot encode public key: %w", ErrInvalidKey)
	}
	return der, nil
}

// ParsePublicKey decodes a DER SubjectPublicKeyInfo as MarshalPublicKey
// writes it, returning an *rsa.PublicKey (1024 to 16384 bits) or an
// *ecdsa.PublicKey on P-256, P-384 or P-521 whose point crypto/x509 has
// checked to be on the curve. Malformed input, trailing bytes, and curves
// crypto/x509 does not know (such as secp256k1) return ErrInvalidKey; other
// key types return ErrUnsupported.
func ParsePublicKey(der []byte) (crypto.PublicKey, error) {
	if err := singleDER(der); err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse SubjectPublicKeyInfo: %w", ErrInvalidKey)
	}
	if err := checkPublic(key); err != nil {
		return nil, err
	}
	return key, nil
}
