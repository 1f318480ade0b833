package main

// hsmctl demo failover: the high-availability demonstration (issue #7).
//
// It drives a steady KMS load through the deployment's endpoint, as an
// application written with aws-sdk-go-v2 would (the SDK's default
// retryer), while it breaks and repairs the custom key store's CloudHSM
// cluster on a timeline, then checks that nothing acknowledged was lost.
// The load is two kinds of calls, because they fail differently (DESIGN.md
// invariant 6):
//
//   - Encrypt and Decrypt under one key of the custom key store: crypto
//     runs on whichever HSM serves the session, from its replica, so it
//     needs one live HSM and no Raft quorum;
//   - CreateKey in the custom key store: a Raft write in the cluster (the
//     backing AES key), so it needs a leader and a quorum; and KMS refuses
//     it, as AWS does, unless two HSMs in different AZs are active.
//
// Per phase the report gives how long writes stopped (the longest time
// without a successful CreateKey), how many crypto calls failed after the
// SDK's retries, and, after the last phase, whether any acknowledged key
// or ciphertext was lost (invariant 7).

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/internal/loadgen"
)

// Fixed parameters of the demonstration.
const (
	// demoCryptoWorkers and demoCreateWorkers are the load's workers: each
	// makes its calls one at a time, paced to share the rate.
	demoCryptoWorkers = 4
	demoCreateWorkers = 2
	// demoCallTimeout bounds one call, the SDK's retries included; longer
	// than the endpoint's own bound on HSM work (10 s), so that the
	// endpoint's answer, not ours, ends a slow call.
	demoCallTimeout = 30 * time.Second
	// demoSettleTimeout bounds the wait for a Raft leader and every HSM
	// before a fault and before the final check.
	demoSettleTimeout = 60 * time.Second
	// demoVerifyWorkers check acknowledged keys and ciphertexts at the end.
	demoVerifyWorkers = 8
	// demoVerifyAttempts is how often a check is tried, a second apart,
	// before what it checks counts as lost.
	demoVerifyAttempts = 5
	// demoPlaintextSize is the size of each Encrypt's random plaintext.
	demoPlaintextSize = 32
	// demoKeyDescription marks the keys the demonstration creates.
	demoKeyDescription = "hsmctl demo failover"
	// demoRetryer names the client's retry policy in the report.
	demoRetryer = "aws-sdk-go-v2 default (standard) retryer: 3 attempts, exponential backoff with jitter, retry quota"
	// errCodeWrongPlaintext counts a Decrypt that returned other bytes
	// than were encrypted (errWrongPlaintext).
	errCodeWrongPlaintext = "WrongPlaintext"
	// errCodeTimeout and errCodeTransport count failures without an AWS
	// exception.
	errCodeTimeout   = "Timeout"
	errCodeTransport = "TransportError"
)

// The demonstration's phases, in order.
const (
	phaseBaseline     = "baseline"
	phaseKillLeader   = "kill-leader"
	phaseRestart      = "restart"
	phasePartition    = "partition-az"
	phaseHeal         = "heal"
	phaseTwoHsms      = "two-hsms"
	phaseKillOneOfTwo = "kill-one-of-two"
	phaseRestartTwo   = "restart-one-of-two"
	phaseAddHsm       = "add-hsm"
)

// errWrongPlaintext is a Decrypt that returned other bytes than were
// encrypted; it never happens unless something is broken.
var errWrongPlaintext = errors.New("decrypt returned other bytes than were encrypted")

// ErrDemoLost is returned when a key or a ciphertext whose creation the
// endpoint acknowledged could not be used after the faults were repaired.
var ErrDemoLost = errors.New("acknowledged data was lost")

func demoCommands() []*command {
	return []*command{{name: "demo failover", summary: "HA demo: steady KMS load while the cluster loses its leader, an AZ, one of two HSMs; then checks nothing was lost",
		flags: demoFlags, run: runDemoFailover}}
}

type demoOpts struct {
	dir              *string
	phase            *time.Duration
	cryptoRate       *float64
	createRate       *float64
	customKeyStoreID *string
	keep             *bool
}

func demoFlags(fs *flag.FlagSet) any {
	return &demoOpts{
		dir:              fs.String("dir", DefaultDir, "deployment directory: a deployment running there (hsmctl up --detach) is used, else one is started there and stopped at the end"),
		phase:            fs.Duration("phase", 8*time.Second, "length of each of the nine phases"),
		cryptoRate:       fs.Float64("crypto-rate", 100, "Encrypt and Decrypt calls per second (half each)"),
		createRate:       fs.Float64("create-rate", 5, "CreateKey calls per second in the custom key store"),
		customKeyStoreID: fs.String("custom-key-store-id", "", "the custom key store to use (default: the deployment's one CONNECTED store)"),
		keep:             fs.Bool("keep", false, "leave a deployment the demo started running"),
	}
}

// demoReport is what hsmctl demo failover reports.
type demoReport struct {
	Dir              string `json:"dir"`
	Endpoint         string `json:"endpoint"`
	ClusterID        string `json:"cluster_id"`
	CustomKeyStoreID string `json:"custom_key_store_id"`
	// KeyID is the key of the Encrypt/Decrypt load.
	KeyID string `json:"key_id"`
	// StartedDeployment is set when the demo started the deployment.
	StartedDeployment bool    `json:"started_deployment"`
	PhaseSeconds      float64 `json:"phase_s"`
	CryptoRate        float64 `json:"crypto_rate"`
	CreateRate        float64 `json:"create_rate"`
	Retryer           string  `json:"retryer"`
	// Timeline has a sample about every second.
	Timeline []demoSample `json:"timeline"`
	Phases   []*demoPhase `json:"phases"`
	Verify   demoVerify   `json:"verify"`
	// Lost is set when an acknowledged key or ciphertext was lost.
	Lost bool `json:"lost"`
}

