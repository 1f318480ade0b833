package chaos

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hsmsim/hsmsim/internal/testbin"
)

var (
	flagDuration = flag.Duration("chaos.duration", 0,
		"run the chaos suite for this long per seed (default: skip, or 60s with HSMSIM_CHAOS=1)")
	flagSeeds = flag.Int("chaos.seeds", 3, "how many random seeds to run")
	flagSeed  = flag.Uint64("chaos.seed", 0, "run this seed only (replays a logged 'chaos seed N')")
	flagKeep  = flag.Bool("chaos.keep", false, "keep every run's directory, not only failing runs'")
	flagHsmd  = flag.String("chaos.hsmd-args", "",
		"extra hsmd arguments, space-separated (e.g. hashicorp/raft's default timings: --heartbeat-timeout=1s --election-timeout=1s --leader-lease-timeout=500ms)")
)

// envChaos turns the suite on without flags (HSMSIM_CHAOS=1).
const envChaos = "HSMSIM_CHAOS"

// defaultDuration is a run's length when only HSMSIM_CHAOS is set.
const defaultDuration = 60 * time.Second

// hsmdPath and kmsproxyPath are the binaries TestMain builds for the suite.
var hsmdPath, kmsproxyPath string

// chaosDuration returns how long each run lasts, 0 when the suite is off.
func chaosDuration() time.Duration {
	if *flagDuration > 0 {
		return *flagDuration
	}
	if v := os.Getenv(envChaos); v != "" && v != "0" {
		return defaultDuration
	}
	return 0
}

func TestMain(m *testing.M) {
	flag.Parse()
	if chaosDuration() == 0 {
		os.Exit(m.Run())
	}
	var dir string
	testbin.Main(func() int {
		hsmdPath, kmsproxyPath = filepath.Join(dir, "hsmd"), filepath.Join(dir, "kmsproxy")
		return m.Run()
	}, &dir, "hsmd", "kmsproxy")
}

// TestChaos runs the nemesis and the workloads once per seed and checks
// every run; see the package documentation.
func TestChaos(t *testing.T) {
	dur := chaosDuration()
	if dur == 0 {
		t.Skipf("chaos suite off: pass -chaos.duration=60s or set %s=1 (make chaos, make chaos-ci)", envChaos)
	}
	seeds := []uint64{*flagSeed}
	if *flagSeed == 0 {
		seeds = seeds[:0]
		for range *flagSeeds {
			seeds = append(seeds, rand.Uint64N(1<<31)+1)
		}
	}
	var reports []*runReport
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runChaos(t, seed, dur, func(r *runReport) { reports = append(reports, r) })
		})
	}
	summarize(t, reports)
}

// summarize logs the figures over every run: what the closing note
// asks for.
func summarize(t *testing.T, reports []*runReport) {
	var kills, leaderLoss, restartGaps, connected, serving []time.Duration
	ops, unknown, anomalies, lost, faults := 0, 0, 0, 0, 0
	kmsOps, kmsUnknown, kmsAnomalies, kmsLost, kmsKeys, kmsPairs, orphans := 0, 0, 0, 0, 0, 0, 0
	var hsm, kms cryptoReport
	var hsmWhere, kmsWhere string
	var seeds []string
	for _, r := range reports {
		seeds = append(seeds, fmt.Sprint(r.Seed))
		ops += r.Ops
		unknown += r.Unknown
		anomalies += r.Anomalies
		lost += r.LostKeys + r.Resurrected + r.BadDecrypts + r.Diverged
		kmsOps += r.KMSKeyOps + r.AliasOps
		kmsUnknown += r.KMSKeyUnknown + r.AliasUnknown
		kmsAnomalies += r.KMSKeyAnomalies + r.AliasAnomalies
		kd := r.KMSDurability
		kmsLost += kd.lost + kd.wrongState + kd.badDecrypts
		kmsKeys += kd.keys
		kmsPairs += kd.pairs
		orphans += kd.orphanHSMKeys
		faults += len(r.Faults)
		addCrypto(&hsm, &hsmWhere, r.HSMCrypto, r.Seed)
		addCrypto(&kms, &kmsWhere, r.KMSCrypto, r.Seed)
		for _, f := range r.Faults {
			if f.RestartKMS {
				restartGaps = append(restartGaps, f.KMS.Gap)
				connected = append(connected, f.KMSConnected)
				serving = append(serving, f.KMSServing)
			}
			if f.WriteUnavailable <= 0 {
				continue
			}
			if f.Kind == faultKillLeader {
				kills = append(kills, f.WriteUnavailable)
			} else {
				leaderLoss = append(leaderLoss, f.WriteUnavailable)
			}
		}
	}
	t.Logf("chaos summary: seeds %s; %d faults; %d key database operations (%d unknown); anomalies %d; lost or wrong keys %d",
		strings.Join(seeds, ","), faults, ops, unknown, anomalies, lost)
	t.Logf("chaos summary: KMS endpoint: %d key and alias operations (%d unknown); anomalies %d; %d keys and %d ciphertexts checked, lost or wrong %d; HSM keys backing no KMS key %d",
		kmsOps, kmsUnknown, kmsAnomalies, kmsKeys, kmsPairs, kmsLost, orphans)
	for _, l := range []struct {
		name  string
		r     cryptoReport
		where string
	}{{"HSM", hsm, hsmWhere}, {"KMS", kms, kmsWhere}} {
		t.Logf("chaos summary: crypto %s: %d ops, %d failed (+%d during endpoint restarts), longest gap outside restarts %v (%s)",
			l.name, l.r.Ops, l.r.Failed, l.r.RestartFailed, l.r.LongestGap.Round(time.Millisecond), l.where)
	}
	t.Logf("chaos summary: KMS crypto gap at an endpoint restart: %s", durationStats(restartGaps))
	t.Logf("chaos summary: after an endpoint kill, its custom key store says CONNECTED after %s", durationStats(connected))
	t.Logf("chaos summary: after an endpoint kill, its custom key store serves crypto after %s", durationStats(serving))
	t.Logf("chaos summary: write unavailability after a leader kill: %s", durationStats(kills))
	t.Logf("chaos summary: write unavailability after other losses of the leader: %s", durationStats(leaderLoss))
}

// addCrypto adds one run's crypto figures to a sum, keeping the longest
// gap and where it happened.
func addCrypto(sum *cryptoReport, where *string, r cryptoReport, seed uint64) {
	sum.Ops += r.Ops
	sum.Failed += r.Failed
	sum.RestartFailed += r.RestartFailed
	sum.Mismatches += r.Mismatches
	if r.LongestGap > sum.LongestGap {
		sum.LongestGap, *where = r.LongestGap, fmt.Sprintf("seed %d, %s", seed, r.GapDuring)
	}
}

// durationStats renders n, median and max of ds.
func durationStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none measured"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("n=%d median %v max %v [%s]", len(s), med.Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), strings.Join(parts, " "))
}
