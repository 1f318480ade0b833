package chaos

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	// kdbWorkers and cryptoWorkers are the workloads' goroutines: enough
	// concurrency for interesting histories on a 2-core machine that also
	// runs three HSMs.
	kdbWorkers    = 4
	cryptoWorkers = 3
	// cryptoKeys are the keys the crypto workload uses.
	cryptoKeys = 3
	// cryptoGapBound is the longest crypto may stop: one attempt on an HSM
	// that does not answer (the client's 3 s attempt timeout) and one retry
	// interval (50 ms), rounded up to leave scheduling slack on a loaded
	// 2-core machine. See the package documentation.
	cryptoGapBound = 3500 * time.Millisecond
	// afterHeal is how long the workloads keep running on the healed
	// cluster, so that the history ends with the cluster whole.
	afterHeal = 2 * time.Second
)

// runReport is one run's figures.
type runReport struct {
	Seed   uint64
	Faults []*faultRecord
	// Key database: operations, how many had an unknown outcome, and the
	// labels whose history is not linearizable.
	Ops, Unknown, Anomalies int
	// Durability: acknowledged keys missing on an HSM, acknowledged
	// deletions undone, ciphertexts that did not decrypt to their
	// plaintext, HSMs whose key set differs from the others'.
	LostKeys, Resurrected, BadDecrypts, Diverged int
	// KeysChecked and PairsChecked are what the durability check covered,
	// on each HSM.
	KeysChecked, PairsChecked int
	// Crypto: successful and failed operations, and the longest stop.
	CryptoOps, CryptoFailed, CryptoMismatches int
	LongestCryptoGap                          time.Duration
	GapDuring                                 string
}

// runChaos runs one seed: deployment, workloads, nemesis, heal, checks. It
// hands the run's figures to report before it judges them, so that the
// summary covers failing runs too.
func runChaos(t *testing.T, seed uint64, dur time.Duration, report func(*runReport)) {
	t.Logf("chaos seed %d (replay: go test ./test/chaos/ -run TestChaos -v -chaos.seed=%d -chaos.duration=%v)", seed, seed, dur)
	dir, err := os.MkdirTemp("", fmt.Sprintf("hsmsim-chaos-%d-", seed))
	require.NoError(t, err)
	// Registered first, so it runs after the deployment has stopped.
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("chaos seed %d: run directory kept: %s", seed, dir)
			return
		}
		os.RemoveAll(dir)
	})
	d := startDeployment(t, dir)
	ctx := context.Background()
	writer, err := d.client(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { writer.Close() })
	crypter, err := d.client(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { crypter.Close() })

	cw := &cryptoWorkload{api: hsmv1.NewHsmServiceClient(crypter), seed: seed}
	for i := range cryptoKeys {
		resp, err := cw.api.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES,
			SizeBits: 256, Label: fmt.Sprintf("crypto-%d", i), Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
		require.NoError(t, err)
		cw.keys = append(cw.keys, resp.GetKey().GetHandle())
	}
	require.NoError(t, d.waitConverged(ctx, crypter.ObservedIndex(), 30*time.Second))

	rec := newRecorder()
	cw.rec = rec
	kdb := &kdbWorkload{api: hsmv1.NewHsmServiceClient(writer), rec: rec, reg: newRegistry(), seed: seed}
	nem := &nemesis{d: d, sched: newSchedule(seed), rec: rec, kdb: kdb, logf: t.Logf}
	stop := make(chan struct{})
	waitKDB := kdb.start(stop, kdbWorkers)
	waitCrypto := cw.start(stop, cryptoWorkers)
	stopWorkloads := sync.OnceFunc(func() {
		close(stop)
		waitKDB()
		waitCrypto()
		nem.probes.Wait()
	})
	// Also on a failure below, before the clients close.
	t.Cleanup(stopWorkloads)

	runCtx, cancel := context.WithTimeout(ctx, dur)
	nemErr := nem.run(runCtx)
	cancel()
	healErr := nem.healAll()
	_, healthyErr := d.waitHealthy(ctx, 60*time.Second)
	time.Sleep(afterHeal) // load on the healed cluster, not a synchronization
	stopWorkloads()
	end := rec.now()
	t.Logf("%7.3fs workloads stopped", seconds(end))
	require.NoError(t, nemErr, "nemesis")
	require.NoError(t, healErr, "final heal")
	require.NoError(t, healthyErr, "after the final heal")
	require.NoError(t, d.waitConverged(ctx, max(writer.ObservedIndex(), crypter.ObservedIndex()), 60*time.Second))

	rep := &runReport{Seed: seed, Faults: nem.records()}
	history := rec.history()
	rep.Ops = len(history)
	for _, op := range history {
		if op.Return == math.MaxInt64 {
			rep.Unknown++
		}
	}

	// Linearizability, with the history kept on disk for a person.
	header := []string{fmt.Sprintf("chaos seed %d, %v, %d operations, %d with an unknown outcome", seed, dur, rep.Ops, rep.Unknown)}
	require.NoError(t, writeHistory(filepath.Join(dir, "history.txt"), header, history, nem.annotations()))
	lin, err := checkLinearizable(history, nem.annotations(), dir)
	require.NoError(t, err)
	rep.Anomalies = lin.Anomalies

	// Durability, on every HSM alone.
	pairs := append(append([]sealed(nil), kdb.pairs...), cw.pairs...)
	durab := checkDurability(t, d, kdb.reg.snapshot(), cw.keys, pairs)
	rep.LostKeys, rep.Resurrected, rep.BadDecrypts, rep.Diverged = durab.lost, durab.resurrected, durab.badDecrypts, durab.diverged
	rep.KeysChecked, rep.PairsChecked = durab.keys, durab.pairs

	// Crypto and write availability.
	rep.CryptoOps, rep.CryptoFailed, rep.CryptoMismatches = len(cw.successes), len(cw.failures), cw.mismatches
	var gapAt int64
	rep.LongestCryptoGap, gapAt = longestGap(cw.successes, 0, end)
	rep.GapDuring = "no fault"
	for _, f := range rep.Faults {
		fillFaultStats(f, cw, kdb.writes)
		if gapAt >= int64(f.Start) && gapAt <= int64(f.Healed) {
			rep.GapDuring = f.Desc
		}
	}
	logReport(t, rep, kdb.unexpected, cw.failures, durab.details)
	report(rep)

	// The verdicts.
	require.Equal(t, porcupine.Ok, lin.Result, "linearizability: %d labels at fault %v; history %s, visualisation %s",
		lin.Anomalies, lin.Labels, filepath.Join(dir, "history.txt"), lin.Visualization)
	require.Empty(t, kdb.unexpected, "answers the workload never provokes")
	require.Zero(t, rep.LostKeys, "acknowledged keys missing")
	require.Zero(t, rep.Resurrected, "acknowledged deletions undone")
	require.Zero(t, rep.BadDecrypts, "ciphertexts that do not decrypt to their plaintext")
	require.Zero(t, rep.Diverged, "HSMs whose keys differ")
	require.Zero(t, rep.CryptoMismatches, "Decrypt returned another plaintext")
	require.Zero(t, rep.CryptoFailed, "crypto operations failed despite the client's retries")
	require.Less(t, rep.LongestCryptoGap, cryptoGapBound, "crypto stopped (during %s)", rep.GapDuring)
	for _, f := range rep.Faults {
		require.GreaterOrEqual(t, f.WriteUnavailable, time.Duration(0), "writes did not come back within %v after %s", probeBudget, f.Desc)
	}
}

