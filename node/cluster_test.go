package node_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/node"

	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const userPassword = "crypto-password-1"

func aes256(label string) *hsmv1.GenerateSymmetricKeyRequest {
	return &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: label,
		Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true, Wrap: true, Unwrap: true}}
}

func TestKeyCreatedOnFollowerUsableOnAnotherNode(t *testing.T) {
	c := nodetest.New(t, 3)
	f := c.Followers()
	c.CreateCryptoUser(f[0].Index, "alice", userPassword)

	ctx := c.Login(f[0].Index, "alice", userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	key, err := c.Client(f[0].Index).GenerateSymmetricKey(ctx, aes256("k1"))
	require.NoError(t, err)
	require.NotZero(t, key.GetKey().GetHandle())

	// Read-your-writes on the follower that created it.
	enc, err := c.Client(f[0].Index).Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key.GetKey().GetHandle(),
		Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: []byte("hello"), Aad: []byte("ctx")})
	require.NoError(t, err)

	// Another node decrypts, once it has the key.
	c.WaitConverged()
	other := f[1].Index
	ctx2 := c.Login(other, "alice", userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	dec, err := c.Client(other).Decrypt(ctx2, &hsmv1.DecryptRequest{Handle: key.GetKey().GetHandle(),
		Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Ciphertext: enc.GetCiphertext(), Aad: []byte("ctx")})
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), dec.GetPlaintext())
}

func TestReadYourWritesAcrossHSMs(t *testing.T) {
	c := nodetest.New(t, 3)
	f := c.Followers()
	c.CreateCryptoUser(f[0].Index, "alice", userPassword)
	a := c.Login(f[0].Index, "alice", userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	b := c.Login(f[1].Index, "alice", userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	for i := range 20 {
		var header metadata.MD
		key, err := c.Client(f[0].Index).GenerateSymmetricKey(a, aes256(fmt.Sprint("k", i)), grpc.Header(&header))
		require.NoError(t, err)
		index := header.Get(node.MetadataIndex)
		require.Len(t, index, 1, "a write returns its index")
		// The other HSM waits for that index before it looks the key up.
		ctx := metadata.AppendToOutgoingContext(b, node.MetadataIndex, index[0])
		_, err = c.Client(f[1].Index).Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key.GetKey().GetHandle(),
			Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: []byte("x")})
		require.NoError(t, err)
	}
}
