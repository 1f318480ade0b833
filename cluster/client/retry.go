package client

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Metadata keys of the HSM API. They repeat node.MetadataSession and
// node.MetadataIndex: this package must not import node (the client talks
// to HSMs only through the wire contract), and the strings are that
// contract.
const (
	// metadataSession carries a session token (node.MetadataSession).
	metadataSession = "x-hsm-session"
	// metadataIndex carries a Raft log index: on a request, the highest
	// index the client has observed; on a write's response header, the
	// index the write was applied at (node.MetadataIndex).
	metadataIndex = "x-hsm-index"
)

// Messages of the node's Unavailable errors that this package acts on. They
// repeat the text of node.ErrNoLeader and node.ErrIndeterminate, for the
// same reason as the metadata keys.
const (
	// msgNoLeader is in node.ErrNoLeader's text: the write found no leader
	// and was never proposed.
	msgNoLeader = "no Raft leader"
	// msgIndeterminate ends node.ErrIndeterminate: the write was proposed
	// and its fate is unknown.
	msgIndeterminate = "may or may not have been applied"
)

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
// They, and notSentMarkers, make the HSM unhealthy; only notSentMarkers make
// a write retryable.
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

// readMethods are the HsmService methods that change nothing in the key
// database: reads and crypto. They are idempotent, so any failure that says
// nothing about the answer may be retried on another HSM. Every other
// method (CreateUser, DeleteUser, ChangePassword, ActivateCluster,
// GenerateSymmetricKey, GenerateKeyPair, SetAttribute, ShareKey,
// UnshareKey, DeleteKey, UnwrapKey, the quorum commands) is a write: a
// retry may apply it twice, so it is retried only when the first try
// certainly did not run. Listing the reads rather than the writes makes a
// method added to the API later a write until someone says otherwise.
var readMethods = map[string]bool{
	hsmv1.HsmService_ListUsers_FullMethodName:        true,
	hsmv1.HsmService_FindKeys_FullMethodName:         true,
	hsmv1.HsmService_GetAttributes_FullMethodName:    true,
	hsmv1.HsmService_Encrypt_FullMethodName:          true,
	hsmv1.HsmService_Decrypt_FullMethodName:          true,
	hsmv1.HsmService_Sign_FullMethodName:             true,
	hsmv1.HsmService_Verify_FullMethodName:           true,
	hsmv1.HsmService_GenerateMac_FullMethodName:      true,
	hsmv1.HsmService_VerifyMac_FullMethodName:        true,
	hsmv1.HsmService_WrapKey_FullMethodName:          true,
	hsmv1.HsmService_GenerateRandom_FullMethodName:   true,
	hsmv1.HsmService_ListQuorumTokens_FullMethodName: true,
}

// isWrite reports whether method must be treated as a write: any method
// not known to be a read, including those of other services.
func isWrite(method string) bool { return !readMethods[method] }

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

// retryable reports whether a call that failed with err may be tried again
// on another HSM. ctx is the caller's context. The policy is the package
// documentation's.
func retryable(ctx context.Context, write bool, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	st := status.Convert(err)
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		// The HSM refused the session before acting: safe for every method.
		return true
	case codes.Unavailable:
		if strings.Contains(msg, msgIndeterminate) {
			return false
		}
		if !write {
			return true
		}
		return strings.Contains(msg, msgNoLeader) || hasMarker(msg, notSentMarkers)
	case codes.DeadlineExceeded:
		// The caller's context is alive (checked above): an inner deadline
		// expired, on the HSM or on its way.
		return !write
	}
	return false
}