// longestGap returns the longest stretch of [from, to] with no success, and
// where it began.
func longestGap(successes []int64, from, to int64) (time.Duration, int64) {
	s := slices.Clone(successes)
	slices.Sort(s)
	prev, best, at := from, int64(0), from
	for _, x := range append(s, to) {
		if x < from || x > to {
			continue
		}
		if x-prev > best {
			best, at = x-prev, prev
		}
		prev = x
	}
	return time.Duration(best), at
}

// fillFaultStats computes f's crypto and write figures from the workloads'
// records.
func fillFaultStats(f *faultRecord, cw *cryptoWorkload, writes []int64) {
	from, to := int64(f.Start), int64(f.Healed)
	secs := max(1, int((to-from+int64(time.Second)-1)/int64(time.Second)))
	perSec := make([]int, secs)
	n := 0
	for _, x := range cw.successes {
		if x >= from && x < to {
			perSec[(x-from)/int64(time.Second)]++
			n++
		}
	}
	f.CryptoMean = float64(n) / (float64(to-from) / 1e9)
	// The last second is partial; the lowest is over the full ones.
	f.CryptoMinSec = slices.Min(perSec[:max(1, len(perSec)-1)])
	for _, x := range cw.failedAt {
		if x >= from && x <= to {
			f.CryptoFailed++
		}
	}
	f.LongestWriteGap, _ = longestGap(writes, from, to)
}

