package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/transport"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// errRetryForward says a forwarded write reached a node that is not (or no
// longer) the leader before anything was applied: safe to retry.
var errRetryForward = errors.New("forward: not the leader; retry")

// notSent reports whether an Unavailable error from a forwarded write means
// the leader certainly did not apply it: the target said it is not the
// leader, or the connection was never made.
func notSent(msg string) bool {
	return msg == raft.ErrNotLeader.Error() || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "no such host") || strings.Contains(msg, transport.ErrBlocked.Error())
}

// peerPool keeps one gRPC connection per member, authenticated with the
// cluster certificate, for forwarding writes to the leader.
type peerPool struct {
	n     *Node
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerPool(n *Node) *peerPool {
	return &peerPool{n: n, conns: make(map[string]*grpc.ClientConn)}
}

func (p *peerPool) conn(apiAddr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[apiAddr]; ok {
		return c, nil
	}
	tlsConf, err := p.n.id.memberClientTLS()
	if err != nil {
		return nil, err
	}
	c, err := grpc.NewClient(apiAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithChainUnaryInterceptor(p.n.faults.UnaryClientInterceptor(p.n.RaftAddr(), p.raftAddrOf)),
	)
	if err != nil {
		return nil, err
	}
	p.conns[apiAddr] = c
	return c, nil
}

// raftAddrOf maps a member's API address to its Raft address, the name the
// fault table uses.
func (p *peerPool) raftAddrOf(apiAddr string) string {
	for _, m := range p.n.db.Members() {
		if m.GetApiAddress() == apiAddr {
			return m.GetRaftAddress()
		}
	}
	return apiAddr
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// forward sends an encoded command to the leader named leaderID.
func (p *peerPool) forward(ctx context.Context, leaderID string, data []byte) (*hsmfsmv1.Result, uint64, error) {
	m, ok := p.n.db.Member(leaderID)
	if !ok {
		return nil, 0, errRetryForward
	}
	c, err := p.conn(m.GetApiAddress())
	if err != nil {
		return nil, 0, err
	}
	resp, err := hsmv1.NewPeerServiceClient(c).ApplyCommand(ctx, &hsmv1.ApplyCommandRequest{Command: data})
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && ctx.Err() == nil && notSent(st.Message()) {
			return nil, 0, errRetryForward
		}
		// Anything else (a connection that broke mid-call, a deadline) may
		// have come after the leader applied the write.
		if st, ok := status.FromError(err); ok && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded) {
			return nil, 0, ErrIndeterminate
		}
		return nil, 0, err
	}
	var res hsmfsmv1.Result
	if err := proto.Unmarshal(resp.GetResult(), &res); err != nil {
		return nil, 0, fmt.Errorf("node: forwarded result: %w", err)
	}
	return &res, resp.GetIndex(), nil
}

// joinLoop fetches the cluster secrets from a member once the cluster has
// admitted this HSM, starts Raft and asks the leader to add it as a voter.
// It retries with backoff until it succeeds or the node closes.
func (n *Node) joinLoop() {
	anchor, err := parseSingleCert("join trust anchor", n.cfg.Join.TrustAnchorPEM)
	if err != nil {
		n.log.Error("cannot join", "error", err)
		return
	}
	tlsConf := n.id.deviceClientTLS(anchor, n.joinCertificateID())
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		addr := n.cfg.Join.Addrs[attempt%len(n.cfg.Join.Addrs)]
		err := n.joinVia(addr, tlsConf)
		if err == nil {
			n.log.Info("joined cluster", "via", addr)
			return
		}
		n.log.Debug("join attempt failed", "via", addr, "error", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// joinCertificateID is the certificate id the cluster to join presents:
// JoinConfig.CertificateID, default the HSM's cluster id.
func (n *Node) joinCertificateID() string {
	if id := n.cfg.Join.CertificateID; id != "" {
		return id
	}
	return n.cfg.ClusterID
}

func (n *Node) joinVia(addr string, tlsConf *tls.Config) error {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if _, err := n.raftNode(); err != nil {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
		if err != nil {
			return err
		}
		resp, err := hsmv1.NewPeerServiceClient(c).FetchClusterSecrets(ctx, &hsmv1.FetchClusterSecretsRequest{NodeId: n.cfg.NodeID})
		c.Close()
		if err != nil {
			return err
		}
		s := &barrier.Secrets{
			ClusterID: resp.GetClusterId(), DomainKey: resp.GetDomainKey(), ClusterKeyPKCS8: resp.GetClusterKeyPkcs8(),
			ClusterCertPEM: resp.GetClusterCertPem(), TrustAnchorPEM: resp.GetTrustAnchorPem(),
		}
		if want := n.joinCertificateID(); s.ClusterID != want {
			s.Zero()
			return fmt.Errorf("node: secrets for cluster certificate %q, want %q", s.ClusterID, want)
		}
		if err := barrier.SaveSecrets(n.cfg.DataDir, n.deviceKey, s); err != nil {
			s.Zero()
			return err
		}
		if err := n.becomeMember(s, false); err != nil {
			return err
		}
	}
	// Ask through the member connection (cluster certificate now) to be added.
	c, err := n.peers.conn(addr)
	if err != nil {
		return err
	}
	_, err = hsmv1.NewPeerServiceClient(c).AddVoter(ctx, &hsmv1.AddVoterRequest{NodeId: n.cfg.NodeID})
	return err
}
