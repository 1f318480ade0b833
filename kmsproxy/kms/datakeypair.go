package kms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Data key pairs are generated in the fleet as extractable key pairs and
// taken out of it wrapped (GenerateDataKeyPair must hand the caller the
// private key anyway): the endpoint draws a one-time AES-256 key, sends it
// into the fleet RSA-OAEP-encrypted under the fleet's transport key (whose
// private half never leaves the fleet), has the HSM wrap the private key
// with AES-KWP under it, unwraps the PKCS #8 in memory and deletes the
// three temporary HSM keys. No long-lived key material is ever outside an
// HSM, and the pair never touches a disk in the clear.
const (
	// transportKeyLabel labels the fleet's transport key pair (RSA-3072),
	// created on first use.
	transportKeyLabel = "hsmsim:kms-transport"
	// temporaryKeyLabel labels the per-request HSM keys of a data key
	// pair; any left by a crash are deleted when the Service starts.
	temporaryKeyLabel = "hsmsim:kms-temporary"
	// transportKeyBits is the transport key's modulus.
	transportKeyBits = 3072
)

var transportKeyID = []byte(transportKeyLabel)

// dataKeyPairSpecs are the DataKeyPairSpecs the fleet generates, by the
// KeySpec of the same name; the others are unsupportedSpecs.
var dataKeyPairSpecs = []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"}

// allDataKeyPairSpecs is botocore's DataKeyPairSpec enum.
var allDataKeyPairSpecs = append(append([]string{}, dataKeyPairSpecs...), "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519")

// transportKey returns the transport key pair's private handle and public
// key, finding or creating the pair.
func (s *Service) transportKey(ctx context.Context) (uint64, *rsa.PublicKey, error) {
	s.transportMu.Lock()
	defer s.transportMu.Unlock()
	if s.transportHandle != 0 {
		return s.transportHandle, s.transportPublic, nil
	}
	hctx, cancel := s.hsmCtx(ctx)
	found, err := s.fleet.api.FindKeys(hctx, &hsmv1.FindKeysRequest{Label: transportKeyLabel, Class: hsmv1.KeyClass_KEY_CLASS_PRIVATE})
	cancel()
	if err != nil {
		return 0, nil, hsmError("find keys", err)
	}
	var priv *hsmv1.KeyAttributes
	if len(found.GetKeys()) > 0 {
		priv = found.GetKeys()[0]
	} else {
		priv, _, err = s.generateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{
			Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: transportKeyBits, Label: transportKeyLabel, Id: transportKeyID,
			Usage: &hsmv1.KeyUsage{Unwrap: true},
		})
		if err != nil {
			return 0, nil, err
		}
		s.log.Info("transport key created in the fleet", "handle", priv.GetHandle())
	}
	pub, err := x509.ParsePKIXPublicKey(priv.GetPublicKey())
	rpub, isRSA := pub.(*rsa.PublicKey)
	if err != nil || !isRSA {
		return 0, nil, fmt.Errorf("%w: the transport key's public key is not RSA", ErrHSMFailed)
	}
	s.transportHandle, s.transportPublic = priv.GetHandle(), rpub
	return s.transportHandle, s.transportPublic, nil
}

// forgetTransportKey drops the cached transport key when the fleet no
// longer has it.
func (s *Service) forgetTransportKey(err error) {
	if errors.Is(err, ErrHSMKeyNotFound) {
		s.transportMu.Lock()
		s.transportHandle, s.transportPublic = 0, nil
		s.transportMu.Unlock()
	}
}

// cleanTemporaryKeys deletes temporary HSM keys a crash left behind.
func (s *Service) cleanTemporaryKeys(ctx context.Context) {
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	found, err := s.fleet.api.FindKeys(hctx, &hsmv1.FindKeysRequest{Label: temporaryKeyLabel})
	if err != nil {
		s.log.Warn("cannot look for temporary keys", "error", hsmError("find keys", err))
		return
	}
	for _, k := range found.GetKeys() {
		s.deleteHSMKey(ctx, s.fleet, "", k.GetHandle())
	}
}

