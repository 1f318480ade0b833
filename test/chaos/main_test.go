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
		"extra hsmd arguments, space-separated (e.g. other Raft timings: --heartbeat-timeout=500ms)")
)

// envChaos turns the suite on without flags (HSMSIM_CHAOS=1).
const envChaos = "HSMSIM_CHAOS"

// defaultDuration is a run's length when only HSMSIM_CHAOS is set.
const defaultDuration = 60 * time.Second

// hsmdPath is the hsmd binary TestMain builds for the suite.
var hsmdPath string

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
		hsmdPath = filepath.Join(dir, "hsmd")
		return m.Run()
	}, &dir, "hsmd")
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
	var kills, leaderLoss []time.Duration
	var gap time.Duration
	var gapWhere string
	ops, unknown, anomalies, lost, cryptoOps, cryptoFailed, faults := 0, 0, 0, 0, 0, 0, 0
	var seeds []string
	for _, r := range reports {
		seeds = append(seeds, fmt.Sprint(r.Seed))
		ops += r.Ops
		unknown += r.Unknown
		anomalies += r.Anomalies
		lost += r.LostKeys + r.Resurrected + r.BadDecrypts + r.Diverged
		cryptoOps += r.CryptoOps
		cryptoFailed += r.CryptoFailed
		faults += len(r.Faults)
		if r.LongestCryptoGap > gap {
			gap, gapWhere = r.LongestCryptoGap, fmt.Sprintf("seed %d, %s", r.Seed, r.GapDuring)
		}
		for _, f := range r.Faults {
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
	t.Logf("chaos summary: seeds %s; %d faults; %d key operations (%d unknown); anomalies %d; lost or wrong keys %d",
		strings.Join(seeds, ","), faults, ops, unknown, anomalies, lost)
	t.Logf("chaos summary: crypto %d ops, %d failed, longest gap %v (%s)", cryptoOps, cryptoFailed, gap.Round(time.Millisecond), gapWhere)
	t.Logf("chaos summary: write unavailability after a leader kill: %s", durationStats(kills))
	t.Logf("chaos summary: write unavailability after other losses of the leader: %s", durationStats(leaderLoss))
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