// demoSample is one line of the live timeline.
type demoSample struct {
	// At is the sample's time in seconds since the load started.
	At    float64 `json:"t"`
	Phase string  `json:"phase"`
	// CryptoOps and CreateOps are successful calls per second since the
	// previous sample; CryptoErrors and CreateErrors failed calls.
	CryptoOps    float64 `json:"crypto_ops_per_s"`
	CryptoErrors int     `json:"crypto_errors"`
	CreateOps    float64 `json:"create_ops_per_s"`
	CreateErrors int     `json:"create_errors"`
	// Leader is the Raft leader ("" when there is none) and Term the
	// highest term an HSM reports.
	Leader   string `json:"leader"`
	LeaderAZ string `json:"leader_az,omitempty"`
	Term     uint64 `json:"term"`
	// HsmsUp of Hsms answer the control plane.
	HsmsUp int `json:"hsms_up"`
	Hsms   int `json:"hsms"`
}

// demoPhase is one phase's summary. A phase starts with its action (a
// fault, a repair, a change of the cluster) and lasts until the next one.
type demoPhase struct {
	Name string `json:"name"`
	// Fault is set for the phases that break something.
	Fault bool `json:"fault"`
	// What says what the phase's action did.
	What     string  `json:"what"`
	Start    float64 `json:"start_s"`
	Duration float64 `json:"duration_s"`
	// Action is how long the action took, in seconds.
	Action float64 `json:"action_s"`
	// CryptoOK and CryptoFailed count Encrypt and Decrypt calls, after the
	// SDK's retries; CryptoRetried the successful ones the SDK retried.
	CryptoOK      int            `json:"crypto_ok"`
	CryptoFailed  int            `json:"crypto_failed"`
	CryptoRetried int            `json:"crypto_retried"`
	CryptoErrors  map[string]int `json:"crypto_errors,omitempty"`
	// CryptoMaxLatency is the slowest successful crypto call, in seconds.
	CryptoMaxLatency float64 `json:"crypto_max_latency_s"`
	// CryptoStopped is, as WritesStopped for CreateKey, the longest time
	// without a successful Encrypt or Decrypt sent after the action.
	CryptoStopped float64        `json:"crypto_stopped_s"`
	CreatesOK     int            `json:"creates_ok"`
	CreatesFailed int            `json:"creates_failed"`
	CreateErrors  map[string]int `json:"create_errors,omitempty"`
	// WritesStopped is the longest time without a successful CreateKey
	// sent after the phase's action was done, in seconds: from the action's
	// end to the first one, between two, or from the last one to the
	// phase's end. A CreateKey sent earlier and answered during the phase
	// counts in CreatesOK but not here: it says nothing about the fault.
	WritesStopped float64 `json:"writes_stopped_s"`
	// FirstWrite is when the first such CreateKey succeeded, in seconds
	// after the action's end; absent when none did.
	FirstWrite *float64 `json:"first_write_s,omitempty"`
	// KeysLost and CiphertextsLost count what was acknowledged during the
	// phase and failed the final check.
	KeysLost        int `json:"keys_lost"`
	CiphertextsLost int `json:"ciphertexts_lost"`
}

// demoVerify is the final check, after every fault was repaired.
type demoVerify struct {
	// KeysAcknowledged keys were created; each must be DescribeKey-able,
	// Enabled, and encrypt and decrypt (its backing key is in the cluster).
	KeysAcknowledged int `json:"keys_acknowledged"`
	KeysOK           int `json:"keys_ok"`
	// CiphertextsAcknowledged ciphertexts were returned by Encrypt; each
	// must decrypt to its plaintext.
	CiphertextsAcknowledged int `json:"ciphertexts_acknowledged"`
	CiphertextsOK           int `json:"ciphertexts_ok"`
	// Lost lists what failed its check, with the last error.
	Lost []demoLoss `json:"lost,omitempty"`
	// KeysScheduledForDeletion counts the demo's keys scheduled for
	// deletion, when the deployment stays up.
	KeysScheduledForDeletion int `json:"keys_scheduled_for_deletion,omitempty"`
}

// demoLoss is one acknowledged key or ciphertext that failed its check.
type demoLoss struct {
	Kind  string `json:"kind"` // "key" or "ciphertext"
	KeyID string `json:"key_id,omitempty"`
	Phase string `json:"phase"`
	Error string `json:"error"`
}

// demoOpKind is a kind of call of the load.
type demoOpKind uint8

const (
	opEncrypt demoOpKind = iota
	opDecrypt
	opCreateKey
)

// demoOp is one finished call of the load.
type demoOp struct {
	// at is when it finished, since the load started.
	at      time.Duration
	took    time.Duration
	kind    demoOpKind
	ok      bool
	retried bool
	code    string
}

// demoCiphertext is an acknowledged Encrypt.
type demoCiphertext struct {
	at        time.Duration
	blob, pt  []byte
	phaseName string
}

// demoKey is an acknowledged CreateKey.
type demoKey struct {
	at        time.Duration
	id        string
	phaseName string
}

// demoStep is one phase to run: its action and whether the cluster must be
// settled (a leader, every HSM answering) before it.
type demoStep struct {
	name   string
	fault  bool
	settle bool
	act    func(ctx context.Context) (string, error)
}

// failoverDemo runs one demonstration.
type failoverDemo struct {
	d         *deployment
	kms       *kms.Client
	endpoint  string
	clusterID string
	storeID   string
	keyID     string
	phaseLen  time.Duration
	// live receives the timeline as it happens; nil in JSON mode.
	live  io.Writer
	start time.Time

	mu    sync.Mutex
	ops   []demoOp
	cts   []demoCiphertext
	keys  []demoKey
	phase string

	// samples is written by the sampler only, read once it has stopped.
	samples []demoSample
	outMu   sync.Mutex

	// What the faults changed, for the next phases and for cleanup.
	killed      *cluster.HSM
	partitioned bool
	// removed are the AZs of the HSMs deleted and not yet replaced; added
	// the HSMs created in their place.
	removed []string
	added   []string
}

