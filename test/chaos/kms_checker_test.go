package chaos

import (
	"math"
	"os"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// kop builds a KMS key history operation; ret < 0 means an unknown outcome.
func kop(client int, call, ret int64, in kmsKeyInput, out kmsKeyOutput) porcupine.Operation {
	if ret < 0 {
		ret, out = math.MaxInt64, kmsKeyOutput{Unknown: true}
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func kcreate(d string) kmsKeyInput            { return kmsKeyInput{Op: kopCreate, Desc: d} }
func kdescribe(d, id string) kmsKeyInput      { return kmsKeyInput{Op: kopDescribe, Desc: d, KeyID: id} }
func kschedule(d, id string) kmsKeyInput      { return kmsKeyInput{Op: kopSchedule, Desc: d, KeyID: id} }
func kscan(d string) kmsKeyInput              { return kmsKeyInput{Op: kopScan, Desc: d} }
func kcreated(id string) kmsKeyOutput         { return kmsKeyOutput{KeyID: id} }
func kstate(st string) kmsKeyOutput           { return kmsKeyOutput{State: st} }
func kfound(m map[string]string) kmsKeyOutput { return kmsKeyOutput{Found: joinFound(m)} }

// TestKMSKeyModel shows what the KMS key model accepts and rejects.
func TestKMSKeyModel(t *testing.T) {
	unknown := kmsKeyOutput{}
	tests := []struct {
		name      string
		history   []porcupine.Operation
		want      porcupine.CheckResult
		anomalies int
	}{
		{name: "create, describe, schedule, describe, scan", want: porcupine.Ok, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, 30, kdescribe("d", "k1"), kstate(keyEnabled)),
			kop(0, 40, 50, kschedule("d", "k1"), kmsKeyOutput{}),
			kop(0, 60, 70, kdescribe("d", "k1"), kstate(keyPendingDeletion)),
			kop(0, 80, 90, kschedule("d", "k1"), kmsKeyOutput{InvalidState: true}),
			kop(0, 100, 110, kscan("d"), kfound(map[string]string{"k1": keyPendingDeletion})),
		)},
		{name: "an acknowledged key is lost", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, 30, kdescribe("d", "k1"), kmsKeyOutput{NotFound: true}),
		)},
		{name: "the scan misses an acknowledged key", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 100, 110, kscan("d"), kfound(nil)),
		)},
		{name: "an acknowledged deletion is undone", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, 30, kschedule("d", "k1"), kmsKeyOutput{}),
			kop(1, 40, 50, kdescribe("d", "k1"), kstate(keyEnabled)),
		)},
		{name: "a second schedule succeeds", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, 30, kschedule("d", "k1"), kmsKeyOutput{}),
			kop(1, 40, 50, kschedule("d", "k1"), kmsKeyOutput{}),
		)},
		{name: "a schedule concurrent with a describe", want: porcupine.Ok, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, 60, kschedule("d", "k1"), kmsKeyOutput{}),
			kop(1, 30, 40, kdescribe("d", "k1"), kstate(keyEnabled)),
			kop(1, 45, 50, kdescribe("d", "k1"), kstate(keyPendingDeletion)),
		)},
		{name: "an unknown schedule may or may not happen", want: porcupine.Ok, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(0, 20, -1, kschedule("d", "k1"), unknown),
			kop(1, 30, 40, kdescribe("d", "k1"), kstate(keyEnabled)),
			kop(1, 50, 60, kdescribe("d", "k1"), kstate(keyPendingDeletion)),
		)},
		{name: "an unknown create may leave one anonymous key", want: porcupine.Ok, history: ops(
			kop(0, 0, -1, kcreate("d"), unknown),
			kop(1, 100, 110, kscan("d"), kfound(map[string]string{"k9": keyEnabled})),
		)},
		{name: "a retried create: an unknown attempt, then the answered one", want: porcupine.Ok, history: ops(
			kop(0, 0, -1, kcreate("d"), unknown),
			kop(1, 5, 10, kcreate("d"), kcreated("k1")),
			kop(1, 100, 110, kscan("d"), kfound(map[string]string{"k1": keyEnabled, "k9": keyEnabled})),
		)},
		{name: "an acknowledged create made two keys", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kcreated("k1")),
			kop(1, 100, 110, kscan("d"), kfound(map[string]string{"k1": keyEnabled, "k9": keyEnabled})),
		)},
		{name: "a refused create made a key", want: porcupine.Illegal, anomalies: 1, history: ops(
			kop(0, 0, 10, kcreate("d"), kmsKeyOutput{Refused: true}),
			kop(1, 100, 110, kscan("d"), kfound(map[string]string{"k9": keyEnabled})),
		)},
		{name: "anomalies are counted per description", want: porcupine.Illegal, anomalies: 2, history: ops(
			kop(0, 0, 10, kcreate("a"), kcreated("k1")),
			kop(0, 0, 10, kcreate("b"), kcreated("k2")),
			kop(0, 0, 10, kcreate("c"), kcreated("k3")),
			kop(1, 20, 30, kdescribe("a", "k1"), kstate(keyPendingDeletion)),
			kop(1, 20, 30, kdescribe("b", "k2"), kstate(keyEnabled)),
			kop(1, 20, 30, kscan("c"), kfound(nil)),
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkModelCase(t, kmsKeyLin, tc.history, tc.want, tc.anomalies)
		})
	}
}

