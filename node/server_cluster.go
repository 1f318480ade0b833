package node

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/audit"
	"github.com/hsmsim/hsmsim/node/barrier"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// clusterServer serves hsmv1.ClusterService: the control plane's calls.
type clusterServer struct {
	hsmv1.UnsafeClusterServiceServer
	n *Node
}

// requireHardware refuses callers without a hardware CA certificate.
func (n *Node) requireHardware(ctx context.Context) (caller, error) {
	c := n.id.callerFrom(ctx)
	if c.kind != callerHardware {
		return c, fmt.Errorf("%w: this call needs a control-plane certificate", ErrForbidden)
	}
	return c, nil
}

func (s *clusterServer) GetStatus(ctx context.Context, _ *hsmv1.GetStatusRequest) (*hsmv1.GetStatusResponse, error) {
	return s.n.Status(), nil
}

// Status reports the HSM's identity, Raft state and counts.
func (n *Node) Status() *hsmv1.GetStatusResponse {
	ci := n.db.Cluster()
	counts := n.db.Counts()
	st := &hsmv1.GetStatusResponse{
		NodeId:           n.cfg.NodeID,
		Az:               n.cfg.AZ,
		ClusterId:        n.cfg.ClusterID,
		State:            "uninitialized",
		RaftState:        "None",
		AppliedIndex:     n.fsm.AppliedIndex(),
		KeyCount:         uint32(counts.Keys),
		UserCount:        uint32(counts.Users),
		SessionCount:     uint32(n.sessions.count()),
		DeviceCertSha256: n.DeviceCertSHA256(),
	}
	_, _, st.CertificateId = n.id.clusterIdentity()
	switch ci.State {
	case hsmfsmv1.ClusterState_CLUSTER_STATE_INITIALIZED:
		st.State = "initialized"
	case hsmfsmv1.ClusterState_CLUSTER_STATE_ACTIVE:
		st.State = "active"
	}
	r, err := n.raftNode()
	if err != nil {
		return st
	}
	st.RaftState = r.State().String()
	stats := r.Stats()
	fmt.Sscan(stats["term"], &st.Term)
	fmt.Sscan(stats["commit_index"], &st.CommitIndex)
	st.AppliedIndex = n.replicaApplied(r)
	leaderAddr, leaderID := r.LeaderWithID()
	st.LeaderId, st.LeaderAddress = string(leaderID), string(leaderAddr)
	members := map[string]*hsmfsmv1.Member{}
	for _, m := range n.db.Members() {
		members[m.GetNodeId()] = m
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			p := &hsmv1.PeerStatus{
				NodeId: string(srv.ID), RaftAddress: string(srv.Address), Voter: srv.Suffrage == raft.Voter,
				Leader: srv.ID == leaderID, Blocked: n.faults.Blocked(string(srv.Address)),
			}
			p.Health = n.health.of(r, raft.ServerID(n.cfg.NodeID), srv.ID, p.Blocked, n.cfg.HeartbeatTimeout)
			if m, ok := members[string(srv.ID)]; ok {
				p.Az, p.ApiAddress = m.GetAz(), m.GetApiAddress()
			}
			st.Peers = append(st.Peers, p)
		}
	}
	return st
}

func (s *clusterServer) GetClusterCsr(ctx context.Context, _ *hsmv1.GetClusterCsrRequest) (*hsmv1.GetClusterCsrResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.csrPEM == "" || s.n.raft != nil {
		return nil, toStatus(ErrAlreadyInitialized)
	}
	return &hsmv1.GetClusterCsrResponse{CsrPem: s.n.csrPEM}, nil
}

func (s *clusterServer) InitializeCluster(ctx context.Context, req *hsmv1.InitializeClusterRequest) (*hsmv1.InitializeClusterResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.InitializeClusterResponse{}, toStatus(s.n.initialize(ctx, req))
}

