package keyops

import (
	"crypto/hmac"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

func TestMac(t *testing.T) {
	hashes := []hsmv1.Hash{hsmv1.Hash_HASH_UNSPECIFIED, hsmv1.Hash_HASH_SHA224, hsmv1.Hash_HASH_SHA256,
		hsmv1.Hash_HASH_SHA384, hsmv1.Hash_HASH_SHA512}
	for _, bits := range []uint32{128, 256, 4096} {
		key := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, bits)
		for _, h := range hashes {
			for _, msg := range [][]byte{nil, []byte("message"), make([]byte, MaxDataSize)} {
				t.Run(fmt.Sprintf("%d/%v/%d", bits, h, len(msg)), func(t *testing.T) {
					mac, err := GenerateMac(key.attrs, key.material, &hsmv1.GenerateMacRequest{Hash: h, Message: msg})
					require.NoError(t, err)
					ch, err := hashOf(h)
					require.NoError(t, err)
					want := hmac.New(ch.New, key.material)
					want.Write(msg)
					require.Equal(t, want.Sum(nil), mac)

					ok, err := VerifyMac(key.attrs, key.material, &hsmv1.VerifyMacRequest{Hash: h, Message: msg, Mac: mac})
					require.NoError(t, err)
					require.True(t, ok)
					for name, bad := range map[string][]byte{
						"changed": flipped(mac, 0), "truncated": mac[:len(mac)-1], "empty": nil,
					} {
						ok, err := VerifyMac(key.attrs, key.material, &hsmv1.VerifyMacRequest{Hash: h, Message: msg, Mac: bad})
						require.NoError(t, err, name)
						require.False(t, ok, name)
					}
					ok, err = VerifyMac(key.attrs, key.material, &hsmv1.VerifyMacRequest{Hash: h, Message: []byte("another message"), Mac: mac})
					require.NoError(t, err)
					require.False(t, ok, "other message")
				})
			}
		}
	}
}

func TestMacErrors(t *testing.T) {
	gs := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, 256)
	aes := mustSymmetric(t, hsmv1.KeyType_KEY_TYPE_AES, 256)
	ec := mustKeyPair(t, hsmv1.KeyType_KEY_TYPE_EC, 0, hsmv1.Curve_CURVE_P256)
	tests := []struct {
		name   string
		key    testKey
		verify bool
		hash   hsmv1.Hash
		msg    []byte
		want   error
	}{
		{"sign flag", gs.with(func(a *hsmv1.KeyAttributes) { a.Sign = false }), false, 0, nil, ErrPermission},
		{"verify flag", gs.with(func(a *hsmv1.KeyAttributes) { a.Verify = false }), true, 0, nil, ErrPermission},
		{"aes key", aes, false, 0, nil, ErrInvalidArgument},
		{"aes key verify", aes, true, 0, nil, ErrInvalidArgument},
		{"ec key", ec.priv, false, 0, nil, ErrInvalidArgument},
		{"sha1", gs, false, hsmv1.Hash_HASH_SHA1, nil, ErrInvalidArgument},
		{"sha1 verify", gs, true, hsmv1.Hash_HASH_SHA1, nil, ErrInvalidArgument},
		{"unknown hash", gs, false, hsmv1.Hash(9), nil, ErrInvalidArgument},
		{"oversize", gs, false, 0, make([]byte, MaxDataSize+1), ErrInvalidArgument},
		{"oversize verify", gs, true, 0, make([]byte, MaxDataSize+1), ErrInvalidArgument},
		{"nil key", testKey{}, false, 0, nil, ErrInvalidArgument},
		{"short material", testKey{attrs: gs.attrs, material: gs.material[:8]}, false, 0, nil, ErrKeyMaterial},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.verify {
				_, err = VerifyMac(tc.key.attrs, tc.key.material, &hsmv1.VerifyMacRequest{Hash: tc.hash, Message: tc.msg, Mac: make([]byte, 32)})
			} else {
				_, err = GenerateMac(tc.key.attrs, tc.key.material, &hsmv1.GenerateMacRequest{Hash: tc.hash, Message: tc.msg})
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
	_, err := GenerateMac(gs.attrs, gs.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
	_, err = VerifyMac(gs.attrs, gs.material, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)
}
