// Package bringup runs CloudHSM's getting-started workflow against a
// control plane: create a cluster and its first HSM, sign the cluster CSR
// with a new customer CA, initialize, activate as the unactivated admin, add
// HSMs in the other AZs and create a crypto user. `hsmctl up` and the chaos
// suite (test/chaos) start their clusters with it.
//
// It is a package of its own, not part of cluster, because it acts as the
// customer as well as AWS: activation and the crypto user go through the
// HSM API with user credentials (cluster/client), which the control plane
// (cluster.Manager) never holds.
package bringup

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	// AdminUser is the HSM's admin user (CloudHSM's "admin").
	AdminUser = "admin"
	// PreCOPassword is the unactivated admin's password on a new cluster
	// (CloudHSM's PRECO user and its initial password).
	PreCOPassword = "password"
	// AdminPasswordFile is the name of the admin password's file in Spec.Dir.
	AdminPasswordFile = "admin.password"
	// CustomerCAFile is the name of the customer CA certificate in Spec.Dir.
	CustomerCAFile = "customerCA.crt"
)

// Spec describes a cluster to bring up.
type Spec struct {
	// AZs are the cluster's availability zones; the first HSM goes in
	// AZs[0]. At least one.
	AZs []string
	// PerAZ is how many HSMs each AZ gets (default 1).
	PerAZ int
	// Tags are the cluster's tags.
	Tags map[string]string
	// Dir receives the customer CA (customerCA.crt, customerCA.key) and the
	// password files (admin.password, <CryptoUser>.password), readable by
	// their owner only.
	Dir string
	// CryptoUser is the crypto user to create; none when empty.
	CryptoUser string
	// Logger receives the clients' logs (default: none).
	Logger hclog.Logger
}

// Result is what bringing a cluster up produced.
type Result struct {
	ClusterID string
	// Hsms are the cluster's HSMs, the first one first.
	Hsms []*cluster.HSM
	// CustomerCAFile is the customer CA certificate's file, and
	// TrustAnchorPEM its content: the cluster's trust anchor.
	CustomerCAFile string
	TrustAnchorPEM string
	// AdminPassword is the activated admin's password, also in
	// AdminPasswordFile.
	AdminPassword     string
	AdminPasswordFile string
	// CryptoPassword is Spec.CryptoUser's password, also in
	// CryptoPasswordFile; both empty when no crypto user was asked for.
	CryptoPassword     string
	CryptoPasswordFile string
}

// Cluster runs the workflow of the package documentation on mgr and returns
// once every HSM has joined and the crypto user exists. On an error the
// HSMs started so far keep running: the caller stops them (Manager.StopAll)
// or inspects them.
func Cluster(ctx context.Context, mgr *cluster.Manager, spec Spec) (*Result, error) {
	if len(spec.AZs) == 0 {
		return nil, errors.New("bringup: at least one AZ is required")
	}
	if spec.PerAZ <= 0 {
		spec.PerAZ = 1
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, err
	}
	out := &Result{}
	c, err := mgr.CreateCluster(ctx, cluster.CreateClusterInput{AZs: spec.AZs, Tags: spec.Tags})
	if err != nil {
		return nil, err
	}
	out.ClusterID = c.ClusterID
	if _, err := mgr.CreateHsm(ctx, c.ClusterID, spec.AZs[0]); err != nil {
		return nil, err
	}
	if c, err = mgr.Cluster(c.ClusterID); err != nil {
		return nil, err
	}
	ca, err := cluster.NewCustomerCA(spec.Dir)
	if err != nil {
		return nil, err
	}
	out.CustomerCAFile, out.TrustAnchorPEM = filepath.Join(spec.Dir, CustomerCAFile), ca.CertPEM()
	signed, err := ca.SignCSR(c.CSR)
	if err != nil {
		return nil, err
	}
	if _, err := mgr.InitializeCluster(ctx, c.ClusterID, signed, ca.CertPEM()); err != nil {
		return nil, err
	}
	if out.AdminPassword, err = RandomPassword(); err != nil {
		return nil, err
	}
	if err := Activate(ctx, mgr, c.ClusterID, out.AdminPassword, spec.Logger); err != nil {
		return nil, err
	}
	if out.AdminPasswordFile, err = WriteSecret(spec.Dir, AdminPasswordFile, out.AdminPassword); err != nil {
		return nil, err
	}
	for i := 0; i < spec.PerAZ; i++ {
		for j, az := range spec.AZs {
			if i == 0 && j == 0 {
				continue
			}
			if _, err := mgr.CreateHsm(ctx, c.ClusterID, az); err != nil {
				return nil, err
			}
		}
	}
	if spec.CryptoUser != "" {
		if out.CryptoPassword, err = RandomPassword(); err != nil {
			return nil, err
		}
		admin, err := Login(ctx, mgr, c.ClusterID, AdminUser, out.AdminPassword, hsmv1.Role_ROLE_ADMIN, spec.Logger)
		if err != nil {
			return nil, err
		}
		_, err = hsmv1.NewHsmServiceClient(admin).CreateUser(ctx, &hsmv1.CreateUserRequest{
			Username: spec.CryptoUser, Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: out.CryptoPassword,
		})
		admin.Close()
		if err != nil {
			return nil, fmt.Errorf("bringup: create %s: %w", spec.CryptoUser, err)
		}
		if out.CryptoPasswordFile, err = WriteSecret(spec.Dir, spec.CryptoUser+".password", out.CryptoPassword); err != nil {
			return nil, err
		}
	}
	if c, err = mgr.Cluster(c.ClusterID); err != nil {
		return nil, err
	}
	out.Hsms = c.Hsms
	return out, nil
}

