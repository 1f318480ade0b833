package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors of the store, wrapped with details.
var (
	// ErrNotFound is returned for a key, alias or custom key store that
	// does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalidMarker is returned for a pagination marker the store did
	// not issue for that listing.
	ErrInvalidMarker = errors.New("store: invalid marker")
	// ErrInvalidRecord is returned when a record lacks its identity.
	ErrInvalidRecord = errors.New("store: invalid record")
)

// schemaVersion is the layout version kept in the meta bucket. Version 2
// added the keys_by_due index; Open builds it for a version 1 file.
const schemaVersion = "2"

// Bucket names. The *ByCreation buckets index records by creation time
// then id (an 8-byte big-endian Unix nanosecond time and the id), which
// is the listing order; aliasesByKey indexes aliases by target key
// ("<key id>\x00<alias name>"); grantsByKey indexes grants by key, then
// creation ("<key id>\x00" and a creation index); keysByDue indexes the
// keys that have a DueDate by that date, then id.
var (
	bucketMeta              = []byte("meta")
	bucketKeys              = []byte("keys")
	bucketKeysByCreation    = []byte("keys_by_creation")
	bucketKeysByDue         = []byte("keys_by_due")
	bucketAliases           = []byte("aliases")
	bucketAliasesByKey      = []byte("aliases_by_key")
	bucketKeyStores         = []byte("custom_key_stores")
	bucketKeyStoresByCreate = []byte("custom_key_stores_by_creation")
	bucketGrants            = []byte("grants")
	bucketGrantsByKey       = []byte("grants_by_key")
	allBuckets              = [][]byte{bucketMeta, bucketKeys, bucketKeysByCreation, bucketKeysByDue, bucketAliases,
		bucketAliasesByKey, bucketKeyStores, bucketKeyStoresByCreate, bucketGrants, bucketGrantsByKey}
)

// Store is the endpoint's durable metadata: one bbolt file of JSON
// records keyed by id. Every Update is one bbolt transaction, fsynced
// before it returns. A Store is safe for concurrent use; bbolt runs one
// writer at a time and readers beside it.
//
// Reads of keys, aliases and custom key stores are served from a cache of
// decoded records that every write keeps exactly as current as the file
// (recordCache), since decoding JSON per request was a fifth of an
// Encrypt's CPU time.
type Store struct {
	db    *bolt.DB
	cache *recordCache
	// batch groups concurrent Batch calls into shared transactions.
	batch batcher
}

// openTimeout bounds the wait for the file lock another process holds.
const openTimeout = 2 * time.Second

// Open opens (creating it if needed) the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get([]byte("schema")); {
		case v == nil:
			return meta.Put([]byte("schema"), []byte(schemaVersion))
		case string(v) == "1":
			if err := indexDueDates(tx); err != nil {
				return fmt.Errorf("store: %s: upgrade to schema %s: %w", path, schemaVersion, err)
			}
			return meta.Put([]byte("schema"), []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("store: %s has schema %q; this version reads %q", path, v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	var committed uint64
	db.View(func(tx *bolt.Tx) error {
		committed = uint64(tx.ID())
		return nil
	})
	return &Store{db: db, cache: newRecordCache(committed)}, nil
}

// indexDueDates fills keysByDue from every key (a schema 1 file has no
// such index).
func indexDueDates(tx *bolt.Tx) error {
	due := tx.Bucket(bucketKeysByDue)
	return tx.Bucket(bucketKeys).ForEach(func(id, v []byte) error {
		var k Key
		if err := json.Unmarshal(v, &k); err != nil {
			return fmt.Errorf("corrupt record %s/%s: %w", bucketKeys, id, err)
		}
		if at, ok := k.DueDate(); ok {
			return due.Put(timeIndex(at, k.ID), nil)
		}
		return nil
	})
}

func createBuckets(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.db.Path() }

// View runs f in a read-only transaction.
func (s *Store) View(f func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return f(&Tx{tx: tx, cache: s.cache, txid: uint64(tx.ID())})
	})
}

// Update runs f in a read-write transaction, committed (and fsynced) when
// f returns nil and rolled back otherwise: a failed f changes nothing.
func (s *Store) Update(f func(*Tx) error) error {
	t := &Tx{cache: s.cache, writable: true}
	// The marks of the records f changed go once the outcome is known
	// (after the commit was recorded, if there was one).
	defer func() { s.cache.finish(t.dirtied, t.resets) }()
	return s.db.Update(func(tx *bolt.Tx) error {
		t.tx, t.txid = tx, uint64(tx.ID())
		tx.OnCommit(func() { s.cache.committedTx(t.txid) })
		return f(t)
	})
}

// Reset deletes every record, in one transaction.
func (s *Store) Reset() error {
	return s.Update(func(tx *Tx) error { return tx.Reset() })
}