func runDemoFailover(ctx context.Context, e *env, o any, args []string) error {
	opts := o.(*demoOpts)
	switch {
	case len(args) > 0:
		return fmt.Errorf("%w: unexpected argument %q (flags only)", errUsage, args[0])
	case *opts.phase < time.Second:
		return fmt.Errorf("%w: --phase must be at least 1s", errUsage)
	case !(*opts.cryptoRate > 0 && *opts.cryptoRate <= 10000) || !(*opts.createRate > 0 && *opts.createRate <= 100):
		return fmt.Errorf("%w: --crypto-rate must be in (0, 10000] and --create-rate in (0, 100]", errUsage)
	}
	log := hclog.NewNullLogger()
	var live io.Writer
	if !e.json {
		live = e.stdout
		log = hclog.New(&hclog.LoggerOptions{Name: "hsmctl", Output: e.stderr, Level: hclog.Warn})
	}
	d, started, err := demoDeployment(ctx, e, live, *opts.dir, log)
	if err != nil {
		return err
	}
	if started && !*opts.keep {
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d.mgr.StopAll(stopCtx)
			if live != nil {
				fmt.Fprintf(live, "\nStopped the deployment the demo started in %s (hsmctl down --purge --dir %s deletes it).\n", d.dir, *opts.dir)
			}
		}()
	}
	f, err := newFailoverDemo(ctx, d, *opts.customKeyStoreID, *opts.phase, live)
	if err != nil {
		return err
	}
	rep, err := f.run(ctx, *opts.cryptoRate, *opts.createRate, !started || *opts.keep)
	if rep == nil {
		return err
	}
	rep.StartedDeployment = started
	if perr := e.emit(rep, func(w io.Writer) { printDemoSummary(w, rep) }); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	if rep.Lost {
		return fmt.Errorf("%w: %d of %d keys and %d of %d ciphertexts failed the final check", ErrDemoLost,
			rep.Verify.KeysAcknowledged-rep.Verify.KeysOK, rep.Verify.KeysAcknowledged,
			rep.Verify.CiphertextsAcknowledged-rep.Verify.CiphertextsOK, rep.Verify.CiphertextsAcknowledged)
	}
	return nil
}

// demoDeployment opens the deployment running in dir, or starts one there
// as hsmctl up --detach does; started says which.
func demoDeployment(ctx context.Context, e *env, live io.Writer, dir string, log hclog.Logger) (*deployment, bool, error) {
	if d, err := openDeployment(dir, false, log); err == nil {
		running, err := d.runningHsms()
		if err != nil {
			return nil, false, err
		}
		if running > 0 {
			return d, false, nil
		}
	}
	if live != nil {
		fmt.Fprintf(live, "No deployment is running in %s: starting one (hsmctl up --detach)...\n", dir)
	}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	up := upFlags(fs).(*upOpts)
	if err := fs.Parse([]string{"--dir", dir, "--detach"}); err != nil {
		return nil, false, err
	}
	began := time.Now()
	// runUp in JSON mode is quiet; its report is not needed here.
	if err := runUp(ctx, &env{stdout: io.Discard, stderr: e.stderr, json: true}, up, nil); err != nil {
		return nil, false, fmt.Errorf("start a deployment in %s: %w", dir, err)
	}
	if live != nil {
		fmt.Fprintf(live, "Up in %s.\n", time.Since(began).Round(100*time.Millisecond))
	}
	d, err := openDeployment(dir, false, log)
	return d, true, err
}

// newFailoverDemo finds the deployment's KMS endpoint, credentials and
// custom key store, and creates the key of the crypto load.
func newFailoverDemo(ctx context.Context, d *deployment, storeID string, phase time.Duration, live io.Writer) (*failoverDemo, error) {
	dep, _, err := loadBenchDeployment(d.dir)
	if err != nil {
		return nil, err
	}
	if dep.endpoint == "" {
		return nil, fmt.Errorf("the deployment in %s has no KMS endpoint (started with --no-kms?)", d.dir)
	}
	creds := loadgen.AnyCredentials
	if dep.credentialsFile != "" {
		if creds, err = loadgen.LoadCredentials(dep.credentialsFile, credentialsProfile); err != nil {
			return nil, err
		}
	}
	f := &failoverDemo{d: d, endpoint: dep.endpoint, phaseLen: phase, live: live,
		kms: kmsClient(dep.endpoint, creds.AccessKeyID, creds.SecretAccessKey)}
	if f.storeID, f.clusterID, err = findCustomKeyStore(ctx, f.kms, storeID); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
	defer cancel()
	out, err := f.createKey(cctx)
	if err != nil {
		return nil, fmt.Errorf("create the load's key in %s: %w", f.storeID, err)
	}
	f.keyID = aws.ToString(out.KeyMetadata.KeyId)
	return f, nil
}

