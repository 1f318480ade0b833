package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Metadata keys of the HSM API. They repeat node.MetadataSession,
// node.MetadataIndex and node.MetadataRequestID: this package must not
// import node (the client talks to HSMs only through the wire contract),
// and the strings are that contract.
const (
	// metadataSession carries a session token (node.MetadataSession).
	metadataSession = "x-hsm-session"
	// metadataIndex carries a Raft log index: on a request, the highest
	// index the client has observed; on a write's response header, the
	// index the write was applied at (node.MetadataIndex).
	metadataIndex = "x-hsm-index"
	// metadataLeader, on a write's response header, names the Raft
	// leader (node.MetadataLeader).
	metadataLeader = "x-hsm-leader"
	// metadataRequestID carries a write's request id, 16 random bytes in
	// hexadecimal, the same on every attempt of one call
	// (node.MetadataRequestID): the HSMs apply a request id once.
	metadataRequestID = "x-hsm-request-id"
)

// requestIDSize is the size of a request id, in bytes.
const requestIDSize = 16

// msgNoLeader is in node.ErrNoLeader's text: the write found no leader and
// was never proposed. It repeats the node's text, for the same reason as
// the metadata keys.
const msgNoLeader = "no Raft leader"

// notSentMarkers are (lower-cased) fragments of grpc-go's messages for
// failures that happen before the request is written to a connection:
// dialing failed (refused, unresolvable, TLS handshake refused) or the
// client's transport was already closing when the stream was created.
var notSentMarkers = []string{
	"connection refused",
	"transport is closing",
	"no such host",
	"error while dialing",
	"authentication handshake failed",
}

// brokenMarkers are fragments of messages of connection-level failures that
// may happen after the request was sent (the connection broke mid-call).
// They, and notSentMarkers, make the HSM unhealthy; for a method the
// Client does not know (kindOther), only notSentMarkers make it retryable.
var brokenMarkers = []string{
	"error reading from server",
	"connection reset",
	"connection error",
	"broken pipe",
	"connection closed",
	"network is unreachable",
	"i/o timeout",
	"eof",
}

// methodKind is what the Client knows about a method's effect, which
// decides how it is retried.
type methodKind int

const (
	// kindOther is a method the Client knows nothing about (added to the
	// API later, or of another service): it may change state and the HSM
	// may not deduplicate it, so it is retried only when it certainly did
	// not run.
	kindOther methodKind = iota
	// kindRead changes nothing: reads and crypto, idempotent.
	kindRead
	// kindWrite is a write that the HSM applies once per request id
	// (every write goes through node.Node.write, which puts the request
	// id into the replicated command).
	kindWrite
)

// methodKinds classifies the HsmService methods. Listing both the reads
// and the deduplicated writes makes a method added to the API later
// kindOther until someone checks how the HSM serves it.
var methodKinds = map[string]methodKind{
	hsmv1.HsmService_ListUsers_FullMethodName:        kindRead,
	hsmv1.HsmService_FindKeys_FullMethodName:         kindRead,
	hsmv1.HsmService_GetAttributes_FullMethodName:    kindRead,
	hsmv1.HsmService_Encrypt_FullMethodName:          kindRead,
	hsmv1.HsmService_Decrypt_FullMethodName:          kindRead,
	hsmv1.HsmService_Sign_FullMethodName:             kindRead,
	hsmv1.HsmService_Verify_FullMethodName:           kindRead,
	hsmv1.HsmService_GenerateMac_FullMethodName:      kindRead,
	hsmv1.HsmService_VerifyMac_FullMethodName:        kindRead,
	hsmv1.HsmService_WrapKey_FullMethodName:          kindRead,
	hsmv1.HsmService_GenerateRandom_FullMethodName:   kindRead,
	hsmv1.HsmService_Batch_FullMethodName:            kindRead,
	hsmv1.HsmService_ListQuorumTokens_FullMethodName: kindRead,

	hsmv1.HsmService_ActivateCluster_FullMethodName:      kindWrite,
	hsmv1.HsmService_CreateUser_FullMethodName:           kindWrite,
	hsmv1.HsmService_DeleteUser_FullMethodName:           kindWrite,
	hsmv1.HsmService_ChangePassword_FullMethodName:       kindWrite,
	hsmv1.HsmService_GenerateSymmetricKey_FullMethodName: kindWrite,
	hsmv1.HsmService_GenerateKeyPair_FullMethodName:      kindWrite,
	hsmv1.HsmService_SetAttribute_FullMethodName:         kindWrite,
	hsmv1.HsmService_ShareKey_FullMethodName:             kindWrite,
	hsmv1.HsmService_UnshareKey_FullMethodName:           kindWrite,
	hsmv1.HsmService_DeleteKey_FullMethodName:            kindWrite,
	hsmv1.HsmService_UnwrapKey_FullMethodName:            kindWrite,
	hsmv1.HsmService_RegisterQuorumKey_FullMethodName:    kindWrite,
	hsmv1.HsmService_GenerateQuorumToken_FullMethodName:  kindWrite,
	hsmv1.HsmService_ApproveQuorumToken_FullMethodName:   kindWrite,
	hsmv1.HsmService_SetQuorumValue_FullMethodName:       kindWrite,
}

// kindOf returns method's kind; kindOther for any method not listed.
func kindOf(method string) methodKind { return methodKinds[method] }

// newRequestID returns a fresh request id, hex-encoded.
func newRequestID() (string, error) {
	b := make([]byte, requestIDSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("client: request id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hasMarker reports whether the lower-cased msg contains one of markers.
func hasMarker(msg string, markers []string) bool {
	msg = strings.ToLower(msg)
	for _, m := range markers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// isConnectionError reports whether err is a connection-level failure,
// which makes the HSM unhealthy until a probe reaches it again.
func isConnectionError(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		return false
	}
	return hasMarker(st.Message(), notSentMarkers) || hasMarker(st.Message(), brokenMarkers)
}

// retryable reports whether a call of the given kind that failed with err
// may be tried again on another HSM. ctx is the caller's context. The
// policy is the package documentation's.
func retryable(ctx context.Context, kind methodKind, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	st := status.Convert(err)
	if kind == kindRead || kind == kindWrite {
		switch st.Code() {
		case codes.Unavailable, // the HSM, or the way to it, is down or not ready
			codes.DeadlineExceeded, // an attempt's or the HSM's inner deadline: the caller's context lives
			codes.Unauthenticated,  // the HSM refused the session before acting
			codes.Aborted:          // a write applied that this HSM's replica has not caught up with
			return true
		}
		return false
	}
	// A method the HSM may not deduplicate: only what certainly did not run.
	switch st.Code() {
	case codes.Unauthenticated:
		return true
	case codes.Unavailable:
		return strings.Contains(st.Message(), msgNoLeader) || hasMarker(st.Message(), notSentMarkers)
	}
	return false
}
