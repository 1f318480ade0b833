package transport

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MetadataFrom is the gRPC metadata key under which a node names itself (its Raft address)
// on node-to-node calls. It identifies the caller for fault injection only; it is not
// authentication (the cluster certificate is).
const MetadataFrom = "x-hsm-from"

// PeerFromMetadata returns the caller's Raft address from the incoming metadata key
// MetadataFrom, or "" for a call that does not come from a node (a client, the control
// plane), to which faults do not apply.
func PeerFromMetadata(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, MetadataFrom); len(v) > 0 {
		return v[0]
	}
	return ""
}

// UnaryServerInterceptor refuses calls from blocked or losing peers with codes.Unavailable
// and delays the responses to delayed peers. peerOf names the caller (nil means
// PeerFromMetadata); calls it names "" pass untouched.
func (f *Faults) UnaryServerInterceptor(peerOf func(context.Context) string) grpc.UnaryServerInterceptor {
	peerOf = orMetadata(peerOf)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// The common case, no fault anywhere, costs one uncontended lock and no metadata
		// search. A fault set while the call runs applies from the next call.
		if f.empty() {
			return handler(ctx, req)
		}
		peer := peerOf(ctx)
		if peer == "" {
			return handler(ctx, req)
		}
		if err := f.admit(peer); err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		if serr := f.sleep(ctx, peer); serr != nil {
			return nil, serr
		}
		return resp, err
	}
}

// StreamServerInterceptor refuses streams from blocked or losing peers with
// codes.Unavailable and delays each message sent to delayed peers. peerOf is as for
// UnaryServerInterceptor. A stream already open is not cut by a later Block.
func (f *Faults) StreamServerInterceptor(peerOf func(context.Context) string) grpc.StreamServerInterceptor {
	peerOf = orMetadata(peerOf)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		peer := peerOf(ss.Context())
		if peer == "" {
			return handler(srv, ss)
		}
		if err := f.admit(peer); err != nil {
			return err
		}
		return handler(srv, &delayedServerStream{ServerStream: ss, faults: f, peer: peer})
	}
}

// UnaryClientInterceptor names this node (self, its Raft address) in the outgoing metadata
// key MetadataFrom, refuses calls to blocked or losing peers with codes.Unavailable and
// delays calls to delayed peers. peerOf maps the ClientConn's target (cc.Target()) to the
// peer's Raft address; with one ClientConn per peer it can return a constant. A peer named ""
// gets no faults.
func (f *Faults) UnaryClientInterceptor(self string, peerOf func(target string) string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataFrom, self)
		if peer := peerOf(cc.Target()); peer != "" {
			if err := f.admit(peer); err != nil {
				return err
			}
			if err := f.sleep(ctx, peer); err != nil {
				return err
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams: it checks and delays the
// stream's opening and delays each message sent.
func (f *Faults) StreamClientInterceptor(self string, peerOf func(target string) string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataFrom, self)
		peer := peerOf(cc.Target())
		if peer == "" {
			return streamer(ctx, desc, cc, method, opts...)
		}
		if err := f.admit(peer); err != nil {
			return nil, err
		}
		if err := f.sleep(ctx, peer); err != nil {
			return nil, err
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &delayedClientStream{ClientStream: cs, faults: f, peer: peer}, nil
	}
}

// empty reports whether the table holds no fault (entries without one are pruned).
func (f *Faults) empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.peers) == 0
}

// admit returns a codes.Unavailable error wrapping ErrBlocked or ErrLost when a call with peer
// must fail.
func (f *Faults) admit(peer string) error {
	if f.Blocked(peer) {
		return &statusError{code: codes.Unavailable, err: fmt.Errorf("%w: %s", ErrBlocked, peer)}
	}
	if f.lost(peer) {
		return &statusError{code: codes.Unavailable, err: fmt.Errorf("%w: call with %s", ErrLost, peer)}
	}
	return nil
}

// sleep waits for peer's delay, or fails with the context's status.
func (f *Faults) sleep(ctx context.Context, peer string) error {
	d := f.current(peer).delay
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// orMetadata returns peerOf, or PeerFromMetadata when it is nil.
func orMetadata(peerOf func(context.Context) string) func(context.Context) string {
	if peerOf == nil {
		return PeerFromMetadata
	}
	return peerOf
}

// statusError is a gRPC status error that also wraps a sentinel, so callers can use
// status.Code and errors.Is alike.
type statusError struct {
	code codes.Code
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }

func (e *statusError) Unwrap() error { return e.err }

// GRPCStatus makes status.FromError and gRPC servers see the code.
func (e *statusError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

// delayedServerStream delays each message sent to the peer.
type delayedServerStream struct {
	grpc.ServerStream
	faults *Faults
	peer   string
}

func (s *delayedServerStream) SendMsg(m any) error {
	if err := s.faults.sleep(s.Context(), s.peer); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

// delayedClientStream delays each message sent to the peer.
type delayedClientStream struct {
	grpc.ClientStream
	faults *Faults
	peer   string
}

func (s *delayedClientStream) SendMsg(m any) error {
	if err := s.faults.sleep(s.Context(), s.peer); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}
