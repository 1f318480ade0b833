package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/cluster/local"
	"github.com/hsmsim/hsmsim/internal/testbin"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// hsmdPath is built once for the package's tests.
var hsmdPath string

func TestMain(m *testing.M) {
	var dir string
	testbin.Main(func() int {
		hsmdPath = filepath.Join(dir, "hsmd")
		return m.Run()
	}, &dir, "hsmd")
}

// fixture is a control plane over real hsmd processes in a temporary directory.
type fixture struct {
	t   *testing.T
	dir string
	mgr *cluster.Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	prov, err := local.New(local.Config{Dir: dir, PKI: pki, HsmdPath: hsmdPath,
		ExtraArgs: []string{"--heartbeat-timeout", "200ms", "--election-timeout", "200ms", "--leader-lease-timeout", "100ms"}})
	require.NoError(t, err)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
	f := &fixture{t: t, dir: dir, mgr: cluster.NewManager(store, prov, pki, log)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		f.mgr.StopAll(ctx)
	})
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// initialize creates a cluster with its first HSM and initializes it with a new customer CA.
func (f *fixture) initialize(ctx context.Context, azs []string) (*cluster.Cluster, *cluster.CustomerCA) {
	f.t.Helper()
	c, err := f.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs})
	require.NoError(f.t, err)
	require.Equal(f.t, cluster.ClusterUninitialized, c.State)
	require.Regexp(f.t, `^cluster-[2-7a-z]{11}$`, c.ClusterID)
	h, err := f.mgr.CreateHsm(ctx, c.ClusterID, azs[0])
	require.NoError(f.t, err)
	require.Regexp(f.t, `^hsm-[2-7a-z]{11}$`, h.HsmID)
	c, err = f.mgr.Cluster(c.ClusterID)
	require.NoError(f.t, err)
	require.Contains(f.t, c.CSR, "BEGIN CERTIFICATE REQUEST")
	ca, err := cluster.NewCustomerCA(f.t.TempDir())
	require.NoError(f.t, err)
	signed, err := ca.SignCSR(c.CSR)
	require.NoError(f.t, err)
	c, err = f.mgr.InitializeCluster(ctx, c.ClusterID, signed, ca.CertPEM())
	require.NoError(f.t, err)
	require.Equal(f.t, cluster.ClusterInitialized, c.State)
	return c, ca
}

// session logs a user in on every HSM of a cluster.
func (f *fixture) session(ctx context.Context, clusterID, user, password string, role hsmv1.Role) (hsmv1.HsmServiceClient, *client.Client) {
	f.t.Helper()
	c, err := f.mgr.Cluster(clusterID)
	require.NoError(f.t, err)
	block, err := parseAnchor(c.TrustAnchor)
	require.NoError(f.t, err)
	cfg := client.Config{TrustAnchor: block, CertificateID: c.CertificateID, Username: user, Password: password, Role: role}
	for _, h := range c.Hsms {
		cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: h.HsmID, AZ: h.AvailabilityZone, Addr: h.Runtime.APIAddr})
	}
	cl, err := client.New(ctx, cfg)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { cl.Close() })
	return hsmv1.NewHsmServiceClient(cl), cl
}

func TestLifecycleEndToEnd(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	azs := cluster.DefaultAZs
	c, _ := f.initialize(ctx, azs)

	// Activate: the unactivated admin sets the admin password.
	preco, _ := f.session(ctx, c.ClusterID, "admin", "password", hsmv1.Role_ROLE_UNACTIVATED_ADMIN)
	_, err := preco.ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: "admin-pass-1"})
	require.NoError(t, err)
	_, err = f.mgr.Refresh(ctx, c.ClusterID)
	require.NoError(t, err)
	c, err = f.mgr.Cluster(c.ClusterID)
	require.NoError(t, err)
	require.Equal(t, cluster.ClusterActive, c.State)
	backups, err := f.mgr.Backups(c.ClusterID)
	require.NoError(t, err)
	require.Len(t, backups, 1, "activation takes a backup")
	require.Equal(t, "activation", backups[0].Trigger)

	// HSMs in two more AZs.
	for _, az := range azs[1:] {
		_, err := f.mgr.CreateHsm(ctx, c.ClusterID, az)
		require.NoError(t, err)
	}
	c, err = f.mgr.Cluster(c.ClusterID)
	require.NoError(t, err)
	require.Len(t, c.Hsms, 3)

	// Users and a key, visible on every HSM.
	admin, _ := f.session(ctx, c.ClusterID, "admin", "admin-pass-1", hsmv1.Role_ROLE_ADMIN)
	_, err = admin.CreateUser(ctx, &hsmv1.CreateUserRequest{Username: "alice", Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: "alice-pass-1"})
	require.NoError(t, err)
	alice, _ := f.session(ctx, c.ClusterID, "alice", "alice-pass-1", hsmv1.Role_ROLE_CRYPTO_USER)
	key, err := alice.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256,
		Label: "lifecycle", Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
	require.NoError(t, err)
	enc, err := alice.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key.GetKey().GetHandle(),
		Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: []byte("across the lifecycle")})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		statuses, err := f.mgr.Refresh(ctx, c.ClusterID)
		if err != nil || len(statuses) != 3 {
			return false
		}
		for _, s := range statuses {
			if s.GetKeyCount() != 1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "the key on every HSM")

	// Remove an HSM: a backup appears.
	require.NoError(t, f.mgr.DeleteHsm(ctx, c.ClusterID, c.Hsms[2].HsmID))
	backups, err = f.mgr.Backups(c.ClusterID)
	require.NoError(t, err)
	require.Equal(t, "hsm_remove", backups[len(backups)-1].Trigger)
	raw, err := os.ReadFile(backups[len(backups)-1].File)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "alice-pass-1")

	// Restore the backup into a new cluster and decrypt with the old key.
	restored, err := f.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: azs[:2], SourceBackupID: backups[len(backups)-1].BackupID})
	require.NoError(t, err)
	require.NotEqual(t, c.ClusterID, restored.ClusterID)
	for _, az := range azs[:2] {
		_, err := f.mgr.CreateHsm(ctx, restored.ClusterID, az)
		require.NoError(t, err)
	}
	restored, err = f.mgr.Cluster(restored.ClusterID)
	require.NoError(t, err)
	require.Equal(t, cluster.ClusterActive, restored.State)
	require.Equal(t, c.CertificateID, restored.CertificateID, "the restored cluster shares the source's certificate")
	alice2, _ := f.session(ctx, restored.ClusterID, "alice", "alice-pass-1", hsmv1.Role_ROLE_CRYPTO_USER)
	dec, err := alice2.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: key.GetKey().GetHandle(),
		Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Ciphertext: enc.GetCiphertext()})
	require.NoError(t, err)
	require.Equal(t, []byte("across the lifecycle"), dec.GetPlaintext())
}

