package store_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

func mustOpen(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testKey(id string, created time.Time) *store.Key {
	return &store.Key{
		ID: id, ARN: "arn:aws:kms:us-east-1:111122223333:key/" + id, Description: "d " + id,
		State: store.KeyEnabled, KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: store.OriginAWSKMS,
		CreationDate: created, Policy: `{"Version":"2012-10-17"}`,
		BackingKeys: []store.BackingKey{{Version: 1, Handle: 42, KeyMaterialID: fmt.Sprintf("%064x", 7)}},
		Tags:        []store.Tag{{Key: "a", Value: "1"}},
	}
}

func TestRoundTrips(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	k := testKey("k1", t0)
	k.CustomKeyStoreID, k.ClusterID, k.Origin = "cks-0123456789abcdef0", "cluster-abcdefghijk", store.OriginAWSCloudHSM
	k.DeletionDate, k.PendingWindowInDays, k.State = t0.Add(7*24*time.Hour), 7, store.KeyPendingDeletion
	cks := &store.CustomKeyStore{
		ID: "cks-0123456789abcdef0", Name: "store", ClusterID: "cluster-abcdefghijk", CertificateID: "cluster-abcdefghijk",
		TrustAnchor: "PEM", ConnectionState: store.Failed, ConnectionErrorCode: "INVALID_CREDENTIALS",
		CreationDate: t0, SealedPassword: []byte{1, 2, 3}, SealedPendingPassword: []byte{4},
	}
	alias := &store.Alias{Name: "alias/one", KeyID: "k1", CreationDate: t0, LastUpdatedDate: t0.Add(time.Hour)}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.PutKey(k))
		require.NoError(t, tx.PutCustomKeyStore(cks))
		return tx.PutAlias(alias)
	}))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		got, err := tx.Key("k1")
		require.NoError(t, err)
		require.Equal(t, k, got)
		gotCks, err := tx.CustomKeyStore(cks.ID)
		require.NoError(t, err)
		require.Equal(t, cks, gotCks)
		gotAlias, err := tx.Alias("alias/one")
		require.NoError(t, err)
		require.Equal(t, alias, gotAlias)
		return nil
	}))

	// A failed transaction changes nothing.
	boom := fmt.Errorf("boom")
	err := s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.DeleteKey("k1"))
		require.NoError(t, tx.PutKey(testKey("k2", t0)))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, s.View(func(tx *store.Tx) error {
		_, err := tx.Key("k1")
		require.NoError(t, err)
		_, err = tx.Key("k2")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.Alias("alias/one")
		require.NoError(t, err)
		return nil
	}))
}

func TestNotFound(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		_, err := tx.Key("nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.Alias("alias/nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.CustomKeyStore("cks-nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tx.DeleteKey("nope"), store.ErrNotFound)
		require.ErrorIs(t, tx.DeleteAlias("alias/nope"), store.ErrNotFound)
		require.ErrorIs(t, tx.DeleteCustomKeyStore("cks-nope"), store.ErrNotFound)
		require.ErrorIs(t, tx.PutKey(&store.Key{}), store.ErrInvalidRecord)
		require.ErrorIs(t, tx.PutAlias(&store.Alias{Name: "alias/x"}), store.ErrInvalidRecord)
		require.ErrorIs(t, tx.PutCustomKeyStore(&store.CustomKeyStore{}), store.ErrInvalidRecord)
		return nil
	}))
}

