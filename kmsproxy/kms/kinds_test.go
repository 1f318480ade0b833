package kms_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// TestEveryKeyKind checks DescribeKey and ListKeys for every kind of key,
// and UpdateAlias's rule that an alias keeps its key type and usage.
func TestEveryKeyKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rsaEnc := []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecRsaesOaepSha256}
	kinds := []struct {
		name    string
		in      *kmssdk.CreateKeyInput
		state   types.KeyState
		enc     []types.EncryptionAlgorithmSpec
		sign    []types.SigningAlgorithmSpec
		mac     []types.MacAlgorithmSpec
		current bool
		// absent are KeyMetadata members the JSON must not have.
		absent []string
	}{
		{"symmetric", &kmssdk.CreateKeyInput{}, types.KeyStateEnabled, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, nil, nil, true,
			[]string{"SigningAlgorithms", "MacAlgorithms", "ExpirationModel", "ValidTo"}},
		{"RSA encryption", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa4096, KeyUsage: types.KeyUsageTypeEncryptDecrypt}, types.KeyStateEnabled, rsaEnc, nil, nil, false,
			[]string{"SigningAlgorithms", "MacAlgorithms", "CurrentKeyMaterialId"}},
		{"RSA signing", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa3072, KeyUsage: types.KeyUsageTypeSignVerify}, types.KeyStateEnabled, nil,
			[]types.SigningAlgorithmSpec{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"},
			nil, false, []string{"EncryptionAlgorithms", "MacAlgorithms"}},
		{"ECC signing", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP384, KeyUsage: types.KeyUsageTypeSignVerify}, types.KeyStateEnabled, nil,
			[]types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}, nil, false, []string{"EncryptionAlgorithms", "MacAlgorithms"}},
		{"HMAC", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac224, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, types.KeyStateEnabled, nil, nil,
			[]types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha224}, false, []string{"EncryptionAlgorithms", "SigningAlgorithms"}},
		{"imported symmetric", &kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal}, types.KeyStatePendingImport,
			[]types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, nil, nil, false, []string{"CurrentKeyMaterialId", "ValidTo"}},
		{"imported ECC", &kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify},
			types.KeyStatePendingImport, nil, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}, nil, false, []string{"EncryptionAlgorithms"}},
	}
	ids := map[string]*types.KeyMetadata{}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			md := e.createKey(k.in)
			ids[k.name] = md
			for _, d := range []*types.KeyMetadata{md, e.describe(*md.Arn)} {
				spec := k.in.KeySpec
				if spec == "" {
					spec = types.KeySpecSymmetricDefault
				}
				require.Equal(t, spec, d.KeySpec)
				//lint:ignore SA1019 the deprecated member must still be filled in.
				require.Equal(t, string(spec), string(d.CustomerMasterKeySpec))
				require.Equal(t, k.state, d.KeyState)
				require.Equal(t, k.state == types.KeyStateEnabled, d.Enabled)
				require.Equal(t, k.enc, d.EncryptionAlgorithms)
				require.Equal(t, k.sign, d.SigningAlgorithms)
				require.Equal(t, k.mac, d.MacAlgorithms)
				require.Equal(t, k.current, d.CurrentKeyMaterialId != nil)
				require.Equal(t, types.KeyManagerTypeCustomer, d.KeyManager)
				require.False(t, *d.MultiRegion)
				require.Equal(t, account, *d.AWSAccountId)
				if k.in.Origin == "" {
					require.Equal(t, types.OriginTypeAwsKms, d.Origin)
				} else {
					require.Equal(t, k.in.Origin, d.Origin)
				}
			}
			status, body := e.post("DescribeKey", fmt.Sprintf(`{"KeyId":%q}`, *md.KeyId))
			require.Equal(t, 200, status)
			var raw struct{ KeyMetadata map[string]json.RawMessage }
			require.NoError(t, json.Unmarshal([]byte(body), &raw))
			for _, m := range k.absent {
				require.NotContains(t, raw.KeyMetadata, m)
			}
		})
	}
	listed := e.listKeyIDs()
	for _, md := range ids {
		require.Contains(t, listed, *md.KeyId)
	}

	t.Run("UpdateAlias keeps type and usage", func(t *testing.T) {
		for _, tt := range []struct {
			from, to string
			ok       bool
		}{
			{"symmetric", "RSA encryption", false},
			{"symmetric", "HMAC", false},
			{"RSA encryption", "RSA signing", false},
			{"RSA signing", "HMAC", false},
			{"HMAC", "symmetric", false},
			{"RSA signing", "ECC signing", true},
			{"symmetric", "imported symmetric", true},
			{"ECC signing", "imported ECC", true},
		} {
			alias := fmt.Sprintf("alias/%s-to-%s", tt.from[:3], tt.to[:3])
			from, to := ids[tt.from], ids[tt.to]
			_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String(alias + "-x"), TargetKeyId: from.KeyId})
			require.NoError(t, err)
			_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String(alias + "-x"), TargetKeyId: to.KeyId})
			if tt.ok {
				require.NoError(t, err, "%s → %s", tt.from, tt.to)
				require.Equal(t, *to.Arn, *e.describe(alias + "-x").Arn)
				continue
			}
			require.Error(t, err, "%s → %s", tt.from, tt.to)
			requireAPIError(t, err, "ValidationException", "cannot point to")
			require.Equal(t, *from.Arn, *e.describe(alias + "-x").Arn)
		}
	})
}

// TestMultiRegionAndKeyAgreement checks the operations that need a
// multi-Region or KEY_AGREEMENT key, which cannot exist here: they answer
// as AWS does for the keys that do.
func TestMultiRegionAndKeyAgreement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)
	_, err := e.kms.ReplicateKey(ctx, &kmssdk.ReplicateKeyInput{KeyId: md.KeyId, ReplicaRegion: aws.String("eu-west-1")})
	requireAPIError(t, err, "UnsupportedOperationException", *md.Arn+" is not a multi-Region key")
	_, err = e.kms.ReplicateKey(ctx, &kmssdk.ReplicateKeyInput{KeyId: md.KeyId, ReplicaRegion: aws.String("Mars")})
	requireAPIError(t, err, "ValidationException", "replicaRegion")
	_, err = e.kms.ReplicateKey(ctx, &kmssdk.ReplicateKeyInput{KeyId: aws.String("00000000-0000-0000-0000-000000000000"), ReplicaRegion: aws.String("eu-west-1")})
	requireAPIError(t, err, "NotFoundException")
	_, err = e.kms.UpdatePrimaryRegion(ctx, &kmssdk.UpdatePrimaryRegionInput{KeyId: md.Arn, PrimaryRegion: aws.String("eu-west-1")})
	requireAPIError(t, err, "UnsupportedOperationException", "not a multi-Region key")

	ecc := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	_, pk := e.publicKey(*ecc.KeyId)
	for _, k := range []*types.KeyMetadata{md, ecc} {
		_, err = e.kms.DeriveSharedSecret(ctx, &kmssdk.DeriveSharedSecretInput{KeyId: k.KeyId, KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: pk.PublicKey})
		requireAPIError(t, err, "InvalidKeyUsageException", "DeriveSharedSecret")
	}
	moveTo(t, e, *ecc.KeyId, types.KeyStateDisabled)
	_, err = e.kms.DeriveSharedSecret(ctx, &kmssdk.DeriveSharedSecretInput{KeyId: ecc.KeyId, KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: pk.PublicKey})
	requireAPIError(t, err, "DisabledException", *ecc.Arn+" is disabled.")
}
