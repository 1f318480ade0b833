package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testbin"
)

func TestDemoUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"phase too short", []string{"--phase", "100ms"}, "--phase must be at least 1s"},
		{"no crypto load", []string{"--crypto-rate", "0"}, "--crypto-rate must be in"},
		{"too many creates", []string{"--create-rate", "500"}, "--create-rate in (0, 100]"},
		{"a positional argument", []string{"now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"demo", "failover", "--dir", t.TempDir()}, tt.args...)
			require.Equal(t, 2, run(context.Background(), args, &out, &errOut), "stderr: %s", errOut.String())
			require.Contains(t, errOut.String(), tt.want)
		})
	}
}

// TestDemoSummarize checks how a phase's numbers come from the calls: the
// writes-stopped gap is measured from the end of the phase's action, and a
// CreateKey sent before it does not count as a write after the fault.
func TestDemoSummarize(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	f := &failoverDemo{ops: []demoOp{
		{at: 200 * ms, took: 100 * ms, kind: opCreateKey, ok: true},
		{at: 500 * ms, took: 10 * ms, kind: opEncrypt, ok: true},
		// Phase "fault" starts at 1s, its action is done at 1.1s.
		{at: 1200 * ms, took: 300 * ms, kind: opCreateKey, ok: true}, // sent at 0.9s: not a write after the fault
		{at: 1300 * ms, took: 50 * ms, kind: opCreateKey, code: "CloudHsmClusterInvalidConfigurationException"},
		{at: 1400 * ms, took: 20 * ms, kind: opDecrypt, code: "KMSInvalidStateException"},
		{at: 1500 * ms, took: 900 * ms, kind: opEncrypt, ok: true, retried: true},
		{at: 2600 * ms, took: 100 * ms, kind: opCreateKey, ok: true}, // the first write: 1.5s after the action
		{at: 2800 * ms, took: 100 * ms, kind: opCreateKey, ok: true},
		// Phase "quiet" starts at 3s: no write at all.
		{at: 3500 * ms, took: 100 * ms, kind: opEncrypt, ok: true},
	}}
	marks := []phaseMark{
		{step: demoStep{name: "first"}, start: 0, done: 0},
		{step: demoStep{name: "fault", fault: true}, start: s, done: 1100 * ms},
		{step: demoStep{name: "quiet"}, start: 3 * s, done: 3 * s},
	}
	phases := f.summarize(marks, 4*s)
	require.Len(t, phases, 3)

	first := phases[0]
	require.Equal(t, 1, first.CreatesOK)
	require.Equal(t, 1, first.CryptoOK)
	require.InDelta(t, 0.8, first.WritesStopped, 1e-9, "from the last write to the phase's end")
	require.InDelta(t, 0.2, *first.FirstWrite, 1e-9)
	require.InDelta(t, 0.5, first.CryptoStopped, 1e-9)

	fault := phases[1]
	require.True(t, fault.Fault)
	require.InDelta(t, 0.1, fault.Action, 1e-9)
	require.Equal(t, 3, fault.CreatesOK, "every CreateKey answered in the phase counts")
	require.Equal(t, 1, fault.CreatesFailed)
	require.Equal(t, map[string]int{"CloudHsmClusterInvalidConfigurationException": 1}, fault.CreateErrors)
	require.Equal(t, 1, fault.CryptoOK)
	require.Equal(t, 1, fault.CryptoFailed)
	require.Equal(t, 1, fault.CryptoRetried)
	require.Equal(t, map[string]int{"KMSInvalidStateException": 1}, fault.CryptoErrors)
	require.InDelta(t, 0.9, fault.CryptoMaxLatency, 1e-9)
	require.NotNil(t, fault.FirstWrite)
	require.InDelta(t, 1.5, *fault.FirstWrite, 1e-9, "from the action's end, ignoring the CreateKey sent before it")
	require.InDelta(t, 1.5, fault.WritesStopped, 1e-9)
	require.InDelta(t, 1.9, fault.CryptoStopped, 1e-9, "the one success was sent before the action")

	quiet := phases[2]
	require.Nil(t, quiet.FirstWrite)
	require.InDelta(t, 1.0, quiet.WritesStopped, 1e-9, "no write: the whole phase")
	require.InDelta(t, 0.5, quiet.CryptoStopped, 1e-9)
}

