package kms

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Imported key material (BYOK), as reference §2.2 describes it. The
// wrapping key pair of GetParametersForImport is an RSA pair generated in
// the fleet (its private half non-extractable, usable only to unwrap);
// ImportKeyMaterial unwraps the material in the HSM (UnwrapKey) into a
// new non-extractable backing key, so that the endpoint never sees it.
const (
	// importValidity is how long import parameters are valid.
	importValidity = 24 * time.Hour
	// maxValidTo is how far ValidTo may be from the request.
	maxValidTo = 365 * day
	// importTokenVersion is the first byte of an import token.
	importTokenVersion = 0x01
	// importTokenIDLen is the random part of an import token.
	importTokenIDLen = 32
	// importTokenLen is an import token's length: version, key id, id.
	importTokenLen = 1 + 16 + importTokenIDLen
)

// checkInput is what the HSM computes under symmetric material to tell
// two materials apart (AES-GCM of a zero block, with this as additional
// data, or an HMAC of this message).
var checkInput = []byte("hsmsim:kms:key-material-check")

// Wrapping algorithms (botocore AlgorithmSpec) and how the HSM unwraps
// each: the mechanism and the OAEP hash.
var wrappingAlgorithms = map[string]struct {
	mech hsmv1.WrapMechanism
	hash hsmv1.Hash
}{
	"RSAES_OAEP_SHA_1":         {hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, hsmv1.Hash_HASH_SHA1},
	"RSAES_OAEP_SHA_256":       {hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, hsmv1.Hash_HASH_SHA256},
	"RSA_AES_KEY_WRAP_SHA_1":   {hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES, hsmv1.Hash_HASH_SHA1},
	"RSA_AES_KEY_WRAP_SHA_256": {hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES, hsmv1.Hash_HASH_SHA256},
}

