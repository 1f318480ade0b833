package cloudhsm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"time"
)

// handshakeTimeout bounds the TLS handshake that reads a device certificate.
const handshakeTimeout = 2 * time.Second

// knownHsmCert returns the remembered device certificate of an HSM, or "".
func (s *Service) knownHsmCert(hsmID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hsmCerts[hsmID]
}

// learnHsmCert reads an HSM's device certificate from a TLS handshake and
// remembers it. An HSM presents it only until it has the cluster
// certificate, so this is done while the cluster is UNINITIALIZED; the
// certificate must chain to the deployment's hardware CA. A failure only
// leaves HsmCertificate empty, so it is logged, not returned.
func (s *Service) learnHsmCert(ctx context.Context, hsmID, addr string) {
	if s.knownHsmCert(hsmID) != "" {
		return
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.mgr.PKI().CA)
	var device *x509.Certificate
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// The device certificate names the HSM, not a host: the chain is
		// checked in VerifyConnection instead of the default hostname check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			device = leaf
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: conf}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		s.log.Warn("read hsm device certificate", "hsm_id", hsmID, "error", err)
		return
	}
	conn.Close()
	s.mu.Lock()
	s.hsmCerts[hsmID] = string(pemCert(device.Raw))
	s.mu.Unlock()
}

func (s *Service) forgetHsmCert(hsmID string) {
	s.mu.Lock()
	delete(s.hsmCerts, hsmID)
	s.mu.Unlock()
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
