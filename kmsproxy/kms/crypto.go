package kms

import (
	"context"
	"errors"
	"slices"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// Data key sizes (botocore DataKeySpec).
var dataKeySpecs = map[string]int{"AES_256": 32, "AES_128": 16}

// recipientInfo is botocore's RecipientInfo (Nitro Enclaves attestation).
type recipientInfo struct {
	KeyEncryptionAlgorithm *string `json:"KeyEncryptionAlgorithm"`
	AttestationDocument    []byte  `json:"AttestationDocument"`
}

func unsupportedRecipient() error {
	return newErr(excUnsupportedOperation, "Recipient (AWS Nitro Enclaves attestation) is not supported.")
}

// checkAlgorithm checks an EncryptionAlgorithm for a symmetric key.
func checkAlgorithm(alg *string) error {
	if alg != nil && *alg != algSymmetric {
		return newErr(excInvalidKeyUsage, "The encryption algorithm %s is not compatible with the symmetric (SYMMETRIC_DEFAULT) KMS key.", *alg)
	}
	return nil
}

// encryptWith encrypts plaintext under the key's current backing key and
// returns the blob and the backing key.
func (s *Service) encryptWith(ctx context.Context, op string, k *store.Key, plaintext []byte, ec map[string]string) ([]byte, store.BackingKey, error) {
	cur, found := k.Current()
	if !found {
		return nil, cur, internalErr()
	}
	h, aerr := s.hsmFor(k)
	if aerr != nil {
		return nil, cur, aerr
	}
	header, err := blobHeader(k.ID, cur.Version)
	if err != nil {
		return nil, cur, err
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	body, err := h.Encrypt(hctx, cur.Handle, plaintext, blobAAD(header, ec))
	if err != nil {
		return nil, cur, s.hsmErr(op, k, err)
	}
	return append(header, body...), cur, nil
}

// blobKey finds the key of a blob, checks that keyID (when set) names it
// (IncorrectKeyException) and op's key-state cell on it, and returns the
// key. It does not decrypt: the caller may stop for a dry run first.
func (s *Service) blobKey(op string, pb parsedBlob, keyID *string) (*store.Key, error) {
	var k *store.Key
	err := s.db.View(func(tx *store.Tx) error {
		if keyID != nil {
			named, err := s.resolveKey(tx, *keyID, true)
			if err != nil {
				return err
			}
			if named.ID != pb.keyID {
				return newErr(excIncorrectKey, msgIncorrectKey)
			}
		}
		bk, err := tx.Key(pb.keyID)
		if errors.Is(err, store.ErrNotFound) {
			return newErr(excAccessDenied, msgKeyNotExist)
		}
		if err != nil {
			return err
		}
		ki, err := s.info(tx, bk)
		if err != nil {
			return err
		}
		if e := checkState(op, ki.state, bk.ARN); e != nil {
			return e
		}
		k = bk
		return nil
	})
	return k, err
}

// decryptWith decrypts a blob under its key k.
func (s *Service) decryptWith(ctx context.Context, op string, k *store.Key, pb parsedBlob, ec map[string]string) ([]byte, store.BackingKey, error) {
	b, found := k.Backing(pb.version)
	if !found {
		return nil, b, newErr(excInvalidCiphertext, msgInvalidCiphertext)
	}
	h, aerr := s.hsmFor(k)
	if aerr != nil {
		return nil, b, aerr
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	pt, err := h.Decrypt(hctx, b.Handle, pb.body, blobAAD(pb.header, ec))
	if err != nil {
		return nil, b, s.hsmErr(op, k, err)
	}
	return pt, b, nil
}

type encryptInput struct {
	KeyID               *string           `json:"KeyId"`
	Plaintext           []byte            `json:"Plaintext"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
	DryRun              *bool             `json:"DryRun"`
}

type encryptOutput struct {
	CiphertextBlob      []byte `json:"CiphertextBlob"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

func dryRun(b *bool) bool { return b != nil && *b }

// encrypt is Encrypt: plaintext of 1 to 4096 bytes under a symmetric key.
func (s *Service) encrypt(ctx context.Context, r *awsjson.Request) (any, error) {
	var in encryptInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("Plaintext", in.Plaintext != nil)
	v.BlobLength("Plaintext", in.Plaintext, in.Plaintext != nil, 1, 4096)
	v.Enum("EncryptionAlgorithm", in.EncryptionAlgorithm, encryptionAlgorithms...)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	ki, err := s.viewKey("Encrypt", *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	blob, _, err := s.encryptWith(ctx, "Encrypt", ki.k, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return encryptOutput{CiphertextBlob: blob, KeyID: ki.k.ARN, EncryptionAlgorithm: algSymmetric}, nil
}

type decryptInput struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens"`
	KeyID               *string           `json:"KeyId"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
	Recipient           *recipientInfo    `json:"Recipient"`
	DryRun              *bool             `json:"DryRun"`
	DryRunModifiers     []string          `json:"DryRunModifiers"`
}

type decryptOutput struct {
	KeyID               string `json:"KeyId"`
	Plaintext           []byte `json:"Plaintext"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
	KeyMaterialID       string `json:"KeyMaterialId,omitempty"`
}

// ignoreCiphertext reports a dry run that asks not to check the
// ciphertext (DryRunModifiers IGNORE_CIPHERTEXT).
func ignoreCiphertext(dry *bool, modifiers []string) bool {
	return dryRun(dry) && slices.Contains(modifiers, "IGNORE_CIPHERTEXT")
}

func checkModifiers(v *awsjson.Validator, modifiers []string) {
	for i := range modifiers {
		v.Enum("dryRunModifiers."+itoa(i+1)+".member", &modifiers[i], "IGNORE_CIPHERTEXT")
	}
}

// decrypt is Decrypt. The blob names its key; a KeyId that names another
// key is IncorrectKeyException; a tampered blob or a different encryption
// context is InvalidCiphertextException (the HSM's authentication fails).
func (s *Service) decrypt(ctx context.Context, r *awsjson.Request) (any, error) {
	var in decryptInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	skipBlob := ignoreCiphertext(in.DryRun, in.DryRunModifiers)
	if !skipBlob {
		v.Required("CiphertextBlob", in.CiphertextBlob != nil)
	}
	v.BlobLength("CiphertextBlob", in.CiphertextBlob, in.CiphertextBlob != nil, 1, maxBlobLen)
	if skipBlob {
		v.Required("KeyId", in.KeyID != nil)
	}
	v.Length("KeyId", in.KeyID, 1, 2048)
	v.Enum("EncryptionAlgorithm", in.EncryptionAlgorithm, encryptionAlgorithms...)
	checkModifiers(&v, in.DryRunModifiers)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, unsupportedRecipient()
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if skipBlob {
		if _, err := s.viewKey("Decrypt", *in.KeyID, true); err != nil {
			return nil, err
		}
		return nil, newErr(excDryRun, msgDryRun)
	}
	pb, err := parseBlob(in.CiphertextBlob)
	if err != nil {
		return nil, newErr(excInvalidCiphertext, msgInvalidCiphertext)
	}
	k, err := s.blobKey("Decrypt", pb, in.KeyID)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	pt, b, err := s.decryptWith(ctx, "Decrypt", k, pb, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return decryptOutput{KeyID: k.ARN, Plaintext: pt, EncryptionAlgorithm: algSymmetric, KeyMaterialID: b.KeyMaterialID}, nil
}

type reEncryptInput struct {
	CiphertextBlob                 []byte            `json:"CiphertextBlob"`
	SourceEncryptionContext        map[string]string `json:"SourceEncryptionContext"`
	SourceKeyID                    *string           `json:"SourceKeyId"`
	DestinationKeyID               *string           `json:"DestinationKeyId"`
	DestinationEncryptionContext   map[string]string `json:"DestinationEncryptionContext"`
	SourceEncryptionAlgorithm      *string           `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm *string           `json:"DestinationEncryptionAlgorithm"`
	GrantTokens                    []string          `json:"GrantTokens"`
	DryRun                         *bool             `json:"DryRun"`
	DryRunModifiers                []string          `json:"DryRunModifiers"`
}

type reEncryptOutput struct {
	CiphertextBlob                 []byte `json:"CiphertextBlob"`
	SourceKeyID                    string `json:"SourceKeyId"`
	KeyID                          string `json:"KeyId"`
	SourceEncryptionAlgorithm      string `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm string `json:"DestinationEncryptionAlgorithm"`
	SourceKeyMaterialID            string `json:"SourceKeyMaterialId,omitempty"`
	DestinationKeyMaterialID       string `json:"DestinationKeyMaterialId,omitempty"`
}

// reEncrypt is ReEncrypt: Decrypt under the blob's key and Encrypt under
// DestinationKeyId, inside KMS; the plaintext never leaves the endpoint.
func (s *Service) reEncrypt(ctx context.Context, r *awsjson.Request) (any, error) {
	var in reEncryptInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	skipBlob := ignoreCiphertext(in.DryRun, in.DryRunModifiers)
	if !skipBlob {
		v.Required("CiphertextBlob", in.CiphertextBlob != nil)
	}
	v.BlobLength("CiphertextBlob", in.CiphertextBlob, in.CiphertextBlob != nil, 1, maxBlobLen)
	v.Length("SourceKeyId", in.SourceKeyID, 1, 2048)
	checkKeyID(&v, "DestinationKeyId", in.DestinationKeyID)
	v.Enum("SourceEncryptionAlgorithm", in.SourceEncryptionAlgorithm, encryptionAlgorithms...)
	v.Enum("DestinationEncryptionAlgorithm", in.DestinationEncryptionAlgorithm, encryptionAlgorithms...)
	checkModifiers(&v, in.DryRunModifiers)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if err := checkAlgorithm(in.SourceEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkAlgorithm(in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	dst, err := s.viewKey("ReEncrypt", *in.DestinationKeyID, true)
	if err != nil {
		return nil, err
	}
	if skipBlob {
		if in.SourceKeyID != nil {
			if _, err := s.viewKey("ReEncrypt", *in.SourceKeyID, true); err != nil {
				return nil, err
			}
		}
		return nil, newErr(excDryRun, msgDryRun)
	}
	pb, err := parseBlob(in.CiphertextBlob)
	if err != nil {
		return nil, newErr(excInvalidCiphertext, msgInvalidCiphertext)
	}
	src, err := s.blobKey("ReEncrypt", pb, in.SourceKeyID)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	pt, sb, err := s.decryptWith(ctx, "ReEncrypt", src, pb, in.SourceEncryptionContext)
	if err != nil {
		return nil, err
	}
	blob, db, err := s.encryptWith(ctx, "ReEncrypt", dst.k, pt, in.DestinationEncryptionContext)
	clear(pt)
	if err != nil {
		return nil, err
	}
	return reEncryptOutput{
		CiphertextBlob: blob, SourceKeyID: src.ARN, KeyID: dst.k.ARN,
		SourceEncryptionAlgorithm: algSymmetric, DestinationEncryptionAlgorithm: algSymmetric,
		SourceKeyMaterialID: sb.KeyMaterialID, DestinationKeyMaterialID: db.KeyMaterialID,
	}, nil
}

type generateDataKeyInput struct {
	KeyID             *string           `json:"KeyId"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
	NumberOfBytes     *int64            `json:"NumberOfBytes"`
	KeySpec           *string           `json:"KeySpec"`
	GrantTokens       []string          `json:"GrantTokens"`
	Recipient         *recipientInfo    `json:"Recipient"`
	DryRun            *bool             `json:"DryRun"`
}

type generateDataKeyOutput struct {
	CiphertextBlob []byte `json:"CiphertextBlob"`
	Plaintext      []byte `json:"Plaintext,omitempty"`
	KeyID          string `json:"KeyId"`
	KeyMaterialID  string `json:"KeyMaterialId,omitempty"`
}

// generateDataKey is GenerateDataKey.
func (s *Service) generateDataKey(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateDataKeyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return s.dataKey(ctx, "GenerateDataKey", in, true)
}

type generateDataKeyWithoutPlaintextInput struct {
	KeyID             *string           `json:"KeyId"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
	KeySpec           *string           `json:"KeySpec"`
	NumberOfBytes     *int64            `json:"NumberOfBytes"`
	GrantTokens       []string          `json:"GrantTokens"`
	DryRun            *bool             `json:"DryRun"`
}

// generateDataKeyWithoutPlaintext is GenerateDataKeyWithoutPlaintext.
func (s *Service) generateDataKeyWithoutPlaintext(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateDataKeyWithoutPlaintextInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return s.dataKey(ctx, "GenerateDataKeyWithoutPlaintext", generateDataKeyInput{
		KeyID: in.KeyID, EncryptionContext: in.EncryptionContext, NumberOfBytes: in.NumberOfBytes,
		KeySpec: in.KeySpec, GrantTokens: in.GrantTokens, DryRun: in.DryRun,
	}, false)
}

// dataKey generates a data key in the key's cluster (the HSM's random
// generator) and encrypts it there; the plaintext is returned only when
// withPlaintext.
func (s *Service) dataKey(ctx context.Context, op string, in generateDataKeyInput, withPlaintext bool) (any, error) {
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Range("NumberOfBytes", in.NumberOfBytes, 1, 1024)
	v.Enum("KeySpec", in.KeySpec, "AES_256", "AES_128")
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if (in.KeySpec == nil) == (in.NumberOfBytes == nil) {
		return nil, validation("Please specify either number of bytes or key spec.")
	}
	if in.Recipient != nil {
		return nil, unsupportedRecipient()
	}
	n := 0
	if in.NumberOfBytes != nil {
		n = int(*in.NumberOfBytes)
	} else {
		n = dataKeySpecs[*in.KeySpec]
	}
	ki, err := s.viewKey(op, *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	h, aerr := s.hsmFor(ki.k)
	if aerr != nil {
		return nil, aerr
	}
	hctx, cancel := s.hsmCtx(ctx)
	dk, err := h.Random(hctx, n)
	cancel()
	if err != nil {
		return nil, s.hsmErr(op, ki.k, err)
	}
	blob, b, err := s.encryptWith(ctx, op, ki.k, dk, in.EncryptionContext)
	if err != nil {
		clear(dk)
		return nil, err
	}
	out := generateDataKeyOutput{CiphertextBlob: blob, KeyID: ki.k.ARN, KeyMaterialID: b.KeyMaterialID}
	if withPlaintext {
		out.Plaintext = dk
	} else {
		clear(dk)
	}
	return out, nil
}

type generateRandomInput struct {
	NumberOfBytes    *int64         `json:"NumberOfBytes"`
	CustomKeyStoreID *string        `json:"CustomKeyStoreId"`
	Recipient        *recipientInfo `json:"Recipient"`
}

type generateRandomOutput struct {
	Plaintext []byte `json:"Plaintext"`
}

// generateRandom is GenerateRandom: 1 to 1024 bytes from the fleet, or
// from a connected custom key store's cluster.
func (s *Service) generateRandom(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateRandomInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("NumberOfBytes", in.NumberOfBytes != nil)
	v.Range("NumberOfBytes", in.NumberOfBytes, 1, 1024)
	v.Length("CustomKeyStoreId", in.CustomKeyStoreID, 1, 64)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, unsupportedRecipient()
	}
	var h HSM = s.fleet
	custom := in.CustomKeyStoreID != nil
	if custom {
		var err error
		if h, err = s.connectedStoreHSM(*in.CustomKeyStoreID); err != nil {
			return nil, err
		}
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	b, err := h.Random(hctx, int(*in.NumberOfBytes))
	if err != nil {
		s.log.Warn("random generation failed", "custom_key_store_id", str(in.CustomKeyStoreID), "error", err)
		if custom {
			return nil, newErr(excInvalidState, msgCannotCommunicate)
		}
		return nil, s.hsmErr("GenerateRandom", &store.Key{Origin: store.OriginAWSKMS}, err)
	}
	return generateRandomOutput{Plaintext: b}, nil
}
