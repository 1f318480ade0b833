// Package nodetest runs in-process HSM clusters for tests: real nodes, real
// Raft over TLS on 127.0.0.1:0, short timeouts, t.TempDir data directories,
// logs to t.Log. It plays the control plane (hardware CA, AdmitMember) and
// the customer (customer CA, InitializeCluster, activation).
package nodetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/transport"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// AdminPassword is the admin password the harness activates clusters with.
const AdminPassword = "admin-password-1"

// CheapPasswords keeps Argon2id fast in tests; the format is the real one.
var CheapPasswords = cryptocore.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

// Cluster is an in-process HSM cluster.
type Cluster struct {
	t testing.TB
	// Configure, when set, adjusts each new node's configuration (for
	// example a small SnapshotThreshold) before it starts.
	Configure func(*node.Config)
	// ClusterID is the control plane's id of the cluster.
	ClusterID string
	// CertificateID is the cluster certificate's common name: ClusterID,
	// except in a cluster restored from a backup, where it is the source's.
	CertificateID string
	HardwareCA    *testpki.CA
	CustomerCA    *testpki.CA
	// BackupKey is the deployment's backup key, given to every node.
	BackupKey []byte
	control   tls.Certificate
	Nodes     []*Node
}

// Node is one HSM of a Cluster.
type Node struct {
	*node.Node
	// Index is the node's position in Cluster.Nodes.
	Index   int
	cfg     node.Config
	apiAddr string
	running bool
}

// AZs are the availability zones nodes are spread over, round robin.
var AZs = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// New starts an initialized, activated cluster of n HSMs, one per AZ in
// turn, and waits until every HSM is a voter and has applied the same index.
// configure, when given, adjusts every node's configuration.
func New(t testing.TB, n int, configure ...func(*node.Config)) *Cluster {
	t.Helper()
	c := NewUninitialized(t, configure...)
	c.Initialize()
	c.Activate()
	for i := 1; i < n; i++ {
		c.AddNode()
	}
	c.WaitConverged()
	return c
}

// NewUninitialized starts one uninitialized HSM.
func NewUninitialized(t testing.TB, configure ...func(*node.Config)) *Cluster {
	t.Helper()
	hw := testpki.NewCA(t, "hsmsim hardware CA")
	backupKey, err := cryptocore.RandomBytes(cryptocore.KeySize)
	require.NoError(t, err)
	c := &Cluster{
		t: t, ClusterID: newClusterID(),
		HardwareCA: hw, CustomerCA: testpki.NewCA(t, "customer CA"), BackupKey: backupKey,
		control: hw.Issue(t, "control-plane", false),
	}
	c.CertificateID = c.ClusterID
	if len(configure) > 0 {
		c.Configure = configure[0]
	}
	c.startNode(nil)
	return c
}

// newClusterID returns a fresh cluster id in CloudHSM's format.
func newClusterID() string {
	b, err := cryptocore.RandomBytes(6)
	if err != nil {
		panic(err)
	}
	return "cluster-" + fmt.Sprintf("%x", b)[:11]
}

// Restore starts a new cluster of n HSMs from backup, as the control plane
// does for a cluster created from a backup: the deployment's PKI and backup
// key are src's, the cluster id is new; the first HSM restores the backup
// and the others join. It waits until every HSM has converged.
func Restore(t testing.TB, src *Cluster, backup []byte, n int, configure ...func(*node.Config)) *Cluster {
	t.Helper()
	c, err := TryRestore(t, src, backup, configure...)
	require.NoError(t, err, "restore the backup")
	for i := 1; i < n; i++ {
		c.AddNode()
	}
	c.WaitConverged()
	return c
}