// findCustomKeyStore returns the CONNECTED custom key store to use (want,
// or the only one) and its cluster.
func findCustomKeyStore(ctx context.Context, cl *kms.Client, want string) (storeID, clusterID string, err error) {
	in := &kms.DescribeCustomKeyStoresInput{}
	if want != "" {
		in.CustomKeyStoreId = aws.String(want)
	}
	var connected []kmstypes.CustomKeyStoresListEntry
	p := kms.NewDescribeCustomKeyStoresPaginator(cl, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", "", fmt.Errorf("describe the custom key stores: %w", err)
		}
		for _, s := range out.CustomKeyStores {
			if s.ConnectionState == kmstypes.ConnectionStateTypeConnected && aws.ToString(s.CloudHsmClusterId) != "" {
				connected = append(connected, s)
			} else if want != "" {
				return "", "", fmt.Errorf("custom key store %s is %s, not a CONNECTED CloudHSM key store", want, s.ConnectionState)
			}
		}
	}
	switch len(connected) {
	case 0:
		return "", "", errors.New("the deployment has no CONNECTED custom key store (hsmctl up creates one; hsmctl up --bare does not)")
	case 1:
		return aws.ToString(connected[0].CustomKeyStoreId), aws.ToString(connected[0].CloudHsmClusterId), nil
	}
	return "", "", fmt.Errorf("%w: %d custom key stores are CONNECTED; choose one with --custom-key-store-id", errUsage, len(connected))
}

func (f *failoverDemo) createKey(ctx context.Context) (*kms.CreateKeyOutput, error) {
	return f.kms.CreateKey(ctx, &kms.CreateKeyInput{
		CustomKeyStoreId: aws.String(f.storeID), Origin: kmstypes.OriginTypeAwsCloudhsm,
		Description: aws.String(demoKeyDescription),
	})
}

// run runs the load and the phases, then checks what was acknowledged. It
// returns a report whenever the load ran, with the error that cut it short.
// staysUp says the deployment outlives the demo: the demo then schedules
// its keys for deletion.
func (f *failoverDemo) run(ctx context.Context, cryptoRate, createRate float64, staysUp bool) (*demoReport, error) {
	rep := &demoReport{Dir: f.d.dir, Endpoint: f.endpoint, ClusterID: f.clusterID, CustomKeyStoreID: f.storeID, KeyID: f.keyID,
		PhaseSeconds: f.phaseLen.Seconds(), CryptoRate: cryptoRate, CreateRate: createRate, Retryer: demoRetryer}
	if staysUp {
		defer f.repair()
	}
	if err := f.waitSettled(ctx); err != nil {
		return nil, err
	}
	f.printf("Custom key store %s (cluster %s), key %s, endpoint %s\n", f.storeID, f.clusterID, f.keyID, f.endpoint)
	f.printf("Load: %g Encrypt/Decrypt and %g CreateKey calls per second (aws-sdk-go-v2, default retryer); phases of %s\n\n",
		cryptoRate, createRate, f.phaseLen)
	f.printf("%5s  %-18s  %8s  %4s  %8s  %4s  %-30s  %4s  %4s\n", "TIME", "PHASE", "CRYPTO/s", "ERR", "CREATE/s", "ERR", "RAFT LEADER", "TERM", "HSMS")

	f.start = time.Now()
	f.setPhase(phaseBaseline)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	f.startLoad(loadCtx, &load, cryptoRate, createRate)
	sampleCtx, stopSampler := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		f.sample(sampleCtx)
	}()

	marks, err := f.runPhases(ctx)
	end := time.Since(f.start)
	stopLoad()
	load.Wait()
	stopSampler()
	<-sampled
	rep.Timeline = f.samples
	rep.Phases = f.summarize(marks, end)
	if err != nil {
		return rep, err
	}

	f.printf("\nChecking every acknowledged key and ciphertext...\n")
	if err := f.waitSettled(ctx); err != nil {
		return rep, err
	}
	f.verify(ctx, rep, staysUp)
	return rep, ctx.Err()
}

// phaseMark is when a phase started, when its action was done and what
// it did.
type phaseMark struct {
	step        demoStep
	what        string
	start, done time.Duration
}

// runPhases runs the demonstration's steps, each lasting the phase length
// (longer when its action takes longer).
func (f *failoverDemo) runPhases(ctx context.Context) ([]phaseMark, error) {
	var marks []phaseMark
	for _, s := range f.steps() {
		if s.settle {
			if err := f.waitSettled(ctx); err != nil {
				return marks, err
			}
		}
		start := time.Since(f.start)
		f.setPhase(s.name)
		what := "no fault"
		if s.act != nil {
			var err error
			if what, err = s.act(ctx); err != nil {
				return marks, fmt.Errorf("%s: %w", s.name, err)
			}
		} else if c, err := f.d.mgr.Cluster(f.clusterID); err == nil {
			what = fmt.Sprintf("%d HSMs in %s, no fault", len(c.Hsms), strings.Join(hsmAZs(c.Hsms), ", "))
		}
		marks = append(marks, phaseMark{step: s, what: what, start: start, done: time.Since(f.start)})
		f.printf("----- %5s  %s: %s\n", secs(start), s.name, what)
		select {
		case <-ctx.Done():
			return marks, ctx.Err()
		case <-time.After(time.Until(f.start.Add(start + f.phaseLen))):
		}
	}
	return marks, nil
}

// steps are the demonstration's phases.
func (f *failoverDemo) steps() []demoStep {
	return []demoStep{
		{name: phaseBaseline},
		{name: phaseKillLeader, fault: true, settle: true, act: f.killLeader("")},
		{name: phaseRestart, act: f.restartKilled},
		{name: phasePartition, fault: true, settle: true, act: func(ctx context.Context) (string, error) {
			leader, err := f.leader(ctx)
			if err != nil {
				return "", err
			}
			if err := f.d.mgr.PartitionAZ(ctx, leader.AvailabilityZone); err != nil {
				return "", err
			}
			f.partitioned = true
			return fmt.Sprintf("cut %s off from the other AZs (it holds the Raft leader, %s)", leader.AvailabilityZone, leader.HsmID), nil
		}},
		{name: phaseHeal, act: func(ctx context.Context) (string, error) {
			if err := f.d.mgr.Heal(ctx); err != nil {
				return "", err
			}
			f.partitioned = false
			return "healed the partition", nil
		}},
		{name: phaseTwoHsms, settle: true, act: f.shrinkToTwo},
		{name: phaseKillOneOfTwo, fault: true, settle: true, act: f.killLeader(": 1 of 2 HSMs left")},
		{name: phaseRestartTwo, act: f.restartKilled},
		{name: phaseAddHsm, settle: true, act: f.addBack},
	}
}

