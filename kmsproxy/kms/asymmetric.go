package kms

import (
	"context"
	"slices"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Message types (botocore MessageType).
const (
	messageRaw    = "RAW"
	messageDigest = "DIGEST"
)

type signInput struct {
	KeyID            *string  `json:"KeyId"`
	Message          []byte   `json:"Message"`
	MessageType      *string  `json:"MessageType"`
	GrantTokens      []string `json:"GrantTokens"`
	SigningAlgorithm *string  `json:"SigningAlgorithm"`
	DryRun           *bool    `json:"DryRun"`
}

type signOutput struct {
	KeyID            string `json:"KeyId"`
	Signature        []byte `json:"Signature"`
	SigningAlgorithm string `json:"SigningAlgorithm"`
}

type verifyInput struct {
	KeyID            *string  `json:"KeyId"`
	Message          []byte   `json:"Message"`
	MessageType      *string  `json:"MessageType"`
	Signature        []byte   `json:"Signature"`
	SigningAlgorithm *string  `json:"SigningAlgorithm"`
	GrantTokens      []string `json:"GrantTokens"`
	DryRun           *bool    `json:"DryRun"`
}

type verifyOutput struct {
	KeyID            string `json:"KeyId"`
	SignatureValid   bool   `json:"SignatureValid"`
	SigningAlgorithm string `json:"SigningAlgorithm"`
}

// signRequest is what Sign and Verify share once validated: the key, its
// current material, the HSM's mechanism and the message (or digest).
type signRequest struct {
	k        *store.Key
	b        store.BackingKey
	alg      string
	sa       signingAlgorithm
	message  []byte
	isDigest bool
}

// prepareSign resolves the key of Sign or Verify (op) and checks its
// usage, the algorithm and the message type: a SIGN_VERIFY key and one of
// the spec's algorithms (InvalidKeyUsageException); a DIGEST message of
// exactly the hash's length (ValidationException); EXTERNAL_MU is for
// ML-DSA keys only.
func (s *Service) prepareSign(op string, keyID *string, alg *string, messageType *string, message []byte) (*signRequest, error) {
	ki, err := s.viewKey(op, *keyID, true)
	if err != nil {
		return nil, err
	}
	k := ki.k
	if k.KeyUsage != usageSign {
		return nil, wrongUsage(k, op)
	}
	if !slices.Contains(specOf(k).signing, *alg) {
		return nil, newErr(excInvalidKeyUsage, "Algorithm %s is incompatible with the KMS key %s, whose KeySpec is %s.", *alg, k.ARN, k.KeySpec)
	}
	sa := signingAlgorithmsHSM[*alg]
	mt := messageRaw
	if messageType != nil {
		mt = *messageType
	}
	switch mt {
	case messageDigest:
		if len(message) != sa.digestLen {
			return nil, validation("Digest is invalid length for algorithm %s.", *alg)
		}
	case messageRaw:
	default:
		return nil, validation("MessageType %s is valid only with ML-DSA keys.", mt)
	}
	cur, found := k.Current()
	if !found || cur.Handle == 0 {
		return nil, internalErr()
	}
	return &signRequest{k: k, b: cur, alg: *alg, sa: sa, message: message, isDigest: mt == messageDigest}, nil
}

// sign is Sign: the private key signs in the HSM. RAW messages are hashed
// there; DIGEST messages are signed as given.
func (s *Service) sign(ctx context.Context, r *awsjson.Request) (any, error) {
	var in signInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("Message", in.Message != nil)
	v.BlobLength("Message", in.Message, in.Message != nil, 1, 4096)
	v.Enum("MessageType", in.MessageType, messageTypes...)
	v.Required("SigningAlgorithm", in.SigningAlgorithm != nil)
	v.Enum("SigningAlgorithm", in.SigningAlgorithm, signingAlgorithmSpecs...)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	sr, err := s.prepareSign("Sign", in.KeyID, in.SigningAlgorithm, in.MessageType, in.Message)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	sig, err := s.fleet.sign(hctx, &hsmv1.SignRequest{
		Handle: sr.b.Handle, Mechanism: sr.sa.mech, Hash: sr.sa.hash, Message: sr.message, IsDigest: sr.isDigest,
	})
	if err != nil {
		return nil, s.hsmErr("Sign", sr.k, err)
	}
	return signOutput{KeyID: sr.k.ARN, Signature: sig, SigningAlgorithm: sr.alg}, nil
}

// verify is Verify, in the HSM with the public key. A signature that does
// not verify is KMSInvalidSignatureException, not SignatureValid false.
func (s *Service) verify(ctx context.Context, r *awsjson.Request) (any, error) {
	var in verifyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("Message", in.Message != nil)
	v.BlobLength("Message", in.Message, in.Message != nil, 1, 4096)
	v.Enum("MessageType", in.MessageType, messageTypes...)
	v.Required("Signature", in.Signature != nil)
	v.BlobLength("Signature", in.Signature, in.Signature != nil, 1, maxBlobLen)
	v.Required("SigningAlgorithm", in.SigningAlgorithm != nil)
	v.Enum("SigningAlgorithm", in.SigningAlgorithm, signingAlgorithmSpecs...)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	sr, err := s.prepareSign("Verify", in.KeyID, in.SigningAlgorithm, in.MessageType, in.Message)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	valid, err := s.fleet.verify(hctx, &hsmv1.VerifyRequest{
		Handle: publicHandle(sr.b), Mechanism: sr.sa.mech, Hash: sr.sa.hash, Message: sr.message, IsDigest: sr.isDigest,
		Signature: in.Signature,
	})
	if err != nil {
		return nil, s.hsmErr("Verify", sr.k, err)
	}
	if !valid {
		return nil, newErr(excInvalidSignature, "The signature is not valid for this message, key and signing algorithm.")
	}
	return verifyOutput{KeyID: sr.k.ARN, SignatureValid: true, SigningAlgorithm: sr.alg}, nil
}

type getPublicKeyOutput struct {
	KeyID                 string   `json:"KeyId"`
	PublicKey             []byte   `json:"PublicKey"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	KeyUsage              string   `json:"KeyUsage"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms     []string `json:"SigningAlgorithms,omitempty"`
}

// getPublicKey is GetPublicKey: the DER SubjectPublicKeyInfo of the HSM's
// public key object, with the key's spec, usage and algorithms. Symmetric
// and HMAC keys have none (UnsupportedOperationException).
func (s *Service) getPublicKey(ctx context.Context, r *awsjson.Request) (any, error) {
	var in keyIDInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	ki, err := s.viewKey("GetPublicKey", *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	k := ki.k
	if !isAsymmetric(k) {
		return nil, newErr(excUnsupportedOperation, "%s is a %s key (KeySpec %s), which has no public key.", k.ARN, kindOf(k), k.KeySpec)
	}
	cur, found := k.Current()
	if !found || cur.Handle == 0 {
		return nil, internalErr()
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	attrs, err := s.fleet.attributes(hctx, publicHandle(cur))
	if err != nil {
		return nil, s.hsmErr("GetPublicKey", k, err)
	}
	return getPublicKeyOutput{
		KeyID: k.ARN, PublicKey: attrs.GetPublicKey(), CustomerMasterKeySpec: k.KeySpec, KeySpec: k.KeySpec, KeyUsage: k.KeyUsage,
		EncryptionAlgorithms: keyEncryptionAlgorithms(k), SigningAlgorithms: signingAlgorithms(k),
	}, nil
}
