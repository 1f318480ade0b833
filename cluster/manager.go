package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Manager runs the CloudHSM lifecycle: it keeps the records in a Store,
// starts and stops HSMs through a Provisioner and drives them through their
// ClusterService as the control plane.
type Manager struct {
	store *Store
	prov  Provisioner
	pki   *PKI
	log   hclog.Logger
	now   func() time.Time
}

// NewManager returns a Manager.
func NewManager(store *Store, prov Provisioner, pki *PKI, log hclog.Logger) *Manager {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Manager{store: store, prov: prov, pki: pki, log: log.Named("control-plane"), now: time.Now}
}

// Store is the Manager's store.
func (m *Manager) Store() *Store { return m.store }

// PKI is the deployment's hardware PKI.
func (m *Manager) PKI() *PKI { return m.pki }

// CreateClusterInput describes a new cluster.
type CreateClusterInput struct {
	// AZs are the availability zones of the cluster's subnets (1..10, distinct).
	AZs []string
	// SourceBackupID creates the cluster from a backup.
	SourceBackupID string
	// BackupRetentionDays is 7..379; 0 means the default (90).
	BackupRetentionDays int
	Tags                map[string]string
}

// CreateCluster records a new cluster. It has no HSMs yet: UNINITIALIZED,
// or, from a backup, waiting for its first HSM to restore it.
func (m *Manager) CreateCluster(ctx context.Context, in CreateClusterInput) (*Cluster, error) {
	if len(in.AZs) < 1 || len(in.AZs) > 10 {
		return nil, fmt.Errorf("%w: a cluster needs 1 to 10 subnets", ErrInvalidRequest)
	}
	seen := map[string]bool{}
	for _, az := range in.AZs {
		if seen[az] {
			return nil, fmt.Errorf("%w: at most one subnet per availability zone (%s twice)", ErrInvalidRequest, az)
		}
		seen[az] = true
	}
	if in.BackupRetentionDays == 0 {
		in.BackupRetentionDays = DefaultBackupRetentionDays
	}
	if in.BackupRetentionDays < 7 || in.BackupRetentionDays > 379 {
		return nil, fmt.Errorf("%w: backup retention must be 7 to 379 days", ErrInvalidRequest)
	}
	c := &Cluster{
		ClusterID: NewID("cluster"), State: ClusterUninitialized, CreatedAt: m.now().UTC(),
		HsmType: "hsm2m.medium", Mode: "FIPS", VpcID: newHexID("vpc", 17), SecurityGroup: newHexID("sg", 17),
		SubnetMapping: map[string]string{}, BackupRetentionDays: in.BackupRetentionDays, Tags: in.Tags,
	}
	for _, az := range in.AZs {
		c.SubnetMapping[az] = newHexID("subnet", 17)
	}
	c.CertificateID = c.ClusterID
	err := m.store.Update(func(st *State) error {
		if in.SourceBackupID != "" {
			b := st.Backup(in.SourceBackupID)
			if b == nil || b.State != BackupReady {
				return fmt.Errorf("%w: backup %s is not READY", ErrNotFound, in.SourceBackupID)
			}
			c.SourceBackupID = b.BackupID
			c.CertificateID = b.CertificateID
			if src := st.Cluster(b.ClusterID); src != nil {
				c.Certificate, c.TrustAnchor = src.Certificate, src.TrustAnchor
			}
		}
		st.Clusters = append(st.Clusters, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("cluster created", "cluster_id", c.ClusterID, "azs", in.AZs)
	return c, nil
}

// Cluster returns a cluster's record.
func (m *Manager) Cluster(id string) (*Cluster, error) {
	st, err := m.store.Load()
	if err != nil {
		return nil, err
	}
	c := st.Cluster(id)
	if c == nil || c.State == ClusterDeleted {
		return nil, fmt.Errorf("%w: cluster %s", ErrNotFound, id)
	}
	return c, nil
}

// CreateHsm adds an HSM in az. The first HSM of a new cluster starts
// uninitialized and yields the cluster CSR; the first HSM of a cluster made
// from a backup restores it; later HSMs join an initialized cluster: the
// control plane admits them on the leader and Raft populates them.
func (m *Manager) CreateHsm(ctx context.Context, clusterID, az string) (*HSM, error) {
	c, err := m.Cluster(clusterID)
	if err != nil {
		return nil, err
	}
	subnet, ok := c.SubnetMapping[az]
	if !ok {
		return nil, fmt.Errorf("%w: availability zone %s has no subnet in cluster %s", ErrInvalidRequest, az, clusterID)
	}
	spec := HSMSpec{HsmID: NewID("hsm"), ClusterID: clusterID, AZ: az}
	live := c.ActiveHsms()
	switch {
	case c.State == ClusterDeleteInProgress:
		return nil, fmt.Errorf("%w: cluster %s is being deleted", ErrInvalidRequest, clusterID)
	case len(c.Hsms) > 0 && c.State == ClusterUninitialized:
		return nil, fmt.Errorf("%w: cluster %s is not initialized; it can have only one HSM until it is", ErrInvalidRequest, clusterID)
	case len(live) == 0 && c.SourceBackupID != "":
		st, err := m.store.Load()
		if err != nil {
			return nil, err
		}
		spec.RestoreFrom = st.Backup(c.SourceBackupID).File
	case len(live) > 0:
		spec.Join = &JoinSpec{TrustAnchorPEM: c.TrustAnchor, CertificateID: c.CertificateID}
		for _, h := range live {
			spec.Join.Addrs = append(spec.Join.Addrs, h.Runtime.APIAddr)
		}
	case len(c.Hsms) > 0:
		return nil, fmt.Errorf("%w: cluster %s has no active HSM to join", ErrInvalidRequest, clusterID)
	}
	h := &HSM{HsmID: spec.HsmID, ClusterID: clusterID, AvailabilityZone: az, SubnetID: subnet,
		EniID: newHexID("eni", 17), State: HsmCreateInProgress}
	rt, err := m.prov.Start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("%w: start HSM: %w", ErrHSM, err)
	}
	h.Runtime = rt
	h.EniIP = hostOf(rt.APIAddr)
	if spec.Join != nil {
		if err := m.admit(ctx, c, h); err != nil {
			m.prov.Stop(ctx, rt)
			return nil, err
		}
	}
	var csr string
	if spec.Join == nil && spec.RestoreFrom == "" {
		if csr, err = m.fetchCSR(ctx, h); err != nil {
			m.prov.Stop(ctx, rt)
			return nil, err
		}
	}
	h.State = HsmActive
	err = m.store.Update(func(st *State) error {
		sc := st.Cluster(clusterID)
		if sc == nil {
			return fmt.Errorf("%w: cluster %s", ErrNotFound, clusterID)
		}
		sc.Hsms = append(sc.Hsms, h)
		if csr != "" {
			sc.CSR = csr
		}
		if spec.RestoreFrom != "" {
			sc.State = ClusterActive
		}
		return nil
	})
	if err != nil {
		m.prov.Stop(ctx, rt)
		return nil, err
	}
	m.log.Info("hsm created", "cluster_id", clusterID, "hsm_id", h.HsmID, "az", az, "api", rt.APIAddr)
	if spec.Join != nil && c.State == ClusterActive {
		m.backupAfter(ctx, clusterID, "hsm_add")
	}
	return h, nil
}

// admit records the new HSM on the leader and waits until it has joined.
func (m *Manager) admit(ctx context.Context, c *Cluster, h *HSM) error {
	conn, err := m.dial(c, h)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := hsmv1.NewClusterServiceClient(conn).GetStatus(ctx, &hsmv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("%w: new HSM status: %w", ErrHSM, err)
	}
	leader, err := m.leader(ctx, c)
	if err != nil {
		return err
	}
	defer leader.Close()
	_, err = hsmv1.NewClusterServiceClient(leader).AdmitMember(ctx, &hsmv1.AdmitMemberRequest{
		NodeId: h.HsmID, Az: h.AvailabilityZone, RaftAddress: h.Runtime.RaftAddr, ApiAddress: h.Runtime.APIAddr,
		DeviceCertSha256: st.GetDeviceCertSha256(),
	})
	if err != nil {
		return fmt.Errorf("%w: admit %s: %w", ErrHSM, h.HsmID, err)
	}
	return poll(ctx, 30*time.Second, func() bool {
		s, err := hsmv1.NewClusterServiceClient(conn).GetStatus(ctx, &hsmv1.GetStatusRequest{})
		return err == nil && s.GetRaftState() == "Follower" && s.GetLeaderId() != ""
	}, fmt.Sprintf("HSM %s did not join", h.HsmID))
}

func (m *Manager) fetchCSR(ctx context.Context, h *HSM) (string, error) {
	conn, err := m.pki.DialHSM(h.Runtime.APIAddr, "", "")
	if err != nil {
		return "", err
	}
	defer conn.Close()
	resp, err := hsmv1.NewClusterServiceClient(conn).GetClusterCsr(ctx, &hsmv1.GetClusterCsrRequest{})
	if err != nil {
		return "", fmt.Errorf("%w: cluster CSR: %w", ErrHSM, err)
	}
	return resp.GetCsrPem(), nil
}

// InitializeCluster hands the signed cluster certificate and the trust
// anchor to the cluster's HSM, which checks them; on success the cluster is
// INITIALIZED. A refusal leaves every record as it was.
func (m *Manager) InitializeCluster(ctx context.Context, clusterID, signedCert, trustAnchor string) (*Cluster, error) {
	c, err := m.Cluster(clusterID)
	if err != nil {
		return nil, err
	}
	if c.State != ClusterUninitialized {
		return nil, fmt.Errorf("%w: cluster %s is %s, not UNINITIALIZED", ErrInvalidRequest, clusterID, c.State)
	}
	if len(c.Hsms) == 0 {
		return nil, fmt.Errorf("%w: cluster %s has no HSM to initialize", ErrInvalidRequest, clusterID)
	}
	conn, err := m.pki.DialHSM(c.Hsms[0].Runtime.APIAddr, "", "")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_, err = hsmv1.NewClusterServiceClient(conn).InitializeCluster(ctx, &hsmv1.InitializeClusterRequest{
		ClusterId: clusterID, SignedCertPem: signedCert, TrustAnchorPem: trustAnchor,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRequest, status.Convert(err).Message())
	}
	var out *Cluster
	err = m.store.Update(func(st *State) error {
		sc := st.Cluster(clusterID)
		sc.State, sc.Certificate, sc.TrustAnchor, sc.CSR = ClusterInitialized, signedCert, trustAnchor, ""
		out = sc
		return nil
	})
	m.log.Info("cluster initialized", "cluster_id", clusterID)
	return out, err
}

// Refresh asks every HSM of the cluster for its status and moves the
// records: an HSM that does not answer is DEGRADED (and so is its cluster);
// an INITIALIZED cluster whose HSMs report activation becomes ACTIVE, which
// takes a backup. It returns the statuses by HSM id.
func (m *Manager) Refresh(ctx context.Context, clusterID string) (map[string]*hsmv1.GetStatusResponse, error) {
	c, err := m.Cluster(clusterID)
	if err != nil {
		return nil, err
	}
	statuses := map[string]*hsmv1.GetStatusResponse{}
	for _, h := range c.Hsms {
		if s, err := m.hsmStatus(ctx, c, h); err == nil {
			statuses[h.HsmID] = s
		}
	}
	activated := false
	err = m.store.Update(func(st *State) error {
		sc := st.Cluster(clusterID)
		if sc == nil {
			return nil
		}
		down := 0
		for _, h := range sc.Hsms {
			switch s, ok := statuses[h.HsmID]; {
			case !ok:
				h.State, h.StateMessage = HsmDegraded, "the HSM does not answer"
				down++
			default:
				h.State, h.StateMessage = HsmActive, ""
				if sc.State == ClusterInitialized && s.GetState() == "active" {
					sc.State, activated = ClusterActive, true
				}
			}
		}
		switch {
		case sc.State == ClusterActive && down > 0:
			sc.State, sc.StateMessage = ClusterDegraded, fmt.Sprintf("%d of %d HSMs do not answer", down, len(sc.Hsms))
		case sc.State == ClusterDegraded && down == 0:
			sc.State, sc.StateMessage = ClusterActive, ""
		}
		return nil
	})
	if activated {
		m.log.Info("cluster activated", "cluster_id", clusterID)
		m.backupAfter(ctx, clusterID, "activation")
	}
	return statuses, err
}

func (m *Manager) hsmStatus(ctx context.Context, c *Cluster, h *HSM) (*hsmv1.GetStatusResponse, error) {
	conn, err := m.dial(c, h)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return hsmv1.NewClusterServiceClient(conn).GetStatus(ctx, &hsmv1.GetStatusRequest{})
}

// DeleteHsm removes an HSM from its Raft group and stops it. Removing an
// HSM from an active cluster takes a backup first (the last one's backup is
// what a new first HSM restores, as in CloudHSM).
func (m *Manager) DeleteHsm(ctx context.Context, clusterID, hsmID string) error {
	c, err := m.Cluster(clusterID)
	if err != nil {
		return err
	}
	h := c.Hsm(hsmID)
	if h == nil {
		return fmt.Errorf("%w: HSM %s in cluster %s", ErrNotFound, hsmID, clusterID)
	}
	if (c.State == ClusterActive || c.State == ClusterDegraded) && len(c.Hsms) > 1 {
		leader, err := m.leader(ctx, c)
		if err != nil {
			return err
		}
		_, err = hsmv1.NewClusterServiceClient(leader).RemoveMember(ctx, &hsmv1.RemoveMemberRequest{NodeId: hsmID})
		leader.Close()
		if err != nil {
			return fmt.Errorf("%w: remove %s from the Raft group: %w", ErrHSM, hsmID, err)
		}
	}
	if c.State == ClusterActive || c.State == ClusterDegraded {
		m.backupAfter(ctx, clusterID, "hsm_remove")
	}
	if err := m.prov.Stop(ctx, h.Runtime); err != nil {
		return err
	}
	err = m.store.Update(func(st *State) error {
		sc := st.Cluster(clusterID)
		sc.Hsms = slices.DeleteFunc(sc.Hsms, func(x *HSM) bool { return x.HsmID == hsmID })
		return nil
	})
	m.log.Info("hsm deleted", "cluster_id", clusterID, "hsm_id", hsmID)
	return err
}

// DeleteCluster deletes a cluster that has no HSMs.
func (m *Manager) DeleteCluster(ctx context.Context, clusterID string) (*Cluster, error) {
	var out *Cluster
	err := m.store.Update(func(st *State) error {
		c := st.Cluster(clusterID)
		if c == nil || c.State == ClusterDeleted {
			return fmt.Errorf("%w: cluster %s", ErrNotFound, clusterID)
		}
		if len(c.Hsms) > 0 {
			return fmt.Errorf("%w: delete the cluster's %d HSMs first", ErrInvalidRequest, len(c.Hsms))
		}
		c.State = ClusterDeleted
		out = c
		return nil
	})
	return out, err
}

// StopAll stops every process of the deployment: its other processes (the
// KMS endpoint) first, then every HSM.
func (m *Manager) StopAll(ctx context.Context) error {
	st, err := m.store.Load()
	if err != nil {
		return err
	}
	for name, rt := range st.Processes {
		if err := m.prov.Stop(ctx, rt); err != nil {
			m.log.Warn("stop process", "name", name, "error", err)
		}
	}
	for _, c := range st.Clusters {
		for _, h := range c.Hsms {
			if err := m.prov.Stop(ctx, h.Runtime); err != nil {
				m.log.Warn("stop hsm", "hsm_id", h.HsmID, "error", err)
			}
		}
	}
	return nil
}

// leader returns a connection to the cluster's Raft leader.
func (m *Manager) leader(ctx context.Context, c *Cluster) (*grpc.ClientConn, error) {
	var found *grpc.ClientConn
	err := poll(ctx, 15*time.Second, func() bool {
		for _, h := range c.Hsms {
			s, err := m.hsmStatus(ctx, c, h)
			if err == nil && s.GetRaftState() == "Leader" {
				conn, err := m.dial(c, h)
				if err == nil {
					found = conn
					return true
				}
			}
		}
		return false
	}, fmt.Sprintf("cluster %s has no Raft leader", c.ClusterID))
	return found, err
}

func (m *Manager) dial(c *Cluster, h *HSM) (*grpc.ClientConn, error) {
	return m.pki.DialHSM(h.Runtime.APIAddr, c.TrustAnchor, c.CertificateID)
}

// backupAfter takes a backup after a lifecycle event; a failure is logged,
// as the event itself succeeded.
func (m *Manager) backupAfter(ctx context.Context, clusterID, trigger string) {
	if _, err := m.CreateBackup(ctx, clusterID, trigger); err != nil {
		m.log.Warn("backup after a lifecycle event failed", "cluster_id", clusterID, "trigger", trigger, "error", err)
	}
}

// poll calls f until it reports true, the timeout passes or ctx ends.
func poll(ctx context.Context, timeout time.Duration, f func() bool, what string) error {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s within %v", ErrHSM, what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func hostOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i]
		}
	}
	return addr
}
