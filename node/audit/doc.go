// Package audit is the append-only, hash-chained audit log of one HSM.
//
// Every security-relevant event the node handles (logins, user and key changes, refused
// authorizations, cluster initialization and activation, membership changes) is recorded as one
// line of JSON in a file of the node's own. The log is local: it is not replicated, each HSM
// keeps its own, and Verify checks one file from its first line to its last.
//
// # Line format
//
// A line is one JSON object followed by "\n", with the members in this order and no whitespace:
//
//	{"seq":1,"time":"2026-01-02T15:04:05.123456789Z","event":"login","actor":"alice","session_hsm":"hsm-1","outcome":"ok","fields":{"role":"crypto_user"},"prev":"0000…0000","hash":"9f2c…"}
//
// The members:
//
//   - seq: 1 for the first line, then +1 per line, a JSON integer.
//   - time: the clock's reading in UTC, RFC 3339 with exactly nine fractional digits
//     ("2006-01-02T15:04:05.000000000Z").
//   - event: the event name, snake_case ([a-z][a-z0-9_]*); the Event* constants name the
//     events the node records.
//   - actor: the username that caused the event (for a login, the name as given, even if no
//     such user exists), "" when there is none.
//   - session_hsm: the id of the HSM whose session caused the event.
//   - outcome: "ok", "denied" (refused by authorization or a wrong password) or "failed" (a
//     business or internal failure).
//   - fields: non-secret details (handle, target user, role…), a JSON object of strings with
//     the keys sorted by their bytes; {} when there are none, never null.
//   - prev: the lowercase hex SHA-256 of the previous line's bytes without its "\n"; 64 zeros
//     on the first line.
//   - hash: the lowercase hex SHA-256 of the line's canonical encoding with hash set to "".
//
// # Canonical encoding
//
// The canonical encoding of a line is exactly the bytes described above: the nine members in
// the order given, no insignificant whitespace, fields' keys sorted bytewise, strings as
// encoding/json writes them with HTML escaping off (`"` and `\` escaped with a backslash;
// \b \f \n \r \t; other control characters as \u00XX; U+2028 and U+2029 as \u2028 and \u2029;
// nothing else escaped). Strings must be valid UTF-8. The hash is therefore computed over the
// line as written with its 64 hex digits of hash removed, i.e. over `…,"hash":""}`; a line is
// valid only when it is byte for byte the canonical encoding of its own content, so any
// change to any byte is detected on that very line, and prev carries the detection forward:
// deleting, reordering or inserting lines breaks seq or prev. The chain cannot reveal lines
// removed from the end of the file (or the whole file replaced by a shorter valid log): that
// needs an anchor kept elsewhere, such as the last seq and hash reported to an operator.
//
// # Secrets
//
// Audit lines are not secret and are meant to be read by operators. Callers must never put key
// material, passwords, PINs, plaintext, session tokens or anything derived from them (in
// particular not a hash of a password) in any field of an Event. As a guard against mistakes,
// Record refuses a field whose name contains "password", "key_material" or "plaintext" in any
// case; the guard cannot see secrets under other names.
//
// # Durability
//
// Record writes each line with one write call on a file opened with O_APPEND and, unless the
// log was opened WithSync(false), returns only once an fsync that began after that write has
// succeeded: an event reported as recorded survives a crash of the process or the machine. The
// node records an event before it answers the request, so every audited request's event is
// durable before its answer leaves the HSM.
//
// The fsyncs are shared (group commit). Lines are appended, and chained, under the log's lock,
// which is never held across an fsync; one Record at a time fsyncs, outside that lock, and
// that fsync covers every line written before it began. Before it begins, the syncing Record
// yields once (runtime.Gosched), so that the Records ready to run at the same moment write
// their lines first and share its fsync. The Records that wrote while it ran wait for it to
// finish, then one of them fsyncs once for all of them, and the others find their lines
// covered and return. With n concurrent writers a burst of events costs one or two fsyncs
// instead of n, and the order and content of the lines, and so the chain, are exactly
// those of one writer at a time. With one writer at a time nothing changes: one fsync per
// event (a fraction of a millisecond to several milliseconds, depending on the disk). Tests and
// benchmarks may turn the fsync off.
//
// A failed write or fsync leaves the file's state unknown (after a failed fsync the kernel may
// have dropped the dirty pages), so it breaks the Log for good: every later Record returns
// ErrBroken, and so does every Record whose line no successful fsync covered yet; the node
// should stop serving audited requests. Open checks the last line of an existing file and
// refuses a file whose tail is incomplete or corrupt.
package audit