// TestListingOrderAndPages checks the listing order (creation time, then
// id, whatever the insertion order) and that markers page through it.
func TestListingOrderAndPages(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	// Inserted out of order; two share a creation time.
	inserts := []struct {
		id      string
		created time.Time
	}{
		{"c", t0.Add(2 * time.Second)}, {"a", t0}, {"e", t0.Add(3 * time.Second)},
		{"b2", t0.Add(time.Second)}, {"b1", t0.Add(time.Second)},
	}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		for _, in := range inserts {
			require.NoError(t, tx.PutKey(testKey(in.id, in.created)))
			require.NoError(t, tx.PutCustomKeyStore(&store.CustomKeyStore{ID: in.id, CreationDate: in.created}))
		}
		return nil
	}))
	want := []string{"a", "b1", "b2", "c", "e"}

	for _, limit := range []int{1, 2, 3, 5, 10} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			var gotKeys, gotStores []string
			marker := ""
			for pages := 0; ; pages++ {
				require.Less(t, pages, 10)
				var keys []*store.Key
				var next string
				require.NoError(t, s.View(func(tx *store.Tx) (err error) {
					keys, next, err = tx.ListKeys(marker, limit)
					return err
				}))
				require.LessOrEqual(t, len(keys), limit)
				for _, k := range keys {
					gotKeys = append(gotKeys, k.ID)
				}
				if next == "" {
					break
				}
				marker = next
			}
			marker = ""
			for {
				var stores []*store.CustomKeyStore
				var next string
				require.NoError(t, s.View(func(tx *store.Tx) (err error) {
					stores, next, err = tx.ListCustomKeyStores(marker, limit)
					return err
				}))
				for _, c := range stores {
					gotStores = append(gotStores, c.ID)
				}
				if next == "" {
					break
				}
				marker = next
			}
			require.Equal(t, want, gotKeys)
			require.Equal(t, want, gotStores)
		})
	}

	// Updating a key keeps its place; a marker survives the deletion of the
	// record it points at.
	var next string
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		k, err := tx.Key("a")
		require.NoError(t, err)
		k.Description = "changed"
		require.NoError(t, tx.PutKey(k))
		_, next, err = tx.ListKeys("", 2)
		require.NoError(t, err)
		return tx.DeleteKey("b2")
	}))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		all, err := tx.Keys()
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b1", "c", "e"}, ids(all))
		rest, _, err := tx.ListKeys(next, 0)
		require.NoError(t, err)
		require.Equal(t, []string{"c", "e"}, ids(rest))
		for _, bad := range []string{"zz", "00", hexOf("x")} {
			_, _, err = tx.ListAliases("k", bad, 1)
			require.ErrorIs(t, err, store.ErrInvalidMarker, bad)
		}
		_, _, err = tx.ListKeys("not hex", 1)
		require.ErrorIs(t, err, store.ErrInvalidMarker)
		return nil
	}))
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