// TryRestore starts the first HSM of a new cluster restoring backup (see
// Restore) and returns what its Start returned; on an error the HSM is not
// running.
func TryRestore(t testing.TB, src *Cluster, backup []byte, configure ...func(*node.Config)) (*Cluster, error) {
	t.Helper()
	c := &Cluster{
		t: t, ClusterID: newClusterID(), CertificateID: src.CertificateID,
		HardwareCA: src.HardwareCA, CustomerCA: src.CustomerCA, BackupKey: src.BackupKey, control: src.control,
	}
	if len(configure) > 0 {
		c.Configure = configure[0]
	}
	cfg := c.newConfig(0, nil)
	cfg.RestoreFrom = backup
	nd := &Node{Index: 0, cfg: cfg}
	c.Nodes = append(c.Nodes, nd)
	if err := c.tryRun(nd); err != nil {
		return c, err
	}
	c.CertificateID = nd.Status().GetCertificateId()
	return c, nil
}

// Backup takes a backup on the leader with the control plane's certificate.
func (c *Cluster) Backup() []byte {
	c.t.Helper()
	resp, err := c.Control(c.Leader().Index).CreateBackup(context.Background(), &hsmv1.CreateBackupRequest{})
	require.NoError(c.t, err)
	require.Equal(c.t, c.CertificateID, resp.GetCertificateId())
	return resp.GetBackup()
}

// Config returns the configuration a new node at index i gets.
func (c *Cluster) newConfig(i int, join *node.JoinConfig) node.Config {
	cfg := node.DefaultConfig()
	cfg.NodeID = fmt.Sprintf("hsm-%d", i)
	cfg.AZ = AZs[i%len(AZs)]
	cfg.ClusterID = c.ClusterID
	cfg.DataDir = c.t.TempDir()
	cfg.DeviceCert = c.HardwareCA.Issue(c.t, cfg.NodeID, false)
	cfg.HardwareCA = c.HardwareCA.Cert
	cfg.BackupKey = c.BackupKey
	cfg.Join = join
	cfg.HeartbeatTimeout = 250 * time.Millisecond
	cfg.ElectionTimeout = 250 * time.Millisecond
	cfg.LeaderLeaseTimeout = 200 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.PasswordParams = CheapPasswords
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeID, Level: hclog.Info, Output: testWriter{c.t}})
	if c.Configure != nil {
		c.Configure(&cfg)
	}
	return cfg
}

func (c *Cluster) startNode(join *node.JoinConfig) *Node {
	c.t.Helper()
	cfg := c.newConfig(len(c.Nodes), join)
	nd := &Node{Index: len(c.Nodes), cfg: cfg}
	c.Nodes = append(c.Nodes, nd)
	c.run(nd)
	return nd
}

// run starts nd on its configuration, with fresh listeners on the same
// addresses after a restart.
func (c *Cluster) run(nd *Node) {
	c.t.Helper()
	require.NoError(c.t, c.tryRun(nd))
}

// tryRun is run that returns Start's error.
func (c *Cluster) tryRun(nd *Node) error {
	c.t.Helper()
	cfg := nd.cfg
	listenOn := func(addr string) net.Listener {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var ln net.Listener
		require.Eventually(c.t, func() bool {
			var err error
			ln, err = net.Listen("tcp", addr)
			return err == nil
		}, 5*time.Second, 10*time.Millisecond, "listen on %s", addr)
		return ln
	}
	cfg.APIListener = listenOn(cfg.AdvertiseAPI)
	cfg.RaftListener = listenOn(cfg.AdvertiseRaft)
	cfg.AdvertiseAPI, cfg.AdvertiseRaft = cfg.APIListener.Addr().String(), cfg.RaftListener.Addr().String()
	nd.cfg.AdvertiseAPI, nd.cfg.AdvertiseRaft = cfg.AdvertiseAPI, cfg.AdvertiseRaft
	n, err := node.New(cfg)
	if err != nil {
		cfg.APIListener.Close()
		cfg.RaftListener.Close()
		return err
	}
	if err := n.Start(context.Background()); err != nil {
		return err
	}
	nd.Node, nd.running, nd.apiAddr = n, true, cfg.AdvertiseAPI
	c.t.Cleanup(func() { c.Stop(nd.Index) })
	return nil
}

// Stop shuts node i down (its data stays).
func (c *Cluster) Stop(i int) {
	nd := c.Nodes[i]
	if !nd.running {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := nd.Close(ctx); err != nil {
		c.t.Logf("close %s: %v", nd.ID(), err)
	}
	nd.running = false
}

// Restart starts a stopped node i again from its data directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.run(c.Nodes[i])
}