var (
	algorithmSpecs   = []string{"RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE"}
	wrappingKeySpecs = map[string]uint32{"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
	materialDescRE   = regexp.MustCompile(`^[a-zA-Z0-9:/_\s.-]+$`)
	materialIDRE     = regexp.MustCompile(`^[a-f0-9]+$`)
)

// checkImports is the key-type rule of the import operations (footnote
// [9]): only EXTERNAL keys have imported material.
func checkImports(k *store.Key) error {
	if k.Origin != store.OriginExternal {
		return notValidFor(k, "origin is "+k.Origin)
	}
	return nil
}

type getParametersForImportInput struct {
	KeyID             *string `json:"KeyId"`
	WrappingAlgorithm *string `json:"WrappingAlgorithm"`
	WrappingKeySpec   *string `json:"WrappingKeySpec"`
}

type getParametersForImportOutput struct {
	KeyID             string             `json:"KeyId"`
	ImportToken       []byte             `json:"ImportToken"`
	PublicKey         []byte             `json:"PublicKey"`
	ParametersValidTo *awsjson.Timestamp `json:"ParametersValidTo"`
}

// getParametersForImport is GetParametersForImport: a new RSA wrapping
// key pair in the fleet and an import token naming it, valid 24 hours on
// the Service's clock. Each call replaces the key's previous parameters
// (whose wrapping key pair is deleted): only the latest token imports.
func (s *Service) getParametersForImport(ctx context.Context, r *awsjson.Request) (any, error) {
	var in getParametersForImportInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("WrappingAlgorithm", in.WrappingAlgorithm != nil)
	v.Enum("WrappingAlgorithm", in.WrappingAlgorithm, algorithmSpecs...)
	v.Required("WrappingKeySpec", in.WrappingKeySpec != nil)
	v.Enum("WrappingKeySpec", in.WrappingKeySpec, "RSA_2048", "RSA_3072", "RSA_4096", "SM2")
	if err := v.Err(); err != nil {
		return nil, err
	}
	alg, spec := *in.WrappingAlgorithm, *in.WrappingKeySpec
	switch {
	case alg == "RSAES_PKCS1_V1_5":
		return nil, newErr(excUnsupportedOperation, "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported (since October 10, 2023).")
	case alg == "SM2PKE" || spec == "SM2":
		return nil, newErr(excUnsupportedOperation, "SM2 wrapping is available only in the China Regions.")
	}
	var ki *keyInfo
	err := s.db.View(func(tx *store.Tx) (err error) {
		ki, err = s.lookupKind(tx, "GetParametersForImport", *in.KeyID, checkImports)
		return err
	})
	if err != nil {
		return nil, err
	}
	k := ki.k
	ks := specOf(k)
	rsaAES := wrappingAlgorithms[alg].mech == hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_AES
	switch {
	case ks.class == classRSA && !rsaAES:
		return nil, validation("An RSA private key can be imported only with an RSA_AES_KEY_WRAP wrapping algorithm, not %s.", alg)
	case ks.name == "ECC_NIST_P521" && spec == "RSA_2048" && !rsaAES:
		return nil, validation("%s with an RSA_2048 wrapping key cannot wrap ECC_NIST_P521 key material; use RSA_AES_KEY_WRAP or a longer wrapping key.", alg)
	}

	priv, pub, err := s.generateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{
		Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: wrappingKeySpecs[spec], Label: k.ARN + "/import", Id: newKeyMaterialID(),
		Usage: &hsmv1.KeyUsage{Unwrap: true},
	})
	if err != nil {
		return nil, s.hsmErr("GetParametersForImport", k, err)
	}
	params := &store.ImportParameters{
		TokenID: newKeyMaterialID(), WrappingAlgorithm: alg, WrappingKeySpec: spec,
		PrivateHandle: priv.GetHandle(), PublicHandle: pub.GetHandle(), ValidTo: s.clock.Now().Add(importValidity),
	}
	var old *store.ImportParameters
	_, err = s.updateKind("GetParametersForImport", k.ID, checkImports, func(_ *store.Tx, ki *keyInfo) error {
		old, ki.k.Import = ki.k.Import, params
		return nil
	})
	if err != nil {
		s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, k.ID, priv.GetHandle())
		s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, k.ID, pub.GetHandle())
		return nil, err
	}
	if old != nil {
		s.deleteWrappingKey(ctx, k.ID, old)
	}
	s.log.Info("import parameters issued", "key_id", k.ID, "wrapping_algorithm", alg, "wrapping_key_spec", spec, "valid_to", params.ValidTo)
	return getParametersForImportOutput{
		KeyID: k.ARN, ImportToken: importToken(k.ID, params.TokenID), PublicKey: pub.GetPublicKey(),
		ParametersValidTo: awsjson.TimeOf(params.ValidTo),
	}, nil
}

// deleteWrappingKey deletes an import's wrapping key pair, best effort.
func (s *Service) deleteWrappingKey(ctx context.Context, keyID string, p *store.ImportParameters) {
	for _, h := range []uint64{p.PrivateHandle, p.PublicHandle} {
		if h != 0 {
			s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, keyID, h)
		}
	}
}

// importToken is version || key id (UUID bytes) || token id: opaque to the
// caller, it names the key and the parameters.
func importToken(keyID string, tokenID []byte) []byte {
	id := uuid.MustParse(keyID)
	return append(append([]byte{importTokenVersion}, id[:]...), tokenID...)
}

func invalidImportToken() *awsjson.Error {
	return newErr(excInvalidImportToken, "The import token is not valid for this KMS key. Use the import token and public key from the same GetParametersForImport response.")
}

// checkImportToken checks a token against key k's latest parameters:
// InvalidImportTokenException when it is not theirs (another key's, an
// older one, not a token), ExpiredImportTokenException when they expired.
func checkImportToken(k *store.Key, token []byte, now time.Time) error {
	if len(token) != importTokenLen || token[0] != importTokenVersion {
		return invalidImportToken()
	}
	id, err := uuid.FromBytes(token[1:17])
	if err != nil || id.String() != k.ID || k.Import == nil ||
		subtle.ConstantTimeCompare(token[17:], k.Import.TokenID) != 1 {
		return invalidImportToken()
	}
	if !now.Before(k.Import.ValidTo) {
		return newErr(excExpiredImportToken, "The import token expired at %s. Call GetParametersForImport for a new one.", k.Import.ValidTo.Format(time.RFC3339))
	}
	return nil
}

