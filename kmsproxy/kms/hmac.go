package kms

import (
	"context"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

type generateMacInput struct {
	Message      []byte   `json:"Message"`
	KeyID        *string  `json:"KeyId"`
	MacAlgorithm *string  `json:"MacAlgorithm"`
	GrantTokens  []string `json:"GrantTokens"`
	DryRun       *bool    `json:"DryRun"`
}

type generateMacOutput struct {
	Mac          []byte `json:"Mac"`
	MacAlgorithm string `json:"MacAlgorithm"`
	KeyID        string `json:"KeyId"`
}

type verifyMacInput struct {
	Message      []byte   `json:"Message"`
	KeyID        *string  `json:"KeyId"`
	MacAlgorithm *string  `json:"MacAlgorithm"`
	Mac          []byte   `json:"Mac"`
	GrantTokens  []string `json:"GrantTokens"`
	DryRun       *bool    `json:"DryRun"`
}

type verifyMacOutput struct {
	KeyID        string `json:"KeyId"`
	MacValid     bool   `json:"MacValid"`
	MacAlgorithm string `json:"MacAlgorithm"`
}

// macKey resolves the key of GenerateMac or VerifyMac (op) and checks it:
// an HMAC key (InvalidKeyUsageException otherwise) whose one algorithm is
// alg (InvalidKeyUsageException).
func (s *Service) macKey(op, keyID, alg string) (*store.Key, store.BackingKey, error) {
	ki, err := s.viewKey(op, keyID, true)
	if err != nil {
		return nil, store.BackingKey{}, err
	}
	k := ki.k
	if !isHMAC(k) {
		return nil, store.BackingKey{}, wrongUsage(k, op)
	}
	if specOf(k).mac != alg {
		return nil, store.BackingKey{}, newErr(excInvalidKeyUsage, "Algorithm %s is incompatible with the KMS key %s, whose KeySpec is %s.", alg, k.ARN, k.KeySpec)
	}
	cur, found := k.Current()
	if !found || cur.Handle == 0 {
		return nil, cur, internalErr()
	}
	return k, cur, nil
}

// generateMac is GenerateMac: HMAC of a message (1 to 4096 bytes) in the
// HSM with the key's generic secret.
func (s *Service) generateMac(ctx context.Context, r *awsjson.Request) (any, error) {
	var in generateMacInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("Message", in.Message != nil)
	v.BlobLength("Message", in.Message, in.Message != nil, 1, 4096)
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("MacAlgorithm", in.MacAlgorithm != nil)
	v.Enum("MacAlgorithm", in.MacAlgorithm, macAlgorithmSpec...)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	k, b, err := s.macKey("GenerateMac", *in.KeyID, *in.MacAlgorithm)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	mac, err := s.fleet.generateMac(hctx, &hsmv1.GenerateMacRequest{Handle: b.Handle, Hash: macHash[*in.MacAlgorithm], Message: in.Message})
	if err != nil {
		return nil, s.hsmErr("GenerateMac", k, err)
	}
	return generateMacOutput{Mac: mac, MacAlgorithm: *in.MacAlgorithm, KeyID: k.ARN}, nil
}

// verifyMac is VerifyMac, in the HSM. A MAC that differs is
// KMSInvalidMacException, not MacValid false.
func (s *Service) verifyMac(ctx context.Context, r *awsjson.Request) (any, error) {
	var in verifyMacInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("Message", in.Message != nil)
	v.BlobLength("Message", in.Message, in.Message != nil, 1, 4096)
	checkKeyID(&v, "KeyId", in.KeyID)
	v.Required("MacAlgorithm", in.MacAlgorithm != nil)
	v.Enum("MacAlgorithm", in.MacAlgorithm, macAlgorithmSpec...)
	v.Required("Mac", in.Mac != nil)
	v.BlobLength("Mac", in.Mac, in.Mac != nil, 1, maxBlobLen)
	checkGrantTokens(&v, in.GrantTokens)
	if err := finish(&v, in.GrantTokens); err != nil {
		return nil, err
	}
	k, b, err := s.macKey("VerifyMac", *in.KeyID, *in.MacAlgorithm)
	if err != nil {
		return nil, err
	}
	if dryRun(in.DryRun) {
		return nil, newErr(excDryRun, msgDryRun)
	}
	hctx, cancel := s.hsmCtx(ctx)
	defer cancel()
	valid, err := s.fleet.verifyMac(hctx, &hsmv1.VerifyMacRequest{Handle: b.Handle, Hash: macHash[*in.MacAlgorithm], Message: in.Message, Mac: in.Mac})
	if err != nil {
		return nil, s.hsmErr("VerifyMac", k, err)
	}
	if !valid {
		return nil, newErr(excInvalidMac, "The MAC is not valid for this message, key and MAC algorithm.")
	}
	return verifyMacOutput{KeyID: k.ARN, MacValid: true, MacAlgorithm: *in.MacAlgorithm}, nil
}
