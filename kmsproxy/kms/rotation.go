package kms

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// Rotation rules (reference §2.1, §2.2, §6).
const (
	// defaultRotationDays is RotationPeriodInDays when none is given.
	defaultRotationDays = 365
	// maxOnDemandRotations is the quota of on-demand rotations per key,
	// not adjustable.
	maxOnDemandRotations = 25
	// rotationConflictWindow: RotateKeyOnDemand is ConflictException when
	// an automatic rotation is due this soon.
	rotationConflictWindow = 20 * time.Minute
	day                    = 24 * time.Hour
)

// Key material states (botocore KeyMaterialState).
const (
	materialCurrent    = "CURRENT"
	materialNonCurrent = "NON_CURRENT"
)

// notValidFor is UnsupportedOperationException for a key whose kind the
// operation does not take, in the words of footnote [6].
func notValidFor(k *store.Key, what string) *awsjson.Error {
	return newErr(excUnsupportedOperation, "%s %s which is not valid for this operation.", k.ARN, what)
}

// checkRotates is the key-type rule of the rotation operations (footnotes
// [6] and [7]): only symmetric keys whose material KMS generated in its
// own fleet rotate. It comes before the key-state rule, as the table's
// PendingImport and Unavailable cells say.
func checkRotates(k *store.Key) error {
	switch {
	case k.Origin != store.OriginAWSKMS:
		return notValidFor(k, "origin is "+k.Origin)
	case !isSymmetric(k):
		return notValidFor(k, "key spec is "+k.KeySpec)
	}
	return nil
}

// checkListsRotations is ListKeyRotations's key-type rule: symmetric keys
// of the default key store, generated or imported.
func checkListsRotations(k *store.Key) error {
	switch {
	case k.Origin == store.OriginAWSCloudHSM:
		return notValidFor(k, "origin is "+k.Origin)
	case !isSymmetric(k):
		return notValidFor(k, "key spec is "+k.KeySpec)
	}
	return nil
}

