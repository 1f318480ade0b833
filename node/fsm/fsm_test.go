package fsm_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/fsm"
	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

func initCmd() *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_InitCluster{InitCluster: &hsmfsmv1.InitCluster{
		ClusterId: "cluster-test", ClusterCertPem: "cert", TrustAnchorPem: "anchor",
		AdminUsername: "admin", AdminPasswordHash: "hash-preco",
	}}}
}

func loginFailureCmd(name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RecordLoginFailure{RecordLoginFailure: &hsmfsmv1.RecordLoginFailure{Username: name}}}
}

func commandLog(t *testing.T, index uint64, cmd *hsmfsmv1.Command) *raft.Log {
	t.Helper()
	b, err := fsm.Encode(cmd)
	require.NoError(t, err)
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

func mustApply(t *testing.T, f *fsm.FSM, l *raft.Log) *hsmfsmv1.Result {
	t.Helper()
	res, ok := f.Apply(l).(*hsmfsmv1.Result)
	require.True(t, ok, "Apply returns a *hsmfsmv1.Result")
	return res
}

func TestApply(t *testing.T) {
	f := fsm.New(keydb.New())
	require.Zero(t, f.AppliedIndex())

	res := mustApply(t, f, commandLog(t, 1, initCmd()))
	require.Equal(t, hsmfsmv1.Code_CODE_OK, res.GetCode())
	require.EqualValues(t, 1, f.AppliedIndex())
	require.EqualValues(t, 1, f.DB().AppliedIndex())
	require.Equal(t, "cluster-test", f.DB().Cluster().ID)

	// A business failure is a result, not a panic.
	res = mustApply(t, f, commandLog(t, 2, initCmd()))
	require.Equal(t, hsmfsmv1.Code_CODE_FAILED_PRECONDITION, res.GetCode())
	res = mustApply(t, f, commandLog(t, 3, loginFailureCmd("ghost")))
	require.Equal(t, hsmfsmv1.Code_CODE_NOT_FOUND, res.GetCode())
	require.EqualValues(t, 3, f.AppliedIndex())

	// Entries other than commands are not applied to the database but do
	// advance the index.
	require.Nil(t, f.Apply(&raft.Log{Index: 4, Type: raft.LogNoop}))
	require.EqualValues(t, 4, f.AppliedIndex())
	require.EqualValues(t, 3, f.DB().AppliedIndex())
}

func TestApplyPanicsOnUndecodableCommand(t *testing.T) {
	empty, err := proto.Marshal(&hsmfsmv1.Command{})
	require.NoError(t, err)
	// A command type from a newer binary: an unknown oneof field number.
	future := protowire.AppendTag(nil, 999, protowire.BytesType)
	future = protowire.AppendBytes(future, []byte{0x0a, 0x01, 'x'})

	tests := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff}},
		{"truncated", []byte{0x0a, 0x10, 0x01}},
		{"nil", nil},
		{"empty command", empty},
		{"unknown command type", future},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New(keydb.New())
			require.Panics(t, func() {
				f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: tt.data})
			})
			require.Zero(t, f.AppliedIndex())
			_, err := fsm.Decode(tt.data)
			require.Error(t, err)
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	_, err := fsm.Encode(&hsmfsmv1.Command{})
	require.ErrorIs(t, err, fsm.ErrEmptyCommand)
	_, err = fsm.Encode(nil)
	require.ErrorIs(t, err, fsm.ErrEmptyCommand)

	b, err := fsm.Encode(initCmd())
	require.NoError(t, err)
	got, err := fsm.Decode(b)
	require.NoError(t, err)
	require.True(t, proto.Equal(initCmd(), got))
}

// fakeSink is a raft.SnapshotSink in memory.
type fakeSink struct {
	bytes.Buffer
	writeErr  error
	closed    bool
	cancelled bool
}

func (s *fakeSink) Write(p []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	return s.Buffer.Write(p)
}
func (s *fakeSink) ID() string    { return "fake" }
func (s *fakeSink) Close() error  { s.closed = true; return nil }
func (s *fakeSink) Cancel() error { s.cancelled = true; return nil }

// trackedReader records whether Restore closed it.
type trackedReader struct {
	io.Reader
	closed bool
}

func (r *trackedReader) Close() error { r.closed = true; return nil }

