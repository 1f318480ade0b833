package node

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/fsm"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// peerServer serves hsmv1.PeerService: calls between the cluster's HSMs.
type peerServer struct {
	hsmv1.UnsafePeerServiceServer
	n *Node
}

func (s *peerServer) requireMember(ctx context.Context) error {
	if s.n.id.callerFrom(ctx).kind != callerMember {
		return fmt.Errorf("%w: this call needs the cluster certificate", ErrForbidden)
	}
	return nil
}

// ApplyCommand applies a command forwarded by a follower. This HSM must be
// the leader: it does not forward again, so a stale leader hint costs the
// follower one retry rather than a loop.
func (s *peerServer) ApplyCommand(ctx context.Context, req *hsmv1.ApplyCommandRequest) (*hsmv1.ApplyCommandResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, toStatus(err)
	}
	if _, err := fsm.Decode(req.GetCommand()); err != nil {
		return nil, toStatus(invalid("command does not decode"))
	}
	r, err := s.n.raftNode()
	if err != nil {
		return nil, toStatus(err)
	}
	if r.State() != raft.Leader {
		return nil, toStatus(raft.ErrNotLeader)
	}
	res, index, err := s.n.applyLocal(ctx, r, req.GetCommand())
	if err != nil {
		return nil, toStatus(err)
	}
	b, err := proto.Marshal(res)
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.ApplyCommandResponse{Result: b, Index: index}, nil
}

// FetchClusterSecrets gives an admitted HSM the cluster secrets. The caller
// proves it is that HSM with its device certificate, whose fingerprint the
// control plane recorded with AdmitMember.
func (s *peerServer) FetchClusterSecrets(ctx context.Context, req *hsmv1.FetchClusterSecretsRequest) (*hsmv1.FetchClusterSecretsResponse, error) {
	c := s.n.id.callerFrom(ctx)
	if c.kind != callerHardware {
		return nil, toStatus(fmt.Errorf("%w: present a device certificate", ErrForbidden))
	}
	m, ok := s.n.db.Member(req.GetNodeId())
	if !ok || subtle.ConstantTimeCompare(m.GetDeviceCertSha256(), c.fingerprint[:]) != 1 {
		s.n.log.Warn("secrets refused to an HSM that is not admitted", "node", req.GetNodeId())
		return nil, toStatus(fmt.Errorf("%w: HSM %q is not admitted with this device certificate", ErrForbidden, req.GetNodeId()))
	}
	secrets, err := barrier.LoadSecrets(s.n.cfg.DataDir, s.n.deviceKey)
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("cluster secrets sent to an admitted HSM", "node", req.GetNodeId())
	return &hsmv1.FetchClusterSecretsResponse{
		ClusterKeyPkcs8: secrets.ClusterKeyPKCS8, DomainKey: secrets.DomainKey,
		ClusterCertPem: secrets.ClusterCertPEM, TrustAnchorPem: secrets.TrustAnchorPEM, ClusterId: secrets.ClusterID,
	}, nil
}

// AddVoter adds an admitted member to the Raft configuration; on a follower
// it is refused with Unavailable and the caller tries another member.
func (s *peerServer) AddVoter(ctx context.Context, req *hsmv1.AddVoterRequest) (*hsmv1.AddVoterResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, toStatus(err)
	}
	m, ok := s.n.db.Member(req.GetNodeId())
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: HSM %q is not admitted", ErrForbidden, req.GetNodeId()))
	}
	r, err := s.n.raftNode()
	if err != nil {
		return nil, toStatus(err)
	}
	if r.State() != raft.Leader {
		return nil, toStatus(raft.ErrNotLeader)
	}
	f := r.AddVoter(raft.ServerID(m.GetNodeId()), raft.ServerAddress(m.GetRaftAddress()), 0, 10*time.Second)
	if err := f.Error(); err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("voter added", "node", m.GetNodeId(), "az", m.GetAz())
	return &hsmv1.AddVoterResponse{}, nil
}
