// Package keydb is an HSM cluster's key database as a plain, deterministic
// state machine: users, key objects, admitted members and quorum settings.
// The Raft adapter (node/fsm) feeds it the committed log; everything else in
// the node reads it.
//
// # Contract
//
//   - Apply is deterministic. Given the same state and the same command every
//     replica computes the same new state and the same Result: Apply reads no
//     clock, draws no random number and never lets map iteration order reach
//     a result, a handle or a snapshot. Key handles come from a counter in the
//     state, starting at 1.
//   - A business failure (unknown user, duplicate key id, a non-owner deleting
//     a key, a quota reached, ...) is a Result with a code, never a panic or
//     an error, and leaves the state unchanged apart from the applied index
//     (and, for a command with a request id, the remembered result: see
//     below). Every handler validates completely before it mutates anything.
//   - Result messages never carry secrets: no password hash, no key material.
//   - Snapshot encodes the whole state with sorted lists and deterministic
//     protobuf marshaling, so equal states give equal bytes. Restore decodes
//     and validates into a new state and swaps it in; on error the database is
//     unchanged.
//   - Reads run concurrently with Apply (a sync.RWMutex) and return copies:
//     the caller may keep or change what it gets without touching the
//     database.
//
// # What keydb does not do
//
// keydb never sees plaintext key material: a key record holds the material
// sealed by the node's barrier, and keydb cannot open it. It does not verify
// passwords (it stores Argon2id hashes made by the node), quorum approval
// signatures, or the role of a session's user before proposing: the node
// checks those, and
// keydb re-checks what depends on the replicated state (the actor exists and
// has the role, only a key's owner changes the key, a key id is unique), so
// that a stale replica cannot allow what the log forbids.
//
// # Rules, after AWS CloudHSM
//
// Users are admins (manage users) and crypto users (own and use keys); the
// unactivated admin created by InitCluster becomes an admin on Activate.
// Admins cannot own keys; only a key's owner deletes, shares, unshares it or
// changes its attributes; a user that owns keys cannot be deleted and the
// last admin cannot be deleted. The fifth consecutive failed login locks a
// user; an admin's password reset unlocks. The two halves of a key pair may
// share a key id; otherwise an id is unique. Quotas follow CloudHSM's
// (reference §5.2): MaxUsers users, MaxKeys key objects and MaxMembers HSMs
// per cluster.
//
// # Quorum (M of N)
//
// While a service's quorum value is above 1 (CloudHSM: 2 to 8), its
// commands name a quorum token: "user" guards CreateUser, DeleteUser and an
// admin's SetPassword, "quorum" guards SetQuorumValue. The token must be for
// that service, issued to the actor, at most QuorumTokenLifetime seconds
// old at the command's now_unix and approved by at least M current admins;
// the command consumes it in the same Apply. Times are the proposing node's
// clock carried in the command, never read here. An approval names the key
// the node verified the signature with, which must still be the approver's
// registered key. Creating a token drops the expired ones; at most
// MaxQuorumTokens live tokens are held.
//
// # Exactly-once writes (Raft thesis §6.3)
//
// A command may carry a client's request id (16 bytes, the same on every
// attempt of one call). The first command with an id is applied and its
// Result, a business failure included, is remembered with its index, its
// command type and its actor; a later command with the same id gets that
// Result back and changes nothing but the applied index, so a write that a
// client retried after an unknown outcome takes effect once. An id reused
// for another command type or another actor is refused with
// CODE_INVALID_ARGUMENT rather than answered with someone else's result.
// At most MaxAppliedRequests ids are remembered; the oldest by index is
// evicted first, so the order, like everything else, is the log's. The
// table is part of snapshots; PrepareRestore drops it, since the restored
// cluster's clients are new.
package keydb