// TestDemoFailover runs hsmctl demo failover end to end on a fresh
// deployment it starts itself, with short phases and a light load, and
// checks what the demonstration exists to show (DESIGN.md invariants 6
// and 7) as properties, not timings: no crypto call fails when the leader
// dies; a two-HSM cluster that loses one HSM refuses CreateKey with
// CloudHsmClusterInvalidConfigurationException, as AWS does; writes come
// back; nothing acknowledged is lost; and the demo stops the deployment
// it started.
func TestDemoFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a deployment and breaks it")
	}
	bin, err := testbin.Build("hsmd", "kmsproxy")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(bin) })
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := filepath.Join(t.TempDir(), "dep")
	t.Cleanup(func() {
		// The demo stops what it started; this is for a test that failed
		// half way.
		if t.Failed() {
			run(context.Background(), []string{"down", "--dir", dir}, &bytes.Buffer{}, &bytes.Buffer{})
		}
	})

	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"demo", "failover", "--dir", dir, "--phase", "3s",
		"--crypto-rate", "40", "--create-rate", "4", "--output", "json"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out.String(), errOut.String())
	var rep demoReport
	dec := json.NewDecoder(&out)
	require.NoError(t, dec.Decode(&rep))
	require.False(t, dec.More(), "one JSON document")

	require.True(t, rep.StartedDeployment)
	require.NotEmpty(t, rep.CustomKeyStoreID)
	require.NotEmpty(t, rep.KeyID)
	var names []string
	phases := map[string]*demoPhase{}
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		phases[p.Name] = p
		require.Positive(t, p.CryptoOK, "crypto goes on (%s)", p.Name)
	}
	require.Equal(t, []string{phaseBaseline, phaseKillLeader, phaseRestart, phasePartition, phaseHeal,
		phaseTwoHsms, phaseKillOneOfTwo, phaseRestartTwo, phaseAddHsm}, names)

	kill := phases[phaseKillLeader]
	require.True(t, kill.Fault)
	require.Zero(t, kill.CryptoFailed, "no crypto call fails when the leader dies: %v", kill.CryptoErrors)

	// One HSM of two left: no leader, so no CreateKey, but crypto goes on
	// from the survivor's replica (its calls wait only for their key's
	// writes, not for the session's last CreateKey, which the survivor may
	// hold without knowing it committed).
	lone := phases[phaseKillOneOfTwo]
	require.Zero(t, lone.CryptoFailed, "no crypto call fails with one HSM of two left: %v", lone.CryptoErrors)
	require.Positive(t, lone.CreateErrors["CloudHsmClusterInvalidConfigurationException"], "%+v", lone)
	require.Nil(t, lone.FirstWrite, "no CreateKey sent after the kill succeeds")
	noLeader := false
	for _, s := range rep.Timeline {
		if s.Phase == phaseKillOneOfTwo && s.Leader == "" && s.HsmsUp == 1 && s.Hsms == 2 {
			noLeader = true
		}
	}
	require.True(t, noLeader, "the timeline shows the lone HSM without a leader")
	require.Positive(t, phases[phaseAddHsm].CreatesOK, "writes come back")

	require.False(t, rep.Lost, "%+v", rep.Verify.Lost)
	v := rep.Verify
	require.Positive(t, v.KeysAcknowledged)
	require.Equal(t, v.KeysAcknowledged, v.KeysOK)
	require.Positive(t, v.CiphertextsAcknowledged)
	require.Equal(t, v.CiphertextsAcknowledged, v.CiphertextsOK)

	d, err := openDeployment(dir, false, nil)
	require.NoError(t, err)
	running, err := d.runningHsms()
	require.NoError(t, err)
	require.Zero(t, running, "the demo stops the deployment it started")
}