// lookupKind resolves keyID, applies the key-type rule kind and then op's
// key-state cell, in tx.
func (s *Service) lookupKind(tx *store.Tx, op, keyID string, kind func(*store.Key) error) (*keyInfo, error) {
	k, err := s.resolveKey(tx, keyID, false)
	if err != nil {
		return nil, err
	}
	if err := kind(k); err != nil {
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

// updateKind is updateKey with a key-type rule before the state rule.
func (s *Service) updateKind(op, keyID string, kind func(*store.Key) error, f func(tx *store.Tx, ki *keyInfo) error) (*keyInfo, error) {
	var ki *keyInfo
	err := s.db.Update(func(tx *store.Tx) (err error) {
		if ki, err = s.lookupKind(tx, op, keyID, kind); err != nil {
			return err
		}
		if err := f(tx, ki); err != nil {
			return err
		}
		return tx.PutKey(ki.k)
	})
	return ki, err
}

type enableKeyRotationInput struct {
	KeyID                *string `json:"KeyId"`
	RotationPeriodInDays *int64  `json:"RotationPeriodInDays"`
}

// enableKeyRotation is EnableKeyRotation: the first automatic rotation is
// one period after it is turned on. A new period for a key that already
// rotates counts from its last rotation (or from when rotation was turned
// on), and is due at once if that is past.
func (s *Service) enableKeyRotation(_ context.Context, r *awsjson.Request) (any, error) {
	var in enableKeyRotationInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Range("RotationPeriodInDays", in.RotationPeriodInDays, 90, 2560)
	if err := v.Err(); err != nil {
		return nil, err
	}
	days := defaultRotationDays
	if in.RotationPeriodInDays != nil {
		days = int(*in.RotationPeriodInDays)
	}
	now := s.clock.Now()
	ki, err := s.updateKind("EnableKeyRotation", *in.KeyID, checkRotates, func(_ *store.Tx, ki *keyInfo) error {
		k := ki.k
		period := time.Duration(days) * day
		if k.RotationEnabled {
			base := k.NextRotationDate.Add(-time.Duration(k.RotationPeriodInDays) * day)
			k.NextRotationDate = base.Add(period)
			if k.NextRotationDate.Before(now) {
				k.NextRotationDate = now
			}
		} else {
			k.NextRotationDate = now.Add(period)
		}
		k.RotationEnabled, k.RotationPeriodInDays = true, days
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("automatic rotation enabled", "key_id", ki.k.ID, "period_days", days, "next_rotation", ki.k.NextRotationDate)
	return nil, nil
}

// disableKeyRotation is DisableKeyRotation; the period is kept.
func (s *Service) disableKeyRotation(_ context.Context, r *awsjson.Request) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	_, err = s.updateKind("DisableKeyRotation", keyID, checkRotates, func(_ *store.Tx, ki *keyInfo) error {
		ki.k.RotationEnabled, ki.k.NextRotationDate = false, time.Time{}
		return nil
	})
	return nil, err
}

type getKeyRotationStatusOutput struct {
	KeyRotationEnabled   bool               `json:"KeyRotationEnabled"`
	KeyID                string             `json:"KeyId"`
	RotationPeriodInDays int                `json:"RotationPeriodInDays,omitempty"`
	NextRotationDate     *awsjson.Timestamp `json:"NextRotationDate,omitempty"`
}

// getKeyRotationStatus is GetKeyRotationStatus. A key pending deletion
// reads false (and its schedule shows again once the deletion is
// cancelled). On-demand rotations complete within the request, so
// OnDemandRotationStartDate never shows.
func (s *Service) getKeyRotationStatus(_ context.Context, r *awsjson.Request) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	var ki *keyInfo
	err = s.db.View(func(tx *store.Tx) (err error) {
		ki, err = s.lookupKind(tx, "GetKeyRotationStatus", keyID, checkRotates)
		return err
	})
	if err != nil {
		return nil, err
	}
	k := ki.k
	out := getKeyRotationStatusOutput{KeyID: k.ARN}
	if k.RotationEnabled && k.State != store.KeyPendingDeletion {
		out.KeyRotationEnabled, out.RotationPeriodInDays = true, k.RotationPeriodInDays
		out.NextRotationDate = awsjson.TimeOf(k.NextRotationDate)
	}
	return out, nil
}

// rotateKeyOnDemand is RotateKeyOnDemand: new material now, in the fleet;
// the automatic schedule does not change.
func (s *Service) rotateKeyOnDemand(ctx context.Context, r *awsjson.Request) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	check := func(k *store.Key) error {
		if k.OnDemandRotations() >= maxOnDemandRotations {
			return newErr(excLimitExceeded, "%s has reached the limit of %d on-demand rotations.", k.ARN, maxOnDemandRotations)
		}
		if k.RotationEnabled && k.NextRotationDate.Sub(now) < rotationConflictWindow {
			return newErr(excConflict, "An automatic rotation of %s is in progress or due within %v; try again later.", k.ARN, rotationConflictWindow)
		}
		return nil
	}
	var ki *keyInfo
	err = s.db.View(func(tx *store.Tx) (err error) {
		if ki, err = s.lookupKind(tx, "RotateKeyOnDemand", keyID, checkRotates); err != nil {
			return err
		}
		return check(ki.k)
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.rotate(ctx, "RotateKeyOnDemand", ki.k.ID, store.RotationOnDemand, now, func(k *store.Key) error {
		// Checked again in the transaction that adds the material.
		return check(k)
	}); err != nil {
		return nil, err
	}
	return keyIDOutput{KeyID: ki.k.ARN}, nil
}

// rotate adds new material to key id: an AES-256 key generated in the
// fleet, then, in one transaction, the key re-read, still checked by
// still, and the material appended as the next version. When the
// transaction fails the new HSM key is deleted again.
func (s *Service) rotate(ctx context.Context, op, id, rotationType string, at time.Time, still func(*store.Key) error) (*store.Key, error) {
	k := &store.Key{ID: id, ARN: s.keyARN(id)}
	b, err := s.newSymmetricMaterial(ctx, s.fleet, k, 0)
	if err != nil {
		return nil, s.hsmErr(op, k, err)
	}
	err = s.db.Update(func(tx *store.Tx) error {
		cur, err := tx.Key(id)
		if errors.Is(err, store.ErrNotFound) {
			return notFoundKey(s.keyARN(id))
		}
		if err != nil {
			return err
		}
		if err := still(cur); err != nil {
			return err
		}
		last, _ := cur.Current()
		b.Version, b.RotationDate, b.RotationType = last.Version+1, at, rotationType
		cur.BackingKeys = append(cur.BackingKeys, b)
		if rotationType == store.RotationAutomatic {
			cur.NextRotationDate = at.Add(time.Duration(cur.RotationPeriodInDays) * day)
		}
		k = cur
		return tx.PutKey(cur)
	})
	if err != nil {
		s.deleteHSMKey(context.WithoutCancel(ctx), s.fleet, id, b.Handle)
		return nil, err
	}
	s.log.Info("key rotated", "key_id", id, "rotation_type", rotationType, "version", b.Version, "key_material_id", b.KeyMaterialID)
	return k, nil
}

// rotateDue runs the automatic rotations that are due: Enabled keys whose
// next rotation date has passed rotate once (a disabled key rotates when
// it is enabled again; a key pending deletion does not rotate). It reads
// only the keys whose due date has come (store.Key.DueDate covers the next
// rotation date of a key with rotation on).
func (s *Service) rotateDue(ctx context.Context, now time.Time) error {
	due := func(k *store.Key) bool {
		return k.RotationEnabled && k.State == store.KeyEnabled && k.Origin == store.OriginAWSKMS && isSymmetric(k) &&
			!k.NextRotationDate.After(now)
	}
	var ids []string
	if err := s.db.View(func(tx *store.Tx) error {
		keys, err := tx.KeysDueBy(now)
		for _, k := range keys {
			if due(k) {
				ids = append(ids, k.ID)
			}
		}
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		_, err := s.rotate(ctx, "AutomaticRotation", id, store.RotationAutomatic, now, func(k *store.Key) error {
			if !due(k) {
				return errNotDue
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNotDue) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errNotDue is returned when a key's rotation stopped being due while its
// material was generated.
var errNotDue = errors.New("kms: rotation no longer due")

type listKeyRotationsInput struct {
	KeyID              *string `json:"KeyId"`
	IncludeKeyMaterial *string `json:"IncludeKeyMaterial"`
	Limit              *int64  `json:"Limit"`
	Marker             *string `json:"Marker"`
}

type rotationsListEntry struct {
	KeyID                  string             `json:"KeyId"`
	KeyMaterialID          string             `json:"KeyMaterialId"`
	KeyMaterialDescription string             `json:"KeyMaterialDescription,omitempty"`
	ImportState            string             `json:"ImportState,omitempty"`
	KeyMaterialState       string             `json:"KeyMaterialState"`
	ExpirationModel        string             `json:"ExpirationModel,omitempty"`
	ValidTo                *awsjson.Timestamp `json:"ValidTo,omitempty"`
	RotationDate           *awsjson.Timestamp `json:"RotationDate,omitempty"`
	RotationType           string             `json:"RotationType,omitempty"`
}

type listKeyRotationsOutput struct {
	Rotations  []rotationsListEntry `json:"Rotations"`
	NextMarker string               `json:"NextMarker,omitempty"`
	Truncated  bool                 `json:"Truncated"`
}

// listKeyRotations is ListKeyRotations: the key's rotations, oldest first
// (IncludeKeyMaterial ROTATIONS_ONLY, the default), or all its key
// materials (ALL_KEY_MATERIAL, which adds the first). The marker is the
// index of the next entry.
func (s *Service) listKeyRotations(_ context.Context, r *awsjson.Request) (any, error) {
	var in listKeyRotationsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Enum("IncludeKeyMaterial", in.IncludeKeyMaterial, "ALL_KEY_MATERIAL", "ROTATIONS_ONLY")
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 1000, 100)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var ki *keyInfo
	err := s.db.View(func(tx *store.Tx) (err error) {
		ki, err = s.lookupKind(tx, "ListKeyRotations", *in.KeyID, checkListsRotations)
		return err
	})
	if err != nil {
		return nil, err
	}
	all := str(in.IncludeKeyMaterial) == "ALL_KEY_MATERIAL"
	k := ki.k
	var entries []rotationsListEntry
	for i, b := range k.BackingKeys {
		if b.RotationType == "" && !all {
			continue
		}
		e := rotationsListEntry{KeyID: k.ARN, KeyMaterialID: b.KeyMaterialID, KeyMaterialState: materialNonCurrent,
			RotationType: b.RotationType, KeyMaterialDescription: b.Description}
		if i == len(k.BackingKeys)-1 {
			e.KeyMaterialState = materialCurrent
		}
		if !b.RotationDate.IsZero() {
			e.RotationDate = awsjson.TimeOf(b.RotationDate)
		}
		if k.Origin == store.OriginExternal {
			e.ImportState, e.ExpirationModel = b.ImportState, b.ExpirationModel
			if b.ExpirationModel == expiresModel && b.ImportState == store.Imported {
				e.ValidTo = awsjson.TimeOf(b.ValidTo)
			}
		}
		entries = append(entries, e)
	}
	start := 0
	if in.Marker != nil {
		n, err := strconv.Atoi(*in.Marker)
		if err != nil || n <= 0 || n > len(entries) {
			return nil, invalidMarker()
		}
		start = n
	}
	out := listKeyRotationsOutput{Rotations: []rotationsListEntry{}}
	for i := start; i < len(entries); i++ {
		if i-start == limit {
			out.NextMarker, out.Truncated = strconv.Itoa(i), true
			break
		}
		out.Rotations = append(out.Rotations, entries[i])
	}
	return out, nil
}
