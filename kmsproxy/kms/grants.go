package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"regexp"
	"slices"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// Grants are kept as data: created, listed, retired and revoked with
// AWS's rules and formats, not yet enforced (reference §8).
const (
	// maxGrantsPerKey is the grant quota of a key (reference §6).
	maxGrantsPerKey = 50000
	// maxConstraintPairs and maxConstraintValue bound an encryption
	// context constraint (reference §7).
	maxConstraintPairs = 8
	maxConstraintValue = 384
	// grantTokenVersion and grantTokenSecretLen shape a grant token.
	grantTokenVersion   = 0x01
	grantTokenSecretLen = 32
)

// grantOperations is botocore's GrantOperation enum.
var grantOperations = []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
	"ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret"}

// noContextOperations take no encryption context, so a grant with
// constraints cannot allow them.
var noContextOperations = []string{"Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret"}

var (
	grantNameRE = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)
	principalRE = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	grantIDRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// keyGrantOperations are the grant operations a key supports: those of
// its type and usage, and CreateGrant, RetireGrant and DescribeKey.
func keyGrantOperations(k *store.Key) []string {
	ops := []string{"CreateGrant", "RetireGrant", "DescribeKey"}
	switch {
	case isSymmetric(k):
		ops = append(ops, "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
			"GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext")
	case isHMAC(k):
		ops = append(ops, "GenerateMac", "VerifyMac")
	case k.KeyUsage == usageSign:
		ops = append(ops, "Sign", "Verify", "GetPublicKey")
	default:
		ops = append(ops, "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey")
	}
	return ops
}

// grantConstraints is botocore's GrantConstraints.
type grantConstraints struct {
	EncryptionContextSubset map[string]string `json:"EncryptionContextSubset,omitempty"`
	EncryptionContextEquals map[string]string `json:"EncryptionContextEquals,omitempty"`
}

type createGrantInput struct {
	KeyID             *string           `json:"KeyId"`
	GranteePrincipal  *string           `json:"GranteePrincipal"`
	RetiringPrincipal *string           `json:"RetiringPrincipal"`
	Operations        []string          `json:"Operations"`
	Constraints       *grantConstraints `json:"Constraints"`
	GrantTokens       []string          `json:"GrantTokens"`
	Name              *string           `json:"Name"`
	DryRun            *bool             `json:"DryRun"`
}

type createGrantOutput struct {
	GrantToken string `json:"GrantToken"`
	GrantID    string `json:"GrantId"`
}

// newGrantID returns 64 lower-case hex digits, as AWS's grant ids are.
func newGrantID() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}

// newGrantToken returns a grant token for grant id in the shape of AWS's:
// URL-safe base64 of a version byte, the grant id as a length-prefixed
// field (0x0a 0x40 and 64 hex digits), then 32 random bytes in another
// field (0x22 0x20). Every CreateGrant returns a new token, even for a
// grant that already existed.
func newGrantToken(id string) string {
	b := make([]byte, 0, 3+64+2+grantTokenSecretLen)
	b = append(b, grantTokenVersion, 0x0a, 0x40)
	b = append(b, id...)
	b = append(b, 0x22, grantTokenSecretLen)
	secret := make([]byte, grantTokenSecretLen)
	rand.Read(secret) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(append(b, secret...))
}

// grantOfToken returns the grant id a token names, or
// InvalidGrantTokenException.
func grantOfToken(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 3+64+2+grantTokenSecretLen || !bytes.Equal(b[:3], []byte{grantTokenVersion, 0x0a, 0x40}) ||
		!bytes.Equal(b[67:69], []byte{0x22, grantTokenSecretLen}) || !grantIDRE.Match(b[3:67]) {
		return "", newErr(excInvalidGrantToken, "The grant token is not valid.")
	}
	return string(b[3:67]), nil
}

// checkConstraints validates a grant's constraints (reference §7).
func checkConstraints(c *grantConstraints) error {
	if c == nil {
		return nil
	}
	for _, ec := range []map[string]string{c.EncryptionContextSubset, c.EncryptionContextEquals} {
		if len(ec) > maxConstraintPairs {
			return validation("A grant constraint can have at most %d encryption context pairs.", maxConstraintPairs)
		}
		for _, v := range ec {
			if len(v) > maxConstraintValue {
				return validation("An encryption context value in a grant constraint can have at most %d characters.", maxConstraintValue)
			}
		}
	}
	return nil
}

