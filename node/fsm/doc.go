// Package fsm adapts the key database (node/keydb) to hashicorp/raft: FSM
// implements raft.FSM by decoding each committed log entry into an
// hsmfsm.v1.Command and applying it to a *keydb.DB.
//
// The adapter is deliberately thin (rqlite's store/fsm.go, Consul's
// agent/consul/fsm): all the rules live in keydb, which tests cover without
// Raft.
//
// # Failures
//
// A business failure (unknown user, not the owner, quota reached) is the
// *hsmfsmv1.Result that Apply returns and raft.ApplyFuture.Response hands to
// the proposer; every replica computes the same one. A log entry that does
// not decode to a Command with a command set is different: a replica that
// cannot apply an entry that the others have applied would silently diverge,
// so Apply panics and the node stops, as Consul's FSM does. Such an entry
// means a bug, or a newer binary that wrote a command type this one does not
// know; Encode refuses to produce one, so a well-behaved node never proposes
// it. Upgrades therefore roll out new command types only after every replica
// can read them.
//
// # Snapshots
//
// Snapshot captures the encoded database, an immutable byte slice, while
// Apply is not running (raft's contract); Persist writes it to the sink on
// raft's snapshot goroutine; Restore decodes into a new database state and
// swaps it in (keydb.DB.Restore).
//
// # Waiting for an index
//
// WaitApplied lets a request wait until this replica has applied a given log
// index, for read-your-writes: a session remembers the indexes of its writes.
// The applied index advances with every log entry Apply sees and is reset by
// Restore to the snapshot's. raft calls Apply only for command entries (not
// for no-op, barrier or configuration entries), so waiting for the index of
// such an entry returns only once a later command is applied; wait for
// command indexes.
package fsm