// CutOff blocks node i's Raft links with every other node, on both sides,
// until Heal: it hears of no write. It replaces the nodes' link faults
// (ClusterService.SetFaults).
func (c *Cluster) CutOff(i int) {
	c.t.Helper()
	block := func(at int, peers ...int) {
		req := &hsmv1.SetFaultsRequest{}
		for _, p := range peers {
			req.Faults = append(req.Faults, &hsmv1.LinkFault{Peer: c.Nodes[p].RaftAddr(), Blocked: true})
		}
		_, err := c.Control(at).SetFaults(context.Background(), req)
		require.NoError(c.t, err, "faults of %s", c.Nodes[at].ID())
	}
	var others []int
	for j := range c.Nodes {
		if j != i {
			others = append(others, j)
			block(j, i)
		}
	}
	block(i, others...)
}

// Heal removes every running node's link faults, and returns the first
// error.
func (c *Cluster) Heal() error {
	var first error
	for i, nd := range c.Nodes {
		if !nd.running {
			continue
		}
		if _, err := c.Control(i).SetFaults(context.Background(), &hsmv1.SetFaultsRequest{}); err != nil && first == nil {
			first = fmt.Errorf("heal %s: %w", nd.ID(), err)
		}
	}
	return first
}

// Running reports whether node i is up.
func (c *Cluster) Running(i int) bool { return c.Nodes[i].running }

// DataDir is node i's data directory.
func (c *Cluster) DataDir(i int) string { return c.Nodes[i].cfg.DataDir }

// Initialize signs node 0's CSR with the customer CA and initializes the cluster.
func (c *Cluster) Initialize() {
	c.t.Helper()
	ctx := context.Background()
	cl := hsmv1.NewClusterServiceClient(c.controlConn(0))
	csr, err := cl.GetClusterCsr(ctx, &hsmv1.GetClusterCsrRequest{})
	require.NoError(c.t, err)
	block, _ := pem.Decode([]byte(csr.GetCsrPem()))
	require.NotNil(c.t, block)
	signed := c.CustomerCA.SignCSR(c.t, block.Bytes)
	_, err = cl.InitializeCluster(ctx, &hsmv1.InitializeClusterRequest{
		ClusterId: c.ClusterID, SignedCertPem: string(testpki.CertPEM(signed)), TrustAnchorPem: string(c.CustomerCA.CertPEM()),
	})
	require.NoError(c.t, err)
}

// Activate logs in as the unactivated admin and activates with AdminPassword.
func (c *Cluster) Activate() {
	c.t.Helper()
	ctx := c.Login(0, node.AdminUsername, node.PreCOPassword, hsmv1.Role_ROLE_UNACTIVATED_ADMIN)
	_, err := c.Client(0).ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: AdminPassword})
	require.NoError(c.t, err)
}

// AddNode starts a new HSM that joins the cluster: the control plane admits
// it on the leader and the HSM fetches the secrets and becomes a voter.
func (c *Cluster) AddNode() *Node {
	c.t.Helper()
	var addrs []string
	for _, nd := range c.Nodes {
		if nd.running {
			addrs = append(addrs, nd.apiAddr)
		}
	}
	nd := c.startNode(&node.JoinConfig{Addrs: addrs, TrustAnchorPEM: string(c.CustomerCA.CertPEM()), CertificateID: c.CertificateID})
	leader := c.Leader()
	_, err := hsmv1.NewClusterServiceClient(c.controlConn(leader.Index)).AdmitMember(context.Background(), &hsmv1.AdmitMemberRequest{
		NodeId: nd.ID(), Az: nd.cfg.AZ, RaftAddress: nd.RaftAddr(), ApiAddress: nd.APIAddr(), DeviceCertSha256: nd.DeviceCertSHA256(),
	})
	require.NoError(c.t, err)
	require.Eventually(c.t, func() bool {
		st := nd.Status()
		return st.GetRaftState() == "Follower" && st.GetState() == "active"
	}, 10*time.Second, 10*time.Millisecond, "node %s did not join", nd.ID())
	return nd
}