// Tx is a transaction. Records it returns are copies: changing one changes
// nothing until it is put back.
type Tx struct {
	tx    *bolt.Tx
	cache *recordCache
	// writable says tx is a read-write transaction; txid is its id (for a
	// read-only one, the commit its snapshot is of).
	writable bool
	txid     uint64
	// dirtied and resets are the cache marks this transaction holds.
	dirtied []recordID
	resets  int
}

// Reset deletes every key, alias and custom key store.
func (t *Tx) Reset() error {
	t.cache.markReset(t)
	for _, name := range allBuckets[1:] {
		if err := t.tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("store: reset %s: %w", name, err)
		}
	}
	return createBuckets(t.tx)
}

// Key returns the key with id.
func (t *Tx) Key(id string) (*Key, error) {
	if k := lookup(t.cache, t, t.cache.keys, id); k != nil {
		return k.clone(), nil
	}
	var k Key
	if err := t.get(bucketKeys, id, &k); err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err)
	}
	fill(t.cache, t, t.cache.keys, kindKey, id, k.clone())
	return &k, nil
}

// PutKey inserts or replaces a key.
func (t *Tx) PutKey(k *Key) error {
	if k.ID == "" {
		return fmt.Errorf("%w: a key needs an id", ErrInvalidRecord)
	}
	t.cache.markDirty(t, recordID{kindKey, k.ID})
	if old, err := t.Key(k.ID); err == nil {
		if err := t.unindexKey(old); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bucketKeysByCreation).Put(timeIndex(k.CreationDate, k.ID), nil); err != nil {
		return err
	}
	if at, ok := k.DueDate(); ok {
		if err := t.tx.Bucket(bucketKeysByDue).Put(timeIndex(at, k.ID), nil); err != nil {
			return err
		}
	}
	return t.put(bucketKeys, k.ID, k)
}

// unindexKey deletes a key's entries in the keysByCreation and keysByDue
// indexes.
func (t *Tx) unindexKey(k *Key) error {
	if err := t.tx.Bucket(bucketKeysByCreation).Delete(timeIndex(k.CreationDate, k.ID)); err != nil {
		return err
	}
	if at, ok := k.DueDate(); ok {
		return t.tx.Bucket(bucketKeysByDue).Delete(timeIndex(at, k.ID))
	}
	return nil
}

// DeleteKey deletes a key, every alias that names it and its grants.
func (t *Tx) DeleteKey(id string) error {
	k, err := t.Key(id)
	if err != nil {
		return err
	}
	t.cache.markDirty(t, recordID{kindKey, id})
	aliases, err := t.AliasesOf(id)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		if err := t.DeleteAlias(a.Name); err != nil {
			return err
		}
	}
	grants, err := t.GrantsOf(id)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if err := t.DeleteGrant(g.ID); err != nil {
			return err
		}
	}
	if err := t.unindexKey(k); err != nil {
		return err
	}
	return t.tx.Bucket(bucketKeys).Delete([]byte(id))
}

// Keys returns every key in listing order (creation time, then id).
func (t *Tx) Keys() ([]*Key, error) {
	keys, _, err := t.ListKeys("", 0)
	return keys, err
}

