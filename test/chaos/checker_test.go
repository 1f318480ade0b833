package chaos

import (
	"math"
	"os"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// hop builds a history operation; ret < 0 means an unknown outcome.
func hop(client int, call, ret int64, in kdbInput, out kdbOutput) porcupine.Operation {
	if ret < 0 {
		ret = math.MaxInt64
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func create(l string) kdbInput                           { return kdbInput{Op: opCreate, Label: l} }
func get(l string) kdbInput                              { return kdbInput{Op: opGet, Label: l} }
func del(l string, h uint64) kdbInput                    { return kdbInput{Op: opDelete, Label: l, Handle: h} }
func handle(h uint64) kdbOutput                          { return kdbOutput{Handle: h} }
func found(hs ...uint64) kdbOutput                       { return kdbOutput{Handles: hs} }
func deleted() kdbOutput                                 { return kdbOutput{} }
func notFound() kdbOutput                                { return kdbOutput{NotFound: true} }
func unknownOut() kdbOutput                              { return kdbOutput{} }
func ops(o ...porcupine.Operation) []porcupine.Operation { return o }

// TestKeyDBModel shows that the checker accepts the histories the key
// database may produce and finds the anomalies it must not: the chaos
// suite's linearizability verdict is only worth what this model rejects.
func TestKeyDBModel(t *testing.T) {
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
		// anomalies is the number of labels at fault when not Ok.
		anomalies int
	}{
		{name: "sequential create, get, delete, get", want: porcupine.Ok, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(0, 20, 30, get("a"), found(7)),
			hop(0, 40, 50, del("a", 7), deleted()),
			hop(0, 60, 70, get("a"), found()),
		)},
		{name: "a get concurrent with the create may miss it", want: porcupine.Ok, history: ops(
			hop(0, 0, 50, create("a"), handle(7)),
			hop(1, 10, 20, get("a"), found()),
			hop(1, 30, 40, get("a"), found(7)),
		)},
		{name: "stale read after an acknowledged create", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(1, 20, 30, get("a"), found()),
		)},
		{name: "a read goes back in time", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 100, create("a"), handle(7)),
			hop(1, 10, 20, get("a"), found(7)),
			hop(2, 30, 40, get("a"), found()),
		)},
		{name: "a create applied twice shows two handles", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(1, 20, 30, get("a"), found(7, 8)),
		)},
		{name: "a get sees another handle than the create returned", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(1, 20, 30, get("a"), found(8)),
		)},
		{name: "a deleted key comes back", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(0, 20, 30, del("a", 7), deleted()),
			hop(1, 40, 50, get("a"), found(7)),
		)},
		{name: "deleting an acknowledged key finds nothing", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(1, 20, 30, del("a", 7), notFound()),
		)},
		{name: "an unknown create may have happened", want: porcupine.Ok, history: ops(
			hop(0, 0, -1, create("a"), unknownOut()),
			hop(1, 20, 30, get("a"), found()),
			hop(1, 40, 50, get("a"), found(9)),
			hop(1, 60, 70, get("a"), found(9)),
		)},
		{name: "an unknown create may never happen", want: porcupine.Ok, history: ops(
			hop(0, 0, -1, create("a"), unknownOut()),
			hop(1, 20, 30, get("a"), found()),
			hop(1, 40, 50, get("a"), found()),
		)},
		{name: "an unknown create cannot take effect before it is invoked", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(1, 0, 10, get("a"), found(9)),
			hop(0, 20, -1, create("a"), unknownOut()),
		)},
		{name: "a key seen by an unknown create's reader cannot vanish", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, -1, create("a"), unknownOut()),
			hop(1, 20, 30, get("a"), found(9)),
			hop(1, 40, 50, get("a"), found()),
		)},
		{name: "an unknown delete may or may not happen", want: porcupine.Ok, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(0, 20, -1, del("a", 7), unknownOut()),
			hop(1, 30, 40, get("a"), found(7)),
			hop(1, 50, 60, get("a"), found()),
		)},
		{name: "after an unknown delete a key cannot come back", want: porcupine.Illegal, anomalies: 1, history: ops(
			hop(0, 0, 10, create("a"), handle(7)),
			hop(0, 20, -1, del("a", 7), unknownOut()),
			hop(1, 30, 40, get("a"), found()),
			hop(1, 50, 60, get("a"), found(7)),
		)},
		{name: "anomalies are counted per label", want: porcupine.Illegal, anomalies: 2, history: ops(
			hop(0, 0, 10, create("a"), handle(1)),
			hop(0, 0, 10, create("b"), handle(2)),
			hop(0, 0, 10, create("c"), handle(3)),
			hop(1, 20, 30, get("a"), found()),
			hop(1, 20, 30, get("b"), found(2)),
			hop(1, 20, 30, get("c"), found(4)),
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			faults := []annotation{{start: 5, end: 25, text: "kill-leader hsm-x"}}
			res, err := checkLinearizable(kdbLin, tc.history, faults, dir)
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Result)
			require.Equal(t, tc.anomalies, res.Anomalies)
			if tc.want == porcupine.Ok {
				require.Empty(t, res.Visualization)
				return
			}
			require.FileExists(t, res.Visualization)
			require.NoError(t, writeHistory(kdbLin, kdbLin.historyFile(dir), []string{"test"}, tc.history, faults))
			b, err := os.ReadFile(kdbLin.historyFile(dir))
			require.NoError(t, err)
			require.Contains(t, string(b), "nemesis kill-leader hsm-x")
		})
	}
}
