package kms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hsmsim/hsmsim/cluster"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// probeTimeout bounds one HSM's answer to a health probe.
const probeTimeout = time.Second

// clusterActive reports whether a cluster counts as ACTIVE for KMS's rules.
// DEGRADED is the control plane's word for an ACTIVE cluster one of whose
// HSMs stopped answering: it is still initialized and activated, and the
// HSM-count rules judge the HSMs themselves.
func clusterActive(c *cluster.Cluster) bool {
	return c.State == cluster.ClusterActive || c.State == cluster.ClusterDegraded
}

// reachableHSMs returns the HSMs of c that answer now: those the control
// plane lists as ACTIVE or DEGRADED whose GetStatus, over TLS verified
// against the cluster's trust anchor and certificate id, says "active"
// within probeTimeout.
//
// This is how KMS learns HSM health for its rules (CreateKey needs two
// HSMs in different AZs; Connect needs one). The control plane's record
// lags (it changes only when something refreshes it), and a client's
// Health lags too (an HSM turns unhealthy only after a call to it fails);
// a probe is current, costs one TLS handshake per HSM, and needs no
// credentials: GetStatus is open to any client that trusts the cluster.
func reachableHSMs(ctx context.Context, c *cluster.Cluster) []*cluster.HSM {
	anchor, err := parseCertPEM(c.TrustAnchor)
	if err != nil {
		return nil
	}
	conf := probeTLS(anchor, c.CertificateID)
	answered := make([]bool, len(c.Hsms))
	var wg sync.WaitGroup
	for i, h := range c.Hsms {
		if (h.State != cluster.HsmActive && h.State != cluster.HsmDegraded) || h.Runtime.APIAddr == "" {
			continue
		}
		wg.Go(func() { answered[i] = probeHSM(ctx, h.Runtime.APIAddr, conf) })
	}
	wg.Wait()
	var out []*cluster.HSM
	for i, h := range c.Hsms {
		if answered[i] {
			out = append(out, h)
		}
	}
	return out
}

// distinctAZs counts the availability zones of hsms.
func distinctAZs(hsms []*cluster.HSM) int {
	azs := map[string]bool{}
	for _, h := range hsms {
		azs[h.AvailabilityZone] = true
	}
	return len(azs)
}

// probeHSM reports whether the HSM at addr answers GetStatus as active.
func probeHSM(ctx context.Context, addr string, conf *tls.Config) bool {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		return false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	st, err := hsmv1.NewClusterServiceClient(conn).GetStatus(ctx, &hsmv1.GetStatusRequest{})
	return err == nil && st.GetState() == "active"
}

// probeTLS authenticates an HSM as cluster/client does: TLS 1.3, a chain
// from the cluster certificate to anchor, whose leaf's common name is
// certID. Go's host-name check is off because the cluster certificate
// names the cluster, not an address; VerifyConnection does the whole
// check on every handshake.
func probeTLS(anchor *x509.Certificate, certID string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // VerifyConnection verifies the chain and the name.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the HSM presented no certificate")
			}
			inters := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inters.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			if leaf.Subject.CommonName != certID {
				return fmt.Errorf("the HSM's cluster certificate names %q, not %q", leaf.Subject.CommonName, certID)
			}
			return nil
		},
	}
}