// killLeader returns the action that kills the Raft leader's HSM; note
// ends its description.
func (f *failoverDemo) killLeader(note string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		leader, err := f.leader(ctx)
		if err != nil {
			return "", err
		}
		if err := f.d.mgr.Kill(leader.HsmID); err != nil {
			return "", err
		}
		f.killed = leader
		return fmt.Sprintf("killed %s (%s), the Raft leader%s", leader.HsmID, leader.AvailabilityZone, note), nil
	}
}

// restartKilled starts the HSM the last fault killed again.
func (f *failoverDemo) restartKilled(ctx context.Context) (string, error) {
	h := f.killed
	if err := f.d.mgr.Restart(ctx, h.HsmID); err != nil {
		return "", err
	}
	f.killed = nil
	return fmt.Sprintf("restarted %s (%s)", h.HsmID, h.AvailabilityZone), nil
}

// shrinkToTwo deletes HSMs (DeleteHsm: out of the Raft group, then
// stopped) until two are left, in two AZs: the leader and one elsewhere.
func (f *failoverDemo) shrinkToTwo(ctx context.Context) (string, error) {
	leader, err := f.leader(ctx)
	if err != nil {
		return "", err
	}
	c, err := f.d.mgr.Cluster(f.clusterID)
	if err != nil {
		return "", err
	}
	keep := []*cluster.HSM{leader}
	for _, h := range c.Hsms {
		if len(keep) < 2 && h.AvailabilityZone != leader.AvailabilityZone {
			keep = append(keep, h)
		}
	}
	if len(keep) < 2 {
		return "", fmt.Errorf("cluster %s has HSMs in one AZ only; the demo needs two AZs", f.clusterID)
	}
	var deleted []string
	for _, h := range c.Hsms {
		if h.HsmID == keep[0].HsmID || h.HsmID == keep[1].HsmID {
			continue
		}
		if err := f.d.mgr.DeleteHsm(ctx, f.clusterID, h.HsmID); err != nil {
			return "", err
		}
		f.removed = append(f.removed, h.AvailabilityZone)
		deleted = append(deleted, fmt.Sprintf("%s (%s)", h.HsmID, h.AvailabilityZone))
	}
	what := "deleted " + strings.Join(deleted, ", ")
	if len(deleted) == 0 {
		what = "nothing to delete"
	}
	return fmt.Sprintf("%s: 2 HSMs left, %s (leader) in %s and %s in %s", what,
		keep[0].HsmID, keep[0].AvailabilityZone, keep[1].HsmID, keep[1].AvailabilityZone), nil
}

// addBack creates an HSM in each AZ shrinkToTwo took one from.
func (f *failoverDemo) addBack(ctx context.Context) (string, error) {
	var added []string
	for len(f.removed) > 0 {
		h, err := f.d.mgr.CreateHsm(ctx, f.clusterID, f.removed[0])
		if err != nil {
			return "", err
		}
		f.removed = f.removed[1:]
		f.added = append(f.added, h.HsmID)
		added = append(added, fmt.Sprintf("%s (%s)", h.HsmID, h.AvailabilityZone))
	}
	c, err := f.d.mgr.Cluster(f.clusterID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("created %s: %d HSMs again", strings.Join(added, ", "), len(c.Hsms)), nil
}

// repair undoes what an interrupted demonstration left broken in a
// deployment that stays up: a killed HSM, a partition, deleted HSMs. It
// is best effort.
func (f *failoverDemo) repair() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*demoSettleTimeout)
	defer cancel()
	if f.killed != nil {
		f.d.mgr.Restart(ctx, f.killed.HsmID)
	}
	if f.partitioned {
		f.d.mgr.Heal(ctx)
	}
	for _, az := range f.removed {
		f.d.mgr.CreateHsm(ctx, f.clusterID, az)
	}
}

// raftView is what the control plane sees of the cluster now.
type raftView struct {
	leader    *cluster.HSM
	term      uint64
	up, total int
}

// raftView asks every HSM of the cluster for its status, through the
// control plane (Refresh, as hsmctl status does).
func (f *failoverDemo) raftView(ctx context.Context) (raftView, error) {
	statuses, err := f.d.mgr.Refresh(ctx, f.clusterID)
	if err != nil {
		return raftView{}, err
	}
	c, err := f.d.mgr.Cluster(f.clusterID)
	if err != nil {
		return raftView{}, err
	}
	v := raftView{total: len(c.Hsms)}
	var leaderTerm uint64
	for _, h := range c.Hsms {
		s, ok := statuses[h.HsmID]
		if !ok {
			continue
		}
		v.up++
		v.term = max(v.term, s.GetTerm())
		// A cut-off leader may not know yet that it was replaced: the
		// leader is the one of the highest term.
		if s.GetRaftState() == "Leader" && s.GetTerm() >= leaderTerm {
			v.leader, leaderTerm = h, s.GetTerm()
		}
	}
	return v, nil
}

// leader returns the cluster's Raft leader, waiting for one.
func (f *failoverDemo) leader(ctx context.Context) (*cluster.HSM, error) {
	var leader *cluster.HSM
	err := f.poll(ctx, func(v raftView) bool {
		leader = v.leader
		return leader != nil
	}, "a Raft leader")
	return leader, err
}

// waitSettled waits until the cluster has a leader and every HSM answers.
func (f *failoverDemo) waitSettled(ctx context.Context) error {
	return f.poll(ctx, func(v raftView) bool { return v.leader != nil && v.up == v.total }, "a Raft leader and every HSM answering")
}

