package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/audit"
	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/fsm"
	"github.com/hsmsim/hsmsim/node/keydb"
	"github.com/hsmsim/hsmsim/node/metrics"
	"github.com/hsmsim/hsmsim/node/transport"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// PreCOPassword is the unactivated admin's password on a new cluster, as
// CloudHSM's PRECO user has ("password"); activation replaces it.
const PreCOPassword = "password"

// AdminUsername is the name of the cluster's first admin.
const AdminUsername = "admin"

// gRPC server tuning of the API listener.
const (
	// flowWindow is the fixed HTTP/2 flow-control window, per stream and
	// per connection, of the API server (1 MiB, 16 times gRPC's initial
	// 64 KiB, four times the largest message).
	flowWindow = 1 << 20
	// streamWorkers is how many goroutines serve calls; a call that finds
	// them all busy gets its own goroutine, as without workers.
	streamWorkers = 32
)

// Node is one HSM: a gRPC server, a Raft member and a replica of the
// cluster's sealed key database.
type Node struct {
	cfg Config
	log hclog.Logger

	id       *identity
	db       *keydb.DB
	fsm      *fsm.FSM
	barrier  *barrier.Barrier
	faults   *transport.Faults
	sessions *sessionTable
	peers    *peerPool
	health   *peerHealth

	deviceKey []byte

	apiLn, raftLn net.Listener
	grpc          *grpc.Server

	auditLog    *audit.Log
	registry    *prometheus.Registry
	metrics     *metrics.Metrics
	metricsSrv  *http.Server
	metricsAddr string

	// mu guards the fields below, which change at initialization and join.
	mu sync.Mutex
	// stopObserving ends the peer health observer.
	stopObserving func()
	raft          *raft.Raft
	raftNet       *raft.NetworkTransport
	store         *raftboltdb.BoltStore
	csrKey        *ecdsa.PrivateKey
	csrPEM        string
	initDone      bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates cfg and returns a Node that Start will run.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.Default()
	}
	log = log.Named("hsm").With("node_id", cfg.NodeID, "az", cfg.AZ)
	db := keydb.New()
	n := &Node{
		cfg:      cfg,
		log:      log,
		id:       newIdentity(cfg.DeviceCert, cfg.HardwareCA),
		db:       db,
		fsm:      fsm.New(db),
		barrier:  barrier.New(),
		faults:   new(transport.Faults),
		sessions: newSessionTable(cfg.MaxSessions),
	}
	n.peers = newPeerPool(n)
	n.health = newPeerHealth()
	return n, nil
}

// Start opens the listeners, loads the HSM's state from its data directory
// and serves. An HSM with cluster secrets resumes its Raft membership; one
// with a Join configuration joins in the background; otherwise it waits to
// be initialized.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.abortStart()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	dk, err := barrier.LoadOrCreateDeviceKey(n.cfg.DataDir)
	if err != nil {
		return err
	}
	n.deviceKey = dk
	if err := n.openObservability(); err != nil {
		return err
	}
	if n.apiLn, err = listen(n.cfg.APIListener, n.cfg.APIAddr); err != nil {
		return fmt.Errorf("node: api listener: %w", err)
	}
	if n.raftLn, err = listen(n.cfg.RaftListener, n.cfg.RaftAddr); err != nil {
		n.apiLn.Close()
		return fmt.Errorf("node: raft listener: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	restored := false
	secrets, err := barrier.LoadSecrets(n.cfg.DataDir, n.deviceKey)
	switch {
	case err == nil:
		if err := n.becomeMember(secrets, false); err != nil {
			return err
		}
	case errors.Is(err, barrier.ErrNoSecrets) && n.cfg.RestoreFrom != nil:
		if err := n.restoreBackup(ctx); err != nil {
			return err
		}
		restored = true
	case errors.Is(err, barrier.ErrNoSecrets):
		if err := n.newCSR(); err != nil {
			return err
		}
	default:
		return err
	}

	n.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.id.serverTLS())),
		grpc.ChainUnaryInterceptor(n.metrics.UnaryServerInterceptor(), n.faults.UnaryServerInterceptor(transport.PeerFromMetadata)),
		grpc.MaxRecvMsgSize(4<<20),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// probing, a PING and its ack per burst of small messages: extra
		// writes and wake-ups on the crypto path, for windows that a
		// loopback or LAN link never needs to grow.
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
		// Workers serve streams on goroutines that live on, instead of a new
		// goroutine (and its stack growth) per call.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.StatsHandler(&connTracker{sessions: n.sessions, ended: func(k int) {
			n.log.Info("client connection closed; its sessions ended", "sessions", k)
		}}),
	)
	hsmv1.RegisterHsmServiceServer(n.grpc, &hsmServer{n: n})
	hsmv1.RegisterClusterServiceServer(n.grpc, &clusterServer{n: n})
	hsmv1.RegisterPeerServiceServer(n.grpc, &peerServer{n: n})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(n.apiLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "error", err)
		}
	}()
	if err := n.serveMetrics(); err != nil {
		return err
	}
	if secrets == nil && n.cfg.Join != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.joinLoop()
		}()
	}
	n.log.Info("hsm started", "api", n.APIAddr(), "raft", n.RaftAddr(), "member", secrets != nil || restored)
	return nil
}