// aop builds an alias history operation; ret < 0 means an unknown outcome.
func aop(client int, call, ret int64, in kmsAliasInput, out kmsAliasOutput) porcupine.Operation {
	if ret < 0 {
		ret, out = math.MaxInt64, kmsAliasOutput{Unknown: true}
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func acreate(a, k string) kmsAliasInput { return kmsAliasInput{Op: aopCreate, Alias: a, Target: k} }
func aupdate(a, k string) kmsAliasInput { return kmsAliasInput{Op: aopUpdate, Alias: a, Target: k} }
func adelete(a string) kmsAliasInput    { return kmsAliasInput{Op: aopDelete, Alias: a} }
func aread(a string) kmsAliasInput      { return kmsAliasInput{Op: aopRead, Alias: a} }
func atarget(k string) kmsAliasOutput   { return kmsAliasOutput{Target: k} }

// TestKMSAliasModel shows what the alias model accepts and rejects.
func TestKMSAliasModel(t *testing.T) {
	ok, unknown := kmsAliasOutput{}, kmsAliasOutput{}
	exists, notFound := kmsAliasOutput{Exists: true}, kmsAliasOutput{NotFound: true}
	tests := []struct {
		name      string
		history   []porcupine.Operation
		want      porcupine.CheckResult
		anomalies int
	}{
		{name: "create, read, update, read, delete, read", want: porcupine.Ok, history: ops(
			aop(0, 0, 10, acreate("a", "k1"), ok),
			aop(0, 20, 30, aread("a"), atarget("k1")),
			aop(0, 40, 50, aupdate("a", "k2"), ok),
			aop(1, 60, 70, aread("a"), atarget("k2")),
			aop(1, 80, 90, adelete("a"), ok),
			aop(1, 100, 110, aread("a"), atarget("")),
			aop(0, 120, 130, aupdate("a", "k1"), notFound),
			aop(0, 140, 150, adelete("a"), notFound),
		)},
		{name: "two concurrent creates: one wins", want: porcupine.Ok, history: ops(
			aop(0, 0, 20, acreate("a", "k1"), ok),
			aop(1, 5, 25, acreate("a", "k2"), exists),
			aop(2, 30, 40, aread("a"), atarget("k1")),
		)},
		{name: "two creates both succeed", want: porcupine.Illegal, anomalies: 1, history: ops(
			aop(0, 0, 20, acreate("a", "k1"), ok),
			aop(1, 5, 25, acreate("a", "k2"), ok),
		)},
		{name: "a lost update", want: porcupine.Illegal, anomalies: 1, history: ops(
			aop(0, 0, 10, acreate("a", "k1"), ok),
			aop(0, 20, 30, aupdate("a", "k2"), ok),
			aop(1, 40, 50, aread("a"), atarget("k1")),
		)},
		{name: "a deleted alias comes back", want: porcupine.Illegal, anomalies: 1, history: ops(
			aop(0, 0, 10, acreate("a", "k1"), ok),
			aop(0, 20, 30, adelete("a"), ok),
			aop(1, 40, 50, aread("a"), atarget("k1")),
		)},
		{name: "a retried create finds its own first attempt", want: porcupine.Ok, history: ops(
			aop(0, 0, -1, acreate("a", "k1"), unknown),
			aop(1, 5, 10, acreate("a", "k1"), exists),
			aop(1, 20, 30, aread("a"), atarget("k1")),
		)},
		{name: "a create answered AlreadyExists with no create before", want: porcupine.Illegal, anomalies: 1, history: ops(
			aop(0, 5, 10, acreate("a", "k1"), exists),
		)},
		{name: "an unknown delete may or may not happen", want: porcupine.Ok, history: ops(
			aop(0, 0, 10, acreate("a", "k1"), ok),
			aop(0, 20, -1, adelete("a"), unknown),
			aop(1, 30, 40, aread("a"), atarget("k1")),
			aop(1, 50, 60, aread("a"), atarget("")),
		)},
		{name: "an unknown update cannot take effect before it is invoked", want: porcupine.Illegal, anomalies: 1, history: ops(
			aop(0, 0, 10, acreate("a", "k1"), ok),
			aop(1, 20, 30, aread("a"), atarget("k2")),
			aop(0, 40, -1, aupdate("a", "k2"), unknown),
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkModelCase(t, kmsAliasLin, tc.history, tc.want, tc.anomalies)
		})
	}
}

// checkModelCase checks history against m and, when it is not
// linearizable, the visualisation and the history file.
func checkModelCase(t *testing.T, m linModel, history []porcupine.Operation, want porcupine.CheckResult, anomalies int) {
	t.Helper()
	dir := t.TempDir()
	faults := []annotation{{start: 5, end: 25, text: "restart-kms"}}
	res, err := checkLinearizable(m, history, faults, dir)
	require.NoError(t, err)
	require.Equal(t, want, res.Result)
	require.Equal(t, anomalies, res.Anomalies)
	if want == porcupine.Ok {
		require.Empty(t, res.Visualization)
		return
	}
	require.FileExists(t, res.Visualization)
	require.NoError(t, writeHistory(m, m.historyFile(dir), []string{"test"}, history, faults))
	b, err := os.ReadFile(m.historyFile(dir))
	require.NoError(t, err)
	require.Contains(t, string(b), "nemesis restart-kms")
}