// poll waits until ok accepts the cluster's view, for demoSettleTimeout.
func (f *failoverDemo) poll(ctx context.Context, ok func(raftView) bool, what string) error {
	deadline := time.Now().Add(demoSettleTimeout)
	for {
		v, err := f.raftView(ctx)
		if err == nil && ok(v) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: no %s within %s", f.clusterID, what, demoSettleTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (f *failoverDemo) setPhase(name string) {
	f.mu.Lock()
	f.phase = name
	f.mu.Unlock()
}

// printf writes to the live timeline, if any.
func (f *failoverDemo) printf(format string, args ...any) {
	if f.live == nil {
		return
	}
	f.outMu.Lock()
	defer f.outMu.Unlock()
	fmt.Fprintf(f.live, format, args...)
}

// startLoad starts the crypto and key creation workers, paced to the rates.
func (f *failoverDemo) startLoad(ctx context.Context, wg *sync.WaitGroup, cryptoRate, createRate float64) {
	// Each crypto tick is an Encrypt and a Decrypt.
	cryptoEvery := time.Duration(float64(time.Second) * 2 * demoCryptoWorkers / cryptoRate)
	createEvery := time.Duration(float64(time.Second) * demoCreateWorkers / createRate)
	for i := range demoCryptoWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.paced(ctx, cryptoEvery, time.Duration(i)*cryptoEvery/demoCryptoWorkers, f.cryptoOnce)
		}()
	}
	for i := range demoCreateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.paced(ctx, createEvery, time.Duration(i)*createEvery/demoCreateWorkers, f.createOnce)
		}()
	}
}

// paced calls once every interval (or as soon as the previous call ends
// when it took longer), after an initial offset, until ctx ends.
func (f *failoverDemo) paced(ctx context.Context, every, offset time.Duration, once func(ctx context.Context)) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cryptoOnce encrypts a random plaintext, then decrypts the ciphertext
// and compares.
func (f *failoverDemo) cryptoOnce(ctx context.Context) {
	pt := make([]byte, demoPlaintextSize)
	rand.Read(pt)
	cctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
	began := time.Now()
	enc, err := f.kms.Encrypt(cctx, &kms.EncryptInput{KeyId: aws.String(f.keyID), Plaintext: pt})
	cancel()
	if err != nil && ctx.Err() != nil {
		return // the load stopped; the call's fate is not the cluster's doing
	}
	at := f.record(opEncrypt, began, err, metadataOf(enc))
	if err != nil {
		return
	}
	f.mu.Lock()
	f.cts = append(f.cts, demoCiphertext{at: at, blob: enc.CiphertextBlob, pt: pt, phaseName: f.phase})
	f.mu.Unlock()

	cctx, cancel = context.WithTimeout(ctx, demoCallTimeout)
	defer cancel()
	began = time.Now()
	dec, err := f.kms.Decrypt(cctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil && ctx.Err() != nil {
		return
	}
	if err == nil && !bytes.Equal(dec.Plaintext, pt) {
		err = errWrongPlaintext
	}
	f.record(opDecrypt, began, err, metadataOf(dec))
}

// createOnce creates a key in the custom key store.
func (f *failoverDemo) createOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
	defer cancel()
	began := time.Now()
	out, err := f.createKey(cctx)
	if err != nil && ctx.Err() != nil {
		return
	}
	at := f.record(opCreateKey, began, err, metadataOf(out))
	if err == nil {
		f.mu.Lock()
		f.keys = append(f.keys, demoKey{at: at, id: aws.ToString(out.KeyMetadata.KeyId), phaseName: f.phase})
		f.mu.Unlock()
	}
}

// metadataOf returns a successful output's middleware metadata.
func metadataOf(out any) *middleware.Metadata {
	switch o := out.(type) {
	case *kms.EncryptOutput:
		if o != nil {
			return &o.ResultMetadata
		}
	case *kms.DecryptOutput:
		if o != nil {
			return &o.ResultMetadata
		}
	case *kms.CreateKeyOutput:
		if o != nil {
			return &o.ResultMetadata
		}
	}
	return nil
}