// Close stops serving, shuts Raft down and closes the stores. Sessions end.
func (n *Node) Close(ctx context.Context) error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	if n.grpc != nil {
		stopped := make(chan struct{})
		go func() {
			n.grpc.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			n.grpc.Stop()
		}
	}
	var errs []error
	n.mu.Lock()
	if n.raft != nil {
		n.stopObserving()
		errs = append(errs, n.raft.Shutdown().Error())
		errs = append(errs, n.raftNet.Close())
		errs = append(errs, n.store.Close())
	} else {
		errs = append(errs, n.raftLn.Close())
	}
	n.mu.Unlock()
	n.peers.close()
	errs = append(errs, n.closeObservability(ctx))
	n.wg.Wait()
	cryptocore.Zero(n.deviceKey)
	return errors.Join(errs...)
}

// abortStart releases what a failed Start acquired, so that nothing stays
// open; Close is then a no-op.
func (n *Node) abortStart() {
	if n.cancel != nil {
		n.cancel()
	}
	n.mu.Lock()
	if n.raft != nil {
		n.raft.Shutdown().Error()
		n.raftNet.Close()
		n.store.Close()
		n.raft = nil
	}
	n.mu.Unlock()
	for _, ln := range []net.Listener{n.apiLn, n.raftLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if n.grpc != nil {
		n.grpc.Stop()
	}
	n.closeObservability(context.Background())
	n.wg.Wait()
	n.cancel = nil
}

// APIAddr is the address clients reach this HSM at.
func (n *Node) APIAddr() string {
	if n.cfg.AdvertiseAPI != "" {
		return n.cfg.AdvertiseAPI
	}
	return n.apiLn.Addr().String()
}

// RaftAddr is the address peers reach this HSM's Raft at.
func (n *Node) RaftAddr() string {
	if n.cfg.AdvertiseRaft != "" {
		return n.cfg.AdvertiseRaft
	}
	return n.raftLn.Addr().String()
}

// now reads the HSM's clock (Config.Clock).
func (n *Node) now() time.Time {
	if n.cfg.Clock != nil {
		return n.cfg.Clock()
	}
	return time.Now()
}

// ID is the HSM's node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// DeviceCertSHA256 identifies the HSM's device certificate, for AdmitMember.
func (n *Node) DeviceCertSHA256() []byte {
	return n.id.deviceSum[:]
}

// Faults is the HSM's transport fault injector.
func (n *Node) Faults() *transport.Faults { return n.faults }

func listen(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// newCSR creates the cluster key pair and its CSR, naming the cluster id.
func (n *Node) newCSR() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("node: cluster key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: n.cfg.ClusterID, Organization: []string{"hsmsim"}, OrganizationalUnit: []string{"CloudHSM cluster"}},
	}, key)
	if err != nil {
		return fmt.Errorf("node: cluster csr: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.csrKey = key
	n.csrPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	return nil
}

// becomeMember installs the cluster secrets and starts Raft, bootstrapping
// a one-member cluster when bootstrap is set.
func (n *Node) becomeMember(s *barrier.Secrets, bootstrap bool) error {
	defer s.Zero()
	anchor, err := parseSingleCert("trust anchor", s.TrustAnchorPEM)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: s.ClusterKeyPKCS8})
	cert, err := tls.X509KeyPair([]byte(s.ClusterCertPEM), keyPEM)
	cryptocore.Zero(keyPEM)
	if err != nil {
		return fmt.Errorf("node: cluster certificate: %w", err)
	}
	if err := n.barrier.Unseal(s.ClusterID, s.DomainKey); err != nil {
		return err
	}
	n.id.setCluster(cert, anchor, s.ClusterID)
	return n.startRaft(bootstrap)
}