func TestLifecycleRejects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c, err := f.mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: cluster.DefaultAZs[:2]})
	require.NoError(t, err)
	_, err = f.mgr.CreateHsm(ctx, c.ClusterID, "us-east-1a")
	require.NoError(t, err)
	c, err = f.mgr.Cluster(c.ClusterID)
	require.NoError(t, err)

	customer, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	other, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	signed, err := customer.SignCSR(c.CSR)
	require.NoError(t, err)
	signedByOther, err := other.SignCSR(c.CSR)
	require.NoError(t, err)

	tests := []struct {
		name           string
		cert, anchor   string
		wantErrContain string
	}{
		{"wrong trust anchor", signed, other.CertPEM(), "not signed by the trust anchor"},
		{"CSR signed by another CA", signedByOther, customer.CertPEM(), "not signed by the trust anchor"},
		{"garbage certificate", "not a cert", customer.CertPEM(), "not a PEM certificate"},
		{"trust anchor is not a CA", signed, signed, "not a CA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.mgr.InitializeCluster(ctx, c.ClusterID, tt.cert, tt.anchor)
			require.ErrorIs(t, err, cluster.ErrInvalidRequest)
			require.ErrorContains(t, err, tt.wantErrContain)
			after, err := f.mgr.Cluster(c.ClusterID)
			require.NoError(t, err)
			require.Equal(t, cluster.ClusterUninitialized, after.State, "no state change")
			require.Len(t, after.Hsms, 1)
		})
	}

	t.Run("a second HSM before initialization", func(t *testing.T) {
		_, err := f.mgr.CreateHsm(ctx, c.ClusterID, "us-east-1b")
		require.ErrorIs(t, err, cluster.ErrInvalidRequest)
		after, err := f.mgr.Cluster(c.ClusterID)
		require.NoError(t, err)
		require.Len(t, after.Hsms, 1)
	})
	t.Run("an AZ without a subnet", func(t *testing.T) {
		_, err := f.mgr.CreateHsm(ctx, c.ClusterID, "us-east-1c")
		require.ErrorIs(t, err, cluster.ErrInvalidRequest)
	})

	_, err = f.mgr.InitializeCluster(ctx, c.ClusterID, signed, customer.CertPEM())
	require.NoError(t, err)
	t.Run("initialize twice", func(t *testing.T) {
		_, err := f.mgr.InitializeCluster(ctx, c.ClusterID, signed, customer.CertPEM())
		require.ErrorIs(t, err, cluster.ErrInvalidRequest)
	})
	t.Run("activate twice", func(t *testing.T) {
		preco, _ := f.session(ctx, c.ClusterID, "admin", "password", hsmv1.Role_ROLE_UNACTIVATED_ADMIN)
		_, err := preco.ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: "admin-pass-1"})
		require.NoError(t, err)
		_, err = preco.ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: "admin-pass-2"})
		require.Error(t, err)
		admin, _ := f.session(ctx, c.ClusterID, "admin", "admin-pass-1", hsmv1.Role_ROLE_ADMIN)
		_, err = admin.ListUsers(ctx, &hsmv1.ListUsersRequest{})
		require.NoError(t, err, "the first activation's password stands")
	})
	t.Run("delete a cluster with HSMs", func(t *testing.T) {
		_, err := f.mgr.DeleteCluster(ctx, c.ClusterID)
		require.ErrorIs(t, err, cluster.ErrInvalidRequest)
	})
}
