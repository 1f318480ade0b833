package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// NewTLSConfigs returns the server and client TLS configurations for node-to-node traffic
// (Raft and the internal gRPC API). Both present cert (the cluster certificate with its
// chain) and both require the peer to present a certificate that VerifyClusterChain accepts
// for anchor and clusterID: the check is mutual. TLS 1.3 is the minimum.
//
// Go's built-in verification is turned off (the server asks for any client certificate, the
// client skips verification) because a customer-signed cluster certificate may carry no
// SANs and no extended key usage; VerifyConnection does the full chain check instead. It runs
// on every handshake, resumed ones included.
//
// The returned configurations must not be modified after use; Clone them to derive others
// (for example to add NextProtos).
func NewTLSConfigs(cert tls.Certificate, anchor *x509.Certificate, clusterID string) (server, client *tls.Config) {
	verify := newVerifier(anchor, clusterID)
	server = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verify,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// InsecureSkipVerify only disables the built-in checks (hostname, EKU);
		// VerifyConnection below performs the chain and cluster id verification.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}
	return server, client
}

// VerifyClusterChain checks a peer's certificate chain as presented in a TLS handshake
// (rawCerts[0] is the leaf, the rest are intermediates): the chain must verify to anchor, for
// any extended key usage, and the leaf's subject common name must be clusterID. It returns
// ErrNoPeerCertificate, ErrUntrustedCertificate or ErrWrongCluster, wrapped with details.
func VerifyClusterChain(rawCerts [][]byte, anchor *x509.Certificate, clusterID string) error {
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("%w: certificate %d: %w", ErrUntrustedCertificate, i, err)
		}
		certs = append(certs, c)
	}
	return verifyChain(certs, anchorPool(anchor), clusterID)
}

// newVerifier returns a tls.Config.VerifyConnection function for anchor and clusterID.
func newVerifier(anchor *x509.Certificate, clusterID string) func(tls.ConnectionState) error {
	roots := anchorPool(anchor)
	return func(cs tls.ConnectionState) error {
		return verifyChain(cs.PeerCertificates, roots, clusterID)
	}
}

// anchorPool returns a pool holding only anchor, or nil when anchor is nil.
func anchorPool(anchor *x509.Certificate) *x509.CertPool {
	if anchor == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(anchor)
	return pool
}

// verifyChain is VerifyClusterChain over parsed certificates. A nil roots pool trusts nothing
// (it must not fall back to the system roots).
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, clusterID string) error {
	if len(certs) == 0 {
		return ErrNoPeerCertificate
	}
	if roots == nil {
		return fmt.Errorf("%w: no trust anchor configured", ErrUntrustedCertificate)
	}
	inters := x509.NewCertPool()
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrustedCertificate, err)
	}
	if leaf.Subject.CommonName != clusterID {
		return fmt.Errorf("%w: common name %q, want %q", ErrWrongCluster, leaf.Subject.CommonName, clusterID)
	}
	return nil
}