// initialize checks the signed cluster certificate against the CSR and the
// trust anchor, then creates the domain key, bootstraps Raft and records the
// cluster. Every check comes before the first side effect.
func (n *Node) initialize(ctx context.Context, req *hsmv1.InitializeClusterRequest) error {
	n.mu.Lock()
	csrKey, member := n.csrKey, n.raft != nil || n.initDone
	n.mu.Unlock()
	if member || csrKey == nil {
		return ErrAlreadyInitialized
	}
	if req.GetClusterId() != n.cfg.ClusterID {
		return invalid(fmt.Sprintf("cluster id %q is not this HSM's cluster", req.GetClusterId()))
	}
	cert, err := checkClusterCert(req.GetTrustAnchorPem(), req.GetSignedCertPem(), n.cfg.ClusterID, time.Now())
	if err != nil {
		return err
	}
	if !csrKey.PublicKey.Equal(cert.PublicKey) {
		return invalid("the signed certificate is not for this cluster's CSR: its public key differs")
	}
	n.mu.Lock()
	if n.initDone {
		n.mu.Unlock()
		return ErrAlreadyInitialized
	}
	n.initDone = true
	n.mu.Unlock()

	domain, err := cryptocore.RandomBytes(cryptocore.KeySize)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(csrKey)
	if err != nil {
		return err
	}
	secrets := &barrier.Secrets{
		ClusterID: n.cfg.ClusterID, DomainKey: domain, ClusterKeyPKCS8: keyDER,
		ClusterCertPEM: req.GetSignedCertPem(), TrustAnchorPEM: req.GetTrustAnchorPem(),
	}
	if err := barrier.SaveSecrets(n.cfg.DataDir, n.deviceKey, secrets); err != nil {
		return err
	}
	if err := n.becomeMember(secrets, true); err != nil {
		return err
	}
	hash, err := cryptocore.HashPassword([]byte(PreCOPassword), n.cfg.PasswordParams)
	if err != nil {
		return err
	}
	res, _, err := n.propose(ctx, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_InitCluster{InitCluster: &hsmfsmv1.InitCluster{
		ClusterId: n.cfg.ClusterID, ClusterCertPem: req.GetSignedCertPem(), TrustAnchorPem: req.GetTrustAnchorPem(),
		AdminUsername: AdminUsername, AdminPasswordHash: hash, FirstMember: n.selfMember(),
	}}})
	if err != nil {
		return err
	}
	n.log.Info("cluster initialized", "cluster_id", n.cfg.ClusterID)
	err = resultError(res)
	n.record(audit.EventClusterInit, "", err, "cluster_id", n.cfg.ClusterID)
	return err
}

func (n *Node) selfMember() *hsmfsmv1.Member {
	return &hsmfsmv1.Member{
		NodeId: n.cfg.NodeID, Az: n.cfg.AZ, RaftAddress: n.RaftAddr(), ApiAddress: n.APIAddr(),
		DeviceCertSha256: n.DeviceCertSHA256(),
	}
}

// checkClusterCert checks what InitializeCluster needs (CloudHSM's rules):
// the trust anchor is a self-signed CA certificate, it directly signed the
// cluster certificate, the cluster certificate names the cluster, and both
// are valid now.
func checkClusterCert(anchorPEM, certPEM, clusterID string, now time.Time) (*x509.Certificate, error) {
	anchor, err := parseSingleCert("trust anchor", anchorPEM)
	if err != nil {
		return nil, invalid(err.Error())
	}
	cert, err := parseSingleCert("signed certificate", certPEM)
	if err != nil {
		return nil, invalid(err.Error())
	}
	// The CA check comes first: CheckSignatureFrom also refuses a non-CA
	// issuer, which would report a self-signed leaf as not self-signed.
	switch {
	case !anchor.BasicConstraintsValid || !anchor.IsCA:
		return nil, invalid("the trust anchor is not a CA certificate (basic constraints CA:TRUE)")
	case subtle.ConstantTimeCompare(anchor.RawSubject, anchor.RawIssuer) != 1 || anchor.CheckSignatureFrom(anchor) != nil:
		return nil, invalid("the trust anchor is not a self-signed certificate")
	case cert.CheckSignatureFrom(anchor) != nil:
		return nil, invalid("the signed certificate was not signed by the trust anchor")
	case cert.Subject.CommonName != clusterID:
		return nil, invalid(fmt.Sprintf("the signed certificate names %q, not the cluster %q", cert.Subject.CommonName, clusterID))
	case now.Before(anchor.NotBefore) || now.After(anchor.NotAfter):
		return nil, invalid("the trust anchor is not valid now")
	case now.Before(cert.NotBefore) || now.After(cert.NotAfter):
		return nil, invalid("the signed certificate is not valid now")
	}
	return cert, nil
}

