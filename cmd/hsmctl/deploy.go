package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/cluster/local"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// DefaultDir is where a deployment lives unless --dir says otherwise.
const DefaultDir = ".hsmsim"

// Files of a deployment directory.
const (
	adminPasswordFile = "admin.password"
	kmsuser           = "kmsuser"
)

// deployment is an opened deployment directory.
type deployment struct {
	dir  string
	mgr  *cluster.Manager
	prov *local.Provisioner
	log  hclog.Logger
}

// openDeployment opens (creating when create is set) the deployment in dir.
func openDeployment(dir string, create bool, log hclog.Logger) (*deployment, error) {
	if !create {
		if _, err := os.Stat(filepath.Join(dir, cluster.StateFile)); err != nil {
			return nil, fmt.Errorf("no deployment in %s (start one with hsmctl up): %w", dir, err)
		}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	store, err := cluster.NewStore(dir)
	if err != nil {
		return nil, err
	}
	pki, err := cluster.LoadOrCreatePKI(store.Dir())
	if err != nil {
		return nil, err
	}
	prov, err := local.New(local.Config{Dir: store.Dir(), PKI: pki})
	if err != nil {
		return nil, err
	}
	return &deployment{dir: store.Dir(), mgr: cluster.NewManager(store, prov, pki, log), prov: prov, log: log}, nil
}

func deployCommands() []*command {
	return []*command{
		{name: "up", summary: "start a local deployment: a 3-AZ HSM cluster, initialized and activated", flags: upFlags, run: runUp},
		{name: "down", summary: "stop every process of a deployment", flags: downFlags, run: runDown},
		{name: "status", summary: "show every HSM: AZ, state, Raft role, term, applied index, keys, sessions", flags: dirFlags, run: runStatus},
		{name: "logs", summary: "print HSM logs", flags: logsFlags, run: runLogs},
	}
}

type dirOpts struct{ dir *string }

func dirFlags(fs *flag.FlagSet) any {
	return &dirOpts{dir: fs.String("dir", DefaultDir, "deployment directory")}
}

type upOpts struct {
	dir       *string
	azs       *int
	hsmsPerAZ *int
	detach    *bool
	bare      *bool
	noKMS     *bool
	auth      *string
}

func upFlags(fs *flag.FlagSet) any {
	return &upOpts{
		dir:       fs.String("dir", DefaultDir, "deployment directory"),
		azs:       fs.Int("azs", 3, "availability zones (1 to 3)"),
		hsmsPerAZ: fs.Int("hsms-per-az", 1, "HSMs in each availability zone"),
		detach:    fs.Bool("detach", false, "return once the deployment is ready, leaving it running"),
		bare:      fs.Bool("bare", false, "start only the KMS endpoint and its fleet: build the customer cluster and key store by hand with the AWS APIs"),
		noKMS:     fs.Bool("no-kms", false, "start only the customer HSM cluster, no KMS endpoint"),
		auth:      fs.String("auth", "sigv4", "the endpoint's authentication: sigv4 (verify signatures) or any (accept any credentials, for suites written for other emulators)"),
	}
}

// upResult is what hsmctl up reports.
type upResult struct {
	KMS            *kmsResult     `json:"kms,omitempty"`
	Dir            string         `json:"dir"`
	ClusterID      string         `json:"cluster_id,omitempty"`
	Hsms           []*cluster.HSM `json:"hsms,omitempty"`
	CustomerCA     string         `json:"customer_ca,omitempty"`
	AdminPassword  string         `json:"admin_password_file,omitempty"`
	KmsuserPasword string         `json:"kmsuser_password_file,omitempty"`
	StateFile      string         `json:"state_file"`
}

func runUp(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*upOpts)
	if *opts.azs < 1 || *opts.azs > len(cluster.DefaultAZs) || *opts.hsmsPerAZ < 1 || *opts.hsmsPerAZ > 4 {
		return fmt.Errorf("%w: --azs must be 1 to %d and --hsms-per-az 1 to 4", errUsage, len(cluster.DefaultAZs))
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "hsmctl", Output: e.stderr, Level: hclog.Info})
	if e.json {
		log = hclog.NewNullLogger()
	}
	d, err := openDeployment(*opts.dir, true, log)
	if err != nil {
		return err
	}
	if running, err := d.runningHsms(); err != nil {
		return err
	} else if running > 0 {
		return fmt.Errorf("a deployment is already running in %s (%d HSMs); stop it with hsmctl down --dir %s", d.dir, running, *opts.dir)
	}
	// The processes about to run, for the children's GOMAXPROCS
	// (cluster/local): the customer's HSMs, and the fleet's and the
	// endpoint.
	processes := 0
	if !*opts.bare {
		processes += *opts.azs * *opts.hsmsPerAZ
	}
	if !*opts.noKMS {
		processes += len(cluster.DefaultAZs) + 1
	}
	d.prov.Expect(processes)
	if *opts.auth != "sigv4" && *opts.auth != "any" {
		return fmt.Errorf("%w: --auth must be sigv4 or any", errUsage)
	}
	if *opts.bare && *opts.noKMS {
		return fmt.Errorf("%w: --bare starts only the KMS side; it cannot be combined with --no-kms", errUsage)
	}
	res := &upResult{Dir: d.dir, StateFile: filepath.Join(d.dir, cluster.StateFile)}
	var uc *bringup.Result
	if !*opts.bare {
		if uc, err = bringup.Cluster(ctx, d.mgr, bringup.Spec{AZs: cluster.DefaultAZs[:*opts.azs], PerAZ: *opts.hsmsPerAZ,
			Dir: d.dir, CryptoUser: kmsuser, Logger: d.log}); err != nil {
			d.mgr.StopAll(context.Background())
			return err
		}
		res.ClusterID, res.Hsms, res.CustomerCA, res.AdminPassword, res.KmsuserPasword = uc.ClusterID, uc.Hsms, uc.CustomerCAFile, uc.AdminPasswordFile, uc.CryptoPasswordFile
	}
	if !*opts.noKMS {
		var customer, anchor, password string
		if uc != nil {
			customer, anchor, password = uc.ClusterID, uc.TrustAnchorPEM, uc.CryptoPassword
		}
		if res.KMS, err = d.startKMS(ctx, *opts.auth == "any", customer, anchor, password); err != nil {
			d.mgr.StopAll(context.Background())
			return err
		}
	}
	if err := d.mgr.Store().Update(func(st *cluster.State) error {
		if st.Files == nil {
			st.Files = map[string]string{}
		}
		st.Files["logs"] = filepath.Join(d.dir, "logs")
		if res.CustomerCA != "" {
			st.Files["customer_ca"], st.Files["admin_password"], st.Files["kmsuser_password"] = res.CustomerCA, res.AdminPassword, res.KmsuserPasword
		}
		if !*opts.detach {
			st.LauncherPID = os.Getpid()
		}
		return nil
	}); err != nil {
		return err
	}
	if err := e.emit(res, func(w io.Writer) { printUp(w, res, *opts.dir, *opts.detach) }); err != nil {
		return err
	}
	if *opts.detach {
		return nil
	}
	d.watch(ctx, e.stdout, res.ClusterID)
	fmt.Fprintln(e.stdout, "stopping the deployment...")
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.mgr.StopAll(stopCtx)
}