// sameGrant reports whether a grant has the parameters of a request (the
// retry of a named CreateGrant).
func sameGrant(g *store.Grant, in *createGrantInput, c *store.GrantConstraints) bool {
	ops := slices.Sorted(slices.Values(in.Operations))
	have := slices.Sorted(slices.Values(g.Operations))
	var gc, rc store.GrantConstraints
	if g.Constraints != nil {
		gc = *g.Constraints
	}
	if c != nil {
		rc = *c
	}
	return g.GranteePrincipal == *in.GranteePrincipal && g.RetiringPrincipal == str(in.RetiringPrincipal) &&
		slices.Equal(ops, have) && maps.Equal(gc.EncryptionContextEquals, rc.EncryptionContextEquals) &&
		maps.Equal(gc.EncryptionContextSubset, rc.EncryptionContextSubset)
}

// createGrant is CreateGrant: a grant on a key (key id or ARN), its
// operations among those the key supports, constraints only for
// operations that take an encryption context. A Name makes retries with
// the same parameters return the same grant (and a new token).
func (s *Service) createGrant(_ context.Context, r *awsjson.Request) (any, error) {
	var in createGrantInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("GranteePrincipal", in.GranteePrincipal != nil)
	v.Length("GranteePrincipal", in.GranteePrincipal, 1, 256)
	v.Pattern("GranteePrincipal", in.GranteePrincipal, principalRE)
	v.Length("RetiringPrincipal", in.RetiringPrincipal, 1, 256)
	v.Pattern("RetiringPrincipal", in.RetiringPrincipal, principalRE)
	v.Required("Operations", in.Operations != nil)
	for i := range in.Operations {
		v.Enum("operations."+itoa(i+1)+".member", &in.Operations[i], grantOperations...)
	}
	v.Length("Name", in.Name, 1, 256)
	v.Pattern("Name", in.Name, grantNameRE)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if len(in.Operations) == 0 {
		return nil, validation("A grant must allow at least one operation.")
	}
	if err := checkConstraints(in.Constraints); err != nil {
		return nil, err
	}
	var constraints *store.GrantConstraints
	if c := in.Constraints; c != nil && (len(c.EncryptionContextEquals) > 0 || len(c.EncryptionContextSubset) > 0) {
		constraints = &store.GrantConstraints{EncryptionContextEquals: c.EncryptionContextEquals, EncryptionContextSubset: c.EncryptionContextSubset}
		for _, op := range in.Operations {
			if slices.Contains(noContextOperations, op) {
				return nil, validation("Grant constraints are not valid for %s, which takes no encryption context.", op)
			}
		}
	}
	var id string
	err := s.db.Update(func(tx *store.Tx) error {
		ki, err := s.lookup(tx, "CreateGrant", *in.KeyID, false)
		if err != nil {
			return err
		}
		k := ki.k
		supported := keyGrantOperations(k)
		for _, op := range in.Operations {
			if !slices.Contains(supported, op) {
				return validation("Grant operation %s is not valid for %s (KeySpec %s, KeyUsage %s).", op, k.ARN, k.KeySpec, k.KeyUsage)
			}
		}
		if in.Name != nil {
			existing, err := tx.GrantsOf(k.ID)
			if err != nil {
				return err
			}
			for _, g := range existing {
				if g.Name == *in.Name && sameGrant(g, &in, constraints) {
					id = g.ID
					break
				}
			}
		}
		if dryRun(in.DryRun) {
			return newErr(excDryRun, msgDryRun)
		}
		if id != "" {
			return nil
		}
		if tx.CountGrants(k.ID) >= maxGrantsPerKey {
			return newErr(excLimitExceeded, "%s already has %d grants, the most a KMS key can have.", k.ARN, maxGrantsPerKey)
		}
		id = newGrantID()
		return tx.PutGrant(&store.Grant{
			ID: id, KeyID: k.ID, Name: str(in.Name), CreationDate: s.clock.Now(), GranteePrincipal: *in.GranteePrincipal,
			RetiringPrincipal: str(in.RetiringPrincipal), IssuingAccount: "arn:aws:iam::" + s.cfg.Account + ":root",
			Operations: slices.Clone(in.Operations), Constraints: constraints,
		})
	})
	if err != nil {
		return nil, err
	}
	return createGrantOutput{GrantToken: newGrantToken(id), GrantID: id}, nil
}

