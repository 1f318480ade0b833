// Package store is the KMS endpoint's durable metadata: KMS keys (state,
// spec, usage, origin, the HSM handles of their backing keys per material
// version, rotation schedule, import parameters, deletion date, policy,
// tags), aliases, grants and custom key stores, as JSON records keyed by
// id in one bbolt file.
//
// It holds no key material and no password in the clear: a key names its
// HSM keys by handle, and a custom key store keeps kmsuser's password
// sealed by the KMS fleet (package kms seals it before it gets here).
//
// Every write is one bbolt transaction, committed and fsynced before
// Update returns, so that what the endpoint acknowledged survives a crash.
// Batch lets concurrent writers (CreateKey) share a transaction and its
// fsyncs (group commit), each still returning only once its write is on
// disk.
//
// Reads of keys, aliases and custom key stores come from a cache of
// decoded records (cache.go) that every write keeps exactly as current as
// the file: a write drops the records it changes before it commits, and
// a reader fills the cache only from a snapshot of the latest commit, so
// a request always sees the key's current state without decoding JSON.
// Callers check their invariants (an alias name is unique, a key store
// has no keys) and write in the same transaction, so that two concurrent
// requests cannot both pass a check.
//
// Listings are in creation order, then id, through index buckets keyed
// by the big-endian creation time: no counter to keep, and a marker (the
// hex of the next index key) stays valid when records before or after it
// change. Aliases list by name; grants by key, then creation. Keys are
// also indexed by their due date (Key.DueDate: a deletion date, the next
// rotation, an import's expiry), so that the sweeper reads only the keys
// that time has made due, not every key every ten seconds.
package store
