package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// PKI is the deployment's hardware trust: the hardware CA (the simulated HSM
// manufacturer) that issues every HSM's device certificate, the control
// plane's client certificate, and the persistent backup key every HSM gets.
// It lives in DIR/pki, readable by its owner only.
type PKI struct {
	dir       string
	CA        *x509.Certificate
	caKey     crypto.Signer
	control   tls.Certificate
	backupKey []byte
}

// PKI file names.
const (
	hardwareCACert = "hardware-ca.crt"
	hardwareCAKey  = "hardware-ca.key"
	controlCert    = "control.crt"
	controlKey     = "control.key"
	// BackupKeyFile holds the 32-byte persistent backup key.
	BackupKeyFile = "backup.key"
)

// LoadOrCreatePKI loads DIR/pki, creating it on first use.
func LoadOrCreatePKI(dir string) (*PKI, error) {
	pdir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: pki dir: %w", err)
	}
	p := &PKI{dir: pdir}
	if _, err := os.Stat(filepath.Join(pdir, hardwareCACert)); errors.Is(err, fs.ErrNotExist) {
		if err := p.create(); err != nil {
			return nil, err
		}
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) create() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caDER, err := createCert(&x509.Certificate{
		Subject: pkix.Name{CommonName: "hsmsim hardware CA", Organization: []string{"hsmsim manufacturer"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, caKey.Public(), caKey, 20*365*24*time.Hour)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	ctlKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ctlDER, err := createCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "hsmsim control plane"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, ctlKey.Public(), caKey, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	backup := make([]byte, 32)
	if _, err := rand.Read(backup); err != nil {
		return err
	}
	files := map[string][]byte{
		hardwareCACert: pemCert(caDER), controlCert: pemCert(ctlDER), BackupKeyFile: backup,
	}
	for name, key := range map[string]crypto.Signer{hardwareCAKey: caKey, controlKey: ctlKey} {
		b, err := pemKey(key)
		if err != nil {
			return err
		}
		files[name] = b
	}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
			return fmt.Errorf("cluster: write %s: %w", name, err)
		}
	}
	return nil
}

func (p *PKI) load() error {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(p.dir, name)) }
	caPEM, err := read(hardwareCACert)
	if err != nil {
		return err
	}
	if p.CA, err = parseCertPEM(caPEM); err != nil {
		return err
	}
	keyPEM, err := read(hardwareCAKey)
	if err != nil {
		return err
	}
	if p.caKey, err = parseKeyPEM(keyPEM); err != nil {
		return err
	}
	cp, err := read(controlCert)
	if err != nil {
		return err
	}
	kp, err := read(controlKey)
	if err != nil {
		return err
	}
	if p.control, err = tls.X509KeyPair(cp, kp); err != nil {
		return fmt.Errorf("cluster: control certificate: %w", err)
	}
	if p.backupKey, err = read(BackupKeyFile); err != nil {
		return err
	}
	if len(p.backupKey) != 32 {
		return fmt.Errorf("cluster: %s must hold 32 bytes", BackupKeyFile)
	}
	return nil
}

// HardwareCAPath and BackupKeyPath are the files an HSM process is given.
func (p *PKI) HardwareCAPath() string { return filepath.Join(p.dir, hardwareCACert) }

// BackupKeyPath is the backup key's file.
func (p *PKI) BackupKeyPath() string { return filepath.Join(p.dir, BackupKeyFile) }

// IssueDevice issues a device certificate for an HSM and returns it and its
// key in PEM.
func (p *PKI) IssueDevice(hsmID string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := createCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: hsmID, Organization: []string{"hsmsim HSM"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, p.CA, key.Public(), p.caKey, 10*365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pemKey(key)
	return pemCert(der), keyPEM, err
}

// DialHSM connects to an HSM's gRPC API as the control plane. The HSM must
// present its device certificate (before it is a cluster member) or the
// cluster certificate under trustAnchorPEM naming certificateID.
func (p *PKI) DialHSM(addr, trustAnchorPEM, certificateID string) (*grpc.ClientConn, error) {
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	anchors := x509.NewCertPool()
	if trustAnchorPEM != "" {
		a, err := parseCertPEM([]byte(trustAnchorPEM))
		if err != nil {
			return nil, err
		}
		anchors.AddCert(a)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.control},
		// The HSM's certificates carry no host names; VerifyConnection checks
		// the chain and the identity instead of the default hostname check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyHSMChain(cs.PeerCertificates, roots, anchors, certificateID)
		},
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
}

// verifyHSMChain accepts a device certificate under the hardware CA, or a
// cluster certificate under the trust anchor whose common name is certificateID.
func verifyHSMChain(certs []*x509.Certificate, hardware, anchors *x509.CertPool, certificateID string) error {
	if len(certs) == 0 {
		return errors.New("cluster: the HSM presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	opts.Roots = hardware
	if _, err := certs[0].Verify(opts); err == nil {
		return nil
	}
	opts.Roots = anchors
	if _, err := certs[0].Verify(opts); err == nil && certs[0].Subject.CommonName == certificateID {
		return nil
	}
	return errors.New("cluster: the HSM's certificate is neither a device certificate nor the cluster's")
}

// CustomerCA is the customer's own certificate authority: the trust anchor
// of a cluster. hsmctl up makes one, as a customer would with openssl.
type CustomerCA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// NewCustomerCA creates a self-signed CA and writes customerCA.crt and
// customerCA.key (0600) into dir.
func NewCustomerCA(dir string) (*CustomerCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := createCert(&x509.Certificate{
		Subject: pkix.Name{CommonName: "hsmsim customer CA", Organization: []string{"customer"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, key.Public(), key, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, err := pemKey(key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "customerCA.crt"), pemCert(der), 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "customerCA.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	return &CustomerCA{Cert: cert, key: key}, nil
}

// CertPEM is the CA certificate in PEM: the trust anchor.
func (ca *CustomerCA) CertPEM() string { return string(pemCert(ca.Cert.Raw)) }

// SignCSR signs a cluster CSR, as `openssl x509 -req -CA customerCA.crt` does.
func (ca *CustomerCA) SignCSR(csrPEM string) (string, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return "", errors.New("cluster: not a PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", err
	}
	if err := csr.CheckSignature(); err != nil {
		return "", fmt.Errorf("cluster: CSR signature: %w", err)
	}
	der, err := createCert(&x509.Certificate{Subject: csr.Subject, KeyUsage: x509.KeyUsageDigitalSignature},
		ca.Cert, csr.PublicKey, ca.key, 10*365*24*time.Hour)
	if err != nil {
		return "", err
	}
	return string(pemCert(der)), nil
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, life time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(life)
	if parent == nil {
		parent = tmpl
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("cluster: not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("cluster: not a PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("cluster: key cannot sign")
	}
	return s, nil
}