func (n *Node) startRaft(bootstrap bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.raft != nil {
		return nil
	}
	cert, anchor, clusterID := n.id.clusterIdentity()
	serverTLS, clientTLS := transport.NewTLSConfigs(*cert, anchor, clusterID)
	adv, err := net.ResolveTCPAddr("tcp", n.RaftAddr())
	if err != nil {
		return fmt.Errorf("node: raft advertise address: %w", err)
	}
	stream := transport.NewStreamLayer(n.raftLn, adv, serverTLS, clientTLS, n.faults,
		transport.WithLogger(n.log.Named("transport")))
	rlog := n.log.Named("raft")
	netw := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: rlog,
	})
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: raft dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: logStoreOptions()})
	if err != nil {
		return fmt.Errorf("node: raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, rlog)
	if err != nil {
		store.Close()
		return fmt.Errorf("node: snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = rlog
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, netw)
	if err != nil {
		store.Close()
		return fmt.Errorf("node: raft: %w", err)
	}
	if bootstrap {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.RaftAddr()),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Shutdown()
			store.Close()
			return fmt.Errorf("node: bootstrap: %w", err)
		}
	}
	n.raft, n.raftNet, n.store = r, netw, store
	n.stopObserving = n.health.observe(r)
	return nil
}

// raftNode returns the Raft instance, or ErrNotInitialized.
func (n *Node) raftNode() (*raft.Raft, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.raft == nil {
		return nil, ErrNotInitialized
	}
	return n.raft, nil
}

// propose applies cmd through the Raft leader, forwarding it when this HSM
// is a follower, and returns the result and its log index.
func (n *Node) propose(ctx context.Context, cmd *hsmfsmv1.Command) (*hsmfsmv1.Result, uint64, error) {
	r, err := n.raftNode()
	if err != nil {
		return nil, 0, err
	}
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.State() == raft.Leader {
			res, index, err := n.applyLocal(ctx, r, data)
			if !errors.Is(err, raft.ErrNotLeader) {
				return res, index, err
			}
		} else if _, leaderID := r.LeaderWithID(); leaderID != "" {
			res, index, err := n.peers.forward(ctx, string(leaderID), data)
			if !errors.Is(err, errRetryForward) {
				return res, index, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-tick.C:
		}
	}
}

// applyLocal applies data on this HSM, the leader.
func (n *Node) applyLocal(ctx context.Context, r *raft.Raft, data []byte) (*hsmfsmv1.Result, uint64, error) {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := r.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			return nil, 0, ErrIndeterminate
		}
		return nil, 0, err
	}
	res, ok := f.Response().(*hsmfsmv1.Result)
	if !ok {
		return nil, 0, fmt.Errorf("node: unexpected apply response %T", f.Response())
	}
	return res, f.Index(), nil
}

// logStoreOptions are the bbolt options of the Raft log store
// (raft-boltdb). The free-page list is not written at each commit but
// rebuilt from the pages when the file opens, as etcd does: a Raft log is
// appended to and truncated all the time, and writing the list cost an
// eighth of the CPU of each commit (BenchmarkLogStore). What a commit
// makes durable is unchanged: the list is derived from the pages.
func logStoreOptions() *bbolt.Options {
	o := *bbolt.DefaultOptions
	o.NoFreelistSync = true
	o.FreelistType = bbolt.FreelistMapType
	return &o
}

// waitApplied waits until this replica has applied index, bounded by the
// read-your-writes timeout.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadYourWritesTimeout)
	defer cancel()
	if err := n.fsm.WaitApplied(ctx, index); err != nil {
		return ErrReplicaBehind
	}
	return nil
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Snapshot makes Raft take a snapshot now and compact its log.
func (n *Node) Snapshot() error {
	r, err := n.raftNode()
	if err != nil {
		return err
	}
	return r.Snapshot().Error()
}