type importKeyMaterialInput struct {
	KeyID                  *string            `json:"KeyId"`
	ImportToken            []byte             `json:"ImportToken"`
	EncryptedKeyMaterial   []byte             `json:"EncryptedKeyMaterial"`
	ValidTo                *awsjson.Timestamp `json:"ValidTo"`
	ExpirationModel        *string            `json:"ExpirationModel"`
	ImportType             *string            `json:"ImportType"`
	KeyMaterialDescription *string            `json:"KeyMaterialDescription"`
	KeyMaterialID          *string            `json:"KeyMaterialId"`
}

type importKeyMaterialOutput struct {
	KeyID         string `json:"KeyId"`
	KeyMaterialID string `json:"KeyMaterialId"`
}

// hsmTypeOf is the HSM key type that holds a spec's material.
func hsmTypeOf(ks *keySpec) hsmv1.KeyType {
	switch ks.class {
	case classRSA:
		return hsmv1.KeyType_KEY_TYPE_RSA
	case classEC:
		return hsmv1.KeyType_KEY_TYPE_EC
	case classHMAC:
		return hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET
	}
	return hsmv1.KeyType_KEY_TYPE_AES
}

// importUsage is what an imported key may do in the HSM. An imported
// private key has no public key object, so it also verifies or encrypts.
func importUsage(k *store.Key) *hsmv1.KeyUsage {
	switch {
	case isSymmetric(k):
		return &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}
	case isHMAC(k), k.KeyUsage == usageSign:
		return &hsmv1.KeyUsage{Sign: true, Verify: true}
	}
	return &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}
}

// matchesSpec reports whether an unwrapped key is of the key's spec.
func matchesSpec(ks *keySpec, a *hsmv1.KeyAttributes) bool {
	switch ks.class {
	case classEC:
		return a.GetCurve() == ks.curve
	default:
		return a.GetSizeBits() == ks.bits
	}
}