// newDataKeyPair generates a key pair of spec in the fleet and returns its
// private key (PKCS #8 DER) and public key (SubjectPublicKeyInfo DER).
// The caller zeroes the private key.
func (s *Service) newDataKeyPair(ctx context.Context, spec *keySpec) (priv, pub []byte, err error) {
	transport, tpub, err := s.transportKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The one-time wrapping key, into the fleet under the transport key.
	kek := make([]byte, 32)
	rand.Read(kek) // crypto/rand.Read never fails (Go 1.24+).
	defer clear(kek)
	wrappedKEK, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, tpub, kek, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: wrap for the transport key: %w", ErrHSMFailed, err)
	}
	var temp []uint64
	defer func() {
		for _, h := range temp {
			s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, "", h)
		}
	}()
	hctx, cancel := s.hsmCtx(ctx)
	kekKey, err := s.fleet.unwrapKey(hctx, &hsmv1.UnwrapKeyRequest{
		UnwrappingHandle: transport, Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, Hash: hsmv1.Hash_HASH_SHA256,
		Wrapped: wrappedKEK, Type: hsmv1.KeyType_KEY_TYPE_AES, Label: temporaryKeyLabel, Id: newKeyMaterialID(),
		Usage: &hsmv1.KeyUsage{Wrap: true},
	})
	cancel()
	if err != nil {
		s.forgetTransportKey(err)
		return nil, nil, err
	}
	temp = append(temp, kekKey.GetHandle())

	req := &hsmv1.GenerateKeyPairRequest{Label: temporaryKeyLabel, Id: newKeyMaterialID(),
		Usage: &hsmv1.KeyUsage{Extractable: true, Sign: true}}
	if spec.class == classRSA {
		req.Type, req.ModulusBits = hsmv1.KeyType_KEY_TYPE_RSA, spec.bits
	} else {
		req.Type, req.Curve = hsmv1.KeyType_KEY_TYPE_EC, spec.curve
	}
	privKey, pubKey, err := s.generateKeyPair(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	temp = append(temp, privKey.GetHandle(), pubKey.GetHandle())

	hctx, cancel = s.hsmCtx(ctx)
	wrapped, err := s.fleet.wrapKey(hctx, &hsmv1.WrapKeyRequest{
		WrappingHandle: kekKey.GetHandle(), KeyHandle: privKey.GetHandle(), Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP,
	})
	cancel()
	if err != nil {
		return nil, nil, err
	}
	priv, err = cryptocore.UnwrapKWP(kek, wrapped)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: unwrap the data key pair: %w", ErrHSMFailed, err)
	}
	return priv, pubKey.GetPublicKey(), nil
}

type generateDataKeyPairInput struct {
	EncryptionContext map[string]string `json:"EncryptionContext"`
	KeyID             *string           `json:"KeyId"`
	KeyPairSpec       *string           `json:"KeyPairSpec"`
	GrantTokens       []string          `json:"GrantTokens"`
	Recipient         *recipientInfo    `json:"Recipient"`
	DryRun            *bool             `json:"DryRun"`
}

type generateDataKeyPairOutput struct {
	PrivateKeyCiphertextBlob []byte `json:"PrivateKeyCiphertextBlob"`
	PrivateKeyPlaintext      []byte `json:"PrivateKeyPlaintext,omitempty"`
	PublicKey                []byte `json:"PublicKey"`
	KeyID                    string `json:"KeyId"`
	KeyPairSpec              string `json:"KeyPairSpec"`
	KeyMaterialID            string `json:"KeyMaterialId,omitempty"`
}

// generateDataKeyPair is GenerateDataKeyPair.
func (s *Service) generateDataKeyPair(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateDataKeyPairInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return s.dataKeyPair(ctx, "GenerateDataKeyPair", in, true)
}

type generateDataKeyPairWithoutPlaintextInput struct {
	EncryptionContext map[string]string `json:"EncryptionContext"`
	KeyID             *string           `json:"KeyId"`
	KeyPairSpec       *string           `json:"KeyPairSpec"`
	GrantTokens       []string          `json:"GrantTokens"`
	DryRun            *bool             `json:"DryRun"`
}

// generateDataKeyPairWithoutPlaintext is GenerateDataKeyPairWithoutPlaintext.
func (s *Service) generateDataKeyPairWithoutPlaintext(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateDataKeyPairWithoutPlaintextInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return s.dataKeyPair(ctx, "GenerateDataKeyPairWithoutPlaintext", generateDataKeyPairInput{
		EncryptionContext: in.EncryptionContext, KeyID: in.KeyID, KeyPairSpec: in.KeyPairSpec, GrantTokens: in.GrantTokens, DryRun: in.DryRun,
	}, false)
}

// dataKeyPair generates a data key pair (newDataKeyPair) and encrypts its
// private key under a symmetric key of the default key store, with the
// encryption context: an ordinary ciphertext blob, which Decrypt opens.
// Keys in custom key stores cannot (UnsupportedOperationException), nor
// can asymmetric or HMAC keys (InvalidKeyUsageException).
func (s *Service) dataKeyPair(ctx context.Context, op string, in generateDataKeyPairInput, withPlaintext bool) (any, error) {
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("KeyPairSpec", in.KeyPairSpec != nil)
	v.Enum("KeyPairSpec", in.KeyPairSpec, allDataKeyPairSpecs...)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, unsupportedRecipient()
	}
	if msg, found := unsupportedSpecs[*in.KeyPairSpec]; found {
		return nil, newErr(excUnsupportedOperation, "%s", msg)
	}
	spec := specTable[*in.KeyPairSpec]
	ki, err := s.viewKey(op, *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	k := ki.k
	if k.Origin == store.OriginAWSCloudHSM {
		return nil, newErr(excUnsupportedOperation, "%s is in a custom key store, which does not support %s.", k.ARN, op)
	}
	if !isSymmetric(k) {
		return nil, wrongUsage(k, op)
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	priv, pub, err := s.newDataKeyPair(ctx, spec)
	if err != nil {
		return nil, s.hsmErr(op, k, err)
	}
	blob, b, err := s.encryptWith(ctx, op, k, priv, in.EncryptionContext)
	if err != nil {
		clear(priv)
		return nil, err
	}
	out := generateDataKeyPairOutput{PrivateKeyCiphertextBlob: blob, PublicKey: pub, KeyID: k.ARN, KeyPairSpec: spec.name, KeyMaterialID: b.KeyMaterialID}
	if withPlaintext {
		out.PrivateKeyPlaintext = priv
	} else {
		clear(priv)
	}
	return out, nil
}