// activate logs in as the unactivated admin, activates the cluster and
// lets the control plane see it ACTIVE (which takes a backup).
func (d *deployment) activate(ctx context.Context, clusterID, adminPassword string) error {
	if err := bringup.Activate(ctx, d.mgr, clusterID, adminPassword, d.log); err != nil {
		return err
	}
	_, err := d.mgr.Refresh(ctx, clusterID)
	return err
}

// hsmClient logs a user in on every HSM of the cluster.
func (d *deployment) hsmClient(ctx context.Context, clusterID, user, password string, role hsmv1.Role) (*client.Client, error) {
	return bringup.Login(ctx, d.mgr, clusterID, user, password, role, d.log)
}

// runningHsms counts the deployment's HSM processes that are alive.
func (d *deployment) runningHsms() (int, error) {
	st, err := d.mgr.Store().Load()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range st.Clusters {
		for _, h := range c.Hsms {
			if d.prov.Running(h.Runtime) {
				n++
			}
		}
	}
	return n, nil
}

func printUp(w io.Writer, res *upResult, dirFlag string, detach bool) {
	fmt.Fprintf(w, "\nhsmsim is up in %s\n", res.Dir)
	d := ""
	if dirFlag != DefaultDir {
		d = " --dir " + dirFlag
	}
	if res.ClusterID != "" {
		fmt.Fprintf(w, "\nCloudHSM cluster %s (ACTIVE)\n", res.ClusterID)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HSM\tAZ\tADDRESS\tPID")
		for _, h := range res.Hsms {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\n", h.HsmID, h.AvailabilityZone, h.Runtime.APIAddr, h.Runtime.PID)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nTrust anchor:    %s\nAdmin password:  %s\n", res.CustomerCA, res.AdminPassword)
	}
	if k := res.KMS; k != nil {
		fmt.Fprintf(w, "\nKMS endpoint:    %s (the AWS KMS and CloudHSM v2 APIs)\n", k.Endpoint)
		if k.CustomKeyStoreID != "" {
			fmt.Fprintf(w, "Custom key store %s, CONNECTED to %s (KMS rotated kmsuser's password on connect)\n", k.CustomKeyStoreID, res.ClusterID)
		}
		fmt.Fprintf(w, "\nexport AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=%s AWS_DEFAULT_REGION=%s\n", k.CredentialsFile, credentialsProfile, Region)
		if k.CustomKeyStoreID != "" {
			e := "--endpoint-url " + k.Endpoint
			fmt.Fprintf(w, "\nTry:\n")
			fmt.Fprintf(w, "  KEY=$(aws %s kms create-key --origin AWS_CLOUDHSM --custom-key-store-id %s --query KeyMetadata.KeyId --output text)\n", e, k.CustomKeyStoreID)
			fmt.Fprintf(w, "  aws %s kms encrypt --key-id $KEY --plaintext 'hello, HSM' --query CiphertextBlob --output text | base64 -d > /tmp/ct.bin\n", e)
			fmt.Fprintf(w, "  aws %s kms decrypt --ciphertext-blob fileb:///tmp/ct.bin --query Plaintext --output text | base64 -d\n", e)
		}
	}
	if res.ClusterID != "" {
		fmt.Fprintf(w, "\nAnd the HSM side:\n  hsmctl status%s\n", d)
		fmt.Fprintf(w, "  hsmctl key list%s --cluster-id %s --username admin --role admin --password \"$(cat %s)\"\n", d, res.ClusterID, res.AdminPassword)
		fmt.Fprintf(w, "  hsmctl fault kill%s --hsm %s      # then: hsmctl status%s\n", d, res.Hsms[0].HsmID, d)
	}
	if detach {
		fmt.Fprintf(w, "\nStop it with: hsmctl down%s\n", d)
	} else {
		fmt.Fprintln(w, "\nRunning in the foreground; Ctrl-C stops everything. Events:")
	}
}