// grantListEntry is botocore's GrantListEntry.
type grantListEntry struct {
	KeyID             string             `json:"KeyId"`
	GrantID           string             `json:"GrantId"`
	Name              string             `json:"Name,omitempty"`
	CreationDate      *awsjson.Timestamp `json:"CreationDate"`
	GranteePrincipal  string             `json:"GranteePrincipal"`
	RetiringPrincipal string             `json:"RetiringPrincipal,omitempty"`
	IssuingAccount    string             `json:"IssuingAccount"`
	Operations        []string           `json:"Operations"`
	Constraints       *grantConstraints  `json:"Constraints,omitempty"`
}

type listGrantsOutput struct {
	Grants     []grantListEntry `json:"Grants"`
	NextMarker string           `json:"NextMarker,omitempty"`
	Truncated  bool             `json:"Truncated"`
}

func (s *Service) grantEntry(g *store.Grant) grantListEntry {
	e := grantListEntry{
		KeyID: s.keyARN(g.KeyID), GrantID: g.ID, Name: g.Name, CreationDate: awsjson.TimeOf(g.CreationDate),
		GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal, IssuingAccount: g.IssuingAccount,
		Operations: g.Operations,
	}
	if c := g.Constraints; c != nil {
		e.Constraints = &grantConstraints{EncryptionContextEquals: c.EncryptionContextEquals, EncryptionContextSubset: c.EncryptionContextSubset}
	}
	return e
}

// pageGrants returns a page of grants from the one marker names (a grant
// id of the list), and the next page's marker.
func (s *Service) pageGrants(grants []*store.Grant, marker *string, limit int) (listGrantsOutput, error) {
	out := listGrantsOutput{Grants: []grantListEntry{}}
	start := 0
	if marker != nil {
		start = slices.IndexFunc(grants, func(g *store.Grant) bool { return g.ID == *marker })
		if start < 0 {
			return out, invalidMarker()
		}
	}
	for i := start; i < len(grants); i++ {
		if i-start == limit {
			out.NextMarker, out.Truncated = grants[i].ID, true
			break
		}
		out.Grants = append(out.Grants, s.grantEntry(grants[i]))
	}
	return out, nil
}

type listGrantsInput struct {
	Limit            *int64  `json:"Limit"`
	Marker           *string `json:"Marker"`
	KeyID            *string `json:"KeyId"`
	GrantID          *string `json:"GrantId"`
	GranteePrincipal *string `json:"GranteePrincipal"`
}

// listGrants is ListGrants: a key's grants in creation order, optionally
// only the one with GrantId or those of GranteePrincipal; pages of 1 to
// 100 (default 50). Unfiltered listings page through the store's index
// (its markers); filtered ones filter the key's grants (markers are grant
// ids).
func (s *Service) listGrants(_ context.Context, r *awsjson.Request) (any, error) {
	var in listGrantsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 100, 50)
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Length("GrantId", in.GrantID, 1, 128)
	v.Length("GranteePrincipal", in.GranteePrincipal, 1, 256)
	v.Pattern("GranteePrincipal", in.GranteePrincipal, principalRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.GrantID != nil && !grantIDRE.MatchString(*in.GrantID) {
		return nil, newErr(excInvalidGrantID, "The grant ID %s is not valid.", *in.GrantID)
	}
	var (
		grants []*store.Grant
		out    listGrantsOutput
	)
	filtered := in.GrantID != nil || in.GranteePrincipal != nil
	err := s.db.View(func(tx *store.Tx) error {
		ki, err := s.lookup(tx, "ListGrants", *in.KeyID, false)
		if err != nil {
			return err
		}
		if !filtered {
			// One page of the key's grants, from the store's index.
			page, next, err := tx.ListGrants(ki.k.ID, str(in.Marker), limit)
			if err != nil {
				return listErr(err)
			}
			out = listGrantsOutput{Grants: []grantListEntry{}, NextMarker: next, Truncated: next != ""}
			for _, g := range page {
				out.Grants = append(out.Grants, s.grantEntry(g))
			}
			return nil
		}
		all, err := tx.GrantsOf(ki.k.ID)
		for _, g := range all {
			if (in.GrantID == nil || g.ID == *in.GrantID) && (in.GranteePrincipal == nil || g.GranteePrincipal == *in.GranteePrincipal) {
				grants = append(grants, g)
			}
		}
		return err
	})
	if err != nil || !filtered {
		return out, err
	}
	return s.pageGrants(grants, in.Marker, limit)
}

