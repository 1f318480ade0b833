package node

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/keyops"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Sentinel errors of the node. The gRPC handlers turn every error into a
// status with toStatus, the one place that maps errors to codes.
var (
	// ErrNoSession is returned when a call lacks a valid session.
	ErrNoSession = errors.New("no valid session: log in first")
	// ErrNoLeader is returned when a write finds no Raft leader in time.
	ErrNoLeader = errors.New("no Raft leader: the cluster cannot accept writes now; retry")
	// ErrIndeterminate is returned when the leader lost its leadership while
	// a write was in flight: the write may or may not have been applied.
	ErrIndeterminate = errors.New("leadership lost while the write was in flight; it may or may not have been applied")
	// ErrReplicaBehind is returned when this HSM has not applied the
	// session's last write within the read-your-writes timeout.
	ErrReplicaBehind = errors.New("replica behind the session's last write; retry")
	// ErrAppliedNotVisible is returned when a write was applied but this
	// HSM's replica has not caught up with it in time. Retry it only with
	// the same request id (the leader then answers from its table of
	// applied requests); without one, a retry would apply it twice.
	ErrAppliedNotVisible = errors.New("the write was applied, but this HSM's replica has not caught up with it yet; retry only with the same request id")
	// ErrNotInitialized is returned for calls an uninitialized HSM cannot serve.
	ErrNotInitialized = errors.New("the HSM is not initialized")
	// ErrAlreadyInitialized is returned by InitializeCluster on a member.
	ErrAlreadyInitialized = errors.New("the HSM is already initialized")
	// ErrForbidden is returned when the caller's identity or role may not make the call.
	ErrForbidden = errors.New("permission denied")
	// ErrTooManySessions is returned when the HSM holds MaxSessions sessions.
	ErrTooManySessions = errors.New("too many sessions on this HSM")
)

// invalidArgument is a caller error with a message for the caller.
type invalidArgument struct{ msg string }

func (e invalidArgument) Error() string { return e.msg }

// invalid returns an InvalidArgument error with msg.
func invalid(msg string) error { return invalidArgument{msg} }

// resultError turns a key database result into an error (nil for OK).
func resultError(r *hsmfsmv1.Result) error {
	if r == nil || r.GetCode() == hsmfsmv1.Code_CODE_OK {
		return nil
	}
	return &resultErr{r: r}
}

type resultErr struct{ r *hsmfsmv1.Result }

func (e *resultErr) Error() string { return e.r.GetMessage() }

// toStatus maps an error to a gRPC status. Messages never carry secrets:
// every error in this package and below is built without them.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var inv invalidArgument
	var re *resultErr
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.msg)
	case errors.As(err, &re):
		return status.Error(resultCode(re.r.GetCode()), re.r.GetMessage())
	case errors.Is(err, keyops.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, keyops.ErrDecrypt):
		return status.Error(codes.InvalidArgument, "decryption failed")
	case errors.Is(err, keyops.ErrPermission), errors.Is(err, ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrNoSession):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrReplicaBehind), errors.Is(err, ErrIndeterminate),
		errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrAlreadyInitialized), errors.Is(err, barrier.ErrSealed),
		errors.Is(err, ErrNoBackupKey):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrBackupInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrAppliedNotVisible):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrTooManySessions):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, "internal error")
}

func resultCode(c hsmfsmv1.Code) codes.Code {
	switch c {
	case hsmfsmv1.Code_CODE_NOT_FOUND:
		return codes.NotFound
	case hsmfsmv1.Code_CODE_ALREADY_EXISTS:
		return codes.AlreadyExists
	case hsmfsmv1.Code_CODE_PERMISSION_DENIED:
		return codes.PermissionDenied
	case hsmfsmv1.Code_CODE_FAILED_PRECONDITION:
		return codes.FailedPrecondition
	case hsmfsmv1.Code_CODE_INVALID_ARGUMENT:
		return codes.InvalidArgument
	}
	return codes.Internal
}