// record notes a finished call and returns when it finished.
func (f *failoverDemo) record(kind demoOpKind, began time.Time, err error, md *middleware.Metadata) time.Duration {
	op := demoOp{took: time.Since(began), kind: kind, ok: err == nil}
	if err != nil {
		op.code = demoErrorCode(err)
	} else if md != nil {
		if res, ok := retry.GetAttemptResults(*md); ok {
			op.retried = len(res.Results) > 1
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	op.at = time.Since(f.start)
	f.ops = append(f.ops, op)
	return op.at
}

// demoErrorCode is the AWS exception of err, or what failed without one.
func demoErrorCode(err error) string {
	var api smithy.APIError
	switch {
	case errors.Is(err, errWrongPlaintext):
		return errCodeWrongPlaintext
	case errors.As(err, &api):
		return api.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		return errCodeTimeout
	}
	return errCodeTransport
}

// sample adds a line to the timeline about every second until ctx ends.
func (f *failoverDemo) sample(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	seen, prev := 0, time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Since(f.start)
		f.mu.Lock()
		fresh, phase := f.ops[seen:], f.phase
		seen = len(f.ops)
		f.mu.Unlock()
		s := demoSample{At: seconds(now), Phase: phase}
		var crypto, creates int
		for _, op := range fresh {
			switch {
			case op.kind == opCreateKey && op.ok:
				creates++
			case op.kind == opCreateKey:
				s.CreateErrors++
			case op.ok:
				crypto++
			default:
				s.CryptoErrors++
			}
		}
		span := (now - prev).Seconds()
		prev = now
		s.CryptoOps, s.CreateOps = round1(float64(crypto)/span), round1(float64(creates)/span)
		if v, err := f.raftView(ctx); err == nil {
			s.Term, s.HsmsUp, s.Hsms = v.term, v.up, v.total
			if v.leader != nil {
				s.Leader, s.LeaderAZ = v.leader.HsmID, v.leader.AvailabilityZone
			}
		} else if ctx.Err() != nil {
			return
		}
		f.samples = append(f.samples, s)
		leader := "none"
		if s.Leader != "" {
			leader = fmt.Sprintf("%s (%s)", s.Leader, s.LeaderAZ)
		}
		f.printf("%5s  %-18s  %8.0f  %4d  %8.1f  %4d  %-30s  %4d  %d/%d\n", secs(now), s.Phase, s.CryptoOps, s.CryptoErrors,
			s.CreateOps, s.CreateErrors, leader, s.Term, s.HsmsUp, s.Hsms)
	}
}

// summarize computes each phase's numbers from the recorded calls.
func (f *failoverDemo) summarize(marks []phaseMark, end time.Duration) []*demoPhase {
	f.mu.Lock()
	ops := slices.Clone(f.ops)
	f.mu.Unlock()
	var out []*demoPhase
	for i, m := range marks {
		to := end
		if i+1 < len(marks) {
			to = marks[i+1].start
		}
		p := &demoPhase{Name: m.step.name, Fault: m.step.fault, What: m.what, Start: seconds(m.start), Duration: seconds(to - m.start),
			Action: seconds(m.done - m.start), CryptoErrors: map[string]int{}, CreateErrors: map[string]int{}}
		writes, crypto := gap{last: m.done}, gap{last: m.done}
		for _, op := range ops {
			if op.at < m.start || op.at >= to {
				continue
			}
			// A call sent before the phase's action was done says nothing
			// about the service after it: counted, not in the gaps.
			after := op.at-op.took >= m.done
			switch {
			case op.kind == opCreateKey && op.ok:
				p.CreatesOK++
				if after && p.FirstWrite == nil {
					first := seconds(op.at - m.done)
					p.FirstWrite = &first
				}
				if after {
					writes.success(op.at)
				}
			case op.kind == opCreateKey:
				p.CreatesFailed++
				p.CreateErrors[op.code]++
			case op.ok:
				p.CryptoOK++
				if op.retried {
					p.CryptoRetried++
				}
				p.CryptoMaxLatency = max(p.CryptoMaxLatency, seconds(op.took))
				if after {
					crypto.success(op.at)
				}
			default:
				p.CryptoFailed++
				p.CryptoErrors[op.code]++
			}
		}
		phaseEnd := max(to, m.done)
		p.WritesStopped, p.CryptoStopped = seconds(writes.until(phaseEnd)), seconds(crypto.until(phaseEnd))
		out = append(out, p)
	}
	return out
}

// gap follows the longest time without a success since last.
type gap struct{ last, longest time.Duration }

func (g *gap) success(at time.Duration) { g.longest, g.last = max(g.longest, at-g.last), at }

// until is the longest gap, counting the one from the last success to end.
func (g *gap) until(end time.Duration) time.Duration { return max(g.longest, end-g.last) }

// verify checks every acknowledged key (DescribeKey says Enabled, and it
// encrypts and decrypts) and ciphertext (it decrypts to its plaintext),
// retrying each check a few times so that a passing hiccup is not a loss.
// When staysUp is set, it then schedules the demo's
// keys for deletion.
func (f *failoverDemo) verify(ctx context.Context, rep *demoReport, staysUp bool) {
	f.mu.Lock()
	keys, cts := slices.Clone(f.keys), slices.Clone(f.cts)
	f.mu.Unlock()
	byName := map[string]*demoPhase{}
	for _, p := range rep.Phases {
		byName[p.Name] = p
	}
	var mu sync.Mutex
	lose := func(l demoLoss) {
		mu.Lock()
		defer mu.Unlock()
		rep.Verify.Lost = append(rep.Verify.Lost, l)
		if p := byName[l.Phase]; p != nil {
			if l.Kind == "key" {
				p.KeysLost++
			} else {
				p.CiphertextsLost++
			}
		}
	}
	rep.Verify.KeysAcknowledged, rep.Verify.CiphertextsAcknowledged = len(keys), len(cts)
	var keysOK, ctsOK, scheduled int
	parallel(len(keys), func(i int) {
		k := keys[i]
		if err := f.retryCheck(ctx, func(ctx context.Context) error { return f.checkKey(ctx, k.id) }); err != nil {
			lose(demoLoss{Kind: "key", KeyID: k.id, Phase: k.phaseName, Error: err.Error()})
		} else {
			mu.Lock()
			keysOK++
			mu.Unlock()
		}
	})
	parallel(len(cts), func(i int) {
		c := cts[i]
		if err := f.retryCheck(ctx, func(ctx context.Context) error { return f.checkCiphertext(ctx, c.blob, c.pt) }); err != nil {
			lose(demoLoss{Kind: "ciphertext", KeyID: f.keyID, Phase: c.phaseName, Error: err.Error()})
		} else {
			mu.Lock()
			ctsOK++
			mu.Unlock()
		}
	})
	rep.Verify.KeysOK, rep.Verify.CiphertextsOK = keysOK, ctsOK
	rep.Lost = len(rep.Verify.Lost) > 0
	sort.Slice(rep.Verify.Lost, func(i, j int) bool { return rep.Verify.Lost[i].KeyID < rep.Verify.Lost[j].KeyID })
	if !staysUp {
		return
	}
	ids := []string{f.keyID}
	for _, k := range keys {
		ids = append(ids, k.id)
	}
	parallel(len(ids), func(i int) {
		cctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
		defer cancel()
		if _, err := f.kms.ScheduleKeyDeletion(cctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(ids[i]), PendingWindowInDays: aws.Int32(7)}); err == nil {
			mu.Lock()
			scheduled++
			mu.Unlock()
		}
	})
	rep.Verify.KeysScheduledForDeletion = scheduled
}