type listRetirableGrantsInput struct {
	Limit             *int64  `json:"Limit"`
	Marker            *string `json:"Marker"`
	RetiringPrincipal *string `json:"RetiringPrincipal"`
}

// listRetirableGrants is ListRetirableGrants: the grants, of every key,
// whose retiring principal is RetiringPrincipal.
func (s *Service) listRetirableGrants(_ context.Context, r *awsjson.Request) (any, error) {
	var in listRetirableGrantsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 100, 50)
	v.Required("RetiringPrincipal", in.RetiringPrincipal != nil)
	v.Length("RetiringPrincipal", in.RetiringPrincipal, 1, 256)
	v.Pattern("RetiringPrincipal", in.RetiringPrincipal, principalRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var grants []*store.Grant
	err := s.db.View(func(tx *store.Tx) error {
		all, err := tx.Grants()
		for _, g := range all {
			if g.RetiringPrincipal == *in.RetiringPrincipal {
				grants = append(grants, g)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.pageGrants(grants, in.Marker, limit)
}

type retireGrantInput struct {
	GrantToken *string `json:"GrantToken"`
	KeyID      *string `json:"KeyId"`
	GrantID    *string `json:"GrantId"`
	DryRun     *bool   `json:"DryRun"`
}

// retireGrant is RetireGrant: by GrantToken, or by KeyId and GrantId.
func (s *Service) retireGrant(_ context.Context, r *awsjson.Request) (any, error) {
	var in retireGrantInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Length("GrantToken", in.GrantToken, 1, 8192)
	v.Length("KeyId", in.KeyID, 1, 2048)
	v.Length("GrantId", in.GrantID, 1, 128)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var grantID string
	switch {
	case in.GrantToken != nil:
		id, err := grantOfToken(*in.GrantToken)
		if err != nil {
			return nil, err
		}
		if in.GrantID != nil && *in.GrantID != id {
			return nil, newErr(excInvalidGrantToken, "The grant token does not name grant %s.", *in.GrantID)
		}
		grantID = id
	case in.KeyID != nil && in.GrantID != nil:
		grantID = *in.GrantID
	default:
		return nil, validation("Specify a GrantToken, or a KeyId and a GrantId.")
	}
	return nil, s.removeGrant("RetireGrant", in.KeyID, grantID, in.DryRun)
}

type revokeGrantInput struct {
	KeyID   *string `json:"KeyId"`
	GrantID *string `json:"GrantId"`
	DryRun  *bool   `json:"DryRun"`
}

// revokeGrant is RevokeGrant.
func (s *Service) revokeGrant(_ context.Context, r *awsjson.Request) (any, error) {
	var in revokeGrantInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("GrantId", in.GrantID != nil)
	v.Length("GrantId", in.GrantID, 1, 128)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return nil, s.removeGrant("RevokeGrant", in.KeyID, *in.GrantID, in.DryRun)
}

// removeGrant deletes grant id, of key keyID when given:
// InvalidGrantIdException for an id that is not a grant id,
// NotFoundException for a grant that does not exist (or is another key's).
func (s *Service) removeGrant(op string, keyID *string, id string, dry *bool) error {
	if !grantIDRE.MatchString(id) {
		return newErr(excInvalidGrantID, "The grant ID %s is not valid.", id)
	}
	return s.db.Update(func(tx *store.Tx) error {
		g, err := tx.Grant(id)
		if errors.Is(err, store.ErrNotFound) {
			return newErr(excNotFound, "Grant ID %s not found.", id)
		}
		if err != nil {
			return err
		}
		if keyID != nil {
			ki, err := s.lookup(tx, op, *keyID, false)
			if err != nil {
				return err
			}
			if ki.k.ID != g.KeyID {
				return newErr(excNotFound, "Grant ID %s not found for %s.", id, ki.k.ARN)
			}
		}
		if dryRun(dry) {
			return newErr(excDryRun, msgDryRun)
		}
		return tx.DeleteGrant(id)
	})
}
