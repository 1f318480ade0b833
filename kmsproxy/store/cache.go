package store

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
)

// maxCachedRecords bounds each kind of record the cache holds; past it, an
// arbitrary entry makes room. A miss costs one JSON decode, so the bound
// only trades memory for decoding.
const maxCachedRecords = 16384

// recordKind names the cached record types.
type recordKind uint8

const (
	kindKey recordKind = iota
	kindAlias
	kindKeyStore
)

// recordID names one record: its kind and id.
type recordID struct {
	kind recordKind
	id   string
}

// recordCache holds decoded records (keys, aliases, custom key stores) so
// that a read need not decode JSON. Its entries are immutable: readers get
// clones.
//
// It is exactly as current as the bbolt file, by these invariants, all
// under mu:
//
//   - An entry, when present, is the record's latest committed value: a
//     write transaction that puts or deletes a record first deletes its
//     entry and marks it dirty (before the change can be committed), and
//     it stays dirty until that transaction has finished (committed or
//     rolled back).
//   - An entry is filled only from a read-only transaction whose snapshot
//     is the latest commit the cache knows of (snapshot txid == committed),
//     and only while the record is not dirty. A reader whose snapshot is
//     older, or that raced with a write to the record, just decodes.
//   - A read-only transaction uses an entry only when its snapshot is
//     committed, so within a transaction a cached record is the one the
//     snapshot holds. Write transactions (one at a time) use entries too:
//     an entry is the latest committed value, and what the transaction
//     changed itself is dirty, hence read from its own pages.
//
// Every write goes through Store.Update (the file is the process's own,
// locked by bbolt), so no write can bypass the marks.
type recordCache struct {
	// mu is held shared by lookups, exclusively by everything else.
	mu sync.RWMutex
	// committed is the highest transaction id known to be committed.
	committed uint64
	// dirty counts, per record, the unfinished write transactions that
	// changed it; resetting counts those that deleted everything.
	dirty     map[recordID]int
	resetting int

	keys      map[string]*Key
	aliases   map[string]*Alias
	keyStores map[string]*CustomKeyStore

	// hits and misses count lookups, for tests and benchmarks.
	hits, misses atomic.Uint64
}

func newRecordCache(committed uint64) *recordCache {
	return &recordCache{
		committed: committed, dirty: map[recordID]int{},
		keys: map[string]*Key{}, aliases: map[string]*Alias{}, keyStores: map[string]*CustomKeyStore{},
	}
}

// usableLocked reports whether transaction t may use the cache's
// entries. c.mu must be held (shared will do).
func (c *recordCache) usableLocked(t *Tx) bool {
	if c.resetting > 0 {
		return false
	}
	return t.writable || t.txid == c.committed
}

// fillableLocked reports whether a record t decoded may become an entry.
// c.mu must be held.
func (c *recordCache) fillableLocked(t *Tx, rid recordID) bool {
	return !t.writable && c.resetting == 0 && t.txid == c.committed && c.dirty[rid] == 0
}

// markDirty records that t is about to change rid: its entry goes and no
// reader fills it until t is finished. In a read-only transaction it does
// nothing: bbolt refuses the write.
func (c *recordCache) markDirty(t *Tx, rid recordID) {
	if !t.writable {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty[rid]++
	t.dirtied = append(t.dirtied, rid)
	c.dropLocked(rid)
}

// markReset records that t deletes every record.
func (c *recordCache) markReset(t *Tx) {
	if !t.writable {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetting++
	t.resets++
	clear(c.keys)
	clear(c.aliases)
	clear(c.keyStores)
}

func (c *recordCache) dropLocked(rid recordID) {
	switch rid.kind {
	case kindKey:
		delete(c.keys, rid.id)
	case kindAlias:
		delete(c.aliases, rid.id)
	case kindKeyStore:
		delete(c.keyStores, rid.id)
	}
}

// committedTx records that the write transaction txid committed.
func (c *recordCache) committedTx(txid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committed = max(c.committed, txid)
}

// finish releases the marks of a finished write transaction (committed or
// not). It must run after the commit, if any, was recorded.
func (c *recordCache) finish(dirtied []recordID, resets int) {
	if len(dirtied) == 0 && resets == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rid := range dirtied {
		if c.dirty[rid]--; c.dirty[rid] <= 0 {
			delete(c.dirty, rid)
		}
		// A transaction that rolled back changed nothing, but a reader
		// may have been refused meanwhile; dropping again is harmless.
		c.dropLocked(rid)
	}
	c.resetting -= resets
}

// lookup returns the cached record m holds for id, when t may use it, or
// nil. The record is shared: callers clone it.
func lookup[R any](c *recordCache, t *Tx, m map[string]*R, id string) *R {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.usableLocked(t) {
		c.misses.Add(1)
		return nil
	}
	r := m[id]
	if r == nil {
		c.misses.Add(1)
	} else {
		c.hits.Add(1)
	}
	return r
}

// fill makes r (decoded by t, not shared) the entry of kind and id when
// the invariants allow it.
func fill[R any](c *recordCache, t *Tx, m map[string]*R, kind recordKind, id string, r *R) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fillableLocked(t, recordID{kind, id}) {
		return
	}
	if len(m) >= maxCachedRecords {
		for k := range m {
			delete(m, k)
			break
		}
	}
	m[id] = r
}

// CacheStats returns how many record lookups the cache answered and how
// many it did not, since Open.
func (s *Store) CacheStats() (hits, misses uint64) {
	return s.cache.hits.Load(), s.cache.misses.Load()
}

// clone returns a deep copy of k.
func (k *Key) clone() *Key {
	c := *k
	if k.BackingKeys != nil {
		c.BackingKeys = make([]BackingKey, len(k.BackingKeys))
		for i, b := range k.BackingKeys {
			b.KCV, b.Check = bytes.Clone(b.KCV), bytes.Clone(b.Check)
			c.BackingKeys[i] = b
		}
	}
	c.Tags = slices.Clone(k.Tags)
	if k.Import != nil {
		imp := *k.Import
		imp.TokenID = bytes.Clone(imp.TokenID)
		c.Import = &imp
	}
	return &c
}

// clone returns a copy of a.
func (a *Alias) clone() *Alias {
	c := *a
	return &c
}

// clone returns a deep copy of cks.
func (cks *CustomKeyStore) clone() *CustomKeyStore {
	c := *cks
	c.SealedPassword = bytes.Clone(cks.SealedPassword)
	c.SealedPendingPassword = bytes.Clone(cks.SealedPendingPassword)
	return &c
}
