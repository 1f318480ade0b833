package kms

import (
	"context"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// Multi-Region keys and key agreement are not served: no key can be
// multi-Region or have KeyUsage KEY_AGREEMENT (CreateKey refuses both).
// The operations that need one still answer as AWS does for the keys that
// exist: NotFoundException for an unknown key, then
// UnsupportedOperationException (ReplicateKey, UpdatePrimaryRegion on a
// single-Region key) or InvalidKeyUsageException (DeriveSharedSecret on a
// key without KEY_AGREEMENT usage).

type replicateKeyInput struct {
	KeyID                          *string `json:"KeyId"`
	ReplicaRegion                  *string `json:"ReplicaRegion"`
	Policy                         *string `json:"Policy"`
	BypassPolicyLockoutSafetyCheck *bool   `json:"BypassPolicyLockoutSafetyCheck"`
	Description                    *string `json:"Description"`
	Tags                           []tag   `json:"Tags"`
}

// replicateKey is ReplicateKey: every key here is single-Region.
func (s *Service) replicateKey(_ context.Context, r *awsjson.Request) (any, error) {
	var in replicateKeyInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("ReplicaRegion", in.ReplicaRegion != nil)
	v.Length("ReplicaRegion", in.ReplicaRegion, 1, 32)
	v.Pattern("ReplicaRegion", in.ReplicaRegion, regionRE)
	v.Length("Policy", in.Policy, 1, 131072)
	v.Length("Description", in.Description, 0, 8192)
	checkTags(&v, "tags", in.Tags)
	if err := v.Err(); err != nil {
		return nil, err
	}
	k, err := s.resolve(*in.KeyID, false)
	if err != nil {
		return nil, err
	}
	return nil, newErr(excUnsupportedOperation, "%s is not a multi-Region key; only a multi-Region primary key can be replicated.", k.ARN)
}

type updatePrimaryRegionInput struct {
	KeyID         *string `json:"KeyId"`
	PrimaryRegion *string `json:"PrimaryRegion"`
}

// updatePrimaryRegion is UpdatePrimaryRegion: every key here is
// single-Region.
func (s *Service) updatePrimaryRegion(_ context.Context, r *awsjson.Request) (any, error) {
	var in updatePrimaryRegionInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("PrimaryRegion", in.PrimaryRegion != nil)
	v.Length("PrimaryRegion", in.PrimaryRegion, 1, 32)
	v.Pattern("PrimaryRegion", in.PrimaryRegion, regionRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	k, err := s.resolve(*in.KeyID, false)
	if err != nil {
		return nil, err
	}
	return nil, newErr(excUnsupportedOperation, "%s is not a multi-Region key.", k.ARN)
}

type deriveSharedSecretInput struct {
	KeyID                 *string        `json:"KeyId"`
	KeyAgreementAlgorithm *string        `json:"KeyAgreementAlgorithm"`
	PublicKey             []byte         `json:"PublicKey"`
	GrantTokens           []string       `json:"GrantTokens"`
	DryRun                *bool          `json:"DryRun"`
	Recipient             *recipientInfo `json:"Recipient"`
}

// deriveSharedSecret is DeriveSharedSecret: no key has KEY_AGREEMENT
// usage, so a key that exists (and whose state allows it) is
// InvalidKeyUsageException.
func (s *Service) deriveSharedSecret(_ context.Context, r *awsjson.Request) (any, error) {
	var in deriveSharedSecretInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("KeyAgreementAlgorithm", in.KeyAgreementAlgorithm != nil)
	v.Enum("KeyAgreementAlgorithm", in.KeyAgreementAlgorithm, "ECDH")
	v.Required("PublicKey", in.PublicKey != nil)
	v.BlobLength("PublicKey", in.PublicKey, in.PublicKey != nil, 1, 8192)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	if in.Recipient != nil {
		return nil, unsupportedRecipient()
	}
	ki, err := s.viewKey("DeriveSharedSecret", *in.KeyID, true)
	if err != nil {
		return nil, err
	}
	return nil, wrongUsage(ki.k, "DeriveSharedSecret")
}
