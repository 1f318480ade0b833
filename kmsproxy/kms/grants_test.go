package kms_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

var grantIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

const (
	grantee = "arn:aws:iam::111122223333:role/app"
	retirer = "arn:aws:iam::111122223333:role/janitor"
)

func TestKeyPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)
	get := func() string {
		t.Helper()
		out, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		return *out.Policy
	}
	require.Equal(t, defaultPolicy, get())

	policy := `{"Version":"2012-10-17","Id":"mine","Statement":[` +
		`{"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"users","Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/app","arn:aws:sts::111122223333:assumed-role/app/s"]},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"},` +
		`{"Sid":"svc","Effect":"Deny","NotPrincipal":{"Service":"logs.us-east-1.amazonaws.com"},"Action":"kms:Sign","Resource":"*"}]}`
	_, err := e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(policy), PolicyName: aws.String("default")})
	require.NoError(t, err)
	require.Equal(t, policy, get())
	_, err = e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: md.Arn, Policy: aws.String(defaultPolicy), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)
	require.Equal(t, defaultPolicy, get())

	pad := func(n int) string {
		head, tail := `{"Statement":{"Effect":"Allow","Principal":"*","Sid":"`, `"}}`
		return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
	}
	_, err = e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(pad(32768))})
	require.NoError(t, err, "exactly 32 KB")
	require.Len(t, get(), 32768)
	_, err = e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: md.KeyId, Policy: aws.String(defaultPolicy)})
	require.NoError(t, err)

	for name, tt := range map[string]struct {
		in   *kmssdk.PutKeyPolicyInput
		code string
	}{
		"not JSON":          {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":`)}, "MalformedPolicyDocumentException"},
		"bad version":       {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*"}}`)}, "MalformedPolicyDocumentException"},
		"no statement":      {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Version":"2012-10-17"}`)}, "MalformedPolicyDocumentException"},
		"empty statements":  {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":[]}`)}, "MalformedPolicyDocumentException"},
		"no principal":      {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":{"Effect":"Allow","Action":"kms:*"}}`)}, "MalformedPolicyDocumentException"},
		"invalid principal": {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"}}}`)}, "MalformedPolicyDocumentException"},
		"principal kind":    {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":{"Effect":"Allow","Principal":{"Person":"bob"}}}`)}, "MalformedPolicyDocumentException"},
		"bad effect":        {&kmssdk.PutKeyPolicyInput{Policy: aws.String(`{"Statement":{"Effect":"allow","Principal":"*"}}`)}, "MalformedPolicyDocumentException"},
		"over 32 KB":        {&kmssdk.PutKeyPolicyInput{Policy: aws.String(pad(32769))}, "LimitExceededException"},
		"over the model":    {&kmssdk.PutKeyPolicyInput{Policy: aws.String(pad(131073))}, "ValidationException"},
		"other name":        {&kmssdk.PutKeyPolicyInput{Policy: aws.String(defaultPolicy), PolicyName: aws.String("other")}, "ValidationException"},
		"unknown key":       {&kmssdk.PutKeyPolicyInput{KeyId: aws.String("00000000-0000-0000-0000-000000000000"), Policy: aws.String(defaultPolicy)}, "NotFoundException"},
		"alias":             {&kmssdk.PutKeyPolicyInput{KeyId: aws.String("alias/x"), Policy: aws.String(defaultPolicy)}, "NotFoundException"},
	} {
		if tt.in.KeyId == nil {
			tt.in.KeyId = md.KeyId
		}
		_, err := e.kms.PutKeyPolicy(ctx, tt.in)
		require.Error(t, err, name)
		requireAPIError(t, err, tt.code)
	}
	require.Equal(t, defaultPolicy, get(), "refused policies change nothing")

	// Any key state, any key kind.
	for _, st := range []types.KeyState{types.KeyStateDisabled, types.KeyStatePendingDeletion} {
		k := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		moveTo(t, e, *k.KeyId, st)
		_, err := e.kms.PutKeyPolicy(ctx, &kmssdk.PutKeyPolicyInput{KeyId: k.KeyId, Policy: aws.String(policy)})
		require.NoError(t, err)
		out, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: k.KeyId})
		require.NoError(t, err)
		require.Equal(t, policy, *out.Policy)
	}
	pending := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal, Policy: aws.String(policy)})
	out, err := e.kms.GetKeyPolicy(ctx, &kmssdk.GetKeyPolicyInput{KeyId: pending.KeyId})
	require.NoError(t, err)
	require.Equal(t, policy, *out.Policy)
}

func (e *env) createGrant(in *kmssdk.CreateGrantInput) *kmssdk.CreateGrantOutput {
	e.t.Helper()
	out, err := e.kms.CreateGrant(ctx, in)
	require.NoError(e.t, err)
	return out
}

func (e *env) listGrants(in *kmssdk.ListGrantsInput) []types.GrantListEntry {
	e.t.Helper()
	var out []types.GrantListEntry
	p := kmssdk.NewListGrantsPaginator(e.kms, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(e.t, err)
		out = append(out, page.Grants...)
	}
	return out
}

var allGrantOperations = []types.GrantOperation{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
	"ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret"}

func TestGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	md := e.createKey(nil)

	t.Run("create and list", func(t *testing.T) {
		before := e.clock.Now().Add(-time.Second)
		ec := map[string]string{"tenant": "a"}
		out := e.createGrant(&kmssdk.CreateGrantInput{KeyId: md.KeyId, GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String(retirer),
			Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt}, Name: aws.String("app-grant"),
			Constraints: &types.GrantConstraints{EncryptionContextEquals: ec}})
		require.Regexp(t, grantIDRE, *out.GrantId)
		tok, err := base64.RawURLEncoding.DecodeString(*out.GrantToken)
		require.NoError(t, err, "the token is URL-safe base64")
		require.Contains(t, string(tok), *out.GrantId, "the token names the grant")

		grants := e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId})
		require.Len(t, grants, 1)
		g := grants[0]
		require.Equal(t, *md.Arn, *g.KeyId)
		require.Equal(t, *out.GrantId, *g.GrantId)
		require.Equal(t, "app-grant", *g.Name)
		require.Equal(t, grantee, *g.GranteePrincipal)
		require.Equal(t, retirer, *g.RetiringPrincipal)
		require.Equal(t, "arn:aws:iam::111122223333:root", *g.IssuingAccount)
		require.Equal(t, []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt}, g.Operations)
		require.Equal(t, ec, g.Constraints.EncryptionContextEquals)
		require.True(t, g.CreationDate.After(before))

		// A named retry returns the grant (with a new token); other
		// parameters under the same name make a new grant.
		again := e.createGrant(&kmssdk.CreateGrantInput{KeyId: md.Arn, GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String(retirer),
			Operations: []types.GrantOperation{types.GrantOperationDecrypt, types.GrantOperationEncrypt}, Name: aws.String("app-grant"),
			Constraints: &types.GrantConstraints{EncryptionContextEquals: ec}})
		require.Equal(t, *out.GrantId, *again.GrantId)
		require.NotEqual(t, *out.GrantToken, *again.GrantToken)
		other := e.createGrant(&kmssdk.CreateGrantInput{KeyId: md.KeyId, GranteePrincipal: aws.String(grantee),
			Operations: []types.GrantOperation{types.GrantOperationDecrypt}, Name: aws.String("app-grant")})
		require.NotEqual(t, *out.GrantId, *other.GrantId)
		unnamed1 := e.createGrant(&kmssdk.CreateGrantInput{KeyId: md.KeyId, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/u"),
			Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
		unnamed2 := e.createGrant(&kmssdk.CreateGrantInput{KeyId: md.KeyId, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/u"),
			Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
		require.NotEqual(t, *unnamed1.GrantId, *unnamed2.GrantId, "without a name, every request makes a grant")

		// Pages, filters.
		paged := e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId, Limit: aws.Int32(1)})
		require.Len(t, paged, 4)
		require.Equal(t, *out.GrantId, *paged[0].GrantId, "creation order")
		require.Len(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId, GranteePrincipal: aws.String(grantee)}), 2)
		byID := e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId, GrantId: other.GrantId})
		require.Len(t, byID, 1)
		require.Nil(t, byID[0].Constraints)
		require.Nil(t, byID[0].RetiringPrincipal)
		require.Empty(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId, GrantId: aws.String(strings.Repeat("0", 64))}))
		_, err = e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: md.KeyId, GrantId: aws.String("not-a-grant-id")})
		requireAPIError(t, err, "InvalidGrantIdException")
		_, err = e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: md.KeyId, Marker: aws.String("nope")})
		requireAPIError(t, err, "InvalidMarkerException")
		_, err = e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: md.KeyId, Limit: aws.Int32(101)})
		requireAPIError(t, err, "ValidationException", "limit")
		_, err = e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: aws.String("alias/none")})
		requireAPIError(t, err, "NotFoundException")

		// Retirable grants, across keys.
		md2 := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
		e.createGrant(&kmssdk.CreateGrantInput{KeyId: md2.KeyId, GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String(retirer),
			Operations: []types.GrantOperation{types.GrantOperationSign}})
		var retirable []types.GrantListEntry
		p := kmssdk.NewListRetirableGrantsPaginator(e.kms, &kmssdk.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retirer), Limit: aws.Int32(1)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			require.NoError(t, err)
			retirable = append(retirable, page.Grants...)
		}
		require.Len(t, retirable, 2)
		keys := []string{*retirable[0].KeyId, *retirable[1].KeyId}
		require.ElementsMatch(t, []string{*md.Arn, *md2.Arn}, keys)
	})

	t.Run("operations by key type", func(t *testing.T) {
		symOps := []types.GrantOperation{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
			"CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"}
		common := []types.GrantOperation{"CreateGrant", "RetireGrant", "DescribeKey"}
		for _, tt := range []struct {
			name  string
			in    *kmssdk.CreateKeyInput
			valid []types.GrantOperation
		}{
			{"symmetric", &kmssdk.CreateKeyInput{}, symOps},
			{"RSA encryption", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa2048}, append([]types.GrantOperation{"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}, common...)},
			{"RSA signing", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify}, append([]types.GrantOperation{"Sign", "Verify", "GetPublicKey"}, common...)},
			{"ECC signing", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP521, KeyUsage: types.KeyUsageTypeSignVerify}, append([]types.GrantOperation{"Sign", "Verify", "GetPublicKey"}, common...)},
			{"HMAC", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac512, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, append([]types.GrantOperation{"GenerateMac", "VerifyMac"}, common...)},
		} {
			t.Run(tt.name, func(t *testing.T) {
				k := e.createKey(tt.in)
				for _, op := range allGrantOperations {
					_, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), Operations: []types.GrantOperation{op}})
					if slices.Contains(tt.valid, op) {
						require.NoError(t, err, op)
						continue
					}
					require.Error(t, err, op)
					requireAPIError(t, err, "ValidationException", string(op))
				}
				require.Len(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: k.KeyId}), len(tt.valid))
			})
		}
	})

	t.Run("invalid grants", func(t *testing.T) {
		signing := e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
		many := map[string]string{}
		for i := range 9 {
			many[fmt.Sprint(i)] = "v"
		}
		before := len(e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId}))
		for name, tt := range map[string]struct {
			in   *kmssdk.CreateGrantInput
			code string
		}{
			"constraint on Sign": {&kmssdk.CreateGrantInput{KeyId: signing.KeyId, Operations: []types.GrantOperation{types.GrantOperationSign},
				Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"a": "b"}}}, "ValidationException"},
			"nine pairs": {&kmssdk.CreateGrantInput{Operations: []types.GrantOperation{types.GrantOperationDecrypt},
				Constraints: &types.GrantConstraints{EncryptionContextEquals: many}}, "ValidationException"},
			"long value": {&kmssdk.CreateGrantInput{Operations: []types.GrantOperation{types.GrantOperationDecrypt},
				Constraints: &types.GrantConstraints{EncryptionContextEquals: map[string]string{"a": strings.Repeat("v", 385)}}}, "ValidationException"},
			"no operation":   {&kmssdk.CreateGrantInput{Operations: []types.GrantOperation{}}, "ValidationException"},
			"bad operation":  {&kmssdk.CreateGrantInput{Operations: []types.GrantOperation{"Explode"}}, "ValidationException"},
			"bad principal":  {&kmssdk.CreateGrantInput{GranteePrincipal: aws.String("has spaces"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}}, "ValidationException"},
			"bad name":       {&kmssdk.CreateGrantInput{Name: aws.String("a name"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}}, "ValidationException"},
			"alias":          {&kmssdk.CreateGrantInput{KeyId: aws.String("alias/any"), Operations: []types.GrantOperation{types.GrantOperationDecrypt}}, "NotFoundException"},
			"dry run":        {&kmssdk.CreateGrantInput{DryRun: aws.Bool(true), Operations: []types.GrantOperation{types.GrantOperationDecrypt}}, "DryRunOperationException"},
			"too many token": {&kmssdk.CreateGrantInput{GrantTokens: make([]string, 11), Operations: []types.GrantOperation{types.GrantOperationDecrypt}}, "ValidationException"},
		} {
			if tt.in.KeyId == nil {
				tt.in.KeyId = md.KeyId
			}
			if tt.in.GranteePrincipal == nil {
				tt.in.GranteePrincipal = aws.String(grantee)
			}
			for i := range tt.in.GrantTokens {
				tt.in.GrantTokens[i] = "token"
			}
			_, err := e.kms.CreateGrant(ctx, tt.in)
			require.Error(t, err, name)
			requireAPIError(t, err, tt.code)
		}
		require.Len(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: md.KeyId}), before)
		require.Empty(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: signing.KeyId}))
	})

	t.Run("retire and revoke", func(t *testing.T) {
		k := e.createKey(nil)
		newGrant := func() *kmssdk.CreateGrantOutput {
			return e.createGrant(&kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String(retirer),
				Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		}
		g1, g2, g3 := newGrant(), newGrant(), newGrant()
		_, err := e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: g1.GrantToken, DryRun: aws.Bool(true)})
		requireAPIError(t, err, "DryRunOperationException")
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: g1.GrantToken})
		require.NoError(t, err)
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: g1.GrantToken})
		requireAPIError(t, err, "NotFoundException")
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{KeyId: k.KeyId, GrantId: g2.GrantId})
		require.NoError(t, err)
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: aws.String("bm90IGEgdG9rZW4")})
		requireAPIError(t, err, "InvalidGrantTokenException")
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantId: g3.GrantId})
		requireAPIError(t, err, "ValidationException")
		_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{KeyId: md.KeyId, GrantId: g3.GrantId})
		requireAPIError(t, err, "NotFoundException", "not found")
		_, err = e.kms.RevokeGrant(ctx, &kmssdk.RevokeGrantInput{KeyId: k.KeyId, GrantId: aws.String("short")})
		requireAPIError(t, err, "InvalidGrantIdException")
		_, err = e.kms.RevokeGrant(ctx, &kmssdk.RevokeGrantInput{KeyId: k.KeyId, GrantId: g3.GrantId, DryRun: aws.Bool(true)})
		requireAPIError(t, err, "DryRunOperationException")
		require.Len(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: k.KeyId}), 1)
		// Revocation works in any key state.
		moveTo(t, e, *k.KeyId, types.KeyStatePendingDeletion)
		_, err = e.kms.RevokeGrant(ctx, &kmssdk.RevokeGrantInput{KeyId: k.Arn, GrantId: g3.GrantId})
		require.NoError(t, err)
		require.Empty(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: k.KeyId}))
		_, err = e.kms.RevokeGrant(ctx, &kmssdk.RevokeGrantInput{KeyId: k.KeyId, GrantId: g3.GrantId})
		requireAPIError(t, err, "NotFoundException")
	})

	t.Run("key states", func(t *testing.T) {
		for st, want := range map[types.KeyState]cell{
			types.KeyStateDisabled:        cellDisabled,
			types.KeyStatePendingDeletion: cellPD,
		} {
			k := e.createKey(nil)
			g := e.createGrant(&kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
			moveTo(t, e, *k.KeyId, st)
			_, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
			requireAPIError(t, err, want.code, *k.Arn+want.suffix)
			require.Len(t, e.listGrants(&kmssdk.ListGrantsInput{KeyId: k.KeyId}), 1, "listed in any state")
			_, err = e.kms.RetireGrant(ctx, &kmssdk.RetireGrantInput{GrantToken: g.GrantToken})
			require.NoError(t, err, "retired in any state")
		}
		pending := e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeExternal})
		_, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: pending.KeyId, GranteePrincipal: aws.String(grantee), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		requireAPIError(t, err, "KMSInvalidStateException", *pending.Arn+" is pending import.")
	})

	t.Run("deleted with the key", func(t *testing.T) {
		k := e.createKey(nil)
		e.createGrant(&kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String("arn:aws:iam::111122223333:role/once"),
			Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		moveTo(t, e, *k.KeyId, types.KeyStatePendingDeletion)
		e.advance(8 * 24 * time.Hour)
		out, err := e.kms.ListRetirableGrants(ctx, &kmssdk.ListRetirableGrantsInput{RetiringPrincipal: aws.String("arn:aws:iam::111122223333:role/once")})
		require.NoError(t, err)
		require.Empty(t, out.Grants)
	})

	t.Run("at most 50,000 grants per key", func(t *testing.T) {
		k := e.createKey(nil)
		keyID := *k.KeyId
		e.withDB(func(tx *store.Tx) error {
			at := time.Now()
			for i := range 50000 {
				if err := tx.PutGrant(&store.Grant{ID: fmt.Sprintf("%064x", i+1), KeyID: keyID, CreationDate: at, GranteePrincipal: grantee,
					IssuingAccount: "arn:aws:iam::111122223333:root", Operations: []string{"Decrypt"}}); err != nil {
					return err
				}
			}
			return nil
		})
		_, err := e.kms.CreateGrant(ctx, &kmssdk.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(grantee), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		requireAPIError(t, err, "LimitExceededException", "50000")
		page, err := e.kms.ListGrants(ctx, &kmssdk.ListGrantsInput{KeyId: k.KeyId, Limit: aws.Int32(100)})
		require.NoError(t, err)
		require.Len(t, page.Grants, 100)
		require.True(t, page.Truncated)
	})
}
