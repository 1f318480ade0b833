package node_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// importAES imports key, an AES key the test knows, through s: it wraps the
// key with RSA-OAEP to the public half of a new HSM key pair and unwraps it
// on the HSM. It returns the imported key's handle.
func importAES(t *testing.T, s *userSession, key []byte) uint64 {
	t.Helper()
	pair, err := s.cl.GenerateKeyPair(s.ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: 2048,
		Label: "import-kek", Usage: &hsmv1.KeyUsage{Unwrap: true, Decrypt: true}})
	require.NoError(t, err)
	pub, err := cryptocore.ParsePublicKey(pair.GetPublicKey().GetPublicKey())
	require.NoError(t, err)
	wrapped, err := cryptocore.EncryptOAEP(pub.(*rsa.PublicKey), cryptocore.SHA256, cryptocore.SHA256, key, nil)
	require.NoError(t, err)
	resp, err := s.cl.UnwrapKey(s.ctx, &hsmv1.UnwrapKeyRequest{UnwrappingHandle: pair.GetPrivateKey().GetHandle(),
		Mechanism: hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, Hash: hsmv1.Hash_HASH_SHA256, Wrapped: wrapped,
		Type: hsmv1.KeyType_KEY_TYPE_AES, Label: "imported", Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
	require.NoError(t, err)
	return resp.GetKey().GetHandle()
}

// A backup restores into a new cluster with the source's users, passwords,
// keys and handles, and the cluster certificate's id; the new cluster's HSMs
// join and serve; the backup holds no plaintext key material.
func TestBackupRestoresUsersAndKeysIntoANewCluster(t *testing.T) {
	const (
		alice = "alice"
		bob   = "bob"
	)
	src := nodetest.New(t, 2, nodetest.Steady)
	src.CreateCryptoUser(0, alice, userPassword)
	src.CreateCryptoUser(0, bob, userPassword)
	a := loginCU(t, src, 0, alice, userPassword)

	// A known AES key, imported: the backup must not contain its bytes.
	known, err := cryptocore.RandomBytes(32)
	require.NoError(t, err)
	imported := importAES(t, a, known)
	ctImported := a.encrypt(t, imported, []byte("imported secret"))
	// The HSM holds exactly the known key: the scan below looks for the
	// right bytes.
	nonce, sealed := ctImported[:cryptocore.NonceSize], ctImported[cryptocore.NonceSize:]
	pt, err := cryptocore.OpenGCM(known, nonce, sealed, []byte("aad"))
	require.NoError(t, err)
	require.Equal(t, []byte("imported secret"), pt)

	generated := a.createAES(t, "generated")
	ctGenerated := a.encrypt(t, generated, []byte("generated secret"))
	_, err = a.cl.ShareKey(a.ctx, &hsmv1.ShareKeyRequest{Handle: generated, Username: bob})
	require.NoError(t, err)
	src.WaitConverged()

	// Any member takes a backup from its replica; here a follower.
	follower := src.Followers()[0].Index
	resp, err := src.Control(follower).CreateBackup(context.Background(), &hsmv1.CreateBackupRequest{})
	require.NoError(t, err)
	require.Equal(t, src.ClusterID, resp.GetCertificateId())
	require.NotZero(t, resp.GetIndex())
	backup := resp.GetBackup()
	require.False(t, bytes.Contains(backup, known), "the backup holds the imported key in the clear")
	require.False(t, bytes.Contains(backup, []byte("-----BEGIN")), "the backup holds readable certificates: it is not sealed")

	dst := nodetest.Restore(t, src, backup, 3, nodetest.Steady)
	require.NotEqual(t, src.ClusterID, dst.ClusterID)
	require.Equal(t, src.ClusterID, dst.CertificateID, "the restored cluster keeps the source's certificate")
	for i := range dst.Nodes {
		st := dst.Nodes[i].Status()
		require.Equal(t, dst.ClusterID, st.GetClusterId(), "node %d", i)
		require.Equal(t, src.ClusterID, st.GetCertificateId(), "node %d", i)
		require.Equal(t, "active", st.GetState(), "node %d", i)
		require.EqualValues(t, 3, len(st.GetPeers()), "node %d: the source's HSMs are not members", i)
	}

	// Old passwords, old handles, old ciphertexts, on every HSM.
	for i := range dst.Nodes {
		ra := loginCU(t, dst, i, alice, userPassword)
		require.Equal(t, []byte("imported secret"), ra.decrypt(t, imported, ctImported), "node %d", i)
		require.Equal(t, []byte("generated secret"), ra.decrypt(t, generated, ctGenerated), "node %d", i)
		rb := loginCU(t, dst, i, bob, userPassword)
		require.Equal(t, []byte("generated secret"), rb.decrypt(t, generated, ctGenerated), "node %d: the share survives", i)
		loginAdmin(t, dst, i)
	}
	_, err = dst.TryLogin(0, alice, "wrong-password-1", hsmv1.Role_ROLE_CRYPTO_USER)
	requireCode(t, err, codes.PermissionDenied)

	// The restored cluster takes writes, with handles after the old ones.
	f := dst.Followers()[0].Index
	ra := loginCU(t, dst, f, alice, userPassword)
	fresh := ra.createAES(t, "after-restore")
	require.Greater(t, fresh, max(imported, generated))
	ctFresh := ra.encrypt(t, fresh, []byte("x"))
	require.Equal(t, []byte("x"), ra.decrypt(t, fresh, ctFresh))

	// The HSM that restored the backup restarts as a member: it does not
	// restore again, and it still holds the old keys and the new one.
	dst.WaitConverged()
	dst.Stop(0)
	dst.Restart(0)
	require.Eventually(t, func() bool {
		ctx, err := dst.TryLogin(0, alice, userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		if err != nil {
			return false
		}
		for handle, ct := range map[uint64][]byte{imported: ctImported, fresh: ctFresh} {
			if _, err := dst.Client(0).Decrypt(ctx, &hsmv1.DecryptRequest{Handle: handle, Mechanism: gcm, Ciphertext: ct, Aad: []byte("aad")}); err != nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "the restoring HSM after a restart")
	require.Equal(t, src.ClusterID, dst.Nodes[0].Status().GetCertificateId())

	// A backup of the restored cluster restores again, keeping the lineage's
	// certificate id.
	again := nodetest.Restore(t, dst, dst.Backup(), 1, nodetest.Steady)
	require.Equal(t, src.ClusterID, again.CertificateID)
	r := loginCU(t, again, 0, alice, userPassword)
	require.Equal(t, []byte("imported secret"), r.decrypt(t, imported, ctImported))
}

// A backup restores only with the deployment's backup key and only from
// intact bytes; taking one needs the control plane's certificate, a backup
// key and an initialized HSM.
func TestBackupRefusals(t *testing.T) {
	src := nodetest.New(t, 1)
	backup := src.Backup()
	otherKey, err := cryptocore.RandomBytes(cryptocore.KeySize)
	require.NoError(t, err)

	restores := []struct {
		name      string
		backup    []byte
		configure func(*node.Config)
	}{
		{"another deployment's backup key", backup, func(cfg *node.Config) { cfg.BackupKey = otherKey }},
		{"a tampered backup", append(bytes.Clone(backup[:len(backup)-1]), backup[len(backup)-1]^1), nil},
		{"a truncated backup", backup[:len(backup)/2], nil},
		{"not a backup", []byte("not a backup"), nil},
	}
	for _, tt := range restores {
		t.Run("restore/"+tt.name, func(t *testing.T) {
			var configure []func(*node.Config)
			if tt.configure != nil {
				configure = append(configure, tt.configure)
			}
			_, err := nodetest.TryRestore(t, src, tt.backup, configure...)
			require.ErrorIs(t, err, node.ErrBackupInvalid)
		})
	}

	noKey := nodetest.New(t, 1, func(cfg *node.Config) { cfg.BackupKey = nil })
	uninitialized := nodetest.NewUninitialized(t)
	takes := []struct {
		name    string
		client  hsmv1.ClusterServiceClient
		code    codes.Code
		message string
	}{
		{"without the control plane's certificate", src.AnonymousControl(0), codes.PermissionDenied, "control-plane certificate"},
		{"without a backup key", noKey.Control(0), codes.FailedPrecondition, "no backup key"},
		{"on an uninitialized HSM", uninitialized.Control(0), codes.FailedPrecondition, "not initialized"},
	}
	for _, tt := range takes {
		t.Run("create/"+tt.name, func(t *testing.T) {
			_, err := tt.client.CreateBackup(context.Background(), &hsmv1.CreateBackupRequest{})
			st := requireCode(t, err, tt.code)
			require.Contains(t, st.Message(), tt.message)
		})
	}
}
