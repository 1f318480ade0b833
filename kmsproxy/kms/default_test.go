package kms_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

var (
	keyARNRE      = regexp.MustCompile(`^arn:aws:kms:us-east-1:111122223333:key/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	materialIDRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	defaultPolicy = `{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
)

func (e *env) createKey(in *kmssdk.CreateKeyInput) *types.KeyMetadata {
	e.t.Helper()
	if in == nil {
		in = &kmssdk.CreateKeyInput{}
	}
	out, err := e.kms.CreateKey(ctx, in)
	require.NoError(e.t, err)
	return out.KeyMetadata
}

func (e *env) describe(keyID string) *types.KeyMetadata {
	e.t.Helper()
	out, err := e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String(keyID)})
	require.NoError(e.t, err)
	return out.KeyMetadata
}

func (e *env) encrypt(keyID string, pt []byte, ec map[string]string) []byte {
	e.t.Helper()
	out, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String(keyID), Plaintext: pt, EncryptionContext: ec})
	require.NoError(e.t, err)
	return out.CiphertextBlob
}

func (e *env) listKeyIDs() []string {
	e.t.Helper()
	var ids []string
	p := kmssdk.NewListKeysPaginator(e.kms, &kmssdk.ListKeysInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(e.t, err)
		for _, k := range out.Keys {
			ids = append(ids, *k.KeyId)
		}
	}
	return ids
}

