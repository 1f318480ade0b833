package testpki_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testpki"
)

func TestChainsVerify(t *testing.T) {
	root := testpki.NewCA(t, "root")
	inter := root.Intermediate(t, "inter")

	tests := []struct {
		name   string
		issuer *testpki.CA
		chain  int
	}{
		{name: "root", issuer: root, chain: 1},
		{name: "intermediate", issuer: inter, chain: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := tt.issuer.Issue(t, "cluster-1", false)
			require.Len(t, cert.Certificate, tt.chain)
			require.Equal(t, "cluster-1", cert.Leaf.Subject.CommonName)
			require.Empty(t, cert.Leaf.DNSNames)
			require.Empty(t, cert.Leaf.ExtKeyUsage)

			inters := x509.NewCertPool()
			for _, der := range cert.Certificate[1:] {
				c, err := x509.ParseCertificate(der)
				require.NoError(t, err)
				inters.AddCert(c)
			}
			_, err := cert.Leaf.Verify(x509.VerifyOptions{
				Roots:         root.Pool(),
				Intermediates: inters,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			})
			require.NoError(t, err)
		})
	}
}

func TestSignCSR(t *testing.T) {
	root := testpki.NewCA(t, "root")
	key := testpki.NewKey(t)
	csr, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: "cluster-2"}}, key)
	require.NoError(t, err)

	cert, err := x509.ParseCertificate(root.SignCSR(t, csr))
	require.NoError(t, err)
	require.Equal(t, "cluster-2", cert.Subject.CommonName)
	require.NoError(t, cert.CheckSignatureFrom(root.Cert))
	require.True(t, key.PublicKey.Equal(cert.PublicKey))
	require.NotEmpty(t, root.CertPEM())
	require.NotEmpty(t, testpki.KeyPEM(t, key))
}
