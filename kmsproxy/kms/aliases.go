package kms

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// maxAliasesPerKey is the alias quota of a key (reference §6).
const maxAliasesPerKey = 50

// aliasNameRE is AliasNameType's pattern (botocore).
var aliasNameRE = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)

// checkAliasName applies the rules of reference §2.2 that the model does
// not: the "alias/" prefix, a non-empty name, and "alias/aws/" reserved
// for AWS managed keys.
func checkAliasName(name string) error {
	rest, found := strings.CutPrefix(name, "alias/")
	switch {
	case !found || rest == "":
		return newErr(excInvalidAliasName, "Alias must start with the prefix \"alias/\" followed by a name.")
	case strings.HasPrefix(name, "alias/aws/"):
		return newErr(excInvalidAliasName, "Alias names that begin with \"alias/aws/\" are reserved for AWS managed keys.")
	}
	return nil
}

type aliasInput struct {
	AliasName   *string `json:"AliasName"`
	TargetKeyID *string `json:"TargetKeyId"`
}

// decodeAlias decodes CreateAlias's and UpdateAlias's input.
func decodeAlias(r *awsjson.Request) (aliasInput, error) {
	var in aliasInput
	if err := r.Decode(&in); err != nil {
		return in, err
	}
	var v awsjson.Validator
	v.Required("AliasName", in.AliasName != nil)
	v.Length("AliasName", in.AliasName, 1, 256)
	v.Pattern("AliasName", in.AliasName, aliasNameRE)
	checkKeyID(&v, "TargetKeyId", in.TargetKeyID)
	if err := v.Err(); err != nil {
		return in, err
	}
	return in, checkAliasName(*in.AliasName)
}

// retarget checks that alias may point at key ki: the quota of aliases
// per key (an alias already pointing there does not count twice).
func retarget(tx *store.Tx, name string, ki *keyInfo) error {
	existing, err := tx.AliasesOf(ki.k.ID)
	if err != nil {
		return err
	}
	n := 0
	for _, a := range existing {
		if a.Name != name {
			n++
		}
	}
	if n >= maxAliasesPerKey {
		return newErr(excLimitExceeded, "%s already has %d aliases, the most a KMS key can have.", ki.k.ARN, maxAliasesPerKey)
	}
	return nil
}

// createAlias is CreateAlias: a new, unique alias for a key that is not
// pending deletion.
func (s *Service) createAlias(_ context.Context, r *awsjson.Request) (any, error) {
	in, err := decodeAlias(r)
	if err != nil {
		return nil, err
	}
	name := *in.AliasName
	err = s.db.Update(func(tx *store.Tx) error {
		if _, err := tx.Alias(name); err == nil {
			return newErr(excAlreadyExists, "An alias with the name %s already exists", s.aliasARN(name))
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ki, err := s.lookup(tx, "CreateAlias", *in.TargetKeyID, false)
		if err != nil {
			return err
		}
		if err := retarget(tx, name, ki); err != nil {
			return err
		}
		now := s.clock.Now()
		return tx.PutAlias(&store.Alias{Name: name, KeyID: ki.k.ID, CreationDate: now, LastUpdatedDate: now})
	})
	return nil, err
}

// updateAlias is UpdateAlias: points an existing alias at another key of
// the same type (symmetric, asymmetric or HMAC) and the same KeyUsage
// (ValidationException otherwise). The new target must not be pending
// deletion (footnote [10]); the old one may be.
func (s *Service) updateAlias(_ context.Context, r *awsjson.Request) (any, error) {
	in, err := decodeAlias(r)
	if err != nil {
		return nil, err
	}
	name := *in.AliasName
	err = s.db.Update(func(tx *store.Tx) error {
		a, err := tx.Alias(name)
		if errors.Is(err, store.ErrNotFound) {
			return newErr(excNotFound, "Alias %s is not found.", s.aliasARN(name))
		}
		if err != nil {
			return err
		}
		ki, err := s.lookup(tx, "UpdateAlias", *in.TargetKeyID, false)
		if err != nil {
			return err
		}
		old, err := tx.Key(a.KeyID)
		if err != nil {
			return err
		}
		if kindOf(old) != kindOf(ki.k) || old.KeyUsage != ki.k.KeyUsage {
			return validation("Alias %s points to a %s key with KeyUsage %s; it cannot point to %s, a %s key with KeyUsage %s.",
				s.aliasARN(name), kindOf(old), old.KeyUsage, ki.k.ARN, kindOf(ki.k), ki.k.KeyUsage)
		}
		if err := retarget(tx, name, ki); err != nil {
			return err
		}
		a.KeyID, a.LastUpdatedDate = ki.k.ID, s.clock.Now()
		return tx.PutAlias(a)
	})
	return nil, err
}

type deleteAliasInput struct {
	AliasName *string `json:"AliasName"`
}

// deleteAlias is DeleteAlias, whatever its key's state.
func (s *Service) deleteAlias(_ context.Context, r *awsjson.Request) (any, error) {
	var in deleteAliasInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("AliasName", in.AliasName != nil)
	v.Length("AliasName", in.AliasName, 1, 256)
	v.Pattern("AliasName", in.AliasName, aliasNameRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name := *in.AliasName
	err := s.db.Update(func(tx *store.Tx) error {
		err := tx.DeleteAlias(name)
		if errors.Is(err, store.ErrNotFound) {
			return newErr(excNotFound, "Alias %s is not found.", s.aliasARN(name))
		}
		return err
	})
	return nil, err
}

type listAliasesInput struct {
	KeyID  *string `json:"KeyId"`
	Limit  *int64  `json:"Limit"`
	Marker *string `json:"Marker"`
}

type aliasListEntry struct {
	AliasName       string             `json:"AliasName"`
	AliasArn        string             `json:"AliasArn"`
	TargetKeyID     string             `json:"TargetKeyId"`
	CreationDate    *awsjson.Timestamp `json:"CreationDate"`
	LastUpdatedDate *awsjson.Timestamp `json:"LastUpdatedDate"`
}

type listAliasesOutput struct {
	Aliases    []aliasListEntry `json:"Aliases"`
	NextMarker string           `json:"NextMarker,omitempty"`
	Truncated  bool             `json:"Truncated"`
}

// listAliases is ListAliases: by name, of one key when KeyId is set;
// pages of 1 to 100 (default 50).
func (s *Service) listAliases(_ context.Context, r *awsjson.Request) (any, error) {
	var in listAliasesInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Length("KeyId", in.KeyID, 1, 2048)
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 100, 50)
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := listAliasesOutput{Aliases: []aliasListEntry{}}
	err := s.db.View(func(tx *store.Tx) error {
		keyID := ""
		if in.KeyID != nil {
			ki, err := s.lookup(tx, "ListAliases", *in.KeyID, false)
			if err != nil {
				return err
			}
			keyID = ki.k.ID
		}
		aliases, next, err := tx.ListAliases(keyID, str(in.Marker), limit)
		if err != nil {
			return listErr(err)
		}
		for _, a := range aliases {
			out.Aliases = append(out.Aliases, aliasListEntry{
				AliasName: a.Name, AliasArn: s.aliasARN(a.Name), TargetKeyID: a.KeyID,
				CreationDate: awsjson.TimeOf(a.CreationDate), LastUpdatedDate: awsjson.TimeOf(a.LastUpdatedDate),
			})
		}
		out.NextMarker, out.Truncated = next, next != ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
