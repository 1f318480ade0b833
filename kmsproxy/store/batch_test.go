package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// TestBatch runs many concurrent Batch calls, some of which fail: every
// successful call's write is there (also after a reopen), no failed
// call's is, and each caller gets its own outcome.
func TestBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	s, err := store.Open(path)
	require.NoError(t, err)
	const n = 200
	boom := errors.New("boom")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Batch(func(tx *store.Tx) error {
				if err := tx.PutKey(testKey(fmt.Sprintf("k%03d", i), t0)); err != nil {
					return err
				}
				if i%17 == 0 {
					return fmt.Errorf("call %d: %w", i, boom)
				}
				return nil
			})
		})
	}
	wg.Wait()
	check := func(s *store.Store) {
		for i := range n {
			_, err := readKey(t, s, fmt.Sprintf("k%03d", i))
			if i%17 == 0 {
				require.ErrorIs(t, errs[i], boom)
				require.ErrorIs(t, err, store.ErrNotFound, "call %d failed: its write must not be there", i)
			} else {
				require.NoError(t, errs[i])
				require.NoError(t, err, "call %d", i)
			}
		}
	}
	check(s)
	require.NoError(t, s.Close())
	check(mustOpen(t, path))
}

// TestBatchReadyCallersShareOneCommit starts, round after round, callers
// that become ready at the same moment, as the CreateKeys answered by one
// Raft batch do, on one P: they share one transaction. Without the
// batcher's yield each round takes two (the first caller's alone, then the
// others'); a syscall hand-off can still split a round, so the test asks
// that most rounds take one.
func TestBatchReadyCallersShareOneCommit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	const rounds, callers = 30, 8
	var (
		mu  sync.Mutex
		txs = map[*store.Tx]bool{}
	)
	for r := range rounds {
		gate := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := range callers {
			wg.Go(func() {
				<-gate
				errs <- s.Batch(func(tx *store.Tx) error {
					mu.Lock()
					txs[tx] = true
					mu.Unlock()
					return tx.PutKey(testKey(fmt.Sprintf("k%02d-%d", r, i), t0))
				})
			})
		}
		close(gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	t.Logf("%d rounds of %d ready callers: %d transactions", rounds, callers, len(txs))
	require.LessOrEqual(t, len(txs), rounds*3/2, "most rounds share one transaction")
}
