package client

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Batching limits. maxBatchCalls repeats node.MaxBatchCalls (the wire
// contract, as the metadata keys).
const (
	// DefaultBatchesInFlight is how many batches of crypto calls the
	// Client keeps in flight to one HSM when Config.BatchesInFlight is 0.
	DefaultBatchesInFlight = 2
	// maxBatchCalls bounds the calls of one batch.
	maxBatchCalls = 256
	// maxBatchBytes bounds the encoded calls of one batch, a quarter of
	// the 4 MiB an HSM accepts in one message.
	maxBatchBytes = 1 << 20
)

// batcher queues one HSM's crypto calls while its batches are all in
// flight. Its fields are guarded by mu.
type batcher struct {
	mu       sync.Mutex
	queue    []*pendingCall
	inflight int
}

// pendingCall is one caller's crypto call waiting for, or travelling in, a
// batch. It holds the call encoded, not the caller's request: a caller
// that gives up takes its request back at once, and its call may still
// leave in a batch afterwards.
type pendingCall struct {
	// encoded is the call as field 1 of a BatchRequest (see encodeCall);
	// the sender zeroes it once the batch is sent.
	encoded []byte
	// reply is written only by answer, while its caller waits; replyType
	// is its type, for checking results without touching it.
	reply     any
	replyType protoreflect.MessageDescriptor
	// state is callWaiting until either the caller gives up (callAbandoned:
	// the reply is not written) or the answer is being written
	// (callAnswered).
	state atomic.Int32
	done  chan struct{}
	err   error
}

const (
	callWaiting int32 = iota
	callAbandoned
	callAnswered
)

// batchedMethods are the methods whose calls may travel in a Batch.
var batchedMethods = map[string]bool{
	hsmv1.HsmService_Encrypt_FullMethodName:        true,
	hsmv1.HsmService_Decrypt_FullMethodName:        true,
	hsmv1.HsmService_GenerateRandom_FullMethodName: true,
	hsmv1.HsmService_Sign_FullMethodName:           true,
	hsmv1.HsmService_Verify_FullMethodName:         true,
	hsmv1.HsmService_GenerateMac_FullMethodName:    true,
	hsmv1.HsmService_VerifyMac_FullMethodName:      true,
}

// batchable reports whether a call of method may travel in a Batch: not
// when batching is off, the method is not a crypto call a Batch serves,
// or the caller set metadata or call options of its own (which a shared
// RPC could not honour).
func (c *Client) batchable(ctx context.Context, method string, opts []grpc.CallOption) bool {
	if c.cfg.Unbatched || !batchedMethods[method] || !staticOptions(opts) {
		return false
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	return md.Len() == 0
}

// staticOptions reports whether opts only name the method's properties
// (grpc.StaticMethodCallOption), with no per-call output such as
// grpc.Header: options that two RPCs of one call may share.
func staticOptions(opts []grpc.CallOption) bool {
	for _, o := range opts {
		if _, static := o.(grpc.StaticMethodCallOption); !static {
			return false
		}
	}
	return true
}

// batchCallFields are the fields of BatchCall's request oneof, by the
// full name of the request each carries: the requests a Batch serves.
var batchCallFields = func() map[protoreflect.FullName]protowire.Number {
	fields := map[protoreflect.FullName]protowire.Number{}
	oneof := (&hsmv1.BatchCall{}).ProtoReflect().Descriptor().Oneofs().ByName("request")
	for i := range oneof.Fields().Len() {
		f := oneof.Fields().Get(i)
		fields[f.Message().FullName()] = f.Number()
	}
	return fields
}()

// Field numbers of the batch messages that encodeCall writes.
const (
	// batchCallsField is BatchRequest.calls.
	batchCallsField protowire.Number = 1
	// minIndexField is BatchCall.min_index.
	minIndexField protowire.Number = 1
)

// encodeCall returns the BatchCall that carries args with index, encoded
// as one element of BatchRequest.calls (the field's tag, the call's length
// and the call), as proto.Marshal encodes it; ok is false when args is not
// a request a Batch serves.
func encodeCall(index uint64, args any) (encoded []byte, ok bool, err error) {
	req, isMsg := args.(proto.Message)
	if !isMsg {
		return nil, false, nil
	}
	field, ok := batchCallFields[req.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return nil, false, nil
	}
	reqSize := proto.Size(req)
	callSize := protowire.SizeTag(field) + protowire.SizeBytes(reqSize)
	if index != 0 {
		callSize += protowire.SizeTag(minIndexField) + protowire.SizeVarint(index)
	}
	b := make([]byte, 0, protowire.SizeTag(batchCallsField)+protowire.SizeBytes(callSize))
	b = protowire.AppendTag(b, batchCallsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(callSize))
	if index != 0 {
		b = protowire.AppendTag(b, minIndexField, protowire.VarintType)
		b = protowire.AppendVarint(b, index)
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(reqSize))
	b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, req)
	return b, true, err
}

// invokeBatched makes one attempt of a crypto call on h, whose session
// is session. When fewer than BatchesInFlight batches are out to h and no
// call waits, the call goes alone, as its own RPC under its caller's
// context: a lone caller makes exactly the RPC it would without batching.
// Otherwise it is encoded and waits in h's queue for the next batch, which
// leaves as soon as one in flight comes back; its caller waits within its
// own deadline, or until its hedge hc, when set, answers it. Once it
// returns, nothing reads args.
func (c *Client) invokeBatched(ctx context.Context, h *hsm, session, method string, args, reply any, hc *hedgeCall) error {
	b := &h.batch
	b.mu.Lock()
	if b.inflight < c.cfg.BatchesInFlight && len(b.queue) == 0 {
		b.inflight++
		b.mu.Unlock()
		// invokeOn releases the call.
		err := c.invokeOn(ctx, h, session, "", method, args, reply, nil, hc)
		c.sendRest(h)
		return err
	}
	b.mu.Unlock()
	p := c.newPendingCall(args, reply)
	if p == nil {
		return c.invokeOn(ctx, h, session, "", method, args, reply, nil, hc)
	}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	var batch []*pendingCall
	if b.inflight < c.cfg.BatchesInFlight {
		// Calls wait although a slot is free (a sender is between two
		// batches): this caller starts the next one.
		b.inflight++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
	hc.setPending(p)
	if batch != nil {
		go func() {
			c.send(h, batch)
			c.sendRest(h)
		}()
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(callWaiting, callAbandoned) {
			// Its batch still answers, and releases, the call.
			return status.FromContextError(ctx.Err()).Err()
		}
		<-p.done
		return p.err
	}
}

// newPendingCall returns args, with the index it needs, encoded as a call
// of a batch, nil when it cannot go in one: args is not a request a Batch
// serves, reply is not a protobuf message, or args does not encode (gRPC
// then reports why, as for any call). An attempt encodes its own: an
// abandoned attempt's call may still be on its way while the next carries
// a later index.
func (c *Client) newPendingCall(args, reply any) *pendingCall {
	out, ok := reply.(proto.Message)
	if !ok {
		return nil
	}
	index, keyScoped := c.keyIndexes.forCall(args)
	if !keyScoped {
		index = c.observed.Load()
	}
	encoded, ok, err := encodeCall(index, args)
	if !ok || err != nil {
		return nil
	}
	return &pendingCall{encoded: encoded, reply: reply, replyType: out.ProtoReflect().Descriptor(), done: make(chan struct{})}
}

// takeLocked removes from the queue the calls of the next batch: up to
// maxBatchCalls and maxBatchBytes, at least one. b.mu must be held.
func (b *batcher) takeLocked() []*pendingCall {
	n, size := 0, 0
	for n < len(b.queue) && n < maxBatchCalls && (n == 0 || size+len(b.queue[n].encoded) <= maxBatchBytes) {
		size += len(b.queue[n].encoded)
		n++
	}
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	return batch
}

// sendRest ends a sender's turn: when calls queued meanwhile, a goroutine
// sends them, batch after batch, keeping the turn's slot; else the slot is
// freed.
func (c *Client) sendRest(h *hsm) {
	b := &h.batch
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	batch := b.takeLocked()
	b.mu.Unlock()
	go func() {
		for batch != nil {
			c.send(h, batch)
			b.mu.Lock()
			if len(b.queue) == 0 {
				b.inflight--
				batch = nil
			} else {
				batch = b.takeLocked()
			}
			b.mu.Unlock()
		}
	}()
}

// send makes the RPC of one batch of queued calls on h and answers each
// of them.
func (c *Client) send(h *hsm, batch []*pendingCall) {
	c.mu.Lock()
	session, usable := h.session, h.usable()
	c.mu.Unlock()
	if usable {
		c.sendBatch(h, session, batch)
		return
	}
	// The HSM failed while the calls queued: they go elsewhere.
	err := status.Errorf(codes.Unavailable, "client: HSM %s became unusable while the call waited for a batch", h.ep.ID)
	for _, p := range batch {
		clear(p.encoded)
		c.release(h, session, err, false)
		c.answer(p, nil, err)
	}
}

// sendBatch sends queued calls in one Batch RPC under AttemptTimeout and
// answers each. The request is the calls' encodings, as they were queued,
// and is zeroed once sent.
func (c *Client) sendBatch(h *hsm, session string, batch []*pendingCall) {
	size := 0
	for _, p := range batch {
		size += len(p.encoded)
	}
	calls := make([]byte, 0, size)
	for _, p := range batch {
		calls = append(calls, p.encoded...)
		clear(p.encoded)
	}
	req := &hsmv1.BatchRequest{}
	req.ProtoReflect().SetUnknown(calls)
	var resp hsmv1.BatchResponse
	actx, cancel := context.WithTimeout(c.ctx, c.cfg.AttemptTimeout)
	md := metadata.Pairs(metadataSession, session)
	err := h.conn.Invoke(metadata.NewOutgoingContext(actx, md), hsmv1.HsmService_Batch_FullMethodName, req, &resp)
	clear(calls)
	stalled, err := c.stalledAttempt(h, actx, c.ctx, err)
	cancel()
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = status.Errorf(codes.Internal, "client: HSM %s answered a batch of %d calls with %d results", h.ep.ID, len(batch), len(resp.GetResults()))
	}
	if len(batch) > 1 {
		c.mu.Lock()
		h.batched += uint64(len(batch))
		c.mu.Unlock()
	}
	for i, p := range batch {
		var out any
		callErr := err
		if err == nil {
			res := resp.GetResults()[i]
			if code := codes.Code(res.GetCode()); code != codes.OK {
				callErr = status.Error(code, res.GetMessage())
			} else if out, callErr = responseOf(res, p.replyType); callErr != nil {
				c.log.Error("malformed batch result", "hsm_id", h.ep.ID, "error", callErr)
			}
		}
		c.release(h, session, callErr, stalled)
		c.answer(p, out, callErr)
	}
}

// answer completes p with err, or with out copied into its reply (unless
// out is the reply), unless its caller has given up.
func (c *Client) answer(p *pendingCall, out any, err error) {
	if !p.state.CompareAndSwap(callWaiting, callAnswered) {
		return
	}
	if err == nil && out != p.reply {
		copyReply(p.reply, out)
	}
	p.err = err
	close(p.done)
}

// responseOf returns the response res carries, which must be a want.
func responseOf(res *hsmv1.BatchResult, want protoreflect.MessageDescriptor) (proto.Message, error) {
	var m proto.Message
	switch r := res.GetResponse().(type) {
	case *hsmv1.BatchResult_Encrypt:
		m = r.Encrypt
	case *hsmv1.BatchResult_Decrypt:
		m = r.Decrypt
	case *hsmv1.BatchResult_GenerateRandom:
		m = r.GenerateRandom
	case *hsmv1.BatchResult_Sign:
		m = r.Sign
	case *hsmv1.BatchResult_Verify:
		m = r.Verify
	case *hsmv1.BatchResult_GenerateMac:
		m = r.GenerateMac
	case *hsmv1.BatchResult_VerifyMac:
		m = r.VerifyMac
	}
	if m == nil || m.ProtoReflect().Descriptor() != want {
		return nil, status.Errorf(codes.Internal, "client: a batch result of type %T does not answer a %s", res.GetResponse(), want.FullName())
	}
	return m, nil
}
