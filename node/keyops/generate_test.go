package keyops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

func TestGenerateSymmetric(t *testing.T) {
	tests := []struct {
		typ  hsmv1.KeyType
		bits uint32
	}{
		{hsmv1.KeyType_KEY_TYPE_AES, 128},
		{hsmv1.KeyType_KEY_TYPE_AES, 192},
		{hsmv1.KeyType_KEY_TYPE_AES, 256},
		{hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 128},
		{hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 136},
		{hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 256},
		{hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 4096},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d", tc.typ, tc.bits), func(t *testing.T) {
			usage := &hsmv1.KeyUsage{Extractable: true, Encrypt: true, Sign: true}
			id := []byte("id-1")
			req := &hsmv1.GenerateSymmetricKeyRequest{Type: tc.typ, SizeBits: tc.bits, Label: "my key", Id: id, Usage: usage}
			attrs, material, err := GenerateSymmetric(req)
			require.NoError(t, err)
			require.Len(t, material, int(tc.bits/8))
			require.Equal(t, hsmv1.KeyClass_KEY_CLASS_SECRET, attrs.GetClass())
			require.Equal(t, tc.typ, attrs.GetType())
			require.Equal(t, tc.bits, attrs.GetSizeBits())
			require.True(t, attrs.GetToken())
			require.Equal(t, "my key", attrs.GetLabel())
			require.Equal(t, id, attrs.GetId())
			id[0] = 'X'
			require.Equal(t, []byte("id-1"), attrs.GetId(), "id must be copied")
			require.True(t, attrs.GetExtractable())
			require.True(t, attrs.GetEncrypt())
			require.True(t, attrs.GetSign())
			require.False(t, attrs.GetDecrypt() || attrs.GetWrap() || attrs.GetUnwrap() || attrs.GetVerify())
			require.Zero(t, attrs.GetHandle())
			require.Empty(t, attrs.GetOwner())
			require.Empty(t, attrs.GetRecordId())
			require.Empty(t, attrs.GetPublicKey())
			var want []byte
			if tc.typ == hsmv1.KeyType_KEY_TYPE_AES {
				want, err = cryptocore.KCVAES(material)
			} else {
				want, err = cryptocore.KCVGenericSecret(material)
			}
			require.NoError(t, err)
			require.Equal(t, want, attrs.GetKcv())

			_, again, err := GenerateSymmetric(req)
			require.NoError(t, err)
			require.NotEqual(t, material, again)
		})
	}
}

func TestGenerateSymmetricNoUsage(t *testing.T) {
	attrs, _, err := GenerateSymmetric(&hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256})
	require.NoError(t, err)
	require.False(t, attrs.GetExtractable() || attrs.GetEncrypt() || attrs.GetDecrypt() || attrs.GetWrap() ||
		attrs.GetUnwrap() || attrs.GetSign() || attrs.GetVerify())
}

