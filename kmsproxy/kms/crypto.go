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

// algorithmOr returns *alg, or SYMMETRIC_DEFAULT (the model's default).
func algorithmOr(alg *string) string {
	if alg == nil {
		return algSymmetric
	}
	return *alg
}

// wrongUsage is InvalidKeyUsageException for an operation the key's
// usage or type does not allow.
func wrongUsage(k *store.Key, op string) *awsjson.Error {
	return newErr(excInvalidKeyUsage, "%s key usage is %s and its KeySpec %s, which is not valid for %s.", k.ARN, k.KeyUsage, k.KeySpec, op)
}

// checkEncryption checks that key k can encrypt or decrypt (op) with
// algorithm alg and encryption context ec: an ENCRYPT_DECRYPT key and one
// of its algorithms (InvalidKeyUsageException); no encryption context for
// an asymmetric key (ValidationException).
func checkEncryption(k *store.Key, op, alg string, ec map[string]string) error {
	if k.KeyUsage != usageEncrypt {
		return wrongUsage(k, op)
	}
	if !slices.Contains(keyEncryptionAlgorithms(k), alg) {
		return newErr(excInvalidKeyUsage, "The encryption algorithm %s is not compatible with the KMS key %s, whose KeySpec is %s.", alg, k.ARN, k.KeySpec)
	}
	if !isSymmetric(k) && len(ec) > 0 {
		return validation("EncryptionContext is not supported with asymmetric KMS keys.")
	}
	return nil
}

// checkOAEPPlaintext enforces AWS's plaintext limits of RSAES_OAEP.
func checkOAEPPlaintext(k *store.Key, alg string, pt []byte) error {
	if isSymmetric(k) {
		return nil
	}
	if n, max := len(pt), maxOAEPPlaintext(specOf(k).bits, alg); n > max {
		return validation("Plaintext of %d bytes is too long for %s with a %s key: at most %d bytes.", n, alg, k.KeySpec, max)
	}
	return nil
}