func ids(keys []*store.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func aliasNames(as []*store.Alias) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func TestAliases(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.PutKey(testKey("k1", t0)))
		require.NoError(t, tx.PutKey(testKey("k2", t0)))
		for _, a := range []struct{ name, key string }{
			{"alias/c", "k1"}, {"alias/a", "k1"}, {"alias/b", "k2"}, {"alias/d", "k2"},
		} {
			require.NoError(t, tx.PutAlias(&store.Alias{Name: a.name, KeyID: a.key, CreationDate: t0}))
		}
		return nil
	}))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		all, next, err := tx.ListAliases("", "", 3)
		require.NoError(t, err)
		require.Equal(t, []string{"alias/a", "alias/b", "alias/c"}, aliasNames(all))
		rest, last, err := tx.ListAliases("", next, 3)
		require.NoError(t, err)
		require.Empty(t, last)
		require.Equal(t, []string{"alias/d"}, aliasNames(rest))
		of1, err := tx.AliasesOf("k1")
		require.NoError(t, err)
		require.Equal(t, []string{"alias/a", "alias/c"}, aliasNames(of1))
		page, next, err := tx.ListAliases("k2", "", 1)
		require.NoError(t, err)
		require.Equal(t, []string{"alias/b"}, aliasNames(page))
		page, next, err = tx.ListAliases("k2", next, 1)
		require.NoError(t, err)
		require.Equal(t, []string{"alias/d"}, aliasNames(page))
		require.Empty(t, next)
		// A marker of one key's listing is not valid for another's.
		_, m, err := tx.ListAliases("k1", "", 1)
		require.NoError(t, err)
		_, _, err = tx.ListAliases("k2", m, 1)
		require.ErrorIs(t, err, store.ErrInvalidMarker)
		return nil
	}))

	// Retargeting moves the alias between keys' listings; deleting a key
	// deletes its aliases, and only its own.
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		a, err := tx.Alias("alias/c")
		require.NoError(t, err)
		a.KeyID = "k2"
		require.NoError(t, tx.PutAlias(a))
		return tx.DeleteKey("k2")
	}))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		all, _, err := tx.ListAliases("", "", 0)
		require.NoError(t, err)
		require.Equal(t, []string{"alias/a"}, aliasNames(all))
		of2, err := tx.AliasesOf("k2")
		require.NoError(t, err)
		require.Empty(t, of2)
		return nil
	}))
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	s, err := store.Open(path)
	require.NoError(t, err)
	k := testKey("k1", t0)
	cks := &store.CustomKeyStore{ID: "cks-1", Name: "n", CreationDate: t0, ConnectionState: store.Connected, SealedPassword: []byte("sealed")}
	alias := &store.Alias{Name: "alias/x", KeyID: "k1", CreationDate: t0, LastUpdatedDate: t0}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.PutKey(k))
		require.NoError(t, tx.PutCustomKeyStore(cks))
		return tx.PutAlias(alias)
	}))
	require.NoError(t, s.Close())

	s = mustOpen(t, path)
	require.NoError(t, s.View(func(tx *store.Tx) error {
		got, err := tx.Key("k1")
		require.NoError(t, err)
		require.Equal(t, k, got)
		gotCks, err := tx.CustomKeyStore("cks-1")
		require.NoError(t, err)
		require.Equal(t, cks, gotCks)
		gotAlias, err := tx.Alias("alias/x")
		require.NoError(t, err)
		require.Equal(t, alias, gotAlias)
		return nil
	}))

	require.NoError(t, s.Reset())
	require.NoError(t, s.View(func(tx *store.Tx) error {
		keys, err := tx.Keys()
		require.NoError(t, err)
		require.Empty(t, keys)
		stores, err := tx.CustomKeyStores()
		require.NoError(t, err)
		require.Empty(t, stores)
		aliases, _, err := tx.ListAliases("", "", 0)
		require.NoError(t, err)
		require.Empty(t, aliases)
		return nil
	}))
}

// TestConcurrentWriters runs read-modify-write transactions from many
// goroutines: none is lost, and every created record is there.
func TestConcurrentWriters(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(testKey("counter", t0)) }))
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(func(tx *store.Tx) error {
					k, err := tx.Key("counter")
					if err != nil {
						return err
					}
					k.PendingWindowInDays++
					if err := tx.PutKey(k); err != nil {
						return err
					}
					return tx.PutKey(testKey(fmt.Sprintf("w%d-%d", w, i), t0.Add(time.Duration(i)*time.Millisecond)))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.View(func(tx *store.Tx) error {
		k, err := tx.Key("counter")
		require.NoError(t, err)
		require.Equal(t, writers*each, k.PendingWindowInDays)
		keys, err := tx.Keys()
		require.NoError(t, err)
		require.Len(t, keys, writers*each+1)
		return nil
	}))
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.db")
	mustOpen(t, path)
	_, err := store.Open(path)
	require.Error(t, err, "a second open of a held file must fail, not hang")
}

func TestBackingKeys(t *testing.T) {
	k := testKey("k", t0)
	_, ok := (&store.Key{}).Current()
	require.False(t, ok)
	k.BackingKeys = append(k.BackingKeys, store.BackingKey{Version: 2, Handle: 43})
	cur, ok := k.Current()
	require.True(t, ok)
	require.Equal(t, uint32(2), cur.Version)
	b, ok := k.Backing(1)
	require.True(t, ok)
	require.Equal(t, uint64(42), b.Handle)
	_, ok = k.Backing(3)
	require.False(t, ok)
}