func TestDefaultKeyStore(t *testing.T) {
	e := newEnv(t)

	t.Run("create and describe", func(t *testing.T) {
		before := e.clock.Now().Add(-time.Second)
		md := e.createKey(nil)
		require.Regexp(t, keyARNRE, *md.Arn)
		require.Equal(t, account, *md.AWSAccountId)
		require.True(t, strings.HasSuffix(*md.Arn, "/"+*md.KeyId))
		require.Equal(t, types.KeyStateEnabled, md.KeyState)
		require.True(t, md.Enabled)
		require.Equal(t, "", *md.Description)
		require.Equal(t, types.OriginTypeAwsKms, md.Origin)
		require.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
		//lint:ignore SA1019 the deprecated member must still be filled in.
		require.Equal(t, types.CustomerMasterKeySpecSymmetricDefault, md.CustomerMasterKeySpec)
		require.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage)
		require.Equal(t, types.KeyManagerTypeCustomer, md.KeyManager)
		require.Equal(t, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, md.EncryptionAlgorithms)
		require.False(t, *md.MultiRegion)
		require.Nil(t, md.DeletionDate)
		require.Nil(t, md.CustomKeyStoreId)
		require.Regexp(t, materialIDRE, *md.CurrentKeyMaterialId)
		require.True(t, md.CreationDate.After(before), "%v", md.CreationDate)

		// The material is an HSM key of the fleet's crypto user, labelled
		// with the ARN, non-extractable, for encryption only; its id is the
		// KeyMaterialId.
		session := e.fleet.Login(0, fleetUser, fleetPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		found, err := e.fleet.Client(0).FindKeys(session, &hsmv1.FindKeysRequest{Label: *md.Arn})
		require.NoError(t, err)
		require.Len(t, found.GetKeys(), 1)
		hk := found.GetKeys()[0]
		require.Equal(t, hsmv1.KeyType_KEY_TYPE_AES, hk.GetType())
		require.Equal(t, uint32(256), hk.GetSizeBits())
		require.False(t, hk.GetExtractable())
		require.True(t, hk.GetEncrypt() && hk.GetDecrypt())
		require.False(t, hk.GetWrap() || hk.GetUnwrap() || hk.GetSign() || hk.GetVerify())
		require.Equal(t, fleetUser, hk.GetOwner())
		require.Equal(t, *md.CurrentKeyMaterialId, fmt.Sprintf("%x", hk.GetId()))

		// Every way of naming the key finds it.
		_, err = e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/describe-me"), TargetKeyId: md.KeyId})
		require.NoError(t, err)
		for _, ref := range []string{*md.KeyId, *md.Arn, "alias/describe-me", "arn:aws:kms:us-east-1:111122223333:alias/describe-me"} {
			require.Equal(t, *md.Arn, *e.describe(ref).Arn, ref)
		}
		for ref, code := range map[string]string{
			"alias/nope": "NotFoundException",
			"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000": "NotFoundException",
			"arn:aws:kms:eu-west-1:111122223333:key/" + *md.KeyId:                         "NotFoundException",
			"not-a-key-id":                       "NotFoundException",
			"key/" + *md.KeyId:                   "NotFoundException",
			"arn:aws:kms:us-east-1:111122223333": "NotFoundException",
		} {
			_, err := e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String(ref)})
			requireAPIError(t, err, code)
		}
		_, err = e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000")})
		requireAPIError(t, err, "NotFoundException", "Key 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000' does not exist")
		// Management operations take key ids and ARNs, not aliases.
		_, err = e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: aws.String("alias/describe-me")})
		requireAPIError(t, err, "NotFoundException")
		require.True(t, e.describe(*md.KeyId).Enabled)

		// The default policy, exactly; GetKeyPolicy and ListKeyPolicies.
		pol, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, defaultPolicy, *pol.Policy)
		require.Equal(t, "default", *pol.PolicyName)
		_, err = e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: md.KeyId, PolicyName: aws.String("other")})
		requireAPIError(t, err, "NotFoundException")
		lp, err := e.kms.ListKeyPolicies(ctx, &kmssdk.ListKeyPoliciesInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, []string{"default"}, lp.PolicyNames)
		require.False(t, lp.Truncated)
	})

	t.Run("create with options", func(t *testing.T) {
		policy := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}`
		md := e.createKey(&kmssdk.CreateKeyInput{
			Description: aws.String("my key"), Policy: aws.String(policy),
			KeySpec: types.KeySpecSymmetricDefault, KeyUsage: types.KeyUsageTypeEncryptDecrypt, Origin: types.OriginTypeAwsKms,
			Tags: []types.Tag{{TagKey: aws.String("b"), TagValue: aws.String("2")}, {TagKey: aws.String("a"), TagValue: aws.String("")}},
		})
		require.Equal(t, "my key", *md.Description)
		pol, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, policy, *pol.Policy)
		tags, err := e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("")}, {TagKey: aws.String("b"), TagValue: aws.String("2")}}, tags.Tags)

		before := len(e.listKeyIDs())
		bad := []struct {
			name string
			in   *kmssdk.CreateKeyInput
			code string
			msg  string
		}{
			{"secp256k1", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccSecgP256k1, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException", "secp256k1"},
			{"SM2", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException", "SM2"},
			{"Ed25519", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistEdwards25519, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException", "Ed25519"},
			{"ML-DSA", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecMlDsa65, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException", "ML_DSA_65"},
			{"key agreement", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeKeyAgreement}, "UnsupportedOperationException", "KEY_AGREEMENT"},
			{"ECC encrypt", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP384}, "ValidationException", "ENCRYPT_DECRYPT"},
			{"RSA MAC", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa3072, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, "ValidationException", "RSA_3072"},
			{"HMAC sign", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac384, KeyUsage: types.KeyUsageTypeSignVerify}, "ValidationException", "HMAC_384"},
			//lint:ignore SA1019 the deprecated member must still be checked.
			{"HMAC CustomerMasterKeySpec without usage", &kmssdk.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecHmac256}, "ValidationException", "HMAC_256"},
			//lint:ignore SA1019 the deprecated member must still be checked.
			{"both specs", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault}, "ValidationException", ""},
			{"bad key spec", &kmssdk.CreateKeyInput{KeySpec: "AES_512"}, "ValidationException", "keySpec"},
			{"sign usage", &kmssdk.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify}, "ValidationException", "SIGN_VERIFY"},
			{"external key store origin", &kmssdk.CreateKeyInput{Origin: types.OriginTypeExternalKeyStore}, "UnsupportedOperationException", "EXTERNAL_KEY_STORE"},
			{"multi-Region", &kmssdk.CreateKeyInput{MultiRegion: aws.Bool(true)}, "UnsupportedOperationException", ""},
			{"CloudHSM origin without store", &kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm}, "ValidationException", "CustomKeyStoreId"},
			{"store without origin", &kmssdk.CreateKeyInput{CustomKeyStoreId: aws.String("cks-1234567890abcdef0")}, "ValidationException", "AWS_CLOUDHSM"},
			{"unknown store", &kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String("cks-1234567890abcdef0")}, "CustomKeyStoreNotFoundException", ""},
			{"policy not JSON", &kmssdk.CreateKeyInput{Policy: aws.String("{not json")}, "MalformedPolicyDocumentException", ""},
			{"policy without principal", &kmssdk.CreateKeyInput{Policy: aws.String(`{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}`)}, "MalformedPolicyDocumentException", "principal"},
			{"policy with bad effect", &kmssdk.CreateKeyInput{Policy: aws.String(`{"Statement":[{"Effect":"Maybe","Principal":"*"}]}`)}, "MalformedPolicyDocumentException", "Effect"},
			{"policy over quota", &kmssdk.CreateKeyInput{Policy: aws.String(`{"Statement":[{"Effect":"Allow","Principal":"*","Sid":"` + strings.Repeat("x", 32768) + `"}]}`)}, "LimitExceededException", ""},
			{"reserved tag", &kmssdk.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("1")}}}, "TagException", ""},
			{"long description", &kmssdk.CreateKeyInput{Description: aws.String(strings.Repeat("d", 8193))}, "ValidationException", "description"},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.kms.CreateKey(ctx, tt.in)
				requireAPIError(t, err, tt.code, tt.msg)
			})
		}
		require.Len(t, e.listKeyIDs(), before, "a refused CreateKey creates nothing")
	})

	t.Run("encrypt and decrypt", func(t *testing.T) {
		md := e.createKey(nil)
		other := e.createKey(nil)
		_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/crypto"), TargetKeyId: md.KeyId})
		require.NoError(t, err)
		pt := []byte("attack at dawn")
		ec := map[string]string{"purpose": "test", "Dept": "42"}

		enc, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: aws.String("alias/crypto"), Plaintext: pt, EncryptionContext: ec})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *enc.KeyId, "responses echo the key ARN")
		require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, enc.EncryptionAlgorithm)
		require.False(t, bytes.Contains(enc.CiphertextBlob, pt))
		require.Len(t, enc.CiphertextBlob, 21+12+len(pt)+16)
		require.Equal(t, byte(1), enc.CiphertextBlob[0])

		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"Dept": "42", "purpose": "test"}})
		require.NoError(t, err)
		require.Equal(t, pt, dec.Plaintext)
		require.Equal(t, *md.Arn, *dec.KeyId)
		require.Equal(t, *md.CurrentKeyMaterialId, *dec.KeyMaterialId)
		for _, ref := range []string{*md.KeyId, *md.Arn, "alias/crypto"} {
			dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(ref),
				EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault})
			require.NoError(t, err, ref)
			require.Equal(t, pt, dec.Plaintext)
		}

		// The encryption context must match exactly, case included.
		for name, wrong := range map[string]map[string]string{
			"none":          nil,
			"missing pair":  {"purpose": "test"},
			"extra pair":    {"purpose": "test", "Dept": "42", "x": "y"},
			"value case":    {"purpose": "Test", "Dept": "42"},
			"key case":      {"Purpose": "test", "Dept": "42"},
			"value changed": {"purpose": "test", "Dept": "43"},
		} {
			t.Run("context "+name, func(t *testing.T) {
				_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: wrong})
				requireAPIError(t, err, "InvalidCiphertextException")
			})
		}
		// Any change to the blob fails.
		for i, code := range map[int]string{
			0:                           "InvalidCiphertextException", // version
			5:                           "AccessDeniedException",      // key id: no such key
			20:                          "InvalidCiphertextException", // material version
			21:                          "InvalidCiphertextException", // nonce
			30:                          "InvalidCiphertextException", // ciphertext
			len(enc.CiphertextBlob) - 1: "InvalidCiphertextException", // tag
		} {
			tampered := bytes.Clone(enc.CiphertextBlob)
			tampered[i] ^= 0x01
			_, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: tampered, EncryptionContext: ec})
			requireAPIError(t, err, code)
		}
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob[:40], EncryptionContext: ec})
		requireAPIError(t, err, "InvalidCiphertextException")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: []byte("garbage that is long enough to look like a blob, but is not one"), EncryptionContext: ec})
		requireAPIError(t, err, "InvalidCiphertextException")
		// A KeyId naming another key.
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: other.KeyId})
		requireAPIError(t, err, "IncorrectKeyException")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String("alias/nope")})
		requireAPIError(t, err, "NotFoundException")
		// An asymmetric algorithm with a symmetric key.
		_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: pt, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireAPIError(t, err, "InvalidKeyUsageException")

		// Plaintext 1..4096; the largest blob is within 6144 bytes.
		big := e.encrypt(*md.KeyId, bytes.Repeat([]byte{7}, 4096), nil)
		require.LessOrEqual(t, len(big), 6144)
		dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: big})
		require.NoError(t, err)
		require.Equal(t, bytes.Repeat([]byte{7}, 4096), dec.Plaintext)
		_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: make([]byte, 4097)})
		requireAPIError(t, err, "ValidationException", "plaintext", "less than or equal to 4096")

		// ReEncrypt moves the ciphertext to another key and context.
		re, err := e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: ec,
			DestinationKeyId: other.KeyId, DestinationEncryptionContext: map[string]string{"new": "ctx"}})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *re.SourceKeyId)
		require.Equal(t, *other.Arn, *re.KeyId)
		require.Equal(t, *md.CurrentKeyMaterialId, *re.SourceKeyMaterialId)
		require.Equal(t, *other.CurrentKeyMaterialId, *re.DestinationKeyMaterialId)
		dec, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"new": "ctx"}})
		require.NoError(t, err)
		require.Equal(t, pt, dec.Plaintext)
		require.Equal(t, *other.Arn, *dec.KeyId)
		_, err = e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: ec,
			SourceKeyId: other.KeyId, DestinationKeyId: other.KeyId})
		requireAPIError(t, err, "IncorrectKeyException")
		_, err = e.kms.ReEncrypt(ctx, &kmssdk.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: other.KeyId})
		requireAPIError(t, err, "InvalidCiphertextException")

		// Dry runs check everything and do nothing.
		_, err = e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: pt, DryRun: aws.Bool(true)})
		requireAPIError(t, err, "DryRunOperationException")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, DryRun: aws.Bool(true)})
		requireAPIError(t, err, "DryRunOperationException")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{KeyId: md.KeyId, DryRun: aws.Bool(true), DryRunModifiers: []types.DryRunModifierType{types.DryRunModifierTypeIgnoreCiphertext}})
		requireAPIError(t, err, "DryRunOperationException")
	})

	t.Run("data keys and random", func(t *testing.T) {
		md := e.createKey(nil)
		ec := map[string]string{"k": "v"}
		for spec, n := range map[types.DataKeySpec]int{types.DataKeySpecAes256: 32, types.DataKeySpecAes128: 16} {
			dk, err := e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: md.Arn, KeySpec: spec, EncryptionContext: ec})
			require.NoError(t, err)
			require.Len(t, dk.Plaintext, n)
			require.Equal(t, *md.Arn, *dk.KeyId)
			require.Equal(t, *md.CurrentKeyMaterialId, *dk.KeyMaterialId)
			dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
			require.NoError(t, err)
			require.Equal(t, dk.Plaintext, dec.Plaintext)
		}
		dk, err := e.kms.GenerateDataKey(ctx, &kmssdk.GenerateDataKeyInput{KeyId: md.KeyId, NumberOfBytes: aws.Int32(1024)})
		require.NoError(t, err)
		require.Len(t, dk.Plaintext, 1024)
		wp, err := e.kms.GenerateDataKeyWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId, NumberOfBytes: aws.Int32(7)})
		require.NoError(t, err)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: wp.CiphertextBlob})
		require.NoError(t, err)
		require.Len(t, dec.Plaintext, 7)
		_, raw := e.post("GenerateDataKeyWithoutPlaintext", fmt.Sprintf(`{"KeyId":%q,"KeySpec":"AES_256"}`, *md.KeyId))
		require.NotContains(t, raw, `"Plaintext"`)

		for name, in := range map[string]*kmssdk.GenerateDataKeyInput{
			"neither":  {KeyId: md.KeyId},
			"both":     {KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)},
			"too many": {KeyId: md.KeyId, NumberOfBytes: aws.Int32(1025)},
			"zero":     {KeyId: md.KeyId, NumberOfBytes: aws.Int32(0)},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := e.kms.GenerateDataKey(ctx, in)
				requireAPIError(t, err, "ValidationException")
			})
		}
		_, err = e.kms.GenerateDataKeyWithoutPlaintext(ctx, &kmssdk.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId})
		requireAPIError(t, err, "ValidationException")

		a, err := e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(1024)})
		require.NoError(t, err)
		require.Len(t, a.Plaintext, 1024)
		b, err := e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(1)})
		require.NoError(t, err)
		require.Len(t, b.Plaintext, 1)
		for _, n := range []*int32{nil, aws.Int32(0), aws.Int32(1025)} {
			_, err := e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: n})
			requireAPIError(t, err, "ValidationException", "numberOfBytes")
		}
		_, err = e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String("cks-1234567890abcdef0")})
		requireAPIError(t, err, "CustomKeyStoreNotFoundException")
	})

	t.Run("key states", func(t *testing.T) {
		for _, st := range []types.KeyState{types.KeyStateEnabled, types.KeyStateDisabled, types.KeyStatePendingDeletion} {
			t.Run(string(st), func(t *testing.T) {
				runStateCells(t, e, st, func(*testing.T) string { return *e.createKey(nil).KeyId }, func(t *testing.T, ids []string) {
					for _, id := range ids {
						moveTo(t, e, id, st)
					}
				})
			})
		}
	})

	t.Run("enable disable", func(t *testing.T) {
		md := e.createKey(nil)
		for range 2 { // idempotent
			_, err := e.kms.DisableKey(ctx, &kmssdk.DisableKeyInput{KeyId: md.Arn})
			require.NoError(t, err)
			require.Equal(t, types.KeyStateDisabled, e.describe(*md.KeyId).KeyState)
			require.False(t, e.describe(*md.KeyId).Enabled)
		}
		_, err := e.kms.Encrypt(ctx, &kmssdk.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
		requireAPIError(t, err, "DisabledException", *md.Arn+" is disabled.")
		for range 2 {
			_, err := e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: md.KeyId})
			require.NoError(t, err)
			require.Equal(t, types.KeyStateEnabled, e.describe(*md.KeyId).KeyState)
		}
		e.encrypt(*md.KeyId, []byte("x"), nil)
		_, err = e.kms.UpdateKeyDescription(ctx, &kmssdk.UpdateKeyDescriptionInput{KeyId: md.KeyId, Description: aws.String("new")})
		require.NoError(t, err)
		require.Equal(t, "new", *e.describe(*md.KeyId).Description)
	})

	t.Run("aliases", func(t *testing.T) { testAliases(t, e) })
	t.Run("tags", func(t *testing.T) { testTags(t, e) })

	t.Run("list keys", func(t *testing.T) {
		all := e.listKeyIDs()
		require.Greater(t, len(all), 4)
		var paged []string
		var marker *string
		for {
			out, err := e.kms.ListKeys(ctx, &kmssdk.ListKeysInput{Limit: aws.Int32(3), Marker: marker})
			require.NoError(t, err)
			require.LessOrEqual(t, len(out.Keys), 3)
			for _, k := range out.Keys {
				paged = append(paged, *k.KeyId)
				require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+*k.KeyId, *k.KeyArn)
			}
			if !out.Truncated {
				require.Nil(t, out.NextMarker)
				break
			}
			marker = out.NextMarker
		}
		require.Equal(t, all, paged)
		_, err := e.kms.ListKeys(ctx, &kmssdk.ListKeysInput{Marker: aws.String("not a marker")})
		requireAPIError(t, err, "InvalidMarkerException")
		_, err = e.kms.ListKeys(ctx, &kmssdk.ListKeysInput{Limit: aws.Int32(1001)})
		requireAPIError(t, err, "ValidationException", "limit")
	})

	t.Run("deletion", func(t *testing.T) {
		md := e.createKey(nil)
		keyID := *md.KeyId
		_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String("alias/doomed"), TargetKeyId: md.KeyId})
		require.NoError(t, err)
		blob := e.encrypt(keyID, []byte("secret"), nil)
		for _, days := range []int32{6, 31, 0} {
			_, err := e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(days)})
			requireAPIError(t, err, "ValidationException", "pendingWindowInDays")
		}
		now := e.clock.Now()
		out, err := e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *out.KeyId)
		require.Equal(t, types.KeyStatePendingDeletion, out.KeyState)
		require.Equal(t, int32(30), *out.PendingWindowInDays)
		require.WithinDuration(t, now.Add(30*24*time.Hour), *out.DeletionDate, 5*time.Second)
		d := e.describe(keyID)
		require.Equal(t, types.KeyStatePendingDeletion, d.KeyState)
		require.WithinDuration(t, *out.DeletionDate, *d.DeletionDate, time.Millisecond)
		require.Contains(t, e.listKeyIDs(), keyID, "ListKeys lists PendingDeletion keys")

		_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId})
		requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is pending deletion.")
		cancelOut, err := e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Equal(t, *md.Arn, *cancelOut.KeyId)
		d = e.describe(keyID)
		require.Equal(t, types.KeyStateDisabled, d.KeyState, "a cancelled deletion leaves the key Disabled")
		require.Nil(t, d.DeletionDate)
		_, err = e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: md.KeyId})
		requireAPIError(t, err, "KMSInvalidStateException", *md.Arn+" is not pending deletion.")

		_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(7)})
		require.NoError(t, err)
		_, err = e.clock.Advance(6 * 24 * time.Hour)
		require.NoError(t, err)
		n, err := e.svc.Sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, types.KeyStatePendingDeletion, e.describe(keyID).KeyState)

		_, err = e.clock.Advance(24*time.Hour + time.Minute)
		require.NoError(t, err)
		n, err = e.svc.Sweep(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1, "the key, and those the key-state cells scheduled with it")
		_, err = e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String(keyID)})
		requireAPIError(t, err, "NotFoundException")
		require.NotContains(t, e.listKeyIDs(), keyID)
		_, err = e.kms.DescribeKey(ctx, &kmssdk.DescribeKeyInput{KeyId: aws.String("alias/doomed")})
		requireAPIError(t, err, "NotFoundException", "alias/doomed")
		_, err = e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob})
		requireAPIError(t, err, "AccessDeniedException")

		// The HSM key is gone too.
		session := e.fleet.Login(0, fleetUser, fleetPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		found, err := e.fleet.Client(0).FindKeys(session, &hsmv1.FindKeysRequest{Label: *md.Arn})
		require.NoError(t, err)
		require.Empty(t, found.GetKeys())
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		md := e.createKey(nil)
		before := e.listKeyIDs()
		for _, tt := range []struct {
			op, body string
			status   int
			typ, msg string
		}{
			{"Encrypt", fmt.Sprintf(`{"KeyId":%q,"Plaintext":"not base64!"}`, *md.KeyId), 400, "SerializationException", "base64"},
			{"Encrypt", fmt.Sprintf(`{"KeyId":%q,"Plaintext":"aGk=","Bogus":1}`, *md.KeyId), 400, "SerializationException", "Bogus"},
			{"Encrypt", `{"KeyId":`, 400, "SerializationException", ""},
			{"Encrypt", `{"Plaintext":"aGk="}`, 400, "ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"},
			{"Encrypt", fmt.Sprintf(`{"KeyId":%q,"Plaintext":""}`, *md.KeyId), 400, "ValidationException", "plaintext"},
			{"Encrypt", fmt.Sprintf(`{"KeyId":%q,"Plaintext":"aGk=","EncryptionContext":{"a":1}}`, *md.KeyId), 400, "SerializationException", ""},
			{"CreateKey", `{"Description":5}`, 400, "SerializationException", "Description"},
			{"CreateKey", `{"Tags":[{"TagKey":"","TagValue":"v"}]}`, 400, "ValidationException", "tagKey"},
			{"CreateAlias", fmt.Sprintf(`{"AliasName":"alias/bad name","TargetKeyId":%q}`, *md.KeyId), 400, "ValidationException", "aliasName"},
			{"TagResource", fmt.Sprintf(`{"KeyId":%q,"Tags":[{"TagKey":"ok","TagValue":"1"},{"TagKey":"aws:no","TagValue":"1"}]}`, *md.KeyId), 400, "TagException", ""},
			{"UpdateKeyDescription", fmt.Sprintf(`{"KeyId":%q}`, *md.KeyId), 400, "ValidationException", "description"},
			{"ScheduleKeyDeletion", fmt.Sprintf(`{"KeyId":%q,"PendingWindowInDays":"7"}`, *md.KeyId), 400, "SerializationException", ""},
			{"Decrypt", `{"CiphertextBlob":"%%%"}`, 400, "SerializationException", "base64"},
			{"DescribeKey", fmt.Sprintf(`{"KeyId":%q}`, strings.Repeat("k", 2049)), 400, "ValidationException", "keyId"},
			{"NoSuchOperation", `{}`, 400, "UnknownOperationException", ""},
		} {
			status, body := e.post(tt.op, tt.body)
			require.Equal(t, tt.status, status, "%s %s: %s", tt.op, tt.body, body)
			var resp map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
			require.Equal(t, tt.typ, resp["__type"], body)
			require.Contains(t, resp["message"], tt.msg)
		}
		require.Equal(t, before, e.listKeyIDs())
		d := e.describe(*md.KeyId)
		require.Equal(t, "", *d.Description)
		require.Equal(t, types.KeyStateEnabled, d.KeyState)
		tags, err := e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Empty(t, tags.Tags)
		aliases, err := e.kms.ListAliases(ctx, &kmssdk.ListAliasesInput{KeyId: md.KeyId})
		require.NoError(t, err)
		require.Empty(t, aliases.Aliases)
	})
}

func testAliases(t *testing.T, e *env) {
	k1, k2 := e.createKey(nil), e.createKey(nil)
	create := func(name string, key *string) error {
		_, err := e.kms.CreateAlias(ctx, &kmssdk.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: key})
		return err
	}
	require.NoError(t, create("alias/one", k1.KeyId))
	require.NoError(t, create("alias/two", k1.Arn))
	requireAPIError(t, create("alias/one", k2.KeyId), "AlreadyExistsException", "arn:aws:kms:us-east-1:111122223333:alias/one")
	requireAPIError(t, create("one", k1.KeyId), "InvalidAliasNameException")
	requireAPIError(t, create("alias/", k1.KeyId), "InvalidAliasNameException")
	requireAPIError(t, create("alias/aws/mine", k1.KeyId), "InvalidAliasNameException")
	requireAPIError(t, create("alias/sp ace", k1.KeyId), "ValidationException")
	requireAPIError(t, create("alias/x", aws.String("alias/one")), "NotFoundException")
	requireAPIError(t, create("alias/x", aws.String("00000000-0000-0000-0000-000000000000")), "NotFoundException")

	list := func(in *kmssdk.ListAliasesInput) []types.AliasListEntry {
		t.Helper()
		var out []types.AliasListEntry
		p := kmssdk.NewListAliasesPaginator(e.kms, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			require.NoError(t, err)
			out = append(out, page.Aliases...)
		}
		return out
	}
	of1 := list(&kmssdk.ListAliasesInput{KeyId: k1.KeyId, Limit: aws.Int32(1)})
	require.Len(t, of1, 2)
	require.Equal(t, "alias/one", *of1[0].AliasName)
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:alias/one", *of1[0].AliasArn)
	require.Equal(t, *k1.KeyId, *of1[0].TargetKeyId)
	require.NotNil(t, of1[0].CreationDate)
	require.NotNil(t, of1[0].LastUpdatedDate)
	require.Equal(t, "alias/two", *of1[1].AliasName)
	_, err := e.kms.ListAliases(ctx, &kmssdk.ListAliasesInput{Limit: aws.Int32(101)})
	requireAPIError(t, err, "ValidationException")
	_, err = e.kms.ListAliases(ctx, &kmssdk.ListAliasesInput{Marker: aws.String("zz")})
	requireAPIError(t, err, "InvalidMarkerException")

	// UpdateAlias retargets; the alias must exist.
	_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String("alias/two"), TargetKeyId: k2.KeyId})
	require.NoError(t, err)
	require.Equal(t, *k2.Arn, *e.describe("alias/two").Arn)
	require.Len(t, list(&kmssdk.ListAliasesInput{KeyId: k2.Arn}), 1)
	_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String("alias/missing"), TargetKeyId: k2.KeyId})
	requireAPIError(t, err, "NotFoundException", "alias/missing")

	_, err = e.kms.DeleteAlias(ctx, &kmssdk.DeleteAliasInput{AliasName: aws.String("alias/two")})
	require.NoError(t, err)
	_, err = e.kms.DeleteAlias(ctx, &kmssdk.DeleteAliasInput{AliasName: aws.String("alias/two")})
	requireAPIError(t, err, "NotFoundException")
	require.Empty(t, list(&kmssdk.ListAliasesInput{KeyId: k2.KeyId}))

	// At most 50 aliases per key.
	k3 := e.createKey(nil)
	for i := range 50 {
		require.NoError(t, create(fmt.Sprintf("alias/many-%02d", i), k3.KeyId))
	}
	requireAPIError(t, create("alias/many-50", k3.KeyId), "LimitExceededException")
	_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String("alias/one"), TargetKeyId: k3.KeyId})
	requireAPIError(t, err, "LimitExceededException")
	_, err = e.kms.UpdateAlias(ctx, &kmssdk.UpdateAliasInput{AliasName: aws.String("alias/many-00"), TargetKeyId: k3.KeyId})
	require.NoError(t, err, "retargeting an alias to its own key does not count twice")
	require.Len(t, list(&kmssdk.ListAliasesInput{KeyId: k3.KeyId, Limit: aws.Int32(7)}), 50)

	// Concurrent creations of one name: exactly one wins.
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = create("alias/race", k2.KeyId) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		requireAPIError(t, err, "AlreadyExistsException")
	}
	require.Equal(t, 1, won)
}

func testTags(t *testing.T, e *env) {
	md := e.createKey(nil)
	tagIn := func(kv ...string) []types.Tag {
		var out []types.Tag
		for i := 0; i < len(kv); i += 2 {
			out = append(out, types.Tag{TagKey: aws.String(kv[i]), TagValue: aws.String(kv[i+1])})
		}
		return out
	}
	_, err := e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: md.KeyId, Tags: tagIn("z", "1", "a", "2")})
	require.NoError(t, err)
	_, err = e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: md.Arn, Tags: tagIn("a", "3", "m", "")})
	require.NoError(t, err)
	var all []types.Tag
	var marker *string
	for {
		out, err := e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId, Limit: aws.Int32(2), Marker: marker})
		require.NoError(t, err)
		all = append(all, out.Tags...)
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	require.Equal(t, tagIn("a", "3", "m", "", "z", "1"), all)
	_, err = e.kms.UntagResource(ctx, &kmssdk.UntagResourceInput{KeyId: md.KeyId, TagKeys: []string{"m", "absent"}})
	require.NoError(t, err)
	out, err := e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId})
	require.NoError(t, err)
	require.Equal(t, tagIn("a", "3", "z", "1"), out.Tags)

	_, err = e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: md.KeyId, Tags: tagIn("aws:reserved", "x")})
	requireAPIError(t, err, "TagException")
	var many []string
	for i := range 49 {
		many = append(many, fmt.Sprintf("t%02d", i), "v")
	}
	_, err = e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: md.KeyId, Tags: tagIn(many...)})
	requireAPIError(t, err, "LimitExceededException")
	_, err = e.kms.TagResource(ctx, &kmssdk.TagResourceInput{KeyId: md.KeyId, Tags: tagIn(many[:96]...)})
	require.NoError(t, err, "48 + 2 = 50 tags is the quota")
	_, err = e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId, Limit: aws.Int32(51)})
	requireAPIError(t, err, "ValidationException")
	_, err = e.kms.ListResourceTags(ctx, &kmssdk.ListResourceTagsInput{KeyId: md.KeyId, Marker: aws.String("not hex")})
	requireAPIError(t, err, "InvalidMarkerException")
}
