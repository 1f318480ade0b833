// Package testpki builds throwaway certificate authorities and certificates for tests: a
// trust anchor, intermediates, leaf certificates shaped like a CloudHSM cluster certificate
// (no SANs, no extended key usage unless asked), and CSR signing. Keys are ECDSA P-256.
//
// Every function takes a testing.TB and fails the test on error, so call sites stay one line.
// Nothing here is suitable outside tests.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a certificate authority that issues certificates for tests. A root CA is its own
// trust anchor; an intermediate (see Intermediate) appends its certificate to the chains it
// issues.
type CA struct {
	// Cert is the CA's certificate. For a root CA it is the trust anchor.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// chain is the DER certificates from this CA up to, excluding, the root.
	chain [][]byte
}

// IssueOptions describes a certificate for IssueWith. Zero fields take defaults: validity
// from one hour ago to one day ahead, no SANs, no extended key usage.
type IssueOptions struct {
	// CommonName is the subject common name (for a cluster certificate, the cluster id).
	CommonName string
	// IsCA marks the certificate as a CA (basic constraints, cert-sign key usage).
	IsCA bool
	// DNSNames and IPAddresses are subject alternative names.
	DNSNames    []string
	IPAddresses []net.IP
	// ExtKeyUsage lists extended key usages; nil means the extension is absent.
	ExtKeyUsage []x509.ExtKeyUsage
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
	// Key is the subject's key; nil generates a fresh ECDSA P-256 key.
	Key crypto.Signer
}

// NewCA returns a self-signed root CA whose subject common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := NewKey(t)
	tmpl := template(t, IssueOptions{CommonName: name, IsCA: true})
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("testpki: create root %q: %v", name, err)
	}
	return &CA{Cert: parse(t, der), Key: key}
}

// NewKey returns a fresh ECDSA P-256 private key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: generate key: %v", err)
	}
	return key
}

// Intermediate returns a CA named name signed by ca. Certificates it issues carry the
// intermediate's certificate (and its own intermediates) in their chain.
func (ca *CA) Intermediate(t testing.TB, name string) *CA {
	t.Helper()
	key := NewKey(t)
	der := ca.sign(t, IssueOptions{CommonName: name, IsCA: true, Key: key})
	return &CA{Cert: parse(t, der), Key: key, chain: append([][]byte{der}, ca.chain...)}
}

// Issue returns a certificate for commonName signed by ca, with a fresh key, no SANs and no
// extended key usage: the shape of a customer-signed CloudHSM cluster certificate. The
// returned tls.Certificate holds the chain (leaf, then intermediates) and Leaf.
func (ca *CA) Issue(t testing.TB, commonName string, isCA bool) tls.Certificate {
	t.Helper()
	return ca.IssueWith(t, IssueOptions{CommonName: commonName, IsCA: isCA})
}

// IssueWith returns a certificate described by opts and signed by ca, as Issue does.
func (ca *CA) IssueWith(t testing.TB, opts IssueOptions) tls.Certificate {
	t.Helper()
	if opts.Key == nil {
		opts.Key = NewKey(t)
	}
	der := ca.sign(t, opts)
	return tls.Certificate{
		Certificate: append([][]byte{der}, ca.chain...),
		PrivateKey:  opts.Key,
		Leaf:        parse(t, der),
	}
}

// SignCSR checks the signature of the DER certificate request csrDER and returns a DER
// certificate for its subject and public key, signed by ca, valid for a day, with no SANs
// and no extended key usage (as a customer CA signing a CloudHSM cluster CSR would).
func (ca *CA) SignCSR(t testing.TB, csrDER []byte) []byte {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatalf("testpki: parse csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("testpki: csr signature: %v", err)
	}
	tmpl := template(t, IssueOptions{CommonName: csr.Subject.CommonName})
	tmpl.Subject = csr.Subject
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("testpki: sign csr: %v", err)
	}
	return der
}

// Pool returns a certificate pool holding only ca's certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// CertPEM returns ca's certificate PEM-encoded.
func (ca *CA) CertPEM() []byte {
	return CertPEM(ca.Cert.Raw)
}

// CertPEM PEM-encodes a DER certificate.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM PEM-encodes key as PKCS #8.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testpki: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// sign creates a certificate for opts signed by ca and returns its DER.
func (ca *CA) sign(t testing.TB, opts IssueOptions) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, template(t, opts), ca.Cert, opts.Key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("testpki: issue %q: %v", opts.CommonName, err)
	}
	return der
}

// template returns a certificate template for opts with a random serial number.
func template(t testing.TB, opts IssueOptions) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: opts.CommonName},
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     opts.DNSNames,
		IPAddresses:  opts.IPAddresses,
		ExtKeyUsage:  opts.ExtKeyUsage,
	}
	if opts.IsCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	return tmpl
}

// parse parses a DER certificate or fails the test.
func parse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parse certificate: %v", err)
	}
	return cert
}