// encryptUnder encrypts plaintext under key k with algorithm alg: a
// ciphertext blob under the current material (symmetric), or raw RSA-OAEP
// with the public key, in the HSM (asymmetric).
func (s *Service) encryptUnder(ctx context.Context, op string, k *store.Key, alg string, plaintext []byte, ec map[string]string) ([]byte, store.BackingKey, error) {
	if isSymmetric(k) {
		return s.encryptWith(ctx, op, k, plaintext, ec)
	}
	cur, found := k.Current()
	if !found || cur.Handle == 0 {
		return nil, cur, internalErr()
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	ct, err := s.fleet.encryptOAEP(hctx, publicHandle(cur), oaepHash[alg], plaintext)
	if err != nil {
		return nil, cur, s.hsmErr(op, k, err)
	}
	return ct, cur, nil
}

// publicHandle is the HSM key that holds a pair's public key: its public
// half, or the private key object of imported material.
func publicHandle(b store.BackingKey) uint64 {
	if b.PublicHandle != 0 {
		return b.PublicHandle
	}
	return b.Handle
}

// decryptAsymmetric decrypts raw RSA-OAEP ciphertext with key k's private
// key in the HSM; a ciphertext that does not decrypt is
// InvalidCiphertextException.
func (s *Service) decryptAsymmetric(ctx context.Context, op string, k *store.Key, alg string, ciphertext []byte) ([]byte, error) {
	cur, found := k.Current()
	if !found || cur.Handle == 0 {
		return nil, internalErr()
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	pt, err := s.fleet.decryptOAEP(hctx, cur.Handle, oaepHash[alg], ciphertext)
	if err != nil {
		return nil, s.hsmErr(op, k, err)
	}
	return pt, nil
}

// resolve returns the key keyID names, whatever its state.
func (s *Service) resolve(keyID string, aliases bool) (*store.Key, error) {
	var k *store.Key
	err := s.db.View(func(tx *store.Tx) (err error) {
		k, err = s.resolveKey(tx, keyID, aliases)
		return err
	})
	return k, err
}

// encryptWith encrypts plaintext under the key's current backing key and
// returns the blob and the backing key.
func (s *Service) encryptWith(ctx context.Context, op string, k *store.Key, plaintext []byte, ec map[string]string) ([]byte, store.BackingKey, error) {
	cur, found := k.Current()
	if !found {
		return nil, cur, internalErr()
	}
	h, aerr := s.hsmFor(ctx, k)
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
	h, aerr := s.hsmFor(ctx, k)
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

// encrypt is Encrypt: plaintext of 1 to 4096 bytes under a symmetric key
// (a ciphertext blob), or of up to the RSAES_OAEP limit under an RSA
// ENCRYPT_DECRYPT key (the raw OAEP ciphertext, which anyone with the
// public key can also produce).
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
	alg := algorithmOr(in.EncryptionAlgorithm)
	if err := checkEncryption(ki.k, "Encrypt", alg, in.EncryptionContext); err != nil {
		return nil, err
	}
	if err := checkOAEPPlaintext(ki.k, alg, in.Plaintext); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	blob, _, err := s.encryptUnder(ctx, "Encrypt", ki.k, alg, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return encryptOutput{CiphertextBlob: blob, KeyID: ki.k.ARN, EncryptionAlgorithm: alg}, nil
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

// decrypt is Decrypt. A symmetric blob names its key; a KeyId that names
// another key is IncorrectKeyException; a tampered blob or a different
// encryption context is InvalidCiphertextException (the HSM's
// authentication fails). A KeyId that names an asymmetric key means raw
// RSA-OAEP ciphertext (decryptWithKey).
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
	if in.KeyID != nil {
		named, err := s.resolve(*in.KeyID, true)
		if err != nil {
			return nil, err
		}
		if !isSymmetric(named) {
			return s.decryptWithKey(ctx, in, skipBlob)
		}
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

// decryptWithKey is Decrypt with a KeyId that names a key that is not
// symmetric: raw RSA-OAEP ciphertext, which names no key, and an
// EncryptionAlgorithm that the key supports (reference §7).
func (s *Service) decryptWithKey(ctx context.Context, in decryptInput, skipBlob bool) (any, error) {
	ki, err := s.viewKey("Decrypt", *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	alg := algorithmOr(in.EncryptionAlgorithm)
	if err := checkEncryption(ki.k, "Decrypt", alg, in.EncryptionContext); err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) || skipBlob {
		return nil, newErr(excDryRun, msgDryRun)
	}
	pt, err := s.decryptAsymmetric(ctx, "Decrypt", ki.k, alg, in.CiphertextBlob)
	if err != nil {
		return nil, err
	}
	return decryptOutput{KeyID: ki.k.ARN, Plaintext: pt, EncryptionAlgorithm: alg}, nil
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

// reEncrypt is ReEncrypt: Decrypt under the source key and Encrypt under
// DestinationKeyId, inside KMS; the plaintext never leaves the endpoint.
// Either side may be an asymmetric ENCRYPT_DECRYPT key (raw RSA-OAEP,
// SourceKeyId and the algorithms then say which).
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
	dst, err := s.viewKey("ReEncrypt", *in.DestinationKeyID, true)
	if err != nil {
		return nil, err
	}
	dstAlg := algorithmOr(in.DestinationEncryptionAlgorithm)
	if err := checkEncryption(dst.k, "ReEncrypt", dstAlg, in.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	// The source: a symmetric blob, or raw RSA-OAEP ciphertext under the
	// asymmetric key SourceKeyId names.
	var src *store.Key
	srcAlg := algorithmOr(in.SourceEncryptionAlgorithm)
	if in.SourceKeyID != nil {
		named, err := s.resolve(*in.SourceKeyID, true)
		if err != nil {
			return nil, err
		}
		if !isSymmetric(named) {
			ki, err := s.viewKey("ReEncrypt", *in.SourceKeyID, true)
			if err != nil {
				return nil, err
			}
			if err := checkEncryption(ki.k, "ReEncrypt", srcAlg, in.SourceEncryptionContext); err != nil {
				return nil, err
			}
			src = ki.k
		}
	}
	if src == nil {
		if err := checkAlgorithm(in.SourceEncryptionAlgorithm); err != nil {
			return nil, err
		}
	}
	if skipBlob {
		if in.SourceKeyID != nil && src == nil {
			if _, err := s.viewKey("ReEncrypt", *in.SourceKeyID, true); err != nil {
				return nil, err
			}
		}
		return nil, newErr(excDryRun, msgDryRun)
	}
	var (
		pt []byte
		sb store.BackingKey
	)
	if src != nil {
		if dryRun(in.DryRun) {
			return nil, newErr(excDryRun, msgDryRun)
		}
		if pt, err = s.decryptAsymmetric(ctx, "ReEncrypt", src, srcAlg, in.CiphertextBlob); err != nil {
			return nil, err
		}
	} else {
		pb, err := parseBlob(in.CiphertextBlob)
		if err != nil {
			return nil, newErr(excInvalidCiphertext, msgInvalidCiphertext)
		}
		if src, err = s.blobKey("ReEncrypt", pb, in.SourceKeyID); err != nil {
			return nil, err
		}
		if dryRun(in.DryRun) {
			return nil, newErr(excDryRun, msgDryRun)
		}
		if pt, sb, err = s.decryptWith(ctx, "ReEncrypt", src, pb, in.SourceEncryptionContext); err != nil {
			return nil, err
		}
	}
	defer clear(pt)
	if err := checkOAEPPlaintext(dst.k, dstAlg, pt); err != nil {
		return nil, err
	}
	blob, db, err := s.encryptUnder(ctx, "ReEncrypt", dst.k, dstAlg, pt, in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	out := reEncryptOutput{
		CiphertextBlob: blob, SourceKeyID: src.ARN, KeyID: dst.k.ARN,
		SourceEncryptionAlgorithm: srcAlg, DestinationEncryptionAlgorithm: dstAlg,
		SourceKeyMaterialID: sb.KeyMaterialID,
	}
	if isSymmetric(dst.k) {
		out.DestinationKeyMaterialID = db.KeyMaterialID
	}
	return out, nil
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
	if !isSymmetric(ki.k) {
		return nil, wrongUsage(ki.k, op)
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	h, aerr := s.hsmFor(ctx, ki.k)
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
		if h, err = s.connectedStoreHSM(ctx, *in.CustomKeyStoreID); err != nil {
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
