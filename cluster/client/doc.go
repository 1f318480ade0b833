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
// thus spreads over the HSMs; writes too, and the HSM forwards them to the
// Raft leader.
//
// # Read-your-writes
//
// A write's response header carries its Raft index (metadata
// "x-hsm-index"). The Client keeps the highest index it has observed and
// sends it with every request; the HSM serving it first waits until its
// replica has applied that index. So a key created through the Client is
// usable at once on every HSM, whichever serves the next call.
//
// # Retries
//
// A failed call is tried again on another HSM, up to Config.MaxAttempts
// attempts in all, pausing Config.RetryInterval after each full round over
// the usable HSMs, and only while the caller's context lives. Whether a
// failure is retried depends on what it proves about the request:
//
//   - Reads and crypto (ListUsers, FindKeys, GetAttributes, Encrypt,
//     Decrypt, Sign, Verify, GenerateMac, VerifyMac, WrapKey,
//     GenerateRandom, ListQuorumTokens) are idempotent: they are retried on
//     Unavailable, on DeadlineExceeded (an inner deadline, since the
//     caller's context is alive) and on Unauthenticated. Other codes
//     (NotFound, PermissionDenied, InvalidArgument, ...) are the answer and
//     are returned.
//   - Every other method is a write (CreateUser, DeleteUser,
//     ChangePassword, ActivateCluster, GenerateSymmetricKey,
//     GenerateKeyPair, SetAttribute, ShareKey, UnshareKey, DeleteKey,
//     UnwrapKey, the quorum commands, and any method added later or of
//     another service). Running a write twice creates a second key or fails
//     the second time, so a write is retried only when it certainly did not
//     run: a connection failure before the request was sent (connection
//     refused, no such host, TLS handshake failure, transport closing),
//     Unauthenticated (the HSM refused the session before acting), and the
//     node's "no Raft leader" Unavailable (the write was never proposed).
//     Any other failure is returned, in particular the node's Unavailable
//     "... may or may not have been applied" (leadership was lost with the
//     write in flight), a connection that broke mid-call, and "replica
//     behind", which the node also returns after a write was applied. The
//     caller who must know checks (FindKeys by label or id) and decides.
//
// # Health
//
// A connection-level failure makes an HSM unhealthy: no call goes to it. A
// background loop probes unhealthy HSMs every Config.HealthInterval by
// logging in again; the first success makes the HSM usable, and spreading
// sends it its share at once. Logins refused with PermissionDenied are
// retried with exponential backoff (up to a minute), since every wrong
// password counts towards the user's lock. Health reports each HSM's state
// and how many calls it served.
package client
