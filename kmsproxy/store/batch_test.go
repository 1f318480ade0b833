package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
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
