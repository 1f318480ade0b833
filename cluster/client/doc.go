// Package client is the multi-HSM client, hsmsim's counterpart of the
// CloudHSM client SDK: what kmsproxy and hsmctl use to reach a cluster. A
// Client holds one session per HSM and looks like one gRPC connection: it
// implements grpc.ClientConnInterface, so hsmv1.NewHsmServiceClient(client)
// is the whole typed API.
//
// # Trust
//
// Every connection is TLS 1.3. An HSM must present a certificate chain to
// Config.TrustAnchor (the customer CA) whose leaf's common name is
// Config.CertificateID, as CloudHSM's client checks HSMs against
// customerCA.crt. The dialed address plays no part: HSMs move, the cluster
// identity does not.
//
// # Sessions
//
// New logs in on every HSM and succeeds when one login does. The Client owns
// its sessions: Login and Logout through Invoke are refused. A session dies
// with its HSM's process; when an HSM answers Unauthenticated, the Client
// drops that session and logs in there again in the background. Close logs
// out everywhere.
//
// # Spreading
//
// Each call goes to the usable HSM (reachable, with a session) with the
// fewest calls in flight from this Client, ties broken round robin. Crypto
// thus spreads over the HSMs. A write goes first to the Raft leader that the
// last write's answer named (header "x-hsm-leader"), which saves the hop a
// follower would make to forward it; any HSM accepts a write, so a stale
// leader costs nothing but that hop.
//
// # Read-your-writes
//
// A write's response header carries its Raft index (metadata
// "x-hsm-index"). The Client keeps the highest index it has observed and
// sends it with every request; the HSM serving it first waits until its
// replica has applied that index. So a key created through the Client is
// usable at once on every HSM, whichever serves the next call.
//
// Calls on one key (Encrypt, Decrypt, Sign, Verify, GenerateMac,
// VerifyMac, WrapKey, GetAttributes) carry a narrower index: that of the
// last write to their keys, to users, or before the Client logged in. They
// depend on nothing else, and a wider index would stop them on the HSMs
// that survive a leader's loss: the last write the Client saw (another
// key's creation) may be committed without the survivors knowing it until
// a new leader is elected, and crypto must not wait for an election
// (DESIGN.md invariant 6).
//
// A login carries the index of the Client's last write to users, such as
// the change of its own password: the HSM checks the password once its
// replica has that change, so that a re-login on a lagging HSM is not
// refused and counted towards the user's lock.
//
// # Batching
//
// Crypto calls (Encrypt, Decrypt, Sign, Verify, GenerateMac, VerifyMac,
// GenerateRandom) to one HSM share round trips when they come faster than
// the HSM answers. The Client keeps up to Config.BatchesInFlight Batch RPCs
// in flight per HSM; a call that comes while they are all out waits in the
// HSM's queue, and the queue leaves as one Batch (at most 256 calls, 1 MiB)
// as soon as one comes back. A call that finds a free slot leaves at once,
// alone as its own RPC when nothing else waits: a lone caller waits for no
// one and makes exactly the RPC it would without batching. The HSM serves
// each call of a Batch as the call alone (the session's checks, the call's
// own index, its own status), so a call's answer, errors and retries are
// the same either way. Under load this saves most of the per-RPC work on
// both sides: HTTP/2 streams and headers, wake-ups, system calls.
// Config.Unbatched sends every call alone.
//
// A queued call is encoded as it joins the queue, and its batch carries
// that encoding, zeroed once sent. So a caller that gives up while its
// call waits (its deadline, or a hedge that answered first) may reuse or
// zero its request at once: no queued call, hedge or probe reads a
// request after its call has returned.
//
// # Retries and exactly-once writes
//
// A failed call is tried again on another HSM, up to Config.MaxAttempts
// attempts in all, pausing Config.RetryInterval after each full round over
// the usable HSMs, and only while the caller's context lives.
//
// Every write (CreateUser, DeleteUser, ChangePassword, ActivateCluster,
// GenerateSymmetricKey, GenerateKeyPair, SetAttribute, ShareKey,
// UnshareKey, DeleteKey, UnwrapKey and the quorum commands) carries a
// request id: 16 random bytes, hex-encoded, in metadata "x-hsm-request-id",
// drawn once per call and sent unchanged with every attempt (a caller that
// sets its own, to span several calls, keeps it). The HSM puts it into the
// replicated command, and the key database applies a request id once: a
// later command with the same id gets the first one's result, a refusal
// included, and changes nothing (Raft thesis §6.3). So a write whose
// outcome is unknown (the leader lost its leadership with it in flight,
// the connection broke mid-call, the attempt timed out) is simply sent
// again, and takes effect once.
//
// Reads and crypto (ListUsers, FindKeys, GetAttributes, Encrypt, Decrypt,
// Sign, Verify, GenerateMac, VerifyMac, WrapKey, GenerateRandom, Batch,
// ListQuorumTokens) are idempotent. Writes and reads are thus retried
// alike, on:
//
//   - Unavailable, of any kind: a connection refused or broken, no Raft
//     leader, a write whose fate the HSM does not know, a replica behind;
//   - DeadlineExceeded while the caller's context lives: an attempt's
//     timeout (see Health) or an inner deadline on the HSM;
//   - Unauthenticated: the HSM refused the session before acting;
//   - Aborted: the write was applied, but the HSM's replica has not caught
//     up with it; the retry through another HSM is answered from the
//     request table.
//
// Other codes (NotFound, PermissionDenied, InvalidArgument, AlreadyExists,
// ...) are the answer and are returned. A method the Client does not know
// (added to the API later, or of another service) may change state without
// the HSM deduplicating it: it is retried only when it certainly did not
// run (a connection failure before the request was sent, Unauthenticated,
// the node's "no Raft leader").
//
// The HSMs remember the cluster's latest 10,000 request ids: a retry that
// came after 10,000 other writes with ids would be applied again. The
// Client's retries of a call come within its caller's deadline, long
// before that.
//
// # Hedging
//
// A read or crypto call whose attempt has not answered within
// Config.HedgeDelay (100 ms by default; a crypto call's round trip is under
// a millisecond here) is sent to a second HSM as well, a hedge ("The Tail at
// Scale", Dean and Barroso), and the first success is the call's. Reads and
// crypto change nothing on the HSMs, so two attempts at once are harmless;
// writes are never hedged. An HSM that stops answering (a paused process, a
// network that drops its answers) thus costs a read or crypto call about
// HedgeDelay instead of an AttemptTimeout, and crypto goes on through the
// other HSMs. The hedge runs in a goroutine of its own, with its own
// retries, and starts only when another HSM is usable; the call's own
// attempts stay in its caller's goroutine, as without hedging, so that a
// call that answers in time costs one timer more. Hedges are rationed by a
// token bucket: a burst of ten, then one per ten successful calls, so that
// an overloaded cluster, whose every call is slow, gets at most a tenth more
// load from them. The hedge that answers first cancels the attempt it beat,
// and sends that HSM a GenerateRandom of one byte under AttemptTimeout in
// its place, so that an HSM that does not answer is still found out and made
// unhealthy (see Health). A call returns only once its hedge has ended (a
// hedge the primary beat is cancelled, and ends at once), and the hedge
// decodes into a reply of its own: the caller's request and reply are its
// own again when the call returns. Config.Unhedged turns hedging off.
//
// # Health
//
// Each attempt runs under Config.AttemptTimeout (or the caller's deadline,
// when earlier), and so does each login of New: an HSM that accepts
// connections but does not answer (a paused process, a black-holed network)
// costs a write one AttemptTimeout, not the caller's whole deadline, and a
// read or crypto call its HedgeDelay. An attempt that times out while the
// caller's context lives, or a connection-level failure, makes the HSM
// unhealthy: no call goes to it. A background loop probes unhealthy HSMs
// every Config.HealthInterval by logging in again; the first success makes
// the HSM usable, and spreading sends it its share at once. Logins refused
// with PermissionDenied are retried with exponential backoff (up to a
// minute), since every wrong password counts towards the user's lock. Health
// reports each HSM's state and how many calls it served.
package client