// importKeyMaterial is ImportKeyMaterial: the wrapped material is
// unwrapped in the fleet with the import's wrapping key into a new
// backing key. The first import fixes the key's material; a reimport must
// bring the same material (IncorrectKeyMaterialException otherwise), told
// apart in the HSM by the key check value and a computation under the
// material that only the same material reproduces (AES-GCM decryption of
// a value the first material encrypted, an HMAC, the public key). The key
// becomes Enabled when it was PendingImport.
func (s *Service) importKeyMaterial(ctx context.Context, r *awsjson.Request) (any, error) {
	var in importKeyMaterialInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("ImportToken", in.ImportToken != nil)
	v.BlobLength("ImportToken", in.ImportToken, in.ImportToken != nil, 1, maxBlobLen)
	v.Required("EncryptedKeyMaterial", in.EncryptedKeyMaterial != nil)
	v.BlobLength("EncryptedKeyMaterial", in.EncryptedKeyMaterial, in.EncryptedKeyMaterial != nil, 1, maxBlobLen)
	v.Enum("ExpirationModel", in.ExpirationModel, expiresModel, doesNotExpireModel)
	v.Enum("ImportType", in.ImportType, "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL")
	v.Length("KeyMaterialDescription", in.KeyMaterialDescription, 0, 256)
	if in.KeyMaterialDescription != nil && *in.KeyMaterialDescription != "" {
		v.Pattern("KeyMaterialDescription", in.KeyMaterialDescription, materialDescRE)
	}
	v.Length("KeyMaterialId", in.KeyMaterialID, 64, 64)
	v.Pattern("KeyMaterialId", in.KeyMaterialID, materialIDRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	model := expiresModel
	if in.ExpirationModel != nil {
		model = *in.ExpirationModel
	}
	var validTo time.Time
	switch {
	case model == expiresModel && in.ValidTo == nil:
		return nil, validation("ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES.")
	case model == doesNotExpireModel && in.ValidTo != nil:
		return nil, validation("ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.")
	case in.ValidTo != nil:
		validTo = time.Time(*in.ValidTo)
		if !validTo.After(now) || validTo.After(now.Add(maxValidTo)) {
			return nil, validation("ValidTo must be in the future and at most 365 days from now.")
		}
	}

	var ki *keyInfo
	err := s.db.View(func(tx *store.Tx) (err error) {
		if ki, err = s.lookupKind(tx, "ImportKeyMaterial", *in.KeyID, checkImports); err != nil {
			return err
		}
		return checkImportToken(ki.k, in.ImportToken, now)
	})
	if err != nil {
		return nil, err
	}
	k := ki.k
	prev, hasPrev := k.Current()
	if err := checkImportType(k, in, hasPrev, prev); err != nil {
		return nil, err
	}

	ks := specOf(k)
	wa := wrappingAlgorithms[k.Import.WrappingAlgorithm]
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	attrs, err := s.fleet.unwrapKey(hctx, &hsmv1.UnwrapKeyRequest{
		UnwrappingHandle: k.Import.PrivateHandle, Mechanism: wa.mech, Hash: wa.hash, Wrapped: in.EncryptedKeyMaterial,
		Type: hsmTypeOf(ks), Label: k.ARN, Id: newKeyMaterialID(), Usage: importUsage(k),
	})
	switch {
	case errors.Is(err, ErrHSMDecrypt):
		return nil, newErr(excInvalidCiphertext, "The wrapped key material could not be decrypted with the wrapping key of the import token. Wrap it with the public key and algorithm of the same GetParametersForImport response.")
	case errors.Is(err, ErrHSMInvalidInput):
		return nil, newErr(excIncorrectKeyMaterial, "The imported key material is not %s key material.", k.KeySpec)
	case err != nil:
		return nil, s.hsmErr("ImportKeyMaterial", k, err)
	}
	handle := attrs.GetHandle()
	drop := func() { s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, k.ID, handle) }
	if !matchesSpec(ks, attrs) {
		drop()
		return nil, newErr(excIncorrectKeyMaterial, "The imported key material is not %s key material.", k.KeySpec)
	}
	check, same, err := s.materialCheck(hctx, k, attrs, prev, hasPrev)
	if err != nil {
		drop()
		return nil, s.hsmErr("ImportKeyMaterial", k, err)
	}
	if !same {
		drop()
		return nil, newErr(excIncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", k.ARN)
	}

	var replaced uint64
	var materialID string
	ki, err = s.updateKind("ImportKeyMaterial", k.ID, checkImports, func(_ *store.Tx, ki *keyInfo) error {
		cur := ki.k
		if err := checkImportToken(cur, in.ImportToken, now); err != nil {
			return err
		}
		b := store.BackingKey{Version: 1, KeyMaterialID: hex.EncodeToString(newKeyMaterialID()), KCV: attrs.GetKcv(), Check: check}
		if last, found := cur.Current(); found {
			if !bytes.Equal(last.KCV, attrs.GetKcv()) {
				return newErr(excIncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", cur.ARN)
			}
			b = last
			replaced = last.Handle
			cur.BackingKeys = cur.BackingKeys[:len(cur.BackingKeys)-1]
		}
		b.Handle, b.PublicHandle, b.ImportState = handle, 0, store.Imported
		b.ExpirationModel, b.ValidTo = model, validTo
		if in.KeyMaterialDescription != nil {
			b.Description = *in.KeyMaterialDescription
		}
		cur.BackingKeys = append(cur.BackingKeys, b)
		if cur.State == store.KeyPendingImport {
			cur.State = store.KeyEnabled
		}
		materialID = b.KeyMaterialID
		return nil
	})
	if err != nil {
		drop()
		return nil, err
	}
	if replaced != 0 {
		s.deleteHSMKey(ctx, s.fleet, k.ID, replaced)
	}
	s.log.Info("key material imported", "key_id", k.ID, "key_material_id", materialID, "expiration_model", model, "valid_to", validTo)
	return importKeyMaterialOutput{KeyID: ki.k.ARN, KeyMaterialID: materialID}, nil
}

// checkImportType applies ImportType, KeyMaterialId and
// KeyMaterialDescription: symmetric keys only; NEW_KEY_MATERIAL only for
// the first import (a second material, for on-demand rotation of an
// imported key, is not supported), EXISTING_KEY_MATERIAL only after it,
// and a KeyMaterialId only with EXISTING_KEY_MATERIAL, naming the key's.
func checkImportType(k *store.Key, in importKeyMaterialInput, hasPrev bool, prev store.BackingKey) error {
	if !isSymmetric(k) && (in.ImportType != nil || in.KeyMaterialID != nil || in.KeyMaterialDescription != nil) {
		return validation("ImportType, KeyMaterialId and KeyMaterialDescription are valid only for symmetric encryption keys.")
	}
	importType := "NEW_KEY_MATERIAL"
	if hasPrev {
		importType = "EXISTING_KEY_MATERIAL"
	}
	if in.ImportType != nil {
		switch {
		case *in.ImportType == "NEW_KEY_MATERIAL" && hasPrev:
			return newErr(excUnsupportedOperation, "%s already has key material; importing new key material for an on-demand rotation is not supported by hsmsim. Reimport the same key material (EXISTING_KEY_MATERIAL).", k.ARN)
		case *in.ImportType == "EXISTING_KEY_MATERIAL" && !hasPrev:
			return validation("%s has no key material yet: use ImportType NEW_KEY_MATERIAL.", k.ARN)
		}
		importType = *in.ImportType
	}
	if in.KeyMaterialID != nil {
		if importType == "NEW_KEY_MATERIAL" {
			return validation("KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL.")
		}
		if *in.KeyMaterialID != prev.KeyMaterialID {
			return newErr(excIncorrectKeyMaterial, "The key material ID %s is not associated with %s.", *in.KeyMaterialID, k.ARN)
		}
	}
	return nil
}

// materialCheck computes, under an unwrapped key, the value that tells
// its material apart, and reports whether it is the previous material's
// (always true for a first import). Symmetric: the HSM encrypts a zero
// block with AES-GCM under a first material, and a later material must
// decrypt it. HMAC: the HMAC of checkInput. Asymmetric: the public key.
func (s *Service) materialCheck(ctx context.Context, k *store.Key, attrs *hsmv1.KeyAttributes, prev store.BackingKey, hasPrev bool) ([]byte, bool, error) {
	if hasPrev && !bytes.Equal(prev.KCV, attrs.GetKcv()) {
		return nil, false, nil
	}
	h := attrs.GetHandle()
	switch {
	case isSymmetric(k):
		if hasPrev {
			_, err := s.fleet.Decrypt(ctx, h, prev.Check, checkInput)
			if errors.Is(err, ErrHSMDecrypt) {
				return nil, false, nil
			}
			return prev.Check, err == nil, err
		}
		check, err := s.fleet.Encrypt(ctx, h, make([]byte, 16), checkInput)
		return check, true, err
	case isHMAC(k):
		check, err := s.fleet.generateMac(ctx, &hsmv1.GenerateMacRequest{Handle: h, Hash: hsmv1.Hash_HASH_SHA256, Message: checkInput})
		if err != nil {
			return nil, false, err
		}
		return check, !hasPrev || subtle.ConstantTimeCompare(check, prev.Check) == 1, nil
	}
	check := attrs.GetPublicKey()
	return check, !hasPrev || bytes.Equal(check, prev.Check), nil
}

type deleteImportedKeyMaterialInput struct {
	KeyID         *string `json:"KeyId"`
	KeyMaterialID *string `json:"KeyMaterialId"`
}

type deleteImportedKeyMaterialOutput struct {
	KeyID         string `json:"KeyId"`
	KeyMaterialID string `json:"KeyMaterialId"`
}

// deleteImportedKeyMaterial is DeleteImportedKeyMaterial: the backing key
// is deleted from the fleet and the key waits for the same material again
// (PendingImport, unless it is pending deletion). On a key that has none,
// it changes nothing.
func (s *Service) deleteImportedKeyMaterial(ctx context.Context, r *awsjson.Request) (any, error) {
	var in deleteImportedKeyMaterialInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Length("KeyMaterialId", in.KeyMaterialID, 64, 64)
	v.Pattern("KeyMaterialId", in.KeyMaterialID, materialIDRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var deleted store.BackingKey
	ki, err := s.updateKind("DeleteImportedKeyMaterial", *in.KeyID, checkImports, func(_ *store.Tx, ki *keyInfo) error {
		k := ki.k
		cur, found := k.Current()
		if in.KeyMaterialID != nil && (!found || cur.KeyMaterialID != *in.KeyMaterialID) {
			return newErr(excNotFound, "The key material %s is not associated with %s.", *in.KeyMaterialID, k.ARN)
		}
		if !found || cur.ImportState != store.Imported {
			return nil
		}
		deleted = cur
		dropMaterial(k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deleted.Handle != 0 {
		s.deleteHSMKey(ctx, s.fleet, ki.k.ID, deleted.Handle)
		s.log.Info("imported key material deleted", "key_id", ki.k.ID, "key_material_id", deleted.KeyMaterialID)
	}
	return deleteImportedKeyMaterialOutput{KeyID: ki.k.ARN, KeyMaterialID: deleted.KeyMaterialID}, nil
}

// dropMaterial marks a key's imported material deleted (its HSM key is
// for the caller to delete) and the key PendingImport, unless it is
// pending deletion.
func dropMaterial(k *store.Key) {
	b := &k.BackingKeys[len(k.BackingKeys)-1]
	b.Handle, b.ImportState, b.ValidTo = 0, store.PendingImport, time.Time{}
	if k.State != store.KeyPendingDeletion {
		k.State = store.KeyPendingImport
	}
}

// expireImports deletes the imported material whose ValidTo has passed
// (the key turns PendingImport) and the wrapping key pairs of expired
// import parameters (whose record stays, so that their token is reported
// expired rather than invalid). It reads only the keys whose due date
// has come (store.Key.DueDate covers both expiries).
func (s *Service) expireImports(ctx context.Context, now time.Time) error {
	expired := func(k *store.Key) (material, params bool) {
		if k.Origin != store.OriginExternal {
			return false, false
		}
		cur, found := k.Current()
		material = found && cur.ImportState == store.Imported && cur.ExpirationModel == expiresModel && !cur.ValidTo.After(now)
		params = k.Import != nil && k.Import.PrivateHandle != 0 && !k.Import.ValidTo.After(now)
		return material, params
	}
	due := false
	if err := s.db.View(func(tx *store.Tx) error {
		keys, err := tx.KeysDueBy(now)
		for _, k := range keys {
			if m, p := expired(k); m || p {
				due = true
			}
		}
		return err
	}); err != nil || !due {
		return err
	}
	var (
		materials []uint64
		wrapping  []*store.ImportParameters
		ids       []string
	)
	err := s.db.Update(func(tx *store.Tx) error {
		materials, wrapping, ids = nil, nil, nil
		keys, err := tx.KeysDueBy(now)
		if err != nil {
			return err
		}
		for _, k := range keys {
			material, params := expired(k)
			if material {
				cur, _ := k.Current()
				materials = append(materials, cur.Handle)
				ids = append(ids, k.ID)
				dropMaterial(k)
			}
			if params {
				cp := *k.Import
				wrapping = append(wrapping, &cp)
				k.Import.PrivateHandle, k.Import.PublicHandle = 0, 0
			}
			if material || params {
				if err := tx.PutKey(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.log.Info("imported key material expired", "key_id", id)
	}
	for i, h := range materials {
		s.deleteHSMKey(ctx, s.fleet, ids[i], h)
	}
	for _, p := range wrapping {
		s.deleteWrappingKey(ctx, "", p)
	}
	return nil
}