func TestGenerateSymmetricInvalid(t *testing.T) {
	aes := hsmv1.KeyType_KEY_TYPE_AES
	gs := hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET
	tests := []struct {
		name string
		req  *hsmv1.GenerateSymmetricKeyRequest
	}{
		{"nil", nil},
		{"aes 0", &hsmv1.GenerateSymmetricKeyRequest{Type: aes}},
		{"aes 64", &hsmv1.GenerateSymmetricKeyRequest{Type: aes, SizeBits: 64}},
		{"aes 512", &hsmv1.GenerateSymmetricKeyRequest{Type: aes, SizeBits: 512}},
		{"generic 120", &hsmv1.GenerateSymmetricKeyRequest{Type: gs, SizeBits: 120}},
		{"generic 130", &hsmv1.GenerateSymmetricKeyRequest{Type: gs, SizeBits: 130}},
		{"generic 4104", &hsmv1.GenerateSymmetricKeyRequest{Type: gs, SizeBits: 4104}},
		{"rsa", &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, SizeBits: 2048}},
		{"unspecified", &hsmv1.GenerateSymmetricKeyRequest{SizeBits: 256}},
		{"label 128", &hsmv1.GenerateSymmetricKeyRequest{Type: aes, SizeBits: 256, Label: strings.Repeat("a", 128)}},
		{"id 129", &hsmv1.GenerateSymmetricKeyRequest{Type: aes, SizeBits: 256, Id: make([]byte, 129)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := GenerateSymmetric(tc.req)
			require.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
	_, _, err := GenerateSymmetric(&hsmv1.GenerateSymmetricKeyRequest{Type: aes, SizeBits: 256, Label: strings.Repeat("a", 127), Id: make([]byte, 128)})
	require.NoError(t, err, "label and id at their bounds")
}

func TestGenerateKeyPair(t *testing.T) {
	tests := []struct {
		typ      hsmv1.KeyType
		bits     uint32
		curve    hsmv1.Curve
		wantSize uint32
	}{
		{hsmv1.KeyType_KEY_TYPE_RSA, 2048, 0, 2048},
		{hsmv1.KeyType_KEY_TYPE_RSA, 3072, 0, 3072},
		{hsmv1.KeyType_KEY_TYPE_RSA, 4096, 0, 4096},
		{hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256, 256},
		{hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P384, 384},
		{hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P521, 521},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d/%v", tc.typ, tc.bits, tc.curve), func(t *testing.T) {
			if testing.Short() && tc.bits > 2048 {
				t.Skip("slow RSA key generation")
			}
			usage := &hsmv1.KeyUsage{Extractable: true, Decrypt: true, Sign: true, Unwrap: false, Verify: true}
			pub, priv, material, err := GenerateKeyPair(&hsmv1.GenerateKeyPairRequest{
				Type: tc.typ, ModulusBits: tc.bits, Curve: tc.curve, Label: "pair", Id: []byte{1, 2}, Usage: usage,
			})
			require.NoError(t, err)

			require.Equal(t, hsmv1.KeyClass_KEY_CLASS_PRIVATE, priv.GetClass())
			require.Equal(t, hsmv1.KeyClass_KEY_CLASS_PUBLIC, pub.GetClass())
			for _, a := range []*hsmv1.KeyAttributes{pub, priv} {
				require.Equal(t, tc.typ, a.GetType())
				require.Equal(t, tc.wantSize, a.GetSizeBits())
				require.Equal(t, tc.curve, a.GetCurve())
				require.Equal(t, "pair", a.GetLabel())
				require.Equal(t, []byte{1, 2}, a.GetId())
				require.True(t, a.GetToken())
				require.Zero(t, a.GetHandle())
				require.Zero(t, a.GetPairHandle())
				require.Empty(t, a.GetOwner())
				require.Empty(t, a.GetRecordId())
			}
			require.Equal(t, pub.GetPublicKey(), priv.GetPublicKey())
			require.Equal(t, pub.GetKcv(), priv.GetKcv())
			kcv, err := cryptocore.KCVPublicKey(pub.GetPublicKey())
			require.NoError(t, err)
			require.Equal(t, kcv, priv.GetKcv())

			// Private usage as requested; public mirrors decrypt, sign, unwrap.
			require.True(t, priv.GetExtractable() && priv.GetDecrypt() && priv.GetSign() && priv.GetVerify())
			require.False(t, priv.GetEncrypt() || priv.GetWrap() || priv.GetUnwrap())
			require.True(t, pub.GetEncrypt() && pub.GetVerify())
			require.False(t, pub.GetWrap() || pub.GetDecrypt() || pub.GetSign() || pub.GetUnwrap())

			key, err := cryptocore.ParsePrivateKey(material)
			require.NoError(t, err)
			pk, err := cryptocore.ParsePublicKey(pub.GetPublicKey())
			require.NoError(t, err)
			switch k := key.(type) {
			case *rsa.PrivateKey:
				require.Equal(t, int(tc.bits), k.N.BitLen())
				require.True(t, k.PublicKey.Equal(pk))
			case *ecdsa.PrivateKey:
				require.True(t, k.PublicKey.Equal(pk))
			default:
				t.Fatalf("unexpected key %T", key)
			}
		})
	}
}

func TestGenerateKeyPairInvalid(t *testing.T) {
	rsaT := hsmv1.KeyType_KEY_TYPE_RSA
	ecT := hsmv1.KeyType_KEY_TYPE_EC
	tests := []struct {
		name string
		req  *hsmv1.GenerateKeyPairRequest
	}{
		{"nil", nil},
		{"rsa 1024", &hsmv1.GenerateKeyPairRequest{Type: rsaT, ModulusBits: 1024}},
		{"rsa 2047", &hsmv1.GenerateKeyPairRequest{Type: rsaT, ModulusBits: 2047}},
		{"rsa 8192", &hsmv1.GenerateKeyPairRequest{Type: rsaT, ModulusBits: 8192}},
		{"rsa with curve", &hsmv1.GenerateKeyPairRequest{Type: rsaT, ModulusBits: 2048, Curve: hsmv1.Curve_CURVE_P256}},
		{"ec no curve", &hsmv1.GenerateKeyPairRequest{Type: ecT}},
		{"ec bad curve", &hsmv1.GenerateKeyPairRequest{Type: ecT, Curve: hsmv1.Curve(42)}},
		{"ec with modulus", &hsmv1.GenerateKeyPairRequest{Type: ecT, Curve: hsmv1.Curve_CURVE_P256, ModulusBits: 2048}},
		{"aes", &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, ModulusBits: 256}},
		{"unspecified", &hsmv1.GenerateKeyPairRequest{}},
		{"label", &hsmv1.GenerateKeyPairRequest{Type: ecT, Curve: hsmv1.Curve_CURVE_P256, Label: strings.Repeat("é", 64)}},
		{"id", &hsmv1.GenerateKeyPairRequest{Type: ecT, Curve: hsmv1.Curve_CURVE_P256, Id: make([]byte, 200)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := GenerateKeyPair(tc.req)
			require.ErrorIs(t, err, ErrInvalidArgument)
		})
	}
}
