package audit_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/audit"
)

// TestGroupCommitConcurrentDurable runs many writers with fsync on: every Record succeeds,
// every event is written once, the chain verifies, and the writers shared fsyncs.
func TestGroupCommitConcurrentDurable(t *testing.T) {
	const goroutines, each = 32, 20
	path := filepath.Join(t.TempDir(), "audit.log")
	var syncs atomic.Int64
	l := mustOpen(t, path, audit.WithFsync(func(f *os.File) error {
		syncs.Add(1)
		time.Sleep(200 * time.Microsecond) // a disk, so that writers pile up behind it
		return f.Sync()
	}))
	recordConcurrently(t, l, goroutines, each)
	records := int64(goroutines * each)
	t.Logf("%d records, %d fsyncs", records, syncs.Load())
	require.Less(t, syncs.Load(), records/2, "concurrent writers share fsyncs")
	require.NoError(t, l.Close())

	requireEachEventOnce(t, path, goroutines*each)
}

// TestGroupCommitOneFsyncCoversWaiters holds the first fsync while other writers append: they
// wait for it, then one more fsync covers all of them.
func TestGroupCommitOneFsyncCoversWaiters(t *testing.T) {
	const waiters = 10
	path := filepath.Join(t.TempDir(), "audit.log")
	started, release := make(chan struct{}), make(chan struct{})
	var syncs atomic.Int64
	l := mustOpen(t, path, audit.WithFsync(func(f *os.File) error {
		if syncs.Add(1) == 1 {
			close(started)
			<-release
		}
		return f.Sync()
	}))

	done := make(chan error, waiters+1)
	go func() { done <- l.Record(event(0)) }()
	<-started
	for i := range waiters {
		go func() { done <- l.Record(event(i + 1)) }()
	}
	require.Eventually(t, func() bool { return l.Written() == waiters+1 }, 5*time.Second, time.Millisecond,
		"the waiters write while the first fsync runs: it does not hold the log's lock")
	select {
	case err := <-done:
		t.Fatalf("a Record returned before an fsync covered it: %v", err)
	default:
	}
	close(release)
	for range waiters + 1 {
		require.NoError(t, <-done)
	}
	require.Equal(t, int64(2), syncs.Load(), "one fsync for the first line, one for the %d after it", waiters)
}

// TestGroupCommitReadyRecordsShareOneFsync starts, round after round, writers that become ready
// to run at the same moment, as the handlers of one Raft batch do, on one P: the first to fsync
// yields before it does, the others write their lines, and its fsync covers them all. Without
// the yield each round takes two fsyncs (the first writer's alone, then the others'); a
// syscall hand-off can still split a round, so the test asks that most rounds take one.
func TestGroupCommitReadyRecordsShareOneFsync(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rounds, writers = 40, 8
	path := filepath.Join(t.TempDir(), "audit.log")
	var syncs atomic.Int64
	l := mustOpen(t, path, audit.WithFsync(func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}))
	for r := range rounds {
		gate := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Go(func() {
				<-gate
				errs <- l.Record(event(r*writers + i))
			})
		}
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	t.Logf("%d rounds of %d ready writers: %d fsyncs", rounds, writers, syncs.Load())
	require.LessOrEqual(t, syncs.Load(), int64(rounds*3/2), "most rounds share one fsync")
	require.NoError(t, l.Close())
	requireEachEventOnce(t, path, rounds*writers)
}

// TestGroupCommitCrashReopen simulates a machine crash: the "disk" is what the file held at
// the last fsync, and the page cache after it is lost. Every Record that returned nil must be
// on that disk, the disk must open and continue, and its chain must verify.
func TestGroupCommitCrashReopen(t *testing.T) {
	const goroutines, each = 16, 25
	path := filepath.Join(t.TempDir(), "audit.log")
	var (
		diskMu sync.Mutex
		disk   []byte // the file's content as of the last successful fsync
	)
	l, err := audit.Open(path, fakeClock(), audit.WithFsync(func(f *os.File) error {
		diskMu.Lock()
		defer diskMu.Unlock()
		b, err := os.ReadFile(f.Name())
		if err != nil {
			return err
		}
		disk = b
		return nil
	}))
	require.NoError(t, err)

	var (
		ackMu sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				ev := event(g*each + i)
				if err := l.Record(ev); err != nil {
					t.Error(err)
					return
				}
				ackMu.Lock()
				acked = append(acked, ev.Fields["handle"])
				ackMu.Unlock()
			}
		})
	}
	wg.Wait()
	// Crash: no Close, only the disk survives.
	diskMu.Lock()
	image := bytes.Clone(disk)
	diskMu.Unlock()
	crashed := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.WriteFile(crashed, image, 0o600))

	n, err := verifyFile(t, crashed)
	require.NoError(t, err)
	onDisk := map[string]bool{}
	for _, raw := range readLines(t, crashed) {
		onDisk[decode(t, raw).Fields["handle"]] = true
	}
	require.Len(t, acked, goroutines*each)
	for _, h := range acked {
		require.True(t, onDisk[h], "acknowledged record %s lost in the crash", h)
	}
	r := mustOpen(t, crashed)
	require.NoError(t, r.Record(event(-1)), "the crashed log continues")
	require.NoError(t, r.Close())
	m, err := verifyFile(t, crashed)
	require.NoError(t, err)
	require.Equal(t, n+1, m)
	_ = l.Close()
}

// TestGroupCommitFsyncFailure checks that a failed fsync is reported to the Records it should
// have covered and breaks the log.
func TestGroupCommitFsyncFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	boom := errors.New("disk on fire")
	var fail atomic.Bool
	l := mustOpen(t, path, audit.WithFsync(func(f *os.File) error {
		if fail.Load() {
			return boom
		}
		return f.Sync()
	}))
	require.NoError(t, l.Record(event(0)))
	fail.Store(true)
	err := l.Record(event(1))
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, l.Record(event(2)), audit.ErrBroken)
	require.Error(t, l.Close())
}
