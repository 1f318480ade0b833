package chaos

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// faultKind is what the nemesis does to the cluster.
type faultKind string

// The faults. Each takes out at most one HSM (a minority of three), so a
// majority always remains; latency and a restart of the KMS endpoint can
// come alone or with any other.
const (
	faultKillLeader    faultKind = "kill-leader"    // kill -9 the Raft leader; restart at heal
	faultKillHSM       faultKind = "kill-hsm"       // kill -9 a random HSM; restart at heal
	faultPause         faultKind = "pause"          // SIGSTOP a random HSM; SIGCONT at heal
	faultPartitionAZ   faultKind = "partition-az"   // cut one AZ off from the others
	faultIsolateLeader faultKind = "isolate-leader" // cut the leader off from every other HSM
	faultLatency       faultKind = "latency"        // latency between two AZs, alone
	faultRestartKMS    faultKind = "restart-kms"    // kill -9 the KMS endpoint and start it again, alone
)

// faultWeights are the kinds' odds, in percent. Leader kills come most
// often: they give the write-unavailability figures.
var faultWeights = []struct {
	kind   faultKind
	weight int
}{
	{faultKillLeader, 25},
	{faultKillHSM, 14},
	{faultPause, 14},
	{faultPartitionAZ, 14},
	{faultIsolateLeader, 14},
	{faultLatency, 9},
	{faultRestartKMS, 10},
}

// restartWithOdds is the odds (one in restartWithOdds) that a fault of
// another kind comes with a restart of the KMS endpoint: the endpoint then
// reconnects its custom key store to a cluster that has lost an HSM, its
// leader or an AZ.
const restartWithOdds = 5

// plan is one fault of the schedule, drawn from the seed alone: a replay
// draws the same plans. Who the leader is is only known when it runs.
type plan struct {
	Kind faultKind
	// Target picks the HSM (kill-hsm, pause) or the AZ (partition-az), as
	// an index into the run's HSMs, which are in AZ order.
	Target int
	// LatencyMs, when positive, adds that much latency between AZs
	// LatencyAZs for the duration of the fault.
	LatencyMs  uint32
	LatencyAZs [2]int
	// RestartKMS kills the KMS endpoint (SIGKILL) and starts it again, on
	// the same address and data directory, once the rest of the fault is
	// in force.
	RestartKMS bool
	// Hold is how long the fault lasts; Quiet the calm that follows heal.
	Hold, Quiet time.Duration
}

// schedule draws plans from a seed.
type schedule struct{ rng *mrand.Rand }

func newSchedule(seed uint64) *schedule {
	return &schedule{rng: mrand.New(mrand.NewPCG(seed, 0x6e656d65736973))}
}

func (s *schedule) next(hsms int) plan {
	p := plan{Hold: time.Duration(2000+s.rng.IntN(4000)) * time.Millisecond,
		Quiet: time.Duration(1000+s.rng.IntN(2000)) * time.Millisecond}
	r := s.rng.IntN(100)
	for _, w := range faultWeights {
		if r < w.weight {
			p.Kind = w.kind
			break
		}
		r -= w.weight
	}
	p.Target = s.rng.IntN(hsms)
	// Latency alone, or in a third of the other faults.
	a := s.rng.IntN(hsms)
	b := (a + 1 + s.rng.IntN(hsms-1)) % hsms
	ms := uint32(20 + s.rng.IntN(180))
	if p.Kind == faultLatency || s.rng.IntN(3) == 0 {
		p.LatencyMs, p.LatencyAZs = ms, [2]int{a, b}
	}
	p.RestartKMS = s.rng.IntN(restartWithOdds) == 0 || p.Kind == faultRestartKMS
	return p
}

// faultRecord is what happened during one fault.
type faultRecord struct {
	plan
	// Desc says what was done, to which HSM or AZ.
	Desc string
	// Target is the HSM killed, paused or isolated, or the AZ cut off.
	Target string
	// LeaderLost says the fault took the leader out.
	LeaderLost bool
	// Start is when the fault began and Healed when heal finished, since
	// the start of the run.
	Start, Healed time.Duration
	// WriteUnavailable is the time from the fault to the first successful
	// write after it, measured when the leader was lost; 0 otherwise, and
	// negative when no write succeeded within the probe's budget.
	WriteUnavailable time.Duration
	// HSM and KMS are the crypto figures of the two layers during
	// [Start, Healed].
	HSM, KMS        layerStats
	LongestWriteGap time.Duration
	// KMSListening is the time from the endpoint's kill to its new
	// process accepting connections, KMSConnected to its custom key store
	// showing CONNECTED and KMSServing to the store serving crypto again
	// (when RestartKMS).
	KMSListening, KMSConnected, KMSServing time.Duration
	// connected is closed when the restarted endpoint's store is CONNECTED
	// again, or the wait failed with connectErr.
	connected  chan struct{}
	connectErr error
}