// populated returns an FSM with a few commands applied, up to index 3.
func populated(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New(keydb.New())
	mustApply(t, f, commandLog(t, 1, initCmd()))
	mustApply(t, f, commandLog(t, 2, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_Activate{Activate: &hsmfsmv1.Activate{PasswordHash: "h"}}}))
	res := mustApply(t, f, commandLog(t, 3, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateUser{CreateUser: &hsmfsmv1.CreateUser{
		Actor: "admin", Username: "alice", Role: hsmv1.Role_ROLE_CRYPTO_USER, PasswordHash: "h-alice",
	}}}))
	require.Equal(t, hsmfsmv1.Code_CODE_OK, res.GetCode(), res.GetMessage())
	return f
}

func TestSnapshotPersistRestore(t *testing.T) {
	f := populated(t)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()

	// The snapshot is immutable: later commands do not show in it.
	mustApply(t, f, commandLog(t, 4, loginFailureCmd("alice")))

	sink := &fakeSink{}
	require.NoError(t, snap.Persist(sink))
	require.True(t, sink.closed)
	require.False(t, sink.cancelled)

	g := fsm.New(keydb.New())
	rc := &trackedReader{Reader: bytes.NewReader(sink.Bytes())}
	require.NoError(t, g.Restore(rc))
	require.True(t, rc.closed, "Restore closes the reader")
	require.EqualValues(t, 3, g.AppliedIndex())
	u, found := g.DB().User("alice")
	require.True(t, found)
	require.Zero(t, u.Info.GetFailedLogins())

	// Both continue identically from there.
	mustApply(t, g, commandLog(t, 4, loginFailureCmd("alice")))
	a, err := f.DB().Snapshot()
	require.NoError(t, err)
	b, err := g.DB().Snapshot()
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func TestPersistCancelsOnError(t *testing.T) {
	snap, err := populated(t).Snapshot()
	require.NoError(t, err)
	boom := errors.New("disk full")
	sink := &fakeSink{writeErr: boom}
	err = snap.Persist(sink)
	require.ErrorIs(t, err, boom)
	require.True(t, sink.cancelled)
	require.False(t, sink.closed)
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestRestoreErrors(t *testing.T) {
	f := populated(t)
	err := f.Restore(io.NopCloser(bytes.NewReader([]byte{0xff, 0xff})))
	require.ErrorIs(t, err, keydb.ErrSnapshotDecode)

	boom := errors.New("read failed")
	err = f.Restore(io.NopCloser(failingReader{boom}))
	require.ErrorIs(t, err, boom)

	require.EqualValues(t, 3, f.AppliedIndex(), "a failed restore changes nothing")
	_, found := f.DB().User("alice")
	require.True(t, found)
}

func TestWaitApplied(t *testing.T) {
	t.Run("already applied", func(t *testing.T) {
		f := populated(t)
		require.NoError(t, f.WaitApplied(t.Context(), 0))
		require.NoError(t, f.WaitApplied(t.Context(), 3))
	})

	t.Run("timeout", func(t *testing.T) {
		f := populated(t)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		err := f.WaitApplied(ctx, 4)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("cancelled", func(t *testing.T) {
		f := populated(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.WaitApplied(ctx, 10) }()
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("WaitApplied did not return after cancellation")
		}
	})

	t.Run("reached later", func(t *testing.T) {
		f := populated(t)
		done := make(chan error, 2)
		for range 2 {
			go func() { done <- f.WaitApplied(t.Context(), 6) }()
		}
		for i := uint64(4); i <= 5; i++ {
			mustApply(t, f, commandLog(t, i, loginFailureCmd("alice")))
			select {
			case err := <-done:
				t.Fatalf("WaitApplied returned at index %d: %v", i, err)
			default:
			}
		}
		mustApply(t, f, commandLog(t, 6, loginFailureCmd("alice")))
		for range 2 {
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("WaitApplied did not return once the index was applied")
			}
		}
	})

	t.Run("reached by restore", func(t *testing.T) {
		src := populated(t)
		snap, err := src.Snapshot()
		require.NoError(t, err)
		sink := &fakeSink{}
		require.NoError(t, snap.Persist(sink))

		f := fsm.New(keydb.New())
		done := make(chan error, 1)
		go func() { done <- f.WaitApplied(t.Context(), 3) }()
		require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("WaitApplied did not return after the restore")
		}
	})
}
