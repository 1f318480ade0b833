package client

import (
	"testing"

	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

func TestIndexTracker(t *testing.T) {
	key := func(h uint64) *hsmv1.KeyAttributes { return &hsmv1.KeyAttributes{Handle: h} }
	enc := func(h uint64) any { return &hsmv1.EncryptRequest{Handle: h} }
	tr := newIndexTracker()
	tr.login(10)
	tr.wrote(20, &hsmv1.GenerateSymmetricKeyRequest{}, &hsmv1.GenerateSymmetricKeyResponse{Key: key(1)})
	tr.wrote(30, &hsmv1.GenerateKeyPairRequest{}, &hsmv1.GenerateKeyPairResponse{PublicKey: key(2), PrivateKey: key(3)})
	tr.wrote(40, &hsmv1.SetAttributeRequest{Handle: 1}, &hsmv1.SetAttributeResponse{})
	tr.wrote(35, &hsmv1.ChangePasswordRequest{}, &hsmv1.ChangePasswordResponse{})

	for _, tc := range []struct {
		name string
		args any
		want uint64
		ok   bool
	}{
		{"a key's last write", enc(1), 40, true},
		{"a pair's half", &hsmv1.SignRequest{Handle: 3}, 35, true},
		{"a write to no key counts for every key", enc(2), 35, true},
		{"a key this client never wrote", enc(99), 35, true},
		{"both keys of a wrap", &hsmv1.WrapKeyRequest{WrappingHandle: 2, KeyHandle: 1}, 40, true},
		{"a call on no key", &hsmv1.FindKeysRequest{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tr.forCall(tc.args)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("another client's write counts for every key", func(t *testing.T) {
		c := &Client{keyIndexes: newIndexTracker()}
		c.keyIndexes.wrote(20, &hsmv1.DeleteKeyRequest{Handle: 1}, &hsmv1.DeleteKeyResponse{})
		c.ObserveIndex(50)
		require.Equal(t, uint64(50), c.ObservedIndex())
		for _, args := range []any{enc(1), enc(99), &hsmv1.WrapKeyRequest{WrappingHandle: 1, KeyHandle: 2}} {
			got, ok := c.keyIndexes.forCall(args)
			require.True(t, ok)
			require.Equal(t, uint64(50), got, "%T", args)
		}
		c.ObserveIndex(30)
		got, _ := c.keyIndexes.forCall(enc(1))
		require.Equal(t, uint64(50), got, "an index never goes down")
	})

	t.Run("forgetting keys raises the floor", func(t *testing.T) {
		tr := newIndexTracker()
		for h := uint64(1); h <= maxTrackedKeys; h++ {
			tr.wrote(h, &hsmv1.DeleteKeyRequest{Handle: h}, &hsmv1.DeleteKeyResponse{})
		}
		got, _ := tr.forCall(enc(maxTrackedKeys + 5))
		require.Zero(t, got)
		tr.wrote(maxTrackedKeys+1, &hsmv1.DeleteKeyRequest{Handle: maxTrackedKeys + 1}, &hsmv1.DeleteKeyResponse{})
		require.Len(t, tr.keys, 1)
		got, _ = tr.forCall(enc(7))
		require.Equal(t, uint64(maxTrackedKeys), got, "a forgotten key waits for the highest forgotten write")
	})
}