// layerStats are one crypto layer's figures over a span.
type layerStats struct {
	// Mean and MinSec are the mean and the lowest successful operations
	// per second (the lowest over the whole seconds of the span).
	Mean   float64
	MinSec int
	// Failed counts failed operations; Gap is the longest stretch of the
	// span with no success.
	Failed int
	Gap    time.Duration
}

// probeBudget bounds a write probe: writes must come back within it after
// the leader's loss, or the run fails.
const probeBudget = 30 * time.Second

// nemesis runs the schedule against a deployment.
type nemesis struct {
	d     *deployment
	sched *schedule
	rec   *recorder
	kdb   *kdbWorkload
	kms   *kmsEndpoint
	logf  func(format string, args ...any)

	mu     sync.Mutex
	faults []*faultRecord
	probes sync.WaitGroup
}

// run injects faults until ctx ends, healing each one before the next. It
// fails when the cluster does not become healthy before a fault, the KMS
// endpoint does not serve its custom key store again, or the control plane
// cannot inject one.
func (n *nemesis) run(ctx context.Context) error {
	// A calm start: the history begins with the cluster whole.
	sleep(ctx, 2*time.Second)
	for i := 0; ctx.Err() == nil; i++ {
		p := n.sched.next(len(n.d.hsmIDs))
		leader, err := n.d.waitHealthy(context.Background(), 30*time.Second)
		if err != nil {
			return fmt.Errorf("before fault %d: %w", i, err)
		}
		if _, err := n.kms.waitConnected(context.Background(), connectTimeout); err != nil {
			return fmt.Errorf("before fault %d: the KMS endpoint: %w", i, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		f, err := n.inject(i, p, leader)
		if err != nil {
			n.heal(f)
			return fmt.Errorf("fault %d (%s): %w", i, p.Kind, err)
		}
		sleep(ctx, p.Hold)
		if err := n.heal(f); err != nil {
			return fmt.Errorf("heal fault %d (%s): %w", i, f.Desc, err)
		}
		sleep(ctx, p.Quiet)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// inject starts fault p; leader is the current leader.
func (n *nemesis) inject(i int, p plan, leader string) (*faultRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &faultRecord{plan: p, Start: time.Duration(n.rec.now())}
	n.mu.Lock()
	n.faults = append(n.faults, f)
	n.mu.Unlock()
	azs := cluster.DefaultAZs
	if p.LatencyMs > 0 {
		a, b := azs[p.LatencyAZs[0]], azs[p.LatencyAZs[1]]
		f.Desc = fmt.Sprintf("latency %d ms %s<->%s", p.LatencyMs, a, b)
		if err := n.d.mgr.Latency(ctx, a, b, p.LatencyMs); err != nil {
			return f, err
		}
	}
	var err error
	at := time.Now()
	switch p.Kind {
	case faultKillLeader:
		f.Target, f.LeaderLost = leader, true
		err = n.d.mgr.Kill(leader)
	case faultKillHSM:
		f.Target = n.d.hsmIDs[p.Target]
		f.LeaderLost = f.Target == leader
		err = n.d.mgr.Kill(f.Target)
	case faultPause:
		f.Target = n.d.hsmIDs[p.Target]
		f.LeaderLost = f.Target == leader
		err = n.d.mgr.Pause(f.Target)
	case faultPartitionAZ:
		f.Target = azs[p.Target]
		f.LeaderLost = n.d.azOf[leader] == f.Target
		err = n.d.mgr.PartitionAZ(ctx, f.Target)
	case faultIsolateLeader:
		f.Target, f.LeaderLost = leader, true
		err = n.d.mgr.Isolate(ctx, leader)
	}
	var what []string
	if p.Kind != faultLatency && p.Kind != faultRestartKMS {
		w := fmt.Sprintf("%s %s", p.Kind, f.Target)
		if f.Target != "" && f.Target != leader && p.Kind != faultPartitionAZ {
			w += " (follower)"
		} else if f.LeaderLost {
			w += " (leader)"
		}
		what = append(what, w)
	}
	if p.RestartKMS {
		what = append(what, string(faultRestartKMS))
	}
	if f.Desc != "" {
		what = append(what, f.Desc)
	}
	f.Desc = strings.Join(what, " + ")
	if err == nil && f.LeaderLost {
		n.probe(f, at, fmt.Sprintf("probe-%d-%d", n.kdb.seed, i))
	}
	if err == nil && p.RestartKMS {
		err = n.restartKMS(ctx, f)
	}
	n.logf("%7.3fs fault %d: %s (hold %v)", f.Start.Seconds(), i, f.Desc, p.Hold)
	return f, err
}

// restartKMS kills the endpoint and starts it again, and watches in the
// background for its custom key store to be CONNECTED and to serve crypto
// again; heal waits for that watch.
func (n *nemesis) restartKMS(ctx context.Context, f *faultRecord) error {
	at := time.Now()
	err := n.kms.restart(ctx)
	f.KMSListening, f.connected = time.Since(at), make(chan struct{})
	if err != nil {
		close(f.connected)
		return err
	}
	go func() {
		defer close(f.connected)
		r, err := n.kms.waitConnected(context.Background(), connectTimeout)
		n.mu.Lock()
		f.KMSConnected, f.KMSServing, f.connectErr = f.KMSListening+r.connected, f.KMSListening+r.serving, err
		n.mu.Unlock()
	}()
	return nil
}

// heal undoes f: thaws or restarts its HSM, clears the network faults,
// and waits for a restarted KMS endpoint's store to serve crypto again.
func (n *nemesis) heal(f *faultRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	switch f.Kind {
	case faultKillLeader, faultKillHSM:
		err = n.d.mgr.Restart(ctx, f.Target)
	case faultPause:
		err = n.d.mgr.Resume(f.Target)
	}
	if herr := n.d.mgr.Heal(ctx); err == nil {
		err = herr
	}
	if f.connected != nil {
		<-f.connected
		n.mu.Lock()
		if err == nil && f.connectErr != nil {
			err = fmt.Errorf("the restarted KMS endpoint: %w", f.connectErr)
		}
		n.mu.Unlock()
	}
	f.Healed = time.Duration(n.rec.now())
	n.logf("%7.3fs healed: %s", f.Healed.Seconds(), f.Desc)
	return err
}

// healAll makes sure every HSM and the KMS endpoint run and no fault is
// in force: the end of a run, whatever happened.
func (n *nemesis) healAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, h := range n.d.cluster().Hsms {
		n.d.mgr.Resume(h.HsmID)
	}
	st := n.d.statuses(ctx)
	for _, id := range n.d.hsmIDs {
		if _, ok := st[id]; !ok {
			if err := n.d.mgr.Restart(ctx, id); err != nil {
				return err
			}
		}
	}
	if err := n.d.mgr.Heal(ctx); err != nil {
		return err
	}
	if !n.kms.running() {
		if err := n.kms.start(ctx); err != nil {
			return err
		}
	}
	_, err := n.kms.waitConnected(ctx, connectTimeout)
	return err
}

// probe writes a key until a write succeeds, and records in f the time
// since at, when the leader was lost. The key joins the history and the
// durability check like any other.
func (n *nemesis) probe(f *faultRecord, at time.Time, label string) {
	n.probes.Add(1)
	go func() {
		defer n.probes.Done()
		n.kdb.reg.add(label)
		proc := n.rec.process()
		in := kdbInput{Op: opCreate, Label: label}
		callAt := n.rec.now()
		ctx, cancel := context.WithTimeout(context.Background(), probeBudget)
		defer cancel()
		ctx = metadataWithRequestID(ctx)
		var resp *hsmv1.GenerateSymmetricKeyResponse
		var err error
		for {
			resp, err = n.kdb.api.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{
				Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 128, Label: label, Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
			if err == nil || !transient(err) || ctx.Err() != nil {
				break
			}
			sleep(ctx, 10*time.Millisecond)
		}
		took := time.Since(at)
		n.mu.Lock()
		if err == nil {
			f.WriteUnavailable = took
		} else {
			f.WriteUnavailable = -1
		}
		n.mu.Unlock()
		n.logf("%7.3fs writes back %v after %s (%v)", seconds(n.rec.now()), took.Round(time.Millisecond), f.Desc, err)
		if n.kdb.record(proc, in, kdbOutput{Handle: resp.GetKey().GetHandle()}, callAt, classify(err), err) {
			h := resp.GetKey().GetHandle()
			n.kdb.reg.update(label, func(s *labelState) { s.handle, s.acked = h, true })
		}
	}()
}

// records returns the faults so far; safe once the probes are done.
func (n *nemesis) records() []*faultRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*faultRecord(nil), n.faults...)
}

// annotations are the faults as spans, for the history and visualisation.
func (n *nemesis) annotations() []annotation {
	var out []annotation
	for _, f := range n.records() {
		out = append(out, annotation{start: int64(f.Start), end: int64(f.Healed), text: f.Desc})
	}
	return out
}