// TestGrants checks grant records: round trip, per-key listing in creation
// order with markers, the listing of all grants, and that deleting a key
// deletes its grants and only them.
func TestGrants(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	grant := func(id, key string, at time.Duration) *store.Grant {
		return &store.Grant{
			ID: fmt.Sprintf("%064s", id), KeyID: key, CreationDate: t0.Add(at), GranteePrincipal: "arn:aws:iam::111122223333:role/r",
			IssuingAccount: "arn:aws:iam::111122223333:root", Operations: []string{"Encrypt", "Decrypt"},
		}
	}
	g1 := grant("1", "k1", 2*time.Second)
	g1.Name, g1.RetiringPrincipal = "named", "arn:aws:iam::111122223333:role/retirer"
	g1.Constraints = &store.GrantConstraints{EncryptionContextEquals: map[string]string{"a": "b"}}
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.PutKey(testKey("k1", t0)))
		require.NoError(t, tx.PutKey(testKey("k2", t0)))
		require.NoError(t, tx.PutGrant(g1))
		require.NoError(t, tx.PutGrant(grant("2", "k1", time.Second)))
		require.NoError(t, tx.PutGrant(grant("3", "k1", 3*time.Second)))
		require.NoError(t, tx.PutGrant(grant("4", "k2", 0)))
		require.ErrorIs(t, tx.PutGrant(&store.Grant{ID: "x"}), store.ErrInvalidRecord)
		return nil
	}))
	ids := func(gs []*store.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.ID[63:])
		}
		return out
	}
	require.NoError(t, s.View(func(tx *store.Tx) error {
		got, err := tx.Grant(g1.ID)
		require.NoError(t, err)
		require.Equal(t, g1, got)
		page, next, err := tx.ListGrants("k1", "", 2)
		require.NoError(t, err)
		require.Equal(t, []string{"2", "1"}, ids(page))
		page, last, err := tx.ListGrants("k1", next, 2)
		require.NoError(t, err)
		require.Equal(t, []string{"3"}, ids(page))
		require.Empty(t, last)
		_, _, err = tx.ListGrants("k2", next, 2)
		require.ErrorIs(t, err, store.ErrInvalidMarker)
		all, err := tx.Grants()
		require.NoError(t, err)
		require.Equal(t, []string{"2", "1", "3", "4"}, ids(all))
		require.Equal(t, 3, tx.CountGrants("k1"))
		require.Equal(t, 1, tx.CountGrants("k2"))
		require.Zero(t, tx.CountGrants("k"))
		return nil
	}))
	require.NoError(t, s.Update(func(tx *store.Tx) error {
		require.NoError(t, tx.DeleteGrant(grant("2", "k1", 0).ID))
		require.ErrorIs(t, tx.DeleteGrant(grant("2", "k1", 0).ID), store.ErrNotFound)
		return tx.DeleteKey("k1")
	}))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		all, err := tx.Grants()
		require.NoError(t, err)
		require.Equal(t, []string{"4"}, ids(all))
		_, err = tx.Grant(g1.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))
}

// TestKeyRotationAndImportFields round-trips the fields of rotation and
// imported material, and counts on-demand rotations.
func TestKeyRotationAndImportFields(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "kms.db"))
	k := testKey("k1", t0)
	k.RotationEnabled, k.RotationPeriodInDays, k.NextRotationDate = true, 90, t0.Add(90*24*time.Hour)
	k.BackingKeys = append(k.BackingKeys,
		store.BackingKey{Version: 2, Handle: 43, KeyMaterialID: fmt.Sprintf("%064x", 8), RotationDate: t0, RotationType: store.RotationOnDemand},
		store.BackingKey{Version: 3, Handle: 44, KeyMaterialID: fmt.Sprintf("%064x", 9), RotationDate: t0, RotationType: store.RotationAutomatic},
		store.BackingKey{Version: 4, KeyMaterialID: fmt.Sprintf("%064x", 10), ImportState: store.PendingImport,
			ExpirationModel: "KEY_MATERIAL_EXPIRES", ValidTo: t0, KCV: []byte{1, 2, 3}, Check: []byte{4}, PublicHandle: 5})
	k.Import = &store.ImportParameters{TokenID: []byte{1}, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048",
		PrivateHandle: 7, PublicHandle: 8, ValidTo: t0.Add(24 * time.Hour)}
	require.NoError(t, s.Update(func(tx *store.Tx) error { return tx.PutKey(k) }))
	require.NoError(t, s.View(func(tx *store.Tx) error {
		got, err := tx.Key("k1")
		require.NoError(t, err)
		require.Equal(t, k, got)
		require.Equal(t, 1, got.OnDemandRotations())
		return nil
	}))
}