// Leader waits for a leader among the running nodes and returns it.
func (c *Cluster) Leader() *Node {
	c.t.Helper()
	var leader *Node
	require.Eventually(c.t, func() bool {
		for _, nd := range c.Nodes {
			if nd.running && nd.Status().GetRaftState() == "Leader" {
				leader = nd
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "no leader")
	return leader
}

// Followers returns the running nodes that are not the leader.
func (c *Cluster) Followers() []*Node {
	leader := c.Leader()
	var out []*Node
	for _, nd := range c.Nodes {
		if nd.running && nd != leader {
			out = append(out, nd)
		}
	}
	return out
}

// WaitConverged waits until the leader has committed its whole log and every
// running node has applied it.
func (c *Cluster) WaitConverged() {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		leader := c.Leader()
		commit := leader.Status().GetCommitIndex()
		// A new leader learns what is committed only once an entry of its
		// own term is (Raft §5.4.2): until then its commit index can lag
		// entries the cluster acknowledged, and is 0 after a restart.
		if commit < leader.LastIndex() {
			return false
		}
		for _, nd := range c.Nodes {
			if nd.running && nd.Status().GetAppliedIndex() < commit {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "nodes did not converge")
}

// Client returns an HsmService client for node i that verifies the cluster
// certificate against the customer CA, as a customer's client does.
func (c *Cluster) Client(i int) hsmv1.HsmServiceClient {
	return hsmv1.NewHsmServiceClient(c.conn(i, nil))
}

// Conn returns a new client connection to node i that verifies the
// cluster certificate as Client's do. The caller may close it (ending the
// sessions opened on it); it is closed at the end of the test otherwise.
func (c *Cluster) Conn(i int) *grpc.ClientConn {
	return c.conn(i, nil)
}

// Control returns a ClusterService client for node i with the control plane's certificate.
func (c *Cluster) Control(i int) hsmv1.ClusterServiceClient {
	return hsmv1.NewClusterServiceClient(c.controlConn(i))
}

func (c *Cluster) controlConn(i int) *grpc.ClientConn {
	return c.conn(i, &c.control)
}

// conn dials node i. Before initialization the HSM presents its device
// certificate (checked against the hardware CA); after, the cluster
// certificate (checked against the customer CA and the cluster id).
func (c *Cluster) conn(i int, clientCert *tls.Certificate) *grpc.ClientConn {
	c.t.Helper()
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // VerifyConnection checks the chain below.
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for j, pc := range cs.PeerCertificates {
				raw[j] = pc.Raw
			}
			if transport.VerifyClusterChain(raw, c.CustomerCA.Cert, c.CertificateID) == nil {
				return nil
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: c.HardwareCA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
	if clientCert != nil {
		conf.Certificates = []tls.Certificate{*clientCert}
	}
	cc, err := grpc.NewClient(c.Nodes[i].apiAddr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// Login logs in on node i and returns a context carrying the session.
func (c *Cluster) Login(i int, user, password string, role hsmv1.Role) context.Context {
	c.t.Helper()
	ctx, err := c.TryLogin(i, user, password, role)
	require.NoError(c.t, err)
	return ctx
}

// TryLogin is Login that returns the error.
func (c *Cluster) TryLogin(i int, user, password string, role hsmv1.Role) (context.Context, error) {
	resp, err := c.Client(i).Login(context.Background(), &hsmv1.LoginRequest{Username: user, Password: password, Role: role})
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(context.Background(), node.MetadataSession, resp.GetSession()), nil
}

// CreateCryptoUser creates a crypto user through an admin session on node i.
func (c *Cluster) CreateCryptoUser(i int, user, password string) {
	c.t.Helper()
	admin := c.Login(i, node.AdminUsername, AdminPassword, hsmv1.Role_ROLE_ADMIN)
	_, err := c.Client(i).CreateUser(admin, &hsmv1.CreateUserRequest{Username: user, Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: password})
	require.NoError(c.t, err)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
