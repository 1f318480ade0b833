package chaos

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
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
	// runs four HSMs and the KMS endpoint.
	kdbWorkers    = 4
	cryptoWorkers = 3
	// cryptoKeys are the keys the crypto workload uses.
	cryptoKeys = 3
	// cryptoGapBound is the longest crypto may stop: the client's hedge
	// delay (100 ms) on an HSM that does not answer and the hedge's attempt
	// on another, with scheduling slack on a loaded 2-core machine. See the
	// package documentation.
	cryptoGapBound = 1500 * time.Millisecond
	// kmsCryptoGapBound is the bound through the endpoint, outside its
	// restarts. The endpoint's client of the custom key store has the same
	// timings, but it also writes: a call on a key carries the index of
	// the key's last write and of the client's last write to no key (the
	// change of kmsuser's password when the store connects), and a
	// follower waits until it has applied that index, which it learns only
	// from a leader. When the leader stops right after such a write,
	// crypto through the endpoint thus waits for the next leader (an
	// election, 1 to 3.6 s here). 5 s covers it, with slack for a loaded
	// machine.
	kmsCryptoGapBound = 5 * time.Second
	// kmsRestartGapBound is the longest crypto through the endpoint may
	// stop when the endpoint restarts: the new process logs in to the
	// fleet and listens (under a second), then reconnects the custom key
	// store: a status probe of every HSM (1 s at most), kmsuser's password
	// checked on one HSM (up to 5 s when it stops answering meanwhile),
	// and a login on every HSM (3 s at most per HSM that does not answer,
	// in parallel). Until then Encrypt and Decrypt fail (the key store's
	// HSMs cannot be reached); after it, they run at once.
	kmsRestartGapBound = 15 * time.Second
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
	// HSMCrypto and KMSCrypto are the crypto workload's figures on the
	// HSMs and through the KMS endpoint.
	HSMCrypto, KMSCrypto cryptoReport
	// KMS endpoint: key and alias operations, how many had an unknown
	// outcome, and the descriptions and aliases whose history is not
	// linearizable.
	KMSKeyOps, KMSKeyUnknown, KMSKeyAnomalies int
	AliasOps, AliasUnknown, AliasAnomalies    int
	// KMS durability through the endpoint.
	KMSDurability kmsDurability
	// CreateRefusals counts CreateKey's definite refusals by exception.
	CreateRefusals map[string]int
}

