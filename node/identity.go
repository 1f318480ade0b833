package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/hsmsim/hsmsim/node/transport"
)

// callerKind says who is at the other end of a gRPC connection.
type callerKind int

const (
	// callerAnonymous presented no client certificate: a customer's client.
	callerAnonymous callerKind = iota
	// callerMember presented the cluster certificate: another HSM of the cluster.
	callerMember
	// callerHardware presented a certificate from the hardware CA: the
	// control plane, or an HSM joining with its device certificate.
	callerHardware
)

// caller is the authenticated identity of a gRPC caller.
type caller struct {
	kind callerKind
	// fingerprint is the SHA-256 of the leaf certificate (callerHardware).
	fingerprint [32]byte
}

// identity holds the HSM's TLS identities: the device certificate from
// the start, and the cluster certificate once the HSM is a member.
type identity struct {
	device        tls.Certificate
	deviceSum     [32]byte
	hardwareRoots *x509.CertPool

	mu        sync.RWMutex
	cluster   *tls.Certificate
	anchor    *x509.Certificate
	clusterID string
}

func newIdentity(device tls.Certificate, hardwareCA *x509.Certificate) *identity {
	pool := x509.NewCertPool()
	pool.AddCert(hardwareCA)
	return &identity{device: device, deviceSum: sha256.Sum256(device.Certificate[0]), hardwareRoots: pool}
}

// setCluster installs the cluster certificate after initialization or join.
func (id *identity) setCluster(cert tls.Certificate, anchor *x509.Certificate, clusterID string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.cluster, id.anchor, id.clusterID = &cert, anchor, clusterID
}

func (id *identity) clusterIdentity() (*tls.Certificate, *x509.Certificate, string) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cluster, id.anchor, id.clusterID
}

// serverTLS is the gRPC server's TLS configuration: it presents the cluster
// certificate once there is one (the device certificate before), and asks
// for an optional client certificate, which must then verify either to the
// trust anchor (a member) or to the hardware CA.
func (id *identity) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, _, _ := id.clusterIdentity(); c != nil {
				return c, nil
			}
			return &id.device, nil
		},
		ClientAuth: tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, err := id.classify(cs.PeerCertificates)
			return err
		},
	}
}

// memberClientTLS is the TLS configuration for calling another member: it
// presents the cluster certificate and checks the server's.
func (id *identity) memberClientTLS() (*tls.Config, error) {
	cert, anchor, clusterID := id.clusterIdentity()
	if cert == nil {
		return nil, errors.New("node: not a cluster member yet")
	}
	_, client := transport.NewTLSConfigs(*cert, anchor, clusterID)
	return client, nil
}

// deviceClientTLS is the TLS configuration a joining HSM uses to fetch the
// cluster secrets: it presents the device certificate and checks that the
// server holds the cluster certificate under anchor.
func (id *identity) deviceClientTLS(anchor *x509.Certificate, clusterID string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.device},
		// The built-in checks want a hostname; VerifyConnection does the full
		// chain check against the trust anchor and the cluster id instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			return transport.VerifyClusterChain(raw, anchor, clusterID)
		},
	}
}

// classify verifies a presented chain and says whose it is.
func (id *identity) classify(certs []*x509.Certificate) (caller, error) {
	_, anchor, clusterID := id.clusterIdentity()
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	if anchor != nil && transport.VerifyClusterChain(raw, anchor, clusterID) == nil {
		return caller{kind: callerMember}, nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots: id.hardwareRoots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err == nil {
		return caller{kind: callerHardware, fingerprint: sha256.Sum256(certs[0].Raw)}, nil
	}
	return caller{}, errors.New("node: client certificate is neither the cluster's nor the hardware CA's")
}

// callerFrom returns the verified identity of the gRPC caller in ctx.
func (id *identity) callerFrom(ctx context.Context) caller {
	anonymous := caller{kind: callerAnonymous}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return anonymous
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return anonymous
	}
	c, err := id.classify(info.State.PeerCertificates)
	if err != nil {
		return anonymous
	}
	return c
}

// parseSingleCert parses exactly one PEM certificate.
func parseSingleCert(what, pemText string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is not a PEM certificate", what)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s has data after the certificate", what)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	return cert, nil
}
