package bringup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
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

func newManager(t *testing.T) *cluster.Manager {
	t.Helper()
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	prov, err := local.New(local.Config{Dir: dir, PKI: pki, HsmdPath: hsmdPath,
		ExtraArgs: []string{"--heartbeat-timeout", "200ms", "--election-timeout", "200ms", "--leader-lease-timeout", "100ms"}})
	require.NoError(t, err)
	mgr := cluster.NewManager(store, prov, pki, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		mgr.StopAll(ctx)
	})
	return mgr
}

func TestCluster(t *testing.T) {
	tests := []struct {
		name       string
		azs        []string
		perAZ      int
		cryptoUser string
		wantHsms   int
	}{
		{name: "three AZs with a crypto user", azs: cluster.DefaultAZs, cryptoUser: "kmsuser", wantHsms: 3},
		{name: "one AZ, two HSMs, no crypto user", azs: cluster.DefaultAZs[:1], perAZ: 2, wantHsms: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			mgr := newManager(t)
			dir := filepath.Join(t.TempDir(), "customer")
			res, err := bringup.Cluster(ctx, mgr, bringup.Spec{AZs: tc.azs, PerAZ: tc.perAZ, Dir: dir, CryptoUser: tc.cryptoUser})
			require.NoError(t, err)

			c, err := mgr.Cluster(res.ClusterID)
			require.NoError(t, err)
			require.Equal(t, cluster.ClusterActive, c.State)
			require.Len(t, res.Hsms, tc.wantHsms)
			require.Equal(t, c.TrustAnchor, res.TrustAnchorPEM)
			require.Equal(t, filepath.Join(dir, bringup.CustomerCAFile), res.CustomerCAFile)
			require.FileExists(t, res.CustomerCAFile)
			requireSecret(t, res.AdminPasswordFile, res.AdminPassword)
			require.Len(t, res.AdminPassword, 20)

			// The admin's password is the new one, the PRECO password is gone.
			admin, err := bringup.Login(ctx, mgr, res.ClusterID, bringup.AdminUser, res.AdminPassword, hsmv1.Role_ROLE_ADMIN, nil)
			require.NoError(t, err)
			users, err := hsmv1.NewHsmServiceClient(admin).ListUsers(ctx, &hsmv1.ListUsersRequest{})
			require.NoError(t, err)
			admin.Close()
			var names []string
			for _, u := range users.GetUsers() {
				names = append(names, u.GetUsername())
			}

			if tc.cryptoUser == "" {
				require.Empty(t, res.CryptoPassword)
				require.Empty(t, res.CryptoPasswordFile)
				require.Equal(t, []string{bringup.AdminUser}, names)
				return
			}
			require.ElementsMatch(t, []string{bringup.AdminUser, tc.cryptoUser}, names)
			requireSecret(t, res.CryptoPasswordFile, res.CryptoPassword)
			// The crypto user works on every HSM alone.
			for _, h := range res.Hsms {
				cfg, err := bringup.ClientConfig(c, tc.cryptoUser, res.CryptoPassword, hsmv1.Role_ROLE_CRYPTO_USER)
				require.NoError(t, err)
				require.Len(t, cfg.Endpoints, tc.wantHsms)
				cfg.Endpoints = []client.Endpoint{{ID: h.HsmID, AZ: h.AvailabilityZone, Addr: h.Runtime.APIAddr}}
				cl, err := client.New(ctx, cfg)
				require.NoError(t, err, "on %s", h.HsmID)
				_, err = hsmv1.NewHsmServiceClient(cl).GenerateRandom(ctx, &hsmv1.GenerateRandomRequest{Length: 16})
				require.NoError(t, err)
				cl.Close()
			}
		})
	}
}

// requireSecret checks that path holds value and a newline, readable by
// its owner only.
func requireSecret(t *testing.T, path, value string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, value+"\n", string(b))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := bringup.RandomPassword()
		require.NoError(t, err)
		require.Len(t, p, 20)
		require.Regexp(t, `^[a-km-zA-HJ-NP-Z2-9]{20}$`, p)
		require.False(t, seen[p])
		seen[p] = true
	}
}

func TestParseCertificate(t *testing.T) {
	ca, err := cluster.NewCustomerCA(t.TempDir())
	require.NoError(t, err)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "a CA certificate", in: ca.CertPEM()},
		{name: "empty", in: "", wantErr: true},
		{name: "not PEM", in: "hello", wantErr: true},
		{name: "another PEM type", in: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := bringup.ParseCertificate(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, c.IsCA)
		})
	}
}
