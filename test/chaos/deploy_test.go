package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/cluster/local"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// cryptoUser is the crypto user the workloads log in as.
const cryptoUser = "chaos"

// statusTimeout bounds one GetStatus: a paused HSM does not answer.
const statusTimeout = time.Second

// deployment is one run's cluster: three hsmd processes under a control
// plane, in the run's directory.
type deployment struct {
	t         *testing.T
	dir       string
	mgr       *cluster.Manager
	prov      *local.Provisioner
	clusterID string
	// hsmIDs are the HSMs in the order of their AZs (cluster.DefaultAZs).
	hsmIDs []string
	azOf   map[string]string
	up     *bringup.Result
	// log writes the control plane's and the clients' logs to
	// dir/control-plane.log, kept with the run's directory.
	log     hclog.Logger
	logFile *os.File
}

// startDeployment brings up a 3-AZ cluster in dir/deploy with hsmd's
// default Raft timings (unless -chaos.hsmd-args says otherwise). Cleanup
// stops every process.
func startDeployment(t *testing.T, dir string) *deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := os.Create(filepath.Join(dir, "control-plane.log"))
	require.NoError(t, err)
	d := &deployment{t: t, dir: dir, logFile: f, azOf: map[string]string{},
		log: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: f, TimeFormat: "15:04:05.000"})}
	home := filepath.Join(dir, "deploy")
	store, err := cluster.NewStore(home)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(store.Dir())
	require.NoError(t, err)
	prov, err := local.New(local.Config{Dir: store.Dir(), PKI: pki, HsmdPath: hsmdPath, ExtraArgs: strings.Fields(*flagHsmd)})
	require.NoError(t, err)
	d.prov, d.mgr = prov, cluster.NewManager(store, prov, pki, d.log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.mgr.StopAll(ctx)
		d.logFile.Close()
	})
	d.up, err = bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: cluster.DefaultAZs, Dir: filepath.Join(home, "customer"),
		CryptoUser: cryptoUser, Logger: d.log})
	require.NoError(t, err, "bring up the cluster; see %s", f.Name())
	d.clusterID = d.up.ClusterID
	for _, h := range d.up.Hsms {
		d.hsmIDs = append(d.hsmIDs, h.HsmID)
		d.azOf[h.HsmID] = h.AvailabilityZone
	}
	require.Len(t, d.hsmIDs, len(cluster.DefaultAZs))
	return d
}

// cluster returns the cluster's current record (HSM runtimes change with
// restarts).
func (d *deployment) cluster() *cluster.Cluster {
	c, err := d.mgr.Cluster(d.clusterID)
	require.NoError(d.t, err)
	return c
}

// client logs the crypto user in on the given HSMs (every HSM when none is
// named), with the client's default timings.
func (d *deployment) client(ctx context.Context, only ...string) (*client.Client, error) {
	cfg, err := bringup.ClientConfig(d.cluster(), cryptoUser, d.up.CryptoPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, err
	}
	cfg.Logger = d.log
	if len(only) > 0 {
		var eps []client.Endpoint
		for _, ep := range cfg.Endpoints {
			for _, id := range only {
				if ep.ID == id {
					eps = append(eps, ep)
				}
			}
		}
		cfg.Endpoints = eps
	}
	return client.New(ctx, cfg)
}

// statuses asks every HSM for its status, in parallel, each bounded by
// statusTimeout; HSMs that do not answer are missing from the map.
func (d *deployment) statuses(ctx context.Context) map[string]*hsmv1.GetStatusResponse {
	c := d.cluster()
	var mu sync.Mutex
	out := map[string]*hsmv1.GetStatusResponse{}
	var wg sync.WaitGroup
	for _, h := range c.Hsms {
		wg.Go(func() {
			conn, err := d.mgr.PKI().DialHSM(h.Runtime.APIAddr, c.TrustAnchor, c.CertificateID)
			if err != nil {
				return
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			s, err := hsmv1.NewClusterServiceClient(conn).GetStatus(ctx, &hsmv1.GetStatusRequest{})
			if err == nil {
				mu.Lock()
				out[h.HsmID] = s
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// healthy reports the leader when every HSM answers and all agree on one
// leader that says it leads.
func (d *deployment) healthy(ctx context.Context) (string, bool) {
	st := d.statuses(ctx)
	if len(st) != len(d.hsmIDs) {
		return "", false
	}
	leader := ""
	for _, s := range st {
		if s.GetLeaderId() == "" || (leader != "" && s.GetLeaderId() != leader) {
			return "", false
		}
		leader = s.GetLeaderId()
	}
	if l, ok := st[leader]; !ok || l.GetRaftState() != "Leader" {
		return "", false
	}
	return leader, true
}

// waitHealthy waits until healthy reports a leader, or timeout.
func (d *deployment) waitHealthy(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if leader, ok := d.healthy(ctx); ok {
			return leader, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("the cluster is not healthy (every HSM up, one leader) after %v: %v", timeout, d.describe(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConverged waits until every HSM has applied the same index, at least
// minIndex.
func (d *deployment) waitConverged(ctx context.Context, minIndex uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st := d.statuses(ctx)
		ok := len(st) == len(d.hsmIDs)
		var applied uint64
		for _, s := range st {
			if applied == 0 {
				applied = s.GetAppliedIndex()
			}
			ok = ok && s.GetAppliedIndex() == applied && applied >= minIndex
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the HSMs have not converged on an index >= %d after %v: %v", minIndex, timeout, d.describe(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describe renders every HSM's Raft view, for failure messages.
func (d *deployment) describe(ctx context.Context) string {
	st := d.statuses(ctx)
	out := ""
	for _, id := range d.hsmIDs {
		s, ok := st[id]
		if !ok {
			out += fmt.Sprintf("[%s: no answer] ", id)
			continue
		}
		out += fmt.Sprintf("[%s: %s term %d applied %d leader %q] ", id, s.GetRaftState(), s.GetTerm(), s.GetAppliedIndex(), s.GetLeaderId())
	}
	return out
}