// KeysDueBy returns the keys whose DueDate is at or before now, earliest
// first: the only keys in which the passing of time to now can have made
// something due. It reads no other key.
func (t *Tx) KeysDueBy(now time.Time) ([]*Key, error) {
	var out []*Key
	end := timeIndex(now, "")
	c := t.tx.Bucket(bucketKeysByDue).Cursor()
	for ik, _ := c.First(); ik != nil && bytes.Compare(ik[:8], end) <= 0; ik, _ = c.Next() {
		k, err := t.Key(string(ik[8:]))
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// ListKeys returns up to limit keys (every key when limit ≤ 0) in listing
// order, from marker ("" for the first), and the marker of the next page
// ("" when this is the last).
func (t *Tx) ListKeys(marker string, limit int) ([]*Key, string, error) {
	var out []*Key
	next, err := t.page(bucketKeysByCreation, nil, marker, limit, func(ik []byte) error {
		k, err := t.Key(string(ik[8:]))
		if err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	return out, next, err
}

// Alias returns the alias named name ("alias/...").
func (t *Tx) Alias(name string) (*Alias, error) {
	if a := lookup(t.cache, t, t.cache.aliases, name); a != nil {
		return a.clone(), nil
	}
	var a Alias
	if err := t.get(bucketAliases, name, &a); err != nil {
		return nil, fmt.Errorf("alias %s: %w", name, err)
	}
	fill(t.cache, t, t.cache.aliases, kindAlias, name, a.clone())
	return &a, nil
}

// PutAlias inserts or replaces an alias.
func (t *Tx) PutAlias(a *Alias) error {
	if a.Name == "" || a.KeyID == "" {
		return fmt.Errorf("%w: an alias needs a name and a key", ErrInvalidRecord)
	}
	t.cache.markDirty(t, recordID{kindAlias, a.Name})
	byKey := t.tx.Bucket(bucketAliasesByKey)
	if old, err := t.Alias(a.Name); err == nil {
		if err := byKey.Delete(aliasIndex(old.KeyID, old.Name)); err != nil {
			return err
		}
	}
	if err := byKey.Put(aliasIndex(a.KeyID, a.Name), nil); err != nil {
		return err
	}
	return t.put(bucketAliases, a.Name, a)
}

// DeleteAlias deletes an alias.
func (t *Tx) DeleteAlias(name string) error {
	a, err := t.Alias(name)
	if err != nil {
		return err
	}
	t.cache.markDirty(t, recordID{kindAlias, name})
	if err := t.tx.Bucket(bucketAliasesByKey).Delete(aliasIndex(a.KeyID, a.Name)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketAliases).Delete([]byte(name))
}

// AliasesOf returns the aliases of a key, by name.
func (t *Tx) AliasesOf(keyID string) ([]*Alias, error) {
	out, _, err := t.ListAliases(keyID, "", 0)
	return out, err
}

// ListAliases returns up to limit aliases (all when limit ≤ 0) by name,
// of one key when keyID is set, from marker, and the next page's marker.
func (t *Tx) ListAliases(keyID, marker string, limit int) ([]*Alias, string, error) {
	var out []*Alias
	collect := func(name string) error {
		a, err := t.Alias(name)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	}
	if keyID == "" {
		next, err := t.page(bucketAliases, nil, marker, limit, func(k []byte) error { return collect(string(k)) })
		return out, next, err
	}
	prefix := aliasIndex(keyID, "")
	next, err := t.page(bucketAliasesByKey, prefix, marker, limit, func(k []byte) error {
		return collect(string(k[len(prefix):]))
	})
	return out, next, err
}

// CustomKeyStore returns the custom key store with id.
func (t *Tx) CustomKeyStore(id string) (*CustomKeyStore, error) {
	if c := lookup(t.cache, t, t.cache.keyStores, id); c != nil {
		return c.clone(), nil
	}
	var c CustomKeyStore
	if err := t.get(bucketKeyStores, id, &c); err != nil {
		return nil, fmt.Errorf("custom key store %s: %w", id, err)
	}
	fill(t.cache, t, t.cache.keyStores, kindKeyStore, id, c.clone())
	return &c, nil
}

// PutCustomKeyStore inserts or replaces a custom key store.
func (t *Tx) PutCustomKeyStore(c *CustomKeyStore) error {
	if c.ID == "" {
		return fmt.Errorf("%w: a custom key store needs an id", ErrInvalidRecord)
	}
	t.cache.markDirty(t, recordID{kindKeyStore, c.ID})
	idx := t.tx.Bucket(bucketKeyStoresByCreate)
	if old, err := t.CustomKeyStore(c.ID); err == nil {
		if err := idx.Delete(timeIndex(old.CreationDate, old.ID)); err != nil {
			return err
		}
	}
	if err := idx.Put(timeIndex(c.CreationDate, c.ID), nil); err != nil {
		return err
	}
	return t.put(bucketKeyStores, c.ID, c)
}

// DeleteCustomKeyStore deletes a custom key store.
func (t *Tx) DeleteCustomKeyStore(id string) error {
	c, err := t.CustomKeyStore(id)
	if err != nil {
		return err
	}
	t.cache.markDirty(t, recordID{kindKeyStore, id})
	if err := t.tx.Bucket(bucketKeyStoresByCreate).Delete(timeIndex(c.CreationDate, c.ID)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketKeyStores).Delete([]byte(id))
}

// CustomKeyStores returns every custom key store in listing order.
func (t *Tx) CustomKeyStores() ([]*CustomKeyStore, error) {
	out, _, err := t.ListCustomKeyStores("", 0)
	return out, err
}

// ListCustomKeyStores returns up to limit custom key stores (all when
// limit ≤ 0) in listing order from marker, and the next page's marker.
func (t *Tx) ListCustomKeyStores(marker string, limit int) ([]*CustomKeyStore, string, error) {
	var out []*CustomKeyStore
	next, err := t.page(bucketKeyStoresByCreate, nil, marker, limit, func(ik []byte) error {
		c, err := t.CustomKeyStore(string(ik[8:]))
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, next, err
}

// Grant returns the grant with id.
func (t *Tx) Grant(id string) (*Grant, error) {
	var g Grant
	if err := t.get(bucketGrants, id, &g); err != nil {
		return nil, fmt.Errorf("grant %s: %w", id, err)
	}
	return &g, nil
}

// PutGrant inserts or replaces a grant.
func (t *Tx) PutGrant(g *Grant) error {
	if g.ID == "" || g.KeyID == "" {
		return fmt.Errorf("%w: a grant needs an id and a key", ErrInvalidRecord)
	}
	idx := t.tx.Bucket(bucketGrantsByKey)
	if old, err := t.Grant(g.ID); err == nil {
		if err := idx.Delete(grantIndex(old)); err != nil {
			return err
		}
	}
	if err := idx.Put(grantIndex(g), nil); err != nil {
		return err
	}
	return t.put(bucketGrants, g.ID, g)
}

// DeleteGrant deletes a grant.
func (t *Tx) DeleteGrant(id string) error {
	g, err := t.Grant(id)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketGrantsByKey).Delete(grantIndex(g)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketGrants).Delete([]byte(id))
}

// GrantsOf returns a key's grants in creation order.
func (t *Tx) GrantsOf(keyID string) ([]*Grant, error) {
	out, _, err := t.ListGrants(keyID, "", 0)
	return out, err
}

// ListGrants returns up to limit grants of a key (all when limit ≤ 0) in
// creation order from marker, and the next page's marker.
func (t *Tx) ListGrants(keyID, marker string, limit int) ([]*Grant, string, error) {
	var out []*Grant
	prefix := []byte(keyID + "\x00")
	next, err := t.page(bucketGrantsByKey, prefix, marker, limit, func(k []byte) error {
		g, err := t.Grant(string(k[len(prefix)+8:]))
		if err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	return out, next, err
}

// CountGrants counts a key's grants (without reading them).
func (t *Tx) CountGrants(keyID string) int {
	prefix := []byte(keyID + "\x00")
	c := t.tx.Bucket(bucketGrantsByKey).Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// Grants returns every grant, by key then creation.
func (t *Tx) Grants() ([]*Grant, error) {
	var out []*Grant
	_, err := t.page(bucketGrantsByKey, nil, "", 0, func(k []byte) error {
		i := bytes.IndexByte(k, 0)
		g, err := t.Grant(string(k[i+1+8:]))
		if err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// page walks bucket's keys that start with prefix, from the one marker
// names, calling f on at most limit of them (all when limit ≤ 0). It
// returns the marker of the first key not visited: the hex of that key,
// an opaque string of the characters AWS allows in a marker.
func (t *Tx) page(bucket, prefix []byte, marker string, limit int, f func(k []byte) error) (string, error) {
	c := t.tx.Bucket(bucket).Cursor()
	var k []byte
	if marker == "" {
		k, _ = c.Seek(prefix)
	} else {
		start, err := hex.DecodeString(marker)
		if err != nil || !bytes.HasPrefix(start, prefix) || len(start) == len(prefix) {
			return "", fmt.Errorf("%w: %q", ErrInvalidMarker, marker)
		}
		k, _ = c.Seek(start)
	}
	n := 0
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if limit > 0 && n == limit {
			return hex.EncodeToString(k), nil
		}
		if err := f(k); err != nil {
			return "", err
		}
		n++
	}
	return "", nil
}

func (t *Tx) get(bucket []byte, id string, v any) error {
	b := t.tx.Bucket(bucket).Get([]byte(id))
	if b == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: corrupt record %s/%s: %w", bucket, id, err)
	}
	return nil
}

func (t *Tx) put(bucket []byte, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", bucket, id, err)
	}
	return t.tx.Bucket(bucket).Put([]byte(id), b)
}

// timeIndex is the key of a record in an index by time (listing order by
// creation, keys by due date): the time (Unix nanoseconds, big endian, so
// that byte order is time order) and the id. Times before 1970 or after
// 2262, which Unix nanoseconds cannot hold, take the nearest end.
func timeIndex(at time.Time, id string) []byte {
	var ns uint64
	switch {
	case at.Before(minIndexTime):
	case at.After(maxIndexTime):
		ns = uint64(maxIndexTime.UnixNano())
	default:
		ns = uint64(at.UnixNano())
	}
	b := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(b, ns)
	return append(b, id...)
}

// The range of times that timeIndex keeps apart.
var (
	minIndexTime = time.Unix(0, 0)
	maxIndexTime = time.Unix(0, math.MaxInt64)
)

// grantIndex is a grant's key in grantsByKey.
func grantIndex(g *Grant) []byte {
	return append([]byte(g.KeyID+"\x00"), timeIndex(g.CreationDate, g.ID)...)
}

func aliasIndex(keyID, name string) []byte {
	return []byte(keyID + "\x00" + name)
}
