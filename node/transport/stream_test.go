package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node/transport"
)

func TestStreamLayerEcho(t *testing.T) {
	c := newCluster(t)
	a := newNode(t, c.cert, c.ca.Cert, clusterID)
	b := newNode(t, c.cert, c.ca.Cert, clusterID)

	out, in := requireAccepts(t, a, b)
	echo(in)
	roundTrip(t, out, "hello over mutual tls")
	roundTrip(t, out, "and again")

	// The other direction on the same pair of layers.
	back, backIn := requireAccepts(t, b, a)
	echo(backIn)
	roundTrip(t, back, "reverse")

	// Closing a layer closes its connections, dialed and accepted: peers notice at once.
	require.NoError(t, a.Close())
	require.Error(t, readErr(t, back)) // b dialed a: its end sees the close
	_, err := out.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = b.Dial(raftAddr(a), waitFor)
	require.Error(t, err)
}

func TestStreamLayerAcceptAfterClose(t *testing.T) {
	c := newCluster(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, cli := transport.NewTLSConfigs(c.cert, c.ca.Cert, clusterID)
	s := transport.NewStreamLayer(ln, nil, srv, cli, nil)
	require.Equal(t, ln.Addr(), s.Addr())

	require.NoError(t, s.Close())
	_, err = s.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.NoError(t, s.Close(), "Close is idempotent")
}

func TestStreamLayerRejectsBadPeers(t *testing.T) {
	good := newCluster(t)
	otherCA := testpki.NewCA(t, "other-ca")
	inter := good.ca.Intermediate(t, "issuing-ca")

	tests := []struct {
		name       string
		dialerCert tls.Certificate // the dialer trusts good.ca and clusterID
		serverCert tls.Certificate // the server trusts good.ca and clusterID
		wantErr    error           // nil: any error, the other side rejected us
		ok         bool
	}{
		{name: "chain through an intermediate", dialerCert: inter.Issue(t, clusterID, false), serverCert: inter.Issue(t, clusterID, false), ok: true},
		{name: "dialer from another CA", dialerCert: otherCA.Issue(t, clusterID, false), serverCert: good.cert},
		{name: "dialer for another cluster", dialerCert: good.ca.Issue(t, "cluster-other", false), serverCert: good.cert},
		{name: "server from another CA", dialerCert: good.cert, serverCert: otherCA.Issue(t, clusterID, false), wantErr: transport.ErrUntrustedCertificate},
		{name: "server for another cluster", dialerCert: good.cert, serverCert: good.ca.Issue(t, "cluster-other", false), wantErr: transport.ErrWrongCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := newNode(t, tt.serverCert, good.ca.Cert, clusterID)
			dialer := newNode(t, tt.dialerCert, good.ca.Cert, clusterID)

			conn, err := dialer.Dial(raftAddr(server), waitFor)
			if tt.ok {
				require.NoError(t, err)
				_ = conn.Close()
				return
			}
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			// The server keeps accepting, and never delivered the rejected connection.
			if tt.serverCert.Leaf == good.cert.Leaf {
				requireAccepts(t, newNode(t, good.cert, good.ca.Cert, clusterID), server)
			}
		})
	}
}

func TestStreamLayerRequiresTLS13(t *testing.T) {
	c := newCluster(t)
	n := newNode(t, c.cert, c.ca.Cert, clusterID)

	t.Run("old client", func(t *testing.T) {
		_, cli := transport.NewTLSConfigs(c.cert, c.ca.Cert, clusterID)
		old := cli.Clone()
		old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", n.addr(), old)
		if err == nil { // a handshake error may surface only on first read
			_ = conn.SetDeadline(time.Now().Add(waitFor))
			_, err = conn.Read(make([]byte, 1))
			_ = conn.Close()
		}
		require.Error(t, err)
		requireAccepts(t, newNode(t, c.cert, c.ca.Cert, clusterID), n)
	})

	t.Run("old server", func(t *testing.T) {
		srv, _ := transport.NewTLSConfigs(c.cert, c.ca.Cert, clusterID)
		old := srv.Clone()
		old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		ln, err := tls.Listen("tcp", "127.0.0.1:0", old)
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					_ = conn.(*tls.Conn).Handshake()
					_ = conn.Close()
				}()
			}
		}()
		_, err = n.Dial(raftAddrOf(ln.Addr()), waitFor)
		require.Error(t, err)
	})
}

func TestStreamLayerRejectsBadPreamble(t *testing.T) {
	c := newCluster(t)
	n := newNode(t, c.cert, c.ca.Cert, clusterID)
	_, cli := transport.NewTLSConfigs(c.cert, c.ca.Cert, clusterID)

	tests := []struct {
		name     string
		preamble []byte
	}{
		{name: "wrong magic", preamble: []byte("GET / HTTP/1.1\r\n\r\n")},
		{name: "wrong version", preamble: []byte("HSMR\x02\x00\x01x")},
		{name: "empty address", preamble: []byte("HSMR\x01\x00\x00")},
		{name: "address too long", preamble: []byte("HSMR\x01\xff\xff")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", n.addr(), cli)
			require.NoError(t, err)
			defer func() { _ = conn.Close() }()
			_, err = conn.Write(tt.preamble)
			require.NoError(t, err)
			readErr(t, conn) // the server hangs up
			requireAccepts(t, newNode(t, c.cert, c.ca.Cert, clusterID), n)
		})
	}
}

func TestVerifyClusterChain(t *testing.T) {
	c := newCluster(t)
	other := testpki.NewCA(t, "other-ca")
	inter := c.ca.Intermediate(t, "issuing-ca")
	viaInter := inter.Issue(t, clusterID, false)
	serverAuth := c.ca.IssueWith(t, testpki.IssueOptions{CommonName: clusterID, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired := c.ca.IssueWith(t, testpki.IssueOptions{CommonName: clusterID,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})

	tests := []struct {
		name    string
		raw     [][]byte
		anchor  *x509.Certificate
		wantErr error
	}{
		{name: "cluster certificate", raw: c.cert.Certificate, anchor: c.ca.Cert},
		{name: "through an intermediate", raw: viaInter.Certificate, anchor: c.ca.Cert},
		{name: "server auth only", raw: serverAuth.Certificate, anchor: c.ca.Cert},
		{name: "no certificate", raw: nil, anchor: c.ca.Cert, wantErr: transport.ErrNoPeerCertificate},
		{name: "another CA", raw: other.Issue(t, clusterID, false).Certificate, anchor: c.ca.Cert, wantErr: transport.ErrUntrustedCertificate},
		{name: "missing intermediate", raw: viaInter.Certificate[:1], anchor: c.ca.Cert, wantErr: transport.ErrUntrustedCertificate},
		{name: "expired", raw: expired.Certificate, anchor: c.ca.Cert, wantErr: transport.ErrUntrustedCertificate},
		{name: "garbage", raw: [][]byte{[]byte("not a certificate")}, anchor: c.ca.Cert, wantErr: transport.ErrUntrustedCertificate},
		{name: "no anchor", raw: c.cert.Certificate, anchor: nil, wantErr: transport.ErrUntrustedCertificate},
		{name: "another cluster", raw: c.ca.Issue(t, "cluster-other", false).Certificate, anchor: c.ca.Cert, wantErr: transport.ErrWrongCluster},
		{name: "the anchor itself", raw: [][]byte{c.ca.Cert.Raw}, anchor: c.ca.Cert, wantErr: transport.ErrWrongCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := transport.VerifyClusterChain(tt.raw, tt.anchor, clusterID)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}