// watch prints a line for every change of the cluster's HSMs until ctx ends.
func (d *deployment) watch(ctx context.Context, w io.Writer, clusterID string) {
	last := map[string]string{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if clusterID != "" {
			if c, err := d.mgr.Cluster(clusterID); err == nil {
				statuses, _ := d.mgr.Refresh(ctx, clusterID)
				for _, h := range c.Hsms {
					line := "down (no answer)"
					if s, ok := statuses[h.HsmID]; ok {
						line = fmt.Sprintf("%s term %d, leader %s", s.GetRaftState(), s.GetTerm(), s.GetLeaderId())
					}
					if last[h.HsmID] != line {
						fmt.Fprintf(w, "%s  %s (%s): %s\n", time.Now().Format("15:04:05"), h.HsmID, h.AvailabilityZone, line)
						last[h.HsmID] = line
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type downOpts struct {
	dir   *string
	purge *bool
}

func downFlags(fs *flag.FlagSet) any {
	return &downOpts{dir: fs.String("dir", DefaultDir, "deployment directory"), purge: fs.Bool("purge", false, "also delete the deployment directory")}
}

func runDown(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*downOpts)
	d, err := openDeployment(*opts.dir, false, nil)
	if err != nil {
		return err
	}
	st, err := d.mgr.Store().Load()
	if err != nil {
		return err
	}
	if st.LauncherPID > 0 && st.LauncherPID != os.Getpid() {
		syscall.Kill(st.LauncherPID, syscall.SIGTERM)
	}
	if err := d.mgr.StopAll(ctx); err != nil {
		return err
	}
	if *opts.purge {
		if err := os.RemoveAll(d.dir); err != nil {
			return err
		}
	}
	return e.emit(map[string]any{"stopped": true, "purged": *opts.purge}, func(w io.Writer) {
		fmt.Fprintf(w, "deployment in %s stopped", d.dir)
		if *opts.purge {
			fmt.Fprint(w, " and deleted")
		}
		fmt.Fprintln(w)
	})
}

// hsmStatus is one row of hsmctl status.
type hsmStatus struct {
	ClusterID    string `json:"cluster_id"`
	HsmID        string `json:"hsm_id"`
	AZ           string `json:"az"`
	State        string `json:"state"`
	RaftState    string `json:"raft_state"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	Leader       string `json:"leader"`
	Keys         uint32 `json:"keys"`
	Sessions     uint32 `json:"sessions"`
	Healthy      bool   `json:"healthy"`
	PID          int    `json:"pid"`
	Address      string `json:"address"`
	// BlockedPeers are the peers this HSM's transport blocks (faults).
	BlockedPeers []string `json:"blocked_peers,omitempty"`
}

// statusReport is hsmctl status's output.
type statusReport struct {
	Clusters []clusterStatus     `json:"clusters"`
	Faults   []cluster.FaultRule `json:"faults"`
}

type clusterStatus struct {
	ClusterID string      `json:"cluster_id"`
	State     string      `json:"state"`
	Hsms      []hsmStatus `json:"hsms"`
}

func runStatus(ctx context.Context, e *env, o any, _ []string) error {
	d, err := openDeployment(*o.(*dirOpts).dir, false, nil)
	if err != nil {
		return err
	}
	rep, err := d.status(ctx)
	if err != nil {
		return err
	}
	return e.emit(rep, func(w io.Writer) { printStatus(w, rep) })
}

func (d *deployment) status(ctx context.Context) (*statusReport, error) {
	st, err := d.mgr.Store().Load()
	if err != nil {
		return nil, err
	}
	rep := &statusReport{Faults: st.Faults}
	for _, c := range st.Clusters {
		if c.State == cluster.ClusterDeleted {
			continue
		}
		statuses, err := d.mgr.Refresh(ctx, c.ClusterID)
		if err != nil {
			return nil, err
		}
		fresh, err := d.mgr.Cluster(c.ClusterID)
		if err != nil {
			return nil, err
		}
		cs := clusterStatus{ClusterID: c.ClusterID, State: string(fresh.State)}
		for _, h := range fresh.Hsms {
			row := hsmStatus{ClusterID: c.ClusterID, HsmID: h.HsmID, AZ: h.AvailabilityZone, State: string(h.State),
				RaftState: "-", PID: h.Runtime.PID, Address: h.Runtime.APIAddr}
			if s, ok := statuses[h.HsmID]; ok {
				row.RaftState, row.Term, row.AppliedIndex, row.Leader = s.GetRaftState(), s.GetTerm(), s.GetAppliedIndex(), s.GetLeaderId()
				row.Keys, row.Sessions, row.Healthy = s.GetKeyCount(), s.GetSessionCount(), true
				for _, p := range s.GetPeers() {
					if p.GetBlocked() {
						row.BlockedPeers = append(row.BlockedPeers, p.GetNodeId())
					}
				}
				sort.Strings(row.BlockedPeers)
			}
			cs.Hsms = append(cs.Hsms, row)
		}
		rep.Clusters = append(rep.Clusters, cs)
	}
	return rep, nil
}

func printStatus(w io.Writer, rep *statusReport) {
	if len(rep.Clusters) == 0 {
		fmt.Fprintln(w, "no clusters")
	}
	for _, c := range rep.Clusters {
		fmt.Fprintf(w, "cluster %s  %s\n", c.ClusterID, c.State)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HSM\tAZ\tSTATE\tRAFT\tTERM\tAPPLIED\tKEYS\tSESSIONS\tHEALTH")
		for _, h := range c.Hsms {
			health := "ok"
			if !h.Healthy {
				health = "unreachable"
			} else if len(h.BlockedPeers) > 0 {
				health = "cut off from " + strings.Join(h.BlockedPeers, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", h.HsmID, h.AZ, h.State, h.RaftState, h.Term, h.AppliedIndex, h.Keys, h.Sessions, health)
		}
		tw.Flush()
	}
	for _, f := range rep.Faults {
		fmt.Fprintf(w, "fault in force: %s %s%s%s %s\n", f.Kind, f.AZ, f.HsmID, strings.Join(f.Between, "<->"), msIf(f.DelayMs))
	}
}

func msIf(ms uint32) string {
	if ms == 0 {
		return ""
	}
	return fmt.Sprintf("%d ms", ms)
}

type logsOpts struct {
	dir *string
	hsm *string
}

func logsFlags(fs *flag.FlagSet) any {
	return &logsOpts{dir: fs.String("dir", DefaultDir, "deployment directory"), hsm: fs.String("hsm", "", "only this HSM's log")}
}

func runLogs(ctx context.Context, e *env, o any, _ []string) error {
	opts := o.(*logsOpts)
	d, err := openDeployment(*opts.dir, false, nil)
	if err != nil {
		return err
	}
	st, err := d.mgr.Store().Load()
	if err != nil {
		return err
	}
	found := false
	for _, c := range st.Clusters {
		for _, h := range c.Hsms {
			if *opts.hsm != "" && h.HsmID != *opts.hsm {
				continue
			}
			found = true
			b, err := os.ReadFile(h.Runtime.LogFile)
			if err != nil {
				return err
			}
			if !e.json {
				fmt.Fprintf(e.stdout, "==> %s (%s) <==\n", h.HsmID, h.Runtime.LogFile)
			}
			e.stdout.Write(b)
		}
	}
	if !found {
		return errors.New("no such HSM")
	}
	return nil
}
