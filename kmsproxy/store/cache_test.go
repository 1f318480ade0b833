package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// readKey reads key id in its own read-only transaction.
func readKey(t *testing.T, s *store.Store, id string) (*store.Key, error) {
	t.Helper()
	var k *store.Key
	err := s.View(func(tx *store.Tx) (err error) {
		k, err = tx.Key(id)
		return err
	})
	return k, err
}

// setState writes key id's state in its own transaction.
func setState(t *testing.T, s *store.Store, id string, st store.KeyState) {
	t.Helper()
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		k, err := tx.Key(id)
		if err != nil {
			return err
		}
		k.State = st
		return tx.PutKey(k)
	}))
}

// TestCacheSeesEveryWrite checks that a read after a write sees it, for
// every kind of write (put, delete, rolled back, reset), while the cache
// answers the repeated reads.
func TestCacheSeesEveryWrite(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(testKey("k1", t0)) }))
	for range 3 {
		k, err := readKey(t, s, "k1")
		require.NoError(t, err)
		require.Equal(t, store.KeyEnabled, k.State)
	}
	hits, _ := s.CacheStats()
	require.Positive(t, hits, "repeated reads are answered by the cache")

	for _, st := range []store.KeyState{store.KeyDisabled, store.KeyEnabled, store.KeyPendingDeletion} {
		setState(t, s, "k1", st)
		k, err := readKey(t, s, "k1")
		require.NoError(t, err)
		require.Equal(t, st, k.State)
		k, err = readKey(t, s, "k1") // from the cache, now
		require.NoError(t, err)
		require.Equal(t, st, k.State)
	}

	// A write that rolls back leaves the committed value visible.
	boom := errors.New("boom")
	require.ErrorIs(t, s.Update(func(tx *store.Tx) error {
		k, err := tx.Key("k1")
		require.NoError(t, err)
		k.State = store.KeyDisabled
		require.NoError(t, tx.PutKey(k))
		got, err := tx.Key("k1")
		require.NoError(t, err)
		require.Equal(t, store.KeyDisabled, got.State, "a transaction reads its own writes")
		return boom
	}), boom)
	k, err := readKey(t, s, "k1")
	require.NoError(t, err)
	require.Equal(t, store.KeyPendingDeletion, k.State)

	// Records are copies: changing one changes nothing stored or cached.
	k.State, k.BackingKeys[0].Handle, k.Tags[0].Value = store.KeyDisabled, 99, "changed"
	k, err = readKey(t, s, "k1")
	require.NoError(t, err)
	require.Equal(t, testKey("k1", t0).BackingKeys, k.BackingKeys)
	require.Equal(t, store.KeyPendingDeletion, k.State)
	require.Equal(t, "1", k.Tags[0].Value)

	// Deletion.
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.DeleteKey("k1") }))
	_, err = readKey(t, s, "k1")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Aliases and custom key stores, and Reset.
	cks := &store.CustomKeyStore{ID: "cks-1", Name: "n", CreationDate: t0, ConnectionState: store.Connected, SealedPassword: []byte("s")}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.PutKey(testKey("k2", t0)))
		require.NoError(t, tx.PutCustomKeyStore(cks))
		return tx.PutAlias(&store.Alias{Name: "alias/a", KeyID: "k2", CreationDate: t0, LastUpdatedDate: t0})
	}))
	readAll := func() (a *store.Alias, c *store.CustomKeyStore, aerr, cerr error) {
		require.NoError(t, s.View(func(tx *store.Tx) error {
			a, aerr = tx.Alias("alias/a")
			c, cerr = tx.CustomKeyStore("cks-1")
			return nil
		}))
		return
	}
	for range 2 {
		a, c, aerr, cerr := readAll()
		require.NoError(t, aerr)
		require.NoError(t, cerr)
		require.Equal(t, "k2", a.KeyID)
		require.Equal(t, store.Connected, c.ConnectionState)
	}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		c, err := tx.CustomKeyStore("cks-1")
		require.NoError(t, err)
		c.ConnectionState = store.Disconnected
		require.NoError(t, tx.PutCustomKeyStore(c))
		require.NoError(t, tx.PutKey(testKey("k3", t0)))
		return tx.PutAlias(&store.Alias{Name: "alias/a", KeyID: "k3", CreationDate: t0, LastUpdatedDate: t0})
	}))
	a, c, aerr, cerr := readAll()
	require.NoError(t, aerr)
	require.NoError(t, cerr)
	require.Equal(t, "k3", a.KeyID)
	require.Equal(t, store.Disconnected, c.ConnectionState)

	require.NoError(t, s.Reset())
	_, _, aerr, cerr = readAll()
	require.ErrorIs(t, aerr, store.ErrNotFound)
	require.ErrorIs(t, cerr, store.ErrNotFound)
	_, err = readKey(t, s, "k2")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestCacheOldSnapshotDoesNotFill checks that a reader whose snapshot is
// older than a commit reads its snapshot's record and does not make it
// the cache's entry.
func TestCacheOldSnapshotDoesNotFill(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	// A commit that grows the file remaps it, which waits for the readers:
	// grow it first, so that the write below does not wait for the reader
	// that waits for it.
	pad := testKey("pad", t0)
	pad.Policy = strings.Repeat("x", 1<<20)
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(pad) }))
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.DeleteKey("pad") }))
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(testKey("k1", t0)) }))
	started, written := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.View(func(tx *store.Tx) error {
			close(started)
			<-written
			k, err := tx.Key("k1")
			if err != nil {
				return err
			}
			if k.State != store.KeyEnabled {
				return errors.New("the old snapshot saw a later write")
			}
			return nil
		})
	}()
	<-started
	setState(t, s, "k1", store.KeyDisabled)
	close(written)
	require.NoError(t, <-done)
	for range 2 {
		k, err := readKey(t, s, "k1")
		require.NoError(t, err)
		require.Equal(t, store.KeyDisabled, k.State)
	}
}

// TestCacheReopen checks that a write is seen after a restart.
func TestCacheReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	s, err := store.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(testKey("k1", t0)) }))
	_, err = readKey(t, s, "k1")
	require.NoError(t, err)
	setState(t, s, "k1", store.KeyDisabled)
	require.NoError(t, s.Close())
	s = mustOpen(t, path)
	k, err := readKey(t, s, "k1")
	require.NoError(t, err)
	require.Equal(t, store.KeyDisabled, k.State)
}

// TestCacheLinearizable runs writers and readers concurrently: once a
// write returned, every read that starts after it sees that write or a
// later one, and a reader never sees the value go back.
func TestCacheLinearizable(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(testKey("k", t0)) }))
	var acked atomic.Int64 // the highest value whose write returned
	const writes = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= writes; i++ {
			err := s.Update(func(tx *store.Tx) error {
				k, err := tx.Key("k")
				if err != nil {
					return err
				}
				k.PendingWindowInDays = i
				return tx.PutKey(k)
			})
			if err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64(i))
		}
	})
	for range 4 {
		wg.Go(func() {
			last := 0
			for last < writes {
				floor := int(acked.Load())
				k, err := readKey(t, s, "k")
				if err != nil {
					t.Error(err)
					return
				}
				if k.PendingWindowInDays < floor || k.PendingWindowInDays < last {
					t.Errorf("read %d after %d was acknowledged and %d was read", k.PendingWindowInDays, floor, last)
					return
				}
				last = k.PendingWindowInDays
			}
		})
	}
	wg.Wait()
	hits, misses := s.CacheStats()
	t.Logf("cache: %d hits, %d misses", hits, misses)
}