func logReport(t *testing.T, rep *runReport, unexpected, cryptoFailures, durability []string) {
	t.Logf("seed %d: %d key operations (%d unknown outcome), %d labels not linearizable", rep.Seed, rep.Ops, rep.Unknown, rep.Anomalies)
	t.Logf("seed %d: durability on every HSM: %d keys, %d ciphertexts; lost %d, resurrected %d, bad decrypts %d, diverged HSMs %d",
		rep.Seed, rep.KeysChecked, rep.PairsChecked, rep.LostKeys, rep.Resurrected, rep.BadDecrypts, rep.Diverged)
	t.Logf("seed %d: crypto %d ops, %d failed, %d mismatches, longest gap %v (during %s)", rep.Seed, rep.CryptoOps,
		rep.CryptoFailed, rep.CryptoMismatches, rep.LongestCryptoGap.Round(time.Millisecond), rep.GapDuring)
	for i, f := range rep.Faults {
		wu := "-"
		if f.WriteUnavailable != 0 {
			wu = f.WriteUnavailable.Round(time.Millisecond).String()
		}
		t.Logf("seed %d fault %d: %-60s %5.1fs  crypto %4.0f ops/s (min %3d/s, %d failed)  longest write gap %6v  writes back after %s",
			rep.Seed, i, f.Desc, (f.Healed - f.Start).Seconds(), f.CryptoMean, f.CryptoMinSec, f.CryptoFailed,
			f.LongestWriteGap.Round(time.Millisecond), wu)
	}
	for i, s := range unexpected {
		if i == 10 {
			t.Logf("... %d more unexpected answers", len(unexpected)-10)
			break
		}
		t.Logf("unexpected answer: %s", s)
	}
	for i, s := range cryptoFailures {
		if i == 10 {
			t.Logf("... %d more crypto failures", len(cryptoFailures)-10)
			break
		}
		t.Logf("crypto failure: %s", s)
	}
	for i, s := range durability {
		if i == 20 {
			t.Logf("... %d more durability findings", len(durability)-20)
			break
		}
		t.Logf("durability: %s", s)
	}
}

// durabilityResult is what checkDurability found.
type durabilityResult struct {
	keys, pairs                              int
	lost, resurrected, badDecrypts, diverged int
	details                                  []string
}

// checkDurability logs in to every HSM alone and checks the keys and
// ciphertexts of the run there (see the package documentation).
func checkDurability(t *testing.T, d *deployment, labels []labelState, cryptoKeys []uint64, pairs []sealed) durabilityResult {
	t.Helper()
	var res durabilityResult
	mustExist := map[uint64]string{}
	for i, h := range cryptoKeys {
		mustExist[h] = fmt.Sprintf("crypto-%d", i)
	}
	mustNot := map[uint64]string{}
	for _, l := range labels {
		switch {
		case l.gone:
			mustNot[l.handle] = l.label
		case (l.acked || l.seen) && !l.deleting:
			mustExist[l.handle] = l.label
		}
	}
	var live []sealed
	for _, p := range pairs {
		if _, ok := mustExist[p.handle]; ok {
			live = append(live, p)
		}
	}
	res.keys, res.pairs = len(mustExist), len(live)
	var first map[uint64]string
	for _, id := range d.hsmIDs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cl, err := d.client(ctx, id)
		require.NoError(t, err, "log in to %s alone", id)
		api := hsmv1.NewHsmServiceClient(cl)
		resp, err := api.FindKeys(ctx, &hsmv1.FindKeysRequest{})
		require.NoError(t, err, "list the keys on %s", id)
		have := map[uint64]string{}
		byLabel := map[string]int{}
		for _, k := range resp.GetKeys() {
			have[k.GetHandle()] = k.GetLabel()
			byLabel[k.GetLabel()]++
		}
		for h, l := range mustExist {
			if got, ok := have[h]; !ok || got != l {
				res.lost++
				res.details = append(res.details, fmt.Sprintf("%s: key %d %q missing (found %q)", id, h, l, got))
			}
		}
		for h, l := range mustNot {
			if got, ok := have[h]; ok {
				res.resurrected++
				res.details = append(res.details, fmt.Sprintf("%s: deleted key %d %q exists (label %q)", id, h, l, got))
			}
		}
		for l, n := range byLabel {
			if n > 1 {
				res.lost++ // a duplicate is as wrong as a loss
				res.details = append(res.details, fmt.Sprintf("%s: %d keys labelled %q", id, n, l))
			}
		}
		if first == nil {
			first = have
		} else if !maps.Equal(first, have) {
			res.diverged++
			res.details = append(res.details, fmt.Sprintf("%s: %d keys, the first HSM %d, not the same", id, len(have), len(first)))
		}
		bad := decryptAll(ctx, api, live)
		res.badDecrypts += len(bad)
		for _, b := range bad {
			res.details = append(res.details, fmt.Sprintf("%s: %s", id, b))
		}
		cl.Close()
		cancel()
	}
	return res
}

// decryptAll decrypts every pair on api (one HSM), a few at a time, and
// describes each that fails or gives another plaintext.
func decryptAll(ctx context.Context, api hsmv1.HsmServiceClient, pairs []sealed) []string {
	var mu sync.Mutex
	var bad []string
	work := make(chan sealed)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for p := range work {
				resp, err := api.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: p.handle,
					Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Ciphertext: p.ct})
				if err != nil || !bytes.Equal(resp.GetPlaintext(), p.pt) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("ciphertext of key %d does not decrypt: %v", p.handle, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()
	return bad
}
