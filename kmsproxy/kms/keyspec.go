package kms

import (
	"slices"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Expiration models of imported material (botocore ExpirationModelType).
const (
	expiresModel       = "KEY_MATERIAL_EXPIRES"
	doesNotExpireModel = "KEY_MATERIAL_DOES_NOT_EXPIRE"
)

// Key usages (botocore KeyUsageType).
const (
	usageSign  = "SIGN_VERIFY"
	usageMAC   = "GENERATE_VERIFY_MAC"
	usageAgree = "KEY_AGREEMENT"
)

// keyClass is what kind of HSM key backs a KMS key.
type keyClass int

const (
	// classSymmetric: an AES-256 key (SYMMETRIC_DEFAULT).
	classSymmetric keyClass = iota
	// classRSA: an RSA key pair.
	classRSA
	// classEC: an EC key pair on a NIST curve.
	classEC
	// classHMAC: a generic secret key.
	classHMAC
)

// keySpec describes a KeySpec the fleet's HSMs can back (reference §2.1,
// "KeySpec → usage → algorithms").
type keySpec struct {
	name  string
	class keyClass
	// bits is the RSA modulus, the HMAC key size, or the curve's size.
	bits  uint32
	curve hsmv1.Curve
	// usages are the KeyUsage values the spec allows, the first being the
	// one CreateKey assumes when none is given.
	usages []string
	// signing are the signing algorithms of SIGN_VERIFY keys; mac the MAC
	// algorithm of an HMAC key.
	signing []string
	mac     string
}

// Signing algorithm families.
var (
	rsaSigning = []string{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
		"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"}
	rsaEncryption = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
)

// specTable holds the KeySpecs served; the others of the model are in
// unsupportedSpecs.
var specTable = map[string]*keySpec{
	specSymmetric: {name: specSymmetric, class: classSymmetric, bits: 256, usages: []string{usageEncrypt}},
	"RSA_2048":    {name: "RSA_2048", class: classRSA, bits: 2048, usages: []string{usageEncrypt, usageSign}, signing: rsaSigning},
	"RSA_3072":    {name: "RSA_3072", class: classRSA, bits: 3072, usages: []string{usageEncrypt, usageSign}, signing: rsaSigning},
	"RSA_4096":    {name: "RSA_4096", class: classRSA, bits: 4096, usages: []string{usageEncrypt, usageSign}, signing: rsaSigning},
	"ECC_NIST_P256": {name: "ECC_NIST_P256", class: classEC, bits: 256, curve: hsmv1.Curve_CURVE_P256,
		usages: []string{usageSign}, signing: []string{"ECDSA_SHA_256"}},
	"ECC_NIST_P384": {name: "ECC_NIST_P384", class: classEC, bits: 384, curve: hsmv1.Curve_CURVE_P384,
		usages: []string{usageSign}, signing: []string{"ECDSA_SHA_384"}},
	"ECC_NIST_P521": {name: "ECC_NIST_P521", class: classEC, bits: 521, curve: hsmv1.Curve_CURVE_P521,
		usages: []string{usageSign}, signing: []string{"ECDSA_SHA_512"}},
	"HMAC_224": {name: "HMAC_224", class: classHMAC, bits: 224, usages: []string{usageMAC}, mac: "HMAC_SHA_224"},
	"HMAC_256": {name: "HMAC_256", class: classHMAC, bits: 256, usages: []string{usageMAC}, mac: "HMAC_SHA_256"},
	"HMAC_384": {name: "HMAC_384", class: classHMAC, bits: 384, usages: []string{usageMAC}, mac: "HMAC_SHA_384"},
	"HMAC_512": {name: "HMAC_512", class: classHMAC, bits: 512, usages: []string{usageMAC}, mac: "HMAC_SHA_512"},
}

// unsupportedSpecs explain why a KeySpec of the model is not served.
var unsupportedSpecs = map[string]string{
	"ECC_SECG_P256K1":       "KeySpec ECC_SECG_P256K1 is not supported: the KMS fleet's HSMs have no secp256k1 curve (they implement P-256, P-384 and P-521).",
	"SM2":                   "KeySpec SM2 is available only in the China Regions.",
	"ML_DSA_44":             "KeySpec ML_DSA_44 is not supported by hsmsim.",
	"ML_DSA_65":             "KeySpec ML_DSA_65 is not supported by hsmsim.",
	"ML_DSA_87":             "KeySpec ML_DSA_87 is not supported by hsmsim.",
	"ECC_NIST_EDWARDS25519": "KeySpec ECC_NIST_EDWARDS25519 is not supported: the KMS fleet's HSMs have no Ed25519.",
}

// specOf returns the spec of a stored key (nil for a spec the code no
// longer knows, which cannot be stored).
func specOf(k *store.Key) *keySpec { return specTable[k.KeySpec] }

// isSymmetric reports a SYMMETRIC_DEFAULT key.
func isSymmetric(k *store.Key) bool { return k.KeySpec == specSymmetric }

// isAsymmetric reports an RSA or EC key.
func isAsymmetric(k *store.Key) bool {
	s := specOf(k)
	return s != nil && (s.class == classRSA || s.class == classEC)
}

// isHMAC reports an HMAC key.
func isHMAC(k *store.Key) bool {
	s := specOf(k)
	return s != nil && s.class == classHMAC
}

// keyEncryptionAlgorithms are the EncryptionAlgorithms of a key (nil
// unless its usage is ENCRYPT_DECRYPT).
func keyEncryptionAlgorithms(k *store.Key) []string {
	if k.KeyUsage != usageEncrypt {
		return nil
	}
	if isSymmetric(k) {
		return []string{algSymmetric}
	}
	return rsaEncryption
}

// signingAlgorithms are the SigningAlgorithms of a SIGN_VERIFY key.
func signingAlgorithms(k *store.Key) []string {
	if k.KeyUsage != usageSign {
		return nil
	}
	return specOf(k).signing
}

// macAlgorithms are the MacAlgorithms of an HMAC key.
func macAlgorithms(k *store.Key) []string {
	if !isHMAC(k) {
		return nil
	}
	return []string{specOf(k).mac}
}

// kindOf names a key's type as UpdateAlias compares them: symmetric,
// asymmetric or HMAC.
func kindOf(k *store.Key) string {
	switch {
	case isSymmetric(k):
		return "symmetric"
	case isHMAC(k):
		return "HMAC"
	}
	return "asymmetric"
}

// signingAlgorithm is how the HSM computes a SigningAlgorithmSpec.
type signingAlgorithm struct {
	mech hsmv1.SignatureMechanism
	hash hsmv1.Hash
	// digestLen is the hash's size, the length of a DIGEST message.
	digestLen int
}

var signingAlgorithmsHSM = map[string]signingAlgorithm{
	"RSASSA_PSS_SHA_256":        {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS, hsmv1.Hash_HASH_SHA256, 32},
	"RSASSA_PSS_SHA_384":        {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS, hsmv1.Hash_HASH_SHA384, 48},
	"RSASSA_PSS_SHA_512":        {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PSS, hsmv1.Hash_HASH_SHA512, 64},
	"RSASSA_PKCS1_V1_5_SHA_256": {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15, hsmv1.Hash_HASH_SHA256, 32},
	"RSASSA_PKCS1_V1_5_SHA_384": {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15, hsmv1.Hash_HASH_SHA384, 48},
	"RSASSA_PKCS1_V1_5_SHA_512": {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15, hsmv1.Hash_HASH_SHA512, 64},
	"ECDSA_SHA_256":             {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA, hsmv1.Hash_HASH_SHA256, 32},
	"ECDSA_SHA_384":             {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA, hsmv1.Hash_HASH_SHA384, 48},
	"ECDSA_SHA_512":             {hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA, hsmv1.Hash_HASH_SHA512, 64},
}

// oaepHash is the OAEP (and MGF1) hash of an RSAES_OAEP algorithm.
var oaepHash = map[string]hsmv1.Hash{
	"RSAES_OAEP_SHA_1":   hsmv1.Hash_HASH_SHA1,
	"RSAES_OAEP_SHA_256": hsmv1.Hash_HASH_SHA256,
}

// maxOAEPPlaintext is the largest plaintext RSAES_OAEP takes with a
// modulus of bits: k − 2·hLen − 2 bytes (RSA_2048: 214 and 190 bytes, as
// AWS documents).
func maxOAEPPlaintext(bits uint32, alg string) int {
	hLen := 20
	if alg == "RSAES_OAEP_SHA_256" {
		hLen = 32
	}
	return int(bits)/8 - 2*hLen - 2
}

// macHash is the hash of a MacAlgorithmSpec.
var macHash = map[string]hsmv1.Hash{
	"HMAC_SHA_224": hsmv1.Hash_HASH_SHA224,
	"HMAC_SHA_256": hsmv1.Hash_HASH_SHA256,
	"HMAC_SHA_384": hsmv1.Hash_HASH_SHA384,
	"HMAC_SHA_512": hsmv1.Hash_HASH_SHA512,
}

// Enum values of the botocore model, for validation messages.
var (
	signingAlgorithmSpecs = []string{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
		"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
		"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256", "ED25519_SHA_512", "ED25519_PH_SHA_512"}
	messageTypes     = []string{"RAW", "DIGEST", "EXTERNAL_MU"}
	macAlgorithmSpec = []string{"HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"}
)

// allows reports whether the spec allows usage.
func (s *keySpec) allows(usage string) bool { return slices.Contains(s.usages, usage) }