// cryptoReport is one crypto layer's figures over a run.
type cryptoReport struct {
	Ops, Failed, Mismatches int
	// RestartFailed are the failures during a restart of the KMS endpoint
	// (Failed counts the others).
	RestartFailed int
	// LongestGap is the longest stop outside the endpoint's restarts, and
	// GapDuring the fault it happened in.
	LongestGap time.Duration
	GapDuring  string
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

	hsmAPI := hsmv1.NewHsmServiceClient(crypter)
	var handles []uint64
	for i := range cryptoKeys {
		resp, err := hsmAPI.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES,
			SizeBits: 256, Label: fmt.Sprintf("crypto-%d", i), Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
		require.NoError(t, err)
		handles = append(handles, resp.GetKey().GetHandle())
	}
	require.NoError(t, d.waitConverged(ctx, crypter.ObservedIndex(), 30*time.Second))

	kctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	e, err := startKMS(kctx, d, d.mgr.Store().Dir())
	require.NoError(t, err, "start the KMS endpoint; see %s", d.logFile.Name())
	pool, err := createPool(kctx, e.client(nil), e.storeID, seed)
	cancel()
	require.NoError(t, err)

	rec := newRecorder()
	hcw := hsmCrypto(hsmAPI, handles, rec, seed)
	kcw := kmsCrypto(e.client(nil), pool, rec, seed)
	kdb := &kdbWorkload{api: hsmv1.NewHsmServiceClient(writer), rec: rec, reg: newRegistry(), seed: seed}
	kw := newKMSWorkload(e, rec, seed, pool)
	nem := &nemesis{d: d, sched: newSchedule(seed), rec: rec, kdb: kdb, kms: e, logf: t.Logf}
	stop := make(chan struct{})
	waits := []func(){kdb.start(stop, kdbWorkers), hcw.start(stop, cryptoWorkers), kw.start(stop, kmsWorkers),
		kcw.start(stop, kmsCryptoWorkers)}
	stopWorkloads := sync.OnceFunc(func() {
		close(stop)
		for _, wait := range waits {
			wait()
		}
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
	_, err = e.waitConnected(ctx, connectTimeout)
	require.NoError(t, err, "the KMS endpoint after the final heal")

	rep := &runReport{Seed: seed, Faults: nem.records(), CreateRefusals: kw.refusals}
	faults := nem.annotations()

	// Key database linearizability, with the history kept on disk for a
	// person.
	history := rec.history()
	rep.Ops, rep.Unknown = len(history), countUnknown(history)
	header := []string{fmt.Sprintf("chaos seed %d, %v, %d operations, %d with an unknown outcome", seed, dur, rep.Ops, rep.Unknown)}
	require.NoError(t, writeHistory(kdbLin, kdbLin.historyFile(dir), header, history, faults))
	lin, err := checkLinearizable(kdbLin, history, faults, dir)
	require.NoError(t, err)
	rep.Anomalies = lin.Anomalies

	// Durability, on every HSM alone.
	pairs := slices.Clone(kdb.pairs)
	for _, p := range hcw.pairs {
		pairs = append(pairs, sealed{handle: handles[p.key], pt: p.pt, ct: p.ct})
	}
	durab := checkDurability(t, d, kdb.reg.snapshot(), handles, pairs)
	rep.LostKeys, rep.Resurrected, rep.BadDecrypts, rep.Diverged = durab.lost, durab.resurrected, durab.badDecrypts, durab.diverged
	rep.KeysChecked, rep.PairsChecked = durab.keys, durab.pairs

	// The KMS endpoint: a last read of every alias and a scan of every key
	// join the histories; durability through the endpoint.
	require.NoError(t, kw.finalAliasRead())
	found, err := kw.scan()
	require.NoError(t, err, "scan the KMS keys")
	rep.KMSDurability = checkKMSDurability(kw, found, pool, append(slices.Clone(kw.pairs), kmsPairs(kcw, pool)...))
	rep.KMSDurability.orphanHSMKeys, err = countOrphanHSMKeys(ctx, d, found)
	require.NoError(t, err)
	keyLin := checkKMSHistory(t, kmsKeyLin, kw.keyRec, dir, seed, dur, faults, &rep.KMSKeyOps, &rep.KMSKeyUnknown)
	aliasLin := checkKMSHistory(t, kmsAliasLin, kw.aliasRec, dir, seed, dur, faults, &rep.AliasOps, &rep.AliasUnknown)
	rep.KMSKeyAnomalies, rep.AliasAnomalies = keyLin.Anomalies, aliasLin.Anomalies

	// Crypto and write availability, per layer.
	var restarts []span
	for _, f := range rep.Faults {
		fillFaultStats(f, hcw, kcw, kdb.writes)
		if f.RestartKMS {
			restarts = append(restarts, span{int64(f.Start), int64(f.Healed)})
		}
	}
	rep.HSMCrypto = cryptoFigures(hcw, rep.Faults, nil, end)
	rep.KMSCrypto = cryptoFigures(kcw, rep.Faults, restarts, end)
	logReport(t, rep, kdb.unexpected, kw.unexpected, hcw.failures, kcw.failures, durab.details, rep.KMSDurability.details)
	report(rep)

	// The verdicts.
	require.Equal(t, porcupine.Ok, lin.Result, "linearizability: %d labels at fault %v; history %s, visualisation %s",
		lin.Anomalies, lin.Labels, kdbLin.historyFile(dir), lin.Visualization)
	require.Equal(t, porcupine.Ok, keyLin.Result, "KMS key linearizability: %d descriptions at fault %v; history %s, visualisation %s",
		keyLin.Anomalies, keyLin.Labels, kmsKeyLin.historyFile(dir), keyLin.Visualization)
	require.Equal(t, porcupine.Ok, aliasLin.Result, "alias linearizability: %d aliases at fault %v; history %s, visualisation %s",
		aliasLin.Anomalies, aliasLin.Labels, kmsAliasLin.historyFile(dir), aliasLin.Visualization)
	require.Empty(t, kdb.unexpected, "answers the key database workload never provokes")
	require.Empty(t, kw.unexpected, "answers the KMS workload never provokes")
	require.Zero(t, rep.LostKeys, "acknowledged keys missing")
	require.Zero(t, rep.Resurrected, "acknowledged deletions undone")
	require.Zero(t, rep.BadDecrypts, "ciphertexts that do not decrypt to their plaintext")
	require.Zero(t, rep.Diverged, "HSMs whose keys differ")
	require.Zero(t, rep.KMSDurability.lost, "acknowledged KMS keys missing")
	require.Zero(t, rep.KMSDurability.wrongState, "KMS keys in another state than acknowledged")
	require.Zero(t, rep.KMSDurability.badDecrypts, "endpoint ciphertexts that do not decrypt to their plaintext")
	for _, c := range []struct {
		name  string
		r     cryptoReport
		bound time.Duration
	}{{"HSM", rep.HSMCrypto, cryptoGapBound}, {"KMS endpoint", rep.KMSCrypto, kmsCryptoGapBound}} {
		require.Zero(t, c.r.Mismatches, "%s: Decrypt returned another plaintext", c.name)
		require.Zero(t, c.r.Failed, "%s: crypto operations failed despite the clients' retries (not during a restart of the endpoint)", c.name)
		require.Less(t, c.r.LongestGap, c.bound, "%s: crypto stopped (during %s)", c.name, c.r.GapDuring)
	}
	for _, f := range rep.Faults {
		require.GreaterOrEqual(t, f.WriteUnavailable, time.Duration(0), "writes did not come back within %v after %s", probeBudget, f.Desc)
		if f.RestartKMS {
			require.Less(t, f.KMS.Gap, kmsRestartGapBound, "crypto through the endpoint stopped too long when it restarted (%s)", f.Desc)
		}
	}
}

// countUnknown counts a history's operations with an unknown outcome.
func countUnknown(history []porcupine.Operation) int {
	n := 0
	for _, op := range history {
		if op.Return == math.MaxInt64 {
			n++
		}
	}
	return n
}

// checkKMSHistory writes rec's history to dir and checks it against m;
// ops and unknown receive its size and how many outcomes are unknown.
func checkKMSHistory(t *testing.T, m linModel, rec *recorder, dir string, seed uint64, dur time.Duration,
	faults []annotation, ops, unknown *int) linResult {
	t.Helper()
	history := rec.history()
	*ops, *unknown = len(history), countUnknown(history)
	header := []string{fmt.Sprintf("chaos seed %d, %v, %s: %d operations, %d with an unknown outcome", seed, dur, m.name, *ops, *unknown)}
	require.NoError(t, writeHistory(m, m.historyFile(dir), header, history, faults))
	lin, err := checkLinearizable(m, history, faults, dir)
	require.NoError(t, err)
	return lin
}

// longestGap returns the longest stretch of [from, to] with no success, and
// where it began.
func longestGap(successes []int64, from, to int64) (time.Duration, int64) {
	return longestGapOutside(successes, from, to, nil)
}

// longestGapOutside returns the longest stretch of [from, to] with no
// success that overlaps none of the excluded spans, and where it began.
func longestGapOutside(successes []int64, from, to int64, excluded []span) (time.Duration, int64) {
	s := slices.Clone(successes)
	slices.Sort(s)
	prev, best, at := from, int64(0), from
	for _, x := range append(s, to) {
		if x < from || x > to {
			continue
		}
		gap := span{prev, x}
		if x-prev > best && !slices.ContainsFunc(excluded, gap.overlaps) {
			best, at = x-prev, prev
		}
		prev = x
	}
	return time.Duration(best), at
}

// cryptoFigures computes a crypto layer's figures over [0, end]; failures
// and stops during the restarts are counted apart.
func cryptoFigures(cw *cryptoWorkload, faults []*faultRecord, restarts []span, end int64) cryptoReport {
	r := cryptoReport{Ops: len(cw.successes), Mismatches: cw.mismatches, GapDuring: "no fault"}
	for _, f := range cw.failedAt {
		if slices.ContainsFunc(restarts, f.overlaps) {
			r.RestartFailed++
		} else {
			r.Failed++
		}
	}
	var at int64
	r.LongestGap, at = longestGapOutside(cw.successes, 0, end, restarts)
	for _, f := range faults {
		if at >= int64(f.Start) && at <= int64(f.Healed) {
			r.GapDuring = f.Desc
		}
	}
	return r
}

// fillFaultStats computes f's crypto figures on both layers and its write
// figures from the workloads' records.
func fillFaultStats(f *faultRecord, hsm, kms *cryptoWorkload, writes []int64) {
	s := span{int64(f.Start), int64(f.Healed)}
	f.HSM, f.KMS = hsm.stats(s), kms.stats(s)
	f.LongestWriteGap, _ = longestGap(writes, s.from, s.to)
}

// stats computes w's figures over s.
func (w *cryptoWorkload) stats(s span) layerStats {
	from, to := s.from, s.to
	secs := max(1, int((to-from+int64(time.Second)-1)/int64(time.Second)))
	perSec := make([]int, secs)
	n := 0
	for _, x := range w.successes {
		if x >= from && x < to {
			perSec[(x-from)/int64(time.Second)]++
			n++
		}
	}
	var st layerStats
	st.Mean = float64(n) / (float64(to-from) / 1e9)
	// The last second is partial; the lowest is over the full ones.
	st.MinSec = slices.Min(perSec[:max(1, len(perSec)-1)])
	for _, f := range w.failedAt {
		if f.overlaps(s) {
			st.Failed++
		}
	}
	st.Gap, _ = longestGap(w.successes, from, to)
	return st
}

func logReport(t *testing.T, rep *runReport, kdbUnexpected, kmsUnexpected, hsmFailures, kmsFailures, durability, kmsDurability []string) {
	t.Logf("seed %d: key database: %d operations (%d unknown outcome), %d labels not linearizable", rep.Seed, rep.Ops, rep.Unknown, rep.Anomalies)
	t.Logf("seed %d: durability on every HSM: %d keys, %d ciphertexts; lost %d, resurrected %d, bad decrypts %d, diverged HSMs %d",
		rep.Seed, rep.KeysChecked, rep.PairsChecked, rep.LostKeys, rep.Resurrected, rep.BadDecrypts, rep.Diverged)
	t.Logf("seed %d: KMS keys: %d operations (%d unknown outcome), %d descriptions not linearizable; CreateKey refusals %v",
		rep.Seed, rep.KMSKeyOps, rep.KMSKeyUnknown, rep.KMSKeyAnomalies, rep.CreateRefusals)
	t.Logf("seed %d: KMS aliases: %d operations (%d unknown outcome), %d aliases not linearizable", rep.Seed, rep.AliasOps, rep.AliasUnknown, rep.AliasAnomalies)
	kd := rep.KMSDurability
	t.Logf("seed %d: durability through the endpoint: %d keys, %d ciphertexts; lost %d, wrong state %d, bad decrypts %d (keys of unknown creates found: %d; HSM keys backing no KMS key: %d)",
		rep.Seed, kd.keys, kd.pairs, kd.lost, kd.wrongState, kd.badDecrypts, kd.orphans, kd.orphanHSMKeys)
	for _, l := range []struct {
		name string
		r    cryptoReport
	}{{"HSM", rep.HSMCrypto}, {"KMS", rep.KMSCrypto}} {
		t.Logf("seed %d: crypto %s: %d ops, %d failed (+%d during endpoint restarts), %d mismatches, longest gap outside restarts %v (during %s)",
			rep.Seed, l.name, l.r.Ops, l.r.Failed, l.r.RestartFailed, l.r.Mismatches, l.r.LongestGap.Round(time.Millisecond), l.r.GapDuring)
	}
	for i, f := range rep.Faults {
		wu := "-"
		if f.WriteUnavailable != 0 {
			wu = f.WriteUnavailable.Round(time.Millisecond).String()
		}
		restart := ""
		if f.RestartKMS {
			restart = fmt.Sprintf("  endpoint listening after %v, store CONNECTED after %v, serving after %v, KMS crypto gap %v",
				f.KMSListening.Round(time.Millisecond), f.KMSConnected.Round(time.Millisecond), f.KMSServing.Round(time.Millisecond),
				f.KMS.Gap.Round(time.Millisecond))
		}
		t.Logf("seed %d fault %d: %-60s %5.1fs  crypto HSM %4.0f ops/s (min %3d/s, %d failed, gap %v) | KMS %4.0f ops/s (min %3d/s, %d failed, gap %v)  longest write gap %6v  writes back after %s%s",
			rep.Seed, i, f.Desc, (f.Healed - f.Start).Seconds(),
			f.HSM.Mean, f.HSM.MinSec, f.HSM.Failed, f.HSM.Gap.Round(time.Millisecond),
			f.KMS.Mean, f.KMS.MinSec, f.KMS.Failed, f.KMS.Gap.Round(time.Millisecond),
			f.LongestWriteGap.Round(time.Millisecond), wu, restart)
	}
	logSome(t, "unexpected key database answer", kdbUnexpected, 10)
	logSome(t, "unexpected KMS answer", kmsUnexpected, 10)
	logSome(t, "HSM crypto failure", hsmFailures, 10)
	logSome(t, "KMS crypto failure", kmsFailures, 10)
	logSome(t, "durability", durability, 20)
	logSome(t, "KMS durability", kmsDurability, 20)
}

// logSome logs up to n of lines, each prefixed with what.
func logSome(t *testing.T, what string, lines []string, n int) {
	for i, s := range lines {
		if i == n {
			t.Logf("... %d more: %s", len(lines)-n, what)
			return
		}
		t.Logf("%s: %s", what, s)
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
