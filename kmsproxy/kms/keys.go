package kms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Values of the key's fixed properties.
const (
	specSymmetric    = "SYMMETRIC_DEFAULT"
	usageEncrypt     = "ENCRYPT_DECRYPT"
	algSymmetric     = "SYMMETRIC_DEFAULT"
	keyManagerCustom = "CUSTOMER"
	// maxPolicyBytes is the key policy quota (reference §2.1).
	maxPolicyBytes = 32768
	// maxTagsPerKey is the tag quota of a KMS key.
	maxTagsPerKey = 50
)

// Enum values of the botocore model, for validation messages.
var (
	keySpecs = []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
		"ECC_SECG_P256K1", "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2",
		"ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519"}
	customerMasterKeySpecs = keySpecs[:13]
	keyUsages              = []string{"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"}
	origins                = []string{"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}
	encryptionAlgorithms   = []string{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"}
)

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// defaultPolicy is the key policy of a key created without one (reference §8).
func (s *Service) defaultPolicy() string {
	return `{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` +
		s.cfg.Account + `:root"},"Action":"kms:*","Resource":"*"}]}`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func notFoundKey(arn string) *awsjson.Error {
	return newErr(excNotFound, "Key '%s' does not exist", arn)
}

func invalidKeyID(id string) *awsjson.Error {
	return newErr(excNotFound, "Invalid keyId %s", id)
}

// resolveKey returns the key keyID names: a key id or key ARN, and when
// aliases is true also an alias name or alias ARN (operations that accept
// aliases: DescribeKey and the cryptographic operations).
func (s *Service) resolveKey(tx *store.Tx, keyID string, aliases bool) (*store.Key, error) {
	// ref is the ARN's resource ("key/<id>" or "alias/<name>"), or keyID.
	ref, id := keyID, keyID
	if strings.HasPrefix(keyID, "arn:") {
		parts := strings.SplitN(keyID, ":", 6)
		if len(parts) != 6 || parts[1] != "aws" || parts[2] != "kms" ||
			!(strings.HasPrefix(parts[5], "key/") || strings.HasPrefix(parts[5], "alias/")) {
			return nil, newErr(excNotFound, "Invalid arn %s", keyID)
		}
		if parts[3] != s.cfg.Region || parts[4] != s.cfg.Account {
			if strings.HasPrefix(parts[5], "alias/") {
				return nil, newErr(excNotFound, "Alias %s is not found.", keyID)
			}
			return nil, notFoundKey(keyID)
		}
		ref = parts[5]
		id = strings.TrimPrefix(ref, "key/")
	}
	if name, isAlias := strings.CutPrefix(ref, "alias/"); isAlias {
		if !aliases || name == "" {
			return nil, invalidKeyID(keyID)
		}
		a, err := tx.Alias(ref)
		if errors.Is(err, store.ErrNotFound) {
			return nil, newErr(excNotFound, "Alias %s is not found.", s.aliasARN(ref))
		}
		if err != nil {
			return nil, err
		}
		id = a.KeyID
	}
	if !keyIDRE.MatchString(id) {
		return nil, invalidKeyID(keyID)
	}
	k, err := tx.Key(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundKey(s.keyARN(id))
	}
	return k, err
}

// keyInfo is a key with its custom key store and the state KMS reports.
type keyInfo struct {
	k     *store.Key
	cks   *store.CustomKeyStore
	state KeyState
}

// info loads a key's custom key store and derives its state.
func (s *Service) info(tx *store.Tx, k *store.Key) (*keyInfo, error) {
	ki := &keyInfo{k: k}
	cs := store.Connected
	if k.Origin == store.OriginAWSCloudHSM {
		cks, err := tx.CustomKeyStore(k.CustomKeyStoreID)
		switch {
		case err == nil:
			ki.cks, cs = cks, cks.ConnectionState
		case errors.Is(err, store.ErrNotFound):
			cs = store.Disconnected
		default:
			return nil, err
		}
	}
	ki.state = derivedState(k.State, k.Origin == store.OriginAWSCloudHSM, cs)
	return ki, nil
}

// lookup resolves keyID and checks op's key-state cell, in tx.
func (s *Service) lookup(tx *store.Tx, op, keyID string, aliases bool) (*keyInfo, error) {
	k, err := s.resolveKey(tx, keyID, aliases)
	if err != nil {
		return nil, err
	}
	ki, err := s.info(tx, k)
	if err != nil {
		return nil, err
	}
	if e := checkState(op, ki.state, k.ARN); e != nil {
		return nil, e
	}
	return ki, nil
}

// viewKey runs lookup in a read-only transaction.
func (s *Service) viewKey(op, keyID string, aliases bool) (*keyInfo, error) {
	var ki *keyInfo
	err := s.db.View(func(tx *store.Tx) (err error) {
		ki, err = s.lookup(tx, op, keyID, aliases)
		return err
	})
	return ki, err
}

// updateKey runs lookup and then f in one read-write transaction, and
// writes the key back when f succeeds.
func (s *Service) updateKey(op, keyID string, f func(tx *store.Tx, ki *keyInfo) error) (*keyInfo, error) {
	var ki *keyInfo
	err := s.db.Update(func(tx *store.Tx) (err error) {
		if ki, err = s.lookup(tx, op, keyID, false); err != nil {
			return err
		}
		if err := f(tx, ki); err != nil {
			return err
		}
		return tx.PutKey(ki.k)
	})
	return ki, err
}

// keyMetadata is botocore's KeyMetadata (without the multi-Region, key
// agreement and external key store members, which no key here has).
type keyMetadata struct {
	AWSAccountID          string             `json:"AWSAccountId"`
	KeyID                 string             `json:"KeyId"`
	Arn                   string             `json:"Arn"`
	CreationDate          *awsjson.Timestamp `json:"CreationDate"`
	Enabled               bool               `json:"Enabled"`
	Description           string             `json:"Description"`
	KeyUsage              string             `json:"KeyUsage"`
	KeyState              KeyState           `json:"KeyState"`
	DeletionDate          *awsjson.Timestamp `json:"DeletionDate,omitempty"`
	Origin                string             `json:"Origin"`
	CustomKeyStoreID      string             `json:"CustomKeyStoreId,omitempty"`
	CloudHsmClusterID     string             `json:"CloudHsmClusterId,omitempty"`
	KeyManager            string             `json:"KeyManager"`
	CustomerMasterKeySpec string             `json:"CustomerMasterKeySpec"`
	KeySpec               string             `json:"KeySpec"`
	EncryptionAlgorithms  []string           `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms     []string           `json:"SigningAlgorithms,omitempty"`
	MacAlgorithms         []string           `json:"MacAlgorithms,omitempty"`
	ValidTo               *awsjson.Timestamp `json:"ValidTo,omitempty"`
	ExpirationModel       string             `json:"ExpirationModel,omitempty"`
	MultiRegion           bool               `json:"MultiRegion"`
	CurrentKeyMaterialID  string             `json:"CurrentKeyMaterialId,omitempty"`
}

func (s *Service) metadata(ki *keyInfo) *keyMetadata {
	k := ki.k
	m := &keyMetadata{
		AWSAccountID: s.cfg.Account, KeyID: k.ID, Arn: k.ARN, CreationDate: awsjson.TimeOf(k.CreationDate),
		Enabled: ki.state == StateEnabled, Description: k.Description, KeyUsage: k.KeyUsage, KeyState: ki.state,
		Origin: k.Origin, KeyManager: keyManagerCustom, CustomerMasterKeySpec: k.KeySpec, KeySpec: k.KeySpec,
		EncryptionAlgorithms: keyEncryptionAlgorithms(k), SigningAlgorithms: signingAlgorithms(k), MacAlgorithms: macAlgorithms(k),
	}
	if k.State == store.KeyPendingDeletion {
		m.DeletionDate = awsjson.TimeOf(k.DeletionDate)
	}
	if k.Origin == store.OriginAWSCloudHSM {
		m.CustomKeyStoreID, m.CloudHsmClusterID = k.CustomKeyStoreID, k.ClusterID
		if ki.cks != nil {
			m.CloudHsmClusterID = ki.cks.ClusterID
		}
	}
	cur, found := k.Current()
	if found && isSymmetric(k) && cur.Handle != 0 {
		// AWS reports it for symmetric keys, which can have several.
		m.CurrentKeyMaterialID = cur.KeyMaterialID
	}
	if k.Origin == store.OriginExternal {
		// Imported material: its expiration, once imported.
		if found && cur.ImportState == store.Imported {
			m.ExpirationModel = cur.ExpirationModel
			if cur.ExpirationModel == expiresModel {
				m.ValidTo = awsjson.TimeOf(cur.ValidTo)
			}
		}
	}
	return m
}

// tag is botocore's Tag.
type tag struct {
	TagKey   *string `json:"TagKey"`
	TagValue *string `json:"TagValue"`
}

// checkTags validates tags as the model and the service do.
func checkTags(v *awsjson.Validator, member string, tags []tag) {
	for i, t := range tags {
		m := fmt.Sprintf("%s.%d.member.", member, i+1)
		v.Required(m+"tagKey", t.TagKey != nil)
		v.Required(m+"tagValue", t.TagValue != nil)
		v.Length(m+"tagKey", t.TagKey, 1, 128)
		v.Length(m+"tagValue", t.TagValue, 0, 256)
	}
}

// mergeTags adds tags to existing (a duplicate key overwrites), keeping
// them sorted, and enforces the reserved prefix and the quota.
func mergeTags(existing []store.Tag, tags []tag) ([]store.Tag, error) {
	m := make(map[string]string, len(existing)+len(tags))
	for _, t := range existing {
		m[t.Key] = t.Value
	}
	for _, t := range tags {
		if strings.HasPrefix(*t.TagKey, "aws:") {
			return nil, newErr(excTag, "Tag keys beginning with aws: are reserved for AWS use.")
		}
		m[*t.TagKey] = *t.TagValue
	}
	if len(m) > maxTagsPerKey {
		return nil, newErr(excLimitExceeded, "A KMS key can have at most %d tags.", maxTagsPerKey)
	}
	return sortedTags(m), nil
}

func sortedTags(m map[string]string) []store.Tag {
	out := make([]store.Tag, 0, len(m))
	for k, v := range m {
		out = append(out, store.Tag{Key: k, Value: v})
	}
	sortTags(out)
	return out
}

func sortTags(tags []store.Tag) {
	slices.SortFunc(tags, func(a, b store.Tag) int { return strings.Compare(a.Key, b.Key) })
}

type createKeyInput struct {
	Policy                         *string `json:"Policy"`
	Description                    *string `json:"Description"`
	KeyUsage                       *string `json:"KeyUsage"`
	CustomerMasterKeySpec          *string `json:"CustomerMasterKeySpec"`
	KeySpec                        *string `json:"KeySpec"`
	Origin                         *string `json:"Origin"`
	CustomKeyStoreID               *string `json:"CustomKeyStoreId"`
	BypassPolicyLockoutSafetyCheck *bool   `json:"BypassPolicyLockoutSafetyCheck"`
	Tags                           []tag   `json:"Tags"`
	MultiRegion                    *bool   `json:"MultiRegion"`
	XksKeyID                       *string `json:"XksKeyId"`
}

type keyMetadataOutput struct {
	KeyMetadata *keyMetadata `json:"KeyMetadata"`
}

// createKey is CreateKey. A default-store key's material is generated in
// the fleet: an AES-256 key (SYMMETRIC_DEFAULT), an RSA or EC key pair
// (asymmetric), or a generic secret (HMAC), each non-extractable and
// labelled with the key's ARN. A custom-key-store key is an AES-256 key
// in the store's cluster. An EXTERNAL key has no material until
// ImportKeyMaterial. The HSM key is generated first; the metadata is
// written once it exists, and the HSM key is deleted again when that
// write fails.
func (s *Service) createKey(ctx context.Context, r *awsjson.Request) (any, error) {
	var in createKeyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Length("Policy", in.Policy, 1, 131072)
	v.Length("Description", in.Description, 0, 8192)
	v.Enum("KeyUsage", in.KeyUsage, keyUsages...)
	v.Enum("CustomerMasterKeySpec", in.CustomerMasterKeySpec, customerMasterKeySpecs...)
	v.Enum("KeySpec", in.KeySpec, keySpecs...)
	v.Enum("Origin", in.Origin, origins...)
	v.Length("CustomKeyStoreId", in.CustomKeyStoreID, 1, 64)
	v.Length("XksKeyId", in.XksKeyID, 1, 128)
	checkTags(&v, "tags", in.Tags)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.KeySpec != nil && in.CustomerMasterKeySpec != nil {
		return nil, validation("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
	}
	specName := specSymmetric
	if in.KeySpec != nil {
		specName = *in.KeySpec
	} else if in.CustomerMasterKeySpec != nil {
		specName = *in.CustomerMasterKeySpec
	}
	origin := store.OriginAWSKMS
	if in.Origin != nil {
		origin = *in.Origin
	}
	switch {
	case origin == "EXTERNAL_KEY_STORE":
		return nil, newErr(excUnsupportedOperation, "Origin EXTERNAL_KEY_STORE is not supported: hsmsim has no external key stores.")
	case in.MultiRegion != nil && *in.MultiRegion:
		return nil, newErr(excUnsupportedOperation, "Multi-Region keys are not supported yet.")
	case in.XksKeyID != nil:
		return nil, newErr(excUnsupportedOperation, "XksKeyId is valid only for keys in an external key store (Origin EXTERNAL_KEY_STORE).")
	case origin == store.OriginAWSCloudHSM && in.CustomKeyStoreID == nil:
		return nil, validation("CustomKeyStoreId is required when Origin is AWS_CLOUDHSM.")
	case origin != store.OriginAWSCloudHSM && in.CustomKeyStoreID != nil:
		return nil, validation("Origin must be AWS_CLOUDHSM to create a KMS key in the custom key store %s.", *in.CustomKeyStoreID)
	}
	spec, usage, err := checkSpec(specName, in.KeyUsage, origin)
	if err != nil {
		return nil, err
	}
	policy := s.defaultPolicy()
	if in.Policy != nil {
		if err := checkPolicy(*in.Policy); err != nil {
			return nil, err
		}
		policy = *in.Policy
	}
	tags, err := mergeTags(nil, in.Tags)
	if err != nil {
		return nil, err
	}

	id := uuid.NewString()
	k := &store.Key{
		ID: id, ARN: s.keyARN(id), Description: str(in.Description), State: store.KeyEnabled,
		KeySpec: spec.name, KeyUsage: usage, Origin: origin, CreationDate: s.clock.Now(),
		Policy: policy, Tags: tags,
	}
	switch origin {
	case store.OriginExternal:
		k.State = store.KeyPendingImport
	case store.OriginAWSCloudHSM:
		cks, sh, err := s.customStoreForKey(ctx, *in.CustomKeyStoreID)
		if err != nil {
			return nil, err
		}
		k.CustomKeyStoreID, k.ClusterID = cks.ID, cks.ClusterID
		b, err := s.newSymmetricMaterial(ctx, sh, k, 1)
		if err != nil {
			s.log.Warn("key generation in the custom key store failed", "custom_key_store_id", k.CustomKeyStoreID, "error", err)
			return nil, newErr(excInternal, msgCannotCommunicate)
		}
		k.BackingKeys = []store.BackingKey{b}
	default:
		b, err := s.newMaterial(ctx, k, spec)
		if err != nil {
			return nil, s.hsmErr("CreateKey", k, err)
		}
		k.BackingKeys = []store.BackingKey{b}
	}
	var ki *keyInfo
	// Concurrent CreateKeys share a transaction, hence a commit (group
	// commit): each returns once its key is on disk. The function may run
	// twice (Batch), and is idempotent.
	err = s.db.Batch(func(tx *store.Tx) error {
		if k.CustomKeyStoreID != "" {
			// The store may have been disconnected and deleted while the
			// HSM worked: a key must never outlive its store.
			if _, err := tx.CustomKeyStore(k.CustomKeyStoreID); err != nil {
				return newErr(excCKSNotFound, "Custom key store %s does not exist.", k.CustomKeyStoreID)
			}
		}
		if err := tx.PutKey(k); err != nil {
			return err
		}
		ki, err = s.info(tx, k)
		return err
	})
	if err != nil {
		s.deleteBackingKeys(context.WithoutCancel(ctx), k)
		return nil, err
	}
	s.log.Info("key created", "key_id", id, "key_spec", k.KeySpec, "key_usage", k.KeyUsage, "origin", origin,
		"custom_key_store_id", k.CustomKeyStoreID)
	return keyMetadataOutput{KeyMetadata: s.metadata(ki)}, nil
}

// checkSpec checks a KeySpec, KeyUsage and Origin combination and returns
// the spec and the usage (ENCRYPT_DECRYPT when none is given): specs the
// fleet cannot back and key agreement are UnsupportedOperationException,
// as is anything but SYMMETRIC_DEFAULT in a custom key store (reference
// §4.4); a usage the spec does not allow is ValidationException.
func checkSpec(name string, usageIn *string, origin string) (*keySpec, string, error) {
	if msg, found := unsupportedSpecs[name]; found {
		return nil, "", newErr(excUnsupportedOperation, "%s", msg)
	}
	spec := specTable[name]
	if spec == nil {
		return nil, "", validation("KeySpec %s is not valid.", name)
	}
	if origin == store.OriginAWSCloudHSM && spec.class != classSymmetric {
		return nil, "", newErr(excUnsupportedOperation,
			"KeySpec %s is not supported in a custom key store: an AWS CloudHSM key store holds only SYMMETRIC_DEFAULT keys.", name)
	}
	usage := usageEncrypt
	if usageIn != nil {
		usage = *usageIn
	}
	if usage == usageAgree && spec.class == classEC {
		return nil, "", newErr(excUnsupportedOperation, "KeyUsage KEY_AGREEMENT is not supported by hsmsim (DeriveSharedSecret is not implemented).")
	}
	if !spec.allows(usage) {
		return nil, "", validation("KeyUsage %s is not compatible with KeySpec %s.", usage, name)
	}
	return spec, usage, nil
}

// newKeyMaterialID returns a fresh KeyMaterialId: 32 random bytes, which
// are also the HSM key's id attribute.
func newKeyMaterialID() []byte {
	id := make([]byte, 32)
	rand.Read(id) // crypto/rand.Read never fails (Go 1.24+).
	return id
}

// newSymmetricMaterial generates an AES-256 backing key of a given
// material version in h.
func (s *Service) newSymmetricMaterial(ctx context.Context, h HSM, k *store.Key, version uint32) (store.BackingKey, error) {
	mid := newKeyMaterialID()
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	handle, err := h.GenerateKey(hctx, k.ARN, mid)
	if err != nil {
		return store.BackingKey{}, err
	}
	return store.BackingKey{Version: version, Handle: handle, KeyMaterialID: hex.EncodeToString(mid)}, nil
}

// newMaterial generates the first material of a default-store key in the
// fleet, as its spec and usage say.
func (s *Service) newMaterial(ctx context.Context, k *store.Key, spec *keySpec) (store.BackingKey, error) {
	if spec.class == classSymmetric {
		return s.newSymmetricMaterial(ctx, s.fleet, k, 1)
	}
	mid := newKeyMaterialID()
	b := store.BackingKey{Version: 1, KeyMaterialID: hex.EncodeToString(mid)}
	if spec.class == classHMAC {
		hctx, cancel := s.hsmCtx(ctx)
		defer cancel()
		handle, err := s.fleet.generateSecret(hctx, k.ARN, mid, spec.bits)
		b.Handle = handle
		return b, err
	}

	req := &hsmv1.GenerateKeyPairRequest{Label: k.ARN, Id: mid, Usage: &hsmv1.KeyUsage{}}
	if spec.class == classRSA {
		req.Type, req.ModulusBits = hsmv1.KeyType_KEY_TYPE_RSA, spec.bits
	} else {
		req.Type, req.Curve = hsmv1.KeyType_KEY_TYPE_EC, spec.curve
	}
	if k.KeyUsage == usageSign {
		req.Usage.Sign = true
	} else {
		req.Usage.Decrypt = true
	}
	priv, pub, err := s.generateKeyPair(ctx, req)
	if err != nil {
		return b, err
	}
	b.Handle, b.PublicHandle = priv.GetHandle(), pub.GetHandle()
	return b, nil
}

// generateKeyPair generates a key pair in the fleet through the keygen
// session, whose attempts may last KeyGenTimeout, then syncs the fleet
// session so that its reads see the pair.
func (s *Service) generateKeyPair(ctx context.Context, req *hsmv1.GenerateKeyPairRequest) (priv, pub *hsmv1.KeyAttributes, err error) {
	kctx, cancel := s.keygenCtx(ctx)
	priv, pub, err = s.keygen.generateKeyPair(kctx, req)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	s.syncFleet()
	return priv, pub, nil
}

// syncFleet makes the fleet session's calls see every write made through
// the keygen session: each client reads its own writes by the Raft indexes
// it observed, and the keygen session's go to the fleet's. (A write through
// the fleet session would not do: the fleet's calls on one key wait only
// for writes to that key, or to no key.)
func (s *Service) syncFleet() {
	s.fleet.c.ObserveIndex(s.keygen.c.ObservedIndex())
}

type keyIDInput struct {
	KeyID       *string  `json:"KeyId"`
	GrantTokens []string `json:"GrantTokens"`
}

// checkKeyID validates the KeyId member present in most requests.
func checkKeyID(v *awsjson.Validator, member string, id *string) {
	v.Required(member, id != nil)
	v.Length(member, id, 1, 2048)
}

// checkGrantTokens validates each of GrantTokens (1..8192 characters);
// grants are not enforced, so valid tokens change nothing.
func checkGrantTokens(v *awsjson.Validator, tokens []string) {
	for i := range tokens {
		v.Length(fmt.Sprintf("grantTokens.%d.member", i+1), &tokens[i], 1, 8192)
	}
}

// finish returns v's ValidationException, or the one for more than 10
// grant tokens (a list constraint the Validator does not express).
func finish(v *awsjson.Validator, tokens []string) error {
	if err := v.Err(); err != nil {
		return err
	}
	if len(tokens) > 10 {
		return validation("1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10")
	}
	return nil
}

// describeKey is DescribeKey: any state, aliases accepted.
func (s *Service) describeKey(_ context.Context, r *awsjson.Request) (any, error) {
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
	ki, err := s.viewKey("DescribeKey", *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	return keyMetadataOutput{KeyMetadata: s.metadata(ki)}, nil
}

type listInput struct {
	Limit  *int64  `json:"Limit"`
	Marker *string `json:"Marker"`
}

// checkList validates Limit (1..max) and Marker, and returns the limit
// (def when unset).
func checkList(v *awsjson.Validator, in listInput, max, def int64) int {
	v.Range("Limit", in.Limit, 1, max)
	v.Length("Marker", in.Marker, 1, 1024)
	if in.Limit == nil {
		return int(def)
	}
	return int(*in.Limit)
}

func invalidMarker() *awsjson.Error {
	return newErr(excInvalidMarker, "The marker that specifies where pagination should next begin is not valid.")
}

// listErr maps a store listing error.
func listErr(err error) error {
	if errors.Is(err, store.ErrInvalidMarker) {
		return invalidMarker()
	}
	return err
}

type keyListEntry struct {
	KeyID  string `json:"KeyId"`
	KeyArn string `json:"KeyArn"`
}

type listKeysOutput struct {
	Keys       []keyListEntry `json:"Keys"`
	NextMarker string         `json:"NextMarker,omitempty"`
	Truncated  bool           `json:"Truncated"`
}

// listKeys is ListKeys: every key, PendingDeletion included, in creation order.
func (s *Service) listKeys(_ context.Context, r *awsjson.Request) (any, error) {
	var in listInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	limit := checkList(&v, in, 1000, 100)
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := listKeysOutput{Keys: []keyListEntry{}}
	err := s.db.View(func(tx *store.Tx) error {
		keys, next, err := tx.ListKeys(str(in.Marker), limit)
		if err != nil {
			return listErr(err)
		}
		for _, k := range keys {
			out.Keys = append(out.Keys, keyListEntry{KeyID: k.ID, KeyArn: k.ARN})
		}
		out.NextMarker, out.Truncated = next, next != ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// keyOnlyInput is the input of the operations that take only a KeyId.
type keyOnlyInput struct {
	KeyID *string `json:"KeyId"`
}

func decodeKeyOnly(r *awsjson.Request) (string, error) {
	var in keyOnlyInput
	if err := r.Decode(&in); err != nil {
		return "", err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	if err := v.Err(); err != nil {
		return "", err
	}
	return *in.KeyID, nil
}

// enableKey is EnableKey. On an Unavailable key it succeeds and takes
// effect when the store reconnects (the stored state changes, the
// reported one stays Unavailable).
func (s *Service) enableKey(_ context.Context, r *awsjson.Request) (any, error) {
	return s.setEnabled(r, "EnableKey", store.KeyEnabled)
}

// disableKey is DisableKey.
func (s *Service) disableKey(_ context.Context, r *awsjson.Request) (any, error) {
	return s.setEnabled(r, "DisableKey", store.KeyDisabled)
}

func (s *Service) setEnabled(r *awsjson.Request, op string, st store.KeyState) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	_, err = s.updateKey(op, keyID, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.State = st
		return nil
	})
	return nil, err
}

type scheduleKeyDeletionInput struct {
	KeyID               *string `json:"KeyId"`
	PendingWindowInDays *int64  `json:"PendingWindowInDays"`
}

type scheduleKeyDeletionOutput struct {
	KeyID               string             `json:"KeyId"`
	DeletionDate        *awsjson.Timestamp `json:"DeletionDate"`
	KeyState            KeyState           `json:"KeyState"`
	PendingWindowInDays int                `json:"PendingWindowInDays"`
}

// scheduleKeyDeletion is ScheduleKeyDeletion: 7 to 30 days, default 30.
func (s *Service) scheduleKeyDeletion(_ context.Context, r *awsjson.Request) (any, error) {
	var in scheduleKeyDeletionInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Range("PendingWindowInDays", in.PendingWindowInDays, 7, 30)
	if err := v.Err(); err != nil {
		return nil, err
	}
	days := 30
	if in.PendingWindowInDays != nil {
		days = int(*in.PendingWindowInDays)
	}
	ki, err := s.updateKey("ScheduleKeyDeletion", *in.KeyID, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.State = store.KeyPendingDeletion
		ki.k.DeletionDate = s.clock.Now().Add(time.Duration(days) * 24 * time.Hour)
		ki.k.PendingWindowInDays = days
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("key deletion scheduled", "key_id", ki.k.ID, "deletion_date", ki.k.DeletionDate)
	return scheduleKeyDeletionOutput{KeyID: ki.k.ARN, DeletionDate: awsjson.TimeOf(ki.k.DeletionDate),
		KeyState: StatePendingDeletion, PendingWindowInDays: days}, nil
}

type keyIDOutput struct {
	KeyID string `json:"KeyId"`
}

// cancelKeyDeletion is CancelKeyDeletion: the key lands in Disabled.
func (s *Service) cancelKeyDeletion(_ context.Context, r *awsjson.Request) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	ki, err := s.updateKey("CancelKeyDeletion", keyID, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.State, ki.k.DeletionDate, ki.k.PendingWindowInDays = store.KeyDisabled, time.Time{}, 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keyIDOutput{KeyID: ki.k.ARN}, nil
}

type updateKeyDescriptionInput struct {
	KeyID       *string `json:"KeyId"`
	Description *string `json:"Description"`
}

// updateKeyDescription is UpdateKeyDescription.
func (s *Service) updateKeyDescription(_ context.Context, r *awsjson.Request) (any, error) {
	var in updateKeyDescriptionInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("Description", in.Description != nil)
	v.Length("Description", in.Description, 0, 8192)
	if err := v.Err(); err != nil {
		return nil, err
	}
	_, err := s.updateKey("UpdateKeyDescription", *in.KeyID, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.Description = *in.Description
		return nil
	})
	return nil, err
}

func itoa(i int) string { return strconv.Itoa(i) }