// checkKey checks that key id is Enabled and that its backing key in the
// cluster encrypts and decrypts.
func (f *failoverDemo) checkKey(ctx context.Context, id string) error {
	d, err := f.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		return fmt.Errorf("describe the key: %w", err)
	}
	if st := d.KeyMetadata.KeyState; st != kmstypes.KeyStateEnabled {
		return fmt.Errorf("the key is %s, not Enabled", st)
	}
	pt := make([]byte, demoPlaintextSize)
	rand.Read(pt)
	enc, err := f.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: pt})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return f.checkCiphertext(ctx, enc.CiphertextBlob, pt)
}

// checkCiphertext checks that blob decrypts to pt.
func (f *failoverDemo) checkCiphertext(ctx context.Context, blob, pt []byte) error {
	dec, err := f.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	if !bytes.Equal(dec.Plaintext, pt) {
		return errWrongPlaintext
	}
	return nil
}

// retryCheck runs check up to demoVerifyAttempts times, a second apart,
// and returns its last error.
func (f *failoverDemo) retryCheck(ctx context.Context, check func(ctx context.Context) error) error {
	var err error
	for range demoVerifyAttempts {
		cctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
		err = check(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return err
}

// parallel calls do(0..n-1) on demoVerifyWorkers goroutines.
func parallel(n int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, demoVerifyWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				do(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// printDemoSummary prints the report's phases and final check.
func printDemoSummary(w io.Writer, rep *demoReport) {
	fmt.Fprintf(w, "\nSummary (phases of %gs; %g Encrypt/Decrypt and %g CreateKey calls per second; SDK default retryer)\n\n",
		rep.PhaseSeconds, rep.CryptoRate, rep.CreateRate)
	for _, p := range rep.Phases {
		fmt.Fprintf(w, "  %5s  %-18s  %s\n", secs(time.Duration(p.Start*float64(time.Second))), p.Name, p.What)
	}
	fmt.Fprintf(w, "\n  %-18s  %14s  %11s  %16s  %14s  %13s  %14s  %4s\n", "PHASE", "WRITES STOPPED", "FIRST WRITE",
		"CREATEKEY OK/ERR", "CRYPTO STOPPED", "CRYPTO OK/ERR", "SLOWEST CRYPTO", "LOST")
	for _, p := range rep.Phases {
		first := "none"
		if p.FirstWrite != nil {
			first = fmt.Sprintf("%.1fs", *p.FirstWrite)
		}
		stopped := fmt.Sprintf("%.1fs", p.WritesStopped)
		if p.FirstWrite == nil {
			stopped += " (all)"
		}
		fmt.Fprintf(w, "  %-18s  %14s  %11s  %16s  %14s  %13s  %14s  %4d\n", p.Name, stopped, first,
			fmt.Sprintf("%d/%d", p.CreatesOK, p.CreatesFailed), fmt.Sprintf("%.1fs", p.CryptoStopped),
			fmt.Sprintf("%d/%d", p.CryptoOK, p.CryptoFailed),
			time.Duration(p.CryptoMaxLatency*float64(time.Second)).Round(time.Millisecond), p.KeysLost+p.CiphertextsLost)
	}
	var errs []string
	for _, p := range rep.Phases {
		for _, e := range []struct {
			op    string
			codes map[string]int
		}{{"CreateKey", p.CreateErrors}, {"Encrypt/Decrypt", p.CryptoErrors}} {
			codes := make([]string, 0, len(e.codes))
			for c := range e.codes {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			for _, c := range codes {
				errs = append(errs, fmt.Sprintf("  %-18s  %s refused %d× with %s", p.Name, e.op, e.codes[c], c))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors, after the SDK's retries:\n%s\n", strings.Join(errs, "\n"))
	}
	var retried []string
	for _, p := range rep.Phases {
		if p.CryptoRetried > 0 {
			retried = append(retried, fmt.Sprintf("%s %d", p.Name, p.CryptoRetried))
		}
	}
	if len(retried) > 0 {
		fmt.Fprintf(w, "\nCrypto calls that succeeded after the SDK retried them: %s\n", strings.Join(retried, ", "))
	}
	v := rep.Verify
	fmt.Fprintln(w)
	if !rep.Lost {
		fmt.Fprintf(w, "Nothing lost: all %d acknowledged keys are DescribeKey-able, Enabled, and encrypt and decrypt; all %d acknowledged ciphertexts decrypt to their plaintexts.\n",
			v.KeysAcknowledged, v.CiphertextsAcknowledged)
	} else {
		fmt.Fprintf(w, "LOST: %d of %d acknowledged keys and %d of %d acknowledged ciphertexts failed the check:\n",
			v.KeysAcknowledged-v.KeysOK, v.KeysAcknowledged, v.CiphertextsAcknowledged-v.CiphertextsOK, v.CiphertextsAcknowledged)
		for i, l := range v.Lost {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more (--output json lists them all)\n", len(v.Lost)-10)
				break
			}
			fmt.Fprintf(w, "  %s %s (%s): %s\n", l.Kind, l.KeyID, l.Phase, l.Error)
		}
	}
	if v.KeysScheduledForDeletion > 0 {
		fmt.Fprintf(w, "The demo's %d keys are scheduled for deletion (7 days; hsmctl clock advance 7d ends the wait).\n", v.KeysScheduledForDeletion)
	}
}

// hsmAZs lists the HSMs' AZs.
func hsmAZs(hsms []*cluster.HSM) []string {
	var out []string
	for _, h := range hsms {
		out = append(out, h.AvailabilityZone)
	}
	return out
}

// secs formats a time since the start as whole seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second)) }

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func round1(x float64) float64 { return math.Round(x*10) / 10 }
