package node_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// certOpts describes a certificate signCert makes.
type certOpts struct {
	cn         string
	isCA       bool
	notBefore  time.Time
	notAfter   time.Time
	selfSigned bool
}

// signCert returns a DER certificate for pub signed by (parent, parentKey),
// or self-signed by parentKey when opts.selfSigned. Unlike testpki it lets a
// test pick the subject, the validity and a non-CA issuer.
func signCert(t *testing.T, opts certOpts, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) []byte {
	t.Helper()
	if opts.notBefore.IsZero() {
		opts.notBefore = time.Now().Add(-time.Hour)
	}
	if opts.notAfter.IsZero() {
		opts.notAfter = time.Now().Add(24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: opts.cn},
		NotBefore: opts.notBefore, NotAfter: opts.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: opts.isCA,
	}
	if opts.selfSigned {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	require.NoError(t, err)
	return der
}

// requireUninitialized asserts that node 0 of c is still waiting for
// InitializeCluster.
func requireUninitialized(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	st, err := c.Control(0).GetStatus(context.Background(), &hsmv1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "uninitialized", st.GetState())
	require.Equal(t, "None", st.GetRaftState())
	_, err = c.Control(0).GetClusterCsr(context.Background(), &hsmv1.GetClusterCsrRequest{})
	require.NoError(t, err, "an uninitialized HSM still hands out its CSR")
}

// InitializeCluster checks the customer's certificate and trust anchor
// before it changes anything; only the control plane may call it (and the
// other ClusterService calls that change anything).
func TestInitializeClusterRejects(t *testing.T) {
	c := nodetest.NewUninitialized(t)
	ctl, anon := c.Control(0), c.AnonymousControl(0)
	ctx := context.Background()

	csrResp, err := ctl.GetClusterCsr(ctx, &hsmv1.GetClusterCsrRequest{})
	require.NoError(t, err)
	block, _ := pem.Decode([]byte(csrResp.GetCsrPem()))
	require.NotNil(t, block)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, c.ClusterID, csr.Subject.CommonName)

	customer := c.CustomerCA
	other := testpki.NewCA(t, "another CA")
	good := testpki.CertPEM(customer.SignCSR(t, block.Bytes))
	nonCAKey := testpki.NewKey(t)
	nonCA := signCert(t, certOpts{cn: "not a CA", selfSigned: true}, nonCAKey.Public(), nil, nonCAKey)
	nonCACert, err := x509.ParseCertificate(nonCA)
	require.NoError(t, err)
	pemOf := testpki.CertPEM
	inter := customer.Intermediate(t, "intermediate")

	tests := []struct {
		name   string
		req    *hsmv1.InitializeClusterRequest
		client hsmv1.ClusterServiceClient
		want   codes.Code
		msg    string // a part of the message that names the problem
	}{
		{"trust anchor is another CA", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(good), TrustAnchorPem: string(other.CertPEM())}, ctl, codes.InvalidArgument, "not signed by the trust anchor"},
		{"CSR signed by another CA", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(pemOf(other.SignCSR(t, block.Bytes))), TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument,
			"not signed by the trust anchor"},
		{"certificate for another key", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(pemOf(customer.Issue(t, c.ClusterID, false).Certificate[0])), TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument, "public key differs"},
		{"cluster id mismatch", &hsmv1.InitializeClusterRequest{ClusterId: "cluster-0ther",
			SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument, "cluster-0ther"},
		{"certificate names another cluster", &hsmv1.InitializeClusterRequest{
			SignedCertPem:  string(pemOf(signCert(t, certOpts{cn: "cluster-0ther"}, csr.PublicKey, customer.Cert, customer.Key))),
			TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument, "names \"cluster-0ther\""},
		{"expired certificate", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(pemOf(signCert(t, certOpts{cn: c.ClusterID, notBefore: time.Now().Add(-48 * time.Hour),
				notAfter: time.Now().Add(-24 * time.Hour)}, csr.PublicKey, customer.Cert, customer.Key))),
			TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument, "not valid now"},
		{"trust anchor is not a CA", &hsmv1.InitializeClusterRequest{
			SignedCertPem:  string(pemOf(signCert(t, certOpts{cn: c.ClusterID}, csr.PublicKey, nonCACert, nonCAKey))),
			TrustAnchorPem: string(pemOf(nonCA))}, ctl, codes.InvalidArgument, "not a CA"},
		{"trust anchor is an intermediate", &hsmv1.InitializeClusterRequest{
			SignedCertPem:  string(pemOf(inter.SignCSR(t, block.Bytes))),
			TrustAnchorPem: string(pemOf(inter.Cert.Raw))}, ctl, codes.InvalidArgument, "not a self-signed"},
		{"trust anchor is not PEM", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(good), TrustAnchorPem: "not a certificate"}, ctl, codes.InvalidArgument, "not a PEM certificate"},
		{"trust anchor with trailing data", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM()) + string(other.CertPEM())}, ctl, codes.InvalidArgument, "data after"},
		{"no signed certificate", &hsmv1.InitializeClusterRequest{TrustAnchorPem: string(customer.CertPEM())}, ctl, codes.InvalidArgument, "signed certificate"},
		{"without the control-plane certificate", &hsmv1.InitializeClusterRequest{
			SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM())}, anon, codes.PermissionDenied, "control-plane certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.ClusterId == "" {
				tc.req.ClusterId = c.ClusterID
			}
			_, err := tc.client.InitializeCluster(ctx, tc.req)
			st := requireCode(t, err, tc.want)
			require.Contains(t, st.Message(), tc.msg)
			requireUninitialized(t, c)
		})
	}
	_, err = anon.GetClusterCsr(ctx, &hsmv1.GetClusterCsrRequest{})
	requireCode(t, err, codes.PermissionDenied, "the CSR is for the control plane")

	// The right certificate still works after every refusal.
	_, err = ctl.InitializeCluster(ctx, &hsmv1.InitializeClusterRequest{ClusterId: c.ClusterID, SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM())})
	require.NoError(t, err)
	c.Activate()
	st, err := ctl.GetStatus(ctx, &hsmv1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "active", st.GetState())

	_, err = ctl.InitializeCluster(ctx, &hsmv1.InitializeClusterRequest{ClusterId: c.ClusterID, SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM())})
	requireCode(t, err, codes.FailedPrecondition, "a second InitializeCluster")
	_, err = ctl.GetClusterCsr(ctx, &hsmv1.GetClusterCsrRequest{})
	requireCode(t, err, codes.FailedPrecondition, "no CSR once initialized")

	// Without the control plane's certificate nothing changes, on a member
	// either. (GetStatus is open to all.)
	anon = c.AnonymousControl(0)
	_, err = anon.GetStatus(ctx, &hsmv1.GetStatusRequest{})
	require.NoError(t, err)
	for name, call := range map[string]func() error{
		"InitializeCluster": func() error {
			_, err := anon.InitializeCluster(ctx, &hsmv1.InitializeClusterRequest{ClusterId: c.ClusterID, SignedCertPem: string(good), TrustAnchorPem: string(customer.CertPEM())})
			return err
		},
		"AdmitMember": func() error {
			_, err := anon.AdmitMember(ctx, &hsmv1.AdmitMemberRequest{NodeId: "hsm-9", Az: "us-east-1a", RaftAddress: "127.0.0.1:1",
				ApiAddress: "127.0.0.1:2", DeviceCertSha256: make([]byte, 32)})
			return err
		},
		"RemoveMember": func() error {
			_, err := anon.RemoveMember(ctx, &hsmv1.RemoveMemberRequest{NodeId: "hsm-0"})
			return err
		},
		"SetFaults": func() error {
			_, err := anon.SetFaults(ctx, &hsmv1.SetFaultsRequest{Faults: []*hsmv1.LinkFault{{Peer: "127.0.0.1:1", Blocked: true}}})
			return err
		},
	} {
		requireCode(t, call(), codes.PermissionDenied, name)
	}
	st, err = ctl.GetStatus(ctx, &hsmv1.GetStatusRequest{})
	require.NoError(t, err)
	require.Len(t, st.GetPeers(), 1, "no member was admitted or removed")
	require.Empty(t, c.Nodes[0].Faults().Snapshot(), "no fault was set")
	require.Equal(t, "Leader", st.GetRaftState())
}
