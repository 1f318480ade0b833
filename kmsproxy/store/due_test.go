package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

const day = 24 * time.Hour

// dueKeys is a key of each kind of due date, and one without.
func dueKeys() []*store.Key {
	deleting := testKey("deleting", t0)
	deleting.State, deleting.DeletionDate, deleting.PendingWindowInDays = store.KeyPendingDeletion, t0.Add(7*day), 7
	rotating := testKey("rotating", t0)
	rotating.RotationEnabled, rotating.RotationPeriodInDays, rotating.NextRotationDate = true, 90, t0.Add(90*day)
	expiring := testKey("expiring", t0)
	expiring.Origin = store.OriginExternal
	expiring.BackingKeys[0].ImportState, expiring.BackingKeys[0].ExpirationModel = store.Imported, "KEY_MATERIAL_EXPIRES"
	expiring.BackingKeys[0].ValidTo = t0.Add(30 * day)
	importing := testKey("importing", t0)
	importing.Origin, importing.State, importing.BackingKeys = store.OriginExternal, store.KeyPendingImport, nil
	importing.Import = &store.ImportParameters{TokenID: []byte{1}, PrivateHandle: 7, PublicHandle: 8, ValidTo: t0.Add(day)}
	return []*store.Key{deleting, rotating, expiring, importing, testKey("plain", t0)}
}

func dueIDs(t *testing.T, s *store.Store, now time.Time) []string {
	t.Helper()
	var ids []string
	require.NoError(t, s.View(func(tx *store.Tx) error {
		keys, err := tx.KeysDueBy(now)
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		return err
	}))
	return ids
}

func TestKeysDueBy(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		for _, k := range dueKeys() {
			require.NoError(t, tx.PutKey(k))
		}
		return nil
	}))
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{t0, nil},
		{t0.Add(day - time.Nanosecond), nil},
		{t0.Add(day), []string{"importing"}},
		{t0.Add(7 * day), []string{"importing", "deleting"}},
		{t0.Add(30 * day), []string{"importing", "deleting", "expiring"}},
		{t0.Add(365 * day), []string{"importing", "deleting", "expiring", "rotating"}},
		{time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC), []string{"importing", "deleting", "expiring", "rotating"}},
	} {
		require.Equal(t, tc.want, dueIDs(t, s, tc.now), "due by %s", tc.now)
	}

	// Each change of a key moves or drops its entry.
	later := t0.Add(365 * day)
	update := func(id string, change func(k *store.Key)) {
		require.NoError(t, s.Update(func(tx *store.Tx) error {
			k, err := tx.Key(id)
			require.NoError(t, err)
			change(k)
			return tx.PutKey(k)
		}))
	}
	update("deleting", func(k *store.Key) { k.State, k.DeletionDate = store.KeyDisabled, time.Time{} })
	update("rotating", func(k *store.Key) { k.NextRotationDate = t0.Add(2 * day) })
	update("importing", func(k *store.Key) { k.Import.PrivateHandle = 0 })
	update("plain", func(k *store.Key) { k.State, k.DeletionDate = store.KeyPendingDeletion, t0.Add(3*day) })
	require.Equal(t, []string{"rotating", "plain", "expiring"}, dueIDs(t, s, later))

	// A rolled-back change leaves the index as it was.
	require.Error(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.DeleteKey("rotating"))
		k, err := tx.Key("expiring")
		require.NoError(t, err)
		k.BackingKeys[0].ValidTo = t0
		require.NoError(t, tx.PutKey(k))
		return fmt.Errorf("roll back")
	}))
	require.Equal(t, []string{"rotating", "plain", "expiring"}, dueIDs(t, s, later))

	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.DeleteKey("rotating") }))
	require.Equal(t, []string{"plain", "expiring"}, dueIDs(t, s, later))
	require.NoError(t, s.Reset())
	require.Empty(t, dueIDs(t, s, later))
}

// TestOpenIndexesASchema1File opens a file written before the due index
// existed (schema 1): Open builds the index.
func TestOpenIndexesASchema1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	s, err := store.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		for _, k := range dueKeys() {
			require.NoError(t, tx.PutKey(k))
		}
		return nil
	}))
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		require.NoError(t, tx.DeleteBucket([]byte("keys_by_due")))
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("1"))
	}))
	require.NoError(t, db.Close())

	s = mustOpen(t, path)
	require.Equal(t, []string{"importing", "deleting", "expiring", "rotating"}, dueIDs(t, s, t0.Add(365*day)))
	require.NoError(t, s.Close())

	db, err = bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Equal(t, "2", string(tx.Bucket([]byte("meta")).Get([]byte("schema"))))
		return nil
	}))
	require.NoError(t, db.Close())
}

// BenchmarkDueKeys compares what the sweeper read before the due index
// (every key, filtered) with KeysDueBy, in a store of 10,000 keys of which
// ten are due.
func BenchmarkDueKeys(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "kms.db"))
	require.NoError(b, err)
	defer s.Close()
	const keys, due = 10000, 10
	require.NoError(b, s.Update(func(tx *store.Tx) error {
		for i := range keys {
			k := testKey(fmt.Sprintf("k%05d", i), t0.Add(time.Duration(i)))
			if i%(keys/due) == 0 {
				k.State, k.DeletionDate = store.KeyPendingDeletion, t0.Add(7*day)
			}
			if err := tx.PutKey(k); err != nil {
				return err
			}
		}
		return nil
	}))
	now := t0.Add(30 * day)
	b.Run("scan-every-key", func(b *testing.B) {
		for b.Loop() {
			n := 0
			require.NoError(b, s.View(func(tx *store.Tx) error {
				all, err := tx.Keys()
				for _, k := range all {
					if k.State == store.KeyPendingDeletion && !k.DeletionDate.After(now) {
						n++
					}
				}
				return err
			}))
			require.Equal(b, due, n)
		}
	})
	b.Run("due-index", func(b *testing.B) {
		for b.Loop() {
			var n int
			require.NoError(b, s.View(func(tx *store.Tx) error {
				ks, err := tx.KeysDueBy(now)
				n = len(ks)
				return err
			}))
			require.Equal(b, due, n)
		}
	})
}