// Activate logs in as the unactivated admin and activates the cluster with
// adminPassword, then refreshes the control plane's records (an activated
// cluster becomes ACTIVE and takes a backup).
func Activate(ctx context.Context, mgr *cluster.Manager, clusterID, adminPassword string, log hclog.Logger) error {
	cl, err := Login(ctx, mgr, clusterID, AdminUser, PreCOPassword, hsmv1.Role_ROLE_UNACTIVATED_ADMIN, log)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := hsmv1.NewHsmServiceClient(cl).ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: adminPassword}); err != nil {
		return fmt.Errorf("bringup: activate: %w", err)
	}
	_, err = mgr.Refresh(ctx, clusterID)
	return err
}

// Login returns a multi-HSM client logged in as user on every HSM of the
// cluster.
func Login(ctx context.Context, mgr *cluster.Manager, clusterID, user, password string, role hsmv1.Role, log hclog.Logger) (*client.Client, error) {
	c, err := mgr.Cluster(clusterID)
	if err != nil {
		return nil, err
	}
	cfg, err := ClientConfig(c, user, password, role)
	if err != nil {
		return nil, err
	}
	cfg.Logger = log
	return client.New(ctx, cfg)
}

// ClientConfig returns the client configuration that reaches every HSM of c
// as user: its endpoints, its trust anchor and certificate id. The caller
// may narrow Endpoints (to one HSM) or set timings before client.New.
func ClientConfig(c *cluster.Cluster, user, password string, role hsmv1.Role) (client.Config, error) {
	anchor, err := ParseCertificate(c.TrustAnchor)
	if err != nil {
		return client.Config{}, fmt.Errorf("bringup: cluster %s has no trust anchor yet: %w", c.ClusterID, err)
	}
	cfg := client.Config{TrustAnchor: anchor, CertificateID: c.CertificateID, Username: user, Password: password, Role: role}
	for _, h := range c.Hsms {
		cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: h.HsmID, AZ: h.AvailabilityZone, Addr: h.Runtime.APIAddr})
	}
	return cfg, nil
}

// ParseCertificate parses the first certificate of a PEM text.
func ParseCertificate(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// WriteSecret writes value and a newline to dir/name, readable by its owner
// only, and returns the file's path.
func WriteSecret(dir, name, value string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(value+"\n"), 0o600)
}

// RandomPassword returns 20 characters from crypto/rand, from an alphabet
// without look-alikes (no 0, O, 1, l, I).
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	out := make([]byte, 0, 20)
	buf := make([]byte, 32)
	for len(out) < cap(out) {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, v := range buf {
			// Rejection sampling: 256 is not a multiple of the alphabet's
			// size, so bytes past its last multiple would bias the start.
			if int(v) < 256-256%len(alphabet) && len(out) < cap(out) {
				out = append(out, alphabet[int(v)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}