func (s *clusterServer) AdmitMember(ctx context.Context, req *hsmv1.AdmitMemberRequest) (*hsmv1.AdmitMemberResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	switch {
	case req.GetNodeId() == "":
		return nil, toStatus(invalid("node_id is required"))
	case req.GetRaftAddress() == "" || req.GetApiAddress() == "":
		return nil, toStatus(invalid("raft_address and api_address are required"))
	case len(req.GetDeviceCertSha256()) != 32:
		return nil, toStatus(invalid("device_cert_sha256 must be 32 bytes"))
	}
	res, _, err := s.n.propose(ctx, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_AdmitMember{AdmitMember: &hsmfsmv1.AdmitMember{
		Member: &hsmfsmv1.Member{NodeId: req.GetNodeId(), Az: req.GetAz(), RaftAddress: req.GetRaftAddress(),
			ApiAddress: req.GetApiAddress(), DeviceCertSha256: req.GetDeviceCertSha256()},
	}}})
	if err == nil {
		err = resultError(res)
	}
	s.n.record(audit.EventMemberAdd, "", err, "node_id", req.GetNodeId(), "az", req.GetAz())
	return &hsmv1.AdmitMemberResponse{}, toStatus(err)
}

func (s *clusterServer) RemoveMember(ctx context.Context, req *hsmv1.RemoveMemberRequest) (*hsmv1.RemoveMemberResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	if req.GetNodeId() == "" {
		return nil, toStatus(invalid("node_id is required"))
	}
	err := s.n.removeMember(ctx, req.GetNodeId())
	s.n.record(audit.EventMemberRemove, "", err, "node_id", req.GetNodeId())
	return &hsmv1.RemoveMemberResponse{}, toStatus(err)
}

// removeMember removes a server from Raft (on the leader, or via it) and
// then from the member list.
func (n *Node) removeMember(ctx context.Context, nodeID string) error {
	r, err := n.raftNode()
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return fmt.Errorf("%w: send RemoveMember to the leader", ErrNoLeader)
	}
	if err := r.RemoveServer(raft.ServerID(nodeID), 0, 10*time.Second).Error(); err != nil {
		return err
	}
	res, _, err := n.propose(ctx, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RemoveMember{RemoveMember: &hsmfsmv1.RemoveMember{NodeId: nodeID}}})
	if err != nil {
		return err
	}
	return resultError(res)
}

// CreateBackup backs up this HSM's replica, on the leader or any member.
func (s *clusterServer) CreateBackup(ctx context.Context, _ *hsmv1.CreateBackupRequest) (*hsmv1.CreateBackupResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.n.createBackup()
	if err != nil {
		s.n.record(eventBackupCreate, "", err)
		return nil, toStatus(err)
	}
	s.n.record(eventBackupCreate, "", nil, "index", fmt.Sprint(resp.GetIndex()), "certificate_id", resp.GetCertificateId())
	s.n.log.Info("backup created", "index", resp.GetIndex(), "certificate_id", resp.GetCertificateId(), "bytes", len(resp.GetBackup()))
	return resp, nil
}

func (s *clusterServer) SetFaults(ctx context.Context, req *hsmv1.SetFaultsRequest) (*hsmv1.SetFaultsResponse, error) {
	if _, err := s.n.requireHardware(ctx); err != nil {
		return nil, toStatus(err)
	}
	for _, f := range req.GetFaults() {
		if f.GetPeer() == "" {
			return nil, toStatus(invalid("every fault needs a peer"))
		}
		if f.GetDelayMs() > 60_000 {
			return nil, toStatus(invalid("delay_ms must be at most 60000"))
		}
	}
	s.n.faults.Heal()
	for _, f := range req.GetFaults() {
		if f.GetBlocked() {
			s.n.faults.Block(f.GetPeer())
		}
		if f.GetDelayMs() > 0 {
			s.n.faults.Delay(f.GetPeer(), time.Duration(f.GetDelayMs())*time.Millisecond)
		}
	}
	s.n.log.Info("faults set", "count", len(req.GetFaults()))
	return &hsmv1.SetFaultsResponse{}, nil
}
