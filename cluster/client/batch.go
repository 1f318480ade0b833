package client

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
// batch.
type pendingCall struct {
	ctx    context.Context
	method string
	args   any
	reply  any
	call   *hsmv1.BatchCall
	size   int
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
	if c.cfg.Unbatched || !batchedMethods[method] {
		return false
	}
	for _, o := range opts {
		if _, static := o.(grpc.StaticMethodCallOption); !static {
			return false
		}
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	return md.Len() == 0
}

// newBatchCall returns the BatchCall that carries args with index, nil
// when args is not a request a Batch serves.
func newBatchCall(index uint64, args any) *hsmv1.BatchCall {
	call := &hsmv1.BatchCall{MinIndex: index}
	switch r := args.(type) {
	case *hsmv1.EncryptRequest:
		call.Request = &hsmv1.BatchCall_Encrypt{Encrypt: r}
	case *hsmv1.DecryptRequest:
		call.Request = &hsmv1.BatchCall_Decrypt{Decrypt: r}
	case *hsmv1.GenerateRandomRequest:
		call.Request = &hsmv1.BatchCall_GenerateRandom{GenerateRandom: r}
	case *hsmv1.SignRequest:
		call.Request = &hsmv1.BatchCall_Sign{Sign: r}
	case *hsmv1.VerifyRequest:
		call.Request = &hsmv1.BatchCall_Verify{Verify: r}
	case *hsmv1.GenerateMacRequest:
		call.Request = &hsmv1.BatchCall_GenerateMac{GenerateMac: r}
	case *hsmv1.VerifyMacRequest:
		call.Request = &hsmv1.BatchCall_VerifyMac{VerifyMac: r}
	default:
		return nil
	}
	return call
}

// invokeBatched makes one attempt of a crypto call on h, whose session
// is session. When fewer than BatchesInFlight batches are out to h and no
// call waits, the call goes alone, as its own RPC under its caller's
// context: a lone caller makes exactly the RPC it would without batching.
// Otherwise it waits in h's queue for the next batch, which leaves as soon
// as one in flight comes back; its caller waits within its own deadline.
func (c *Client) invokeBatched(ctx context.Context, h *hsm, session, method string, args, reply any) error {
	b := &h.batch
	b.mu.Lock()
	if b.inflight < c.cfg.BatchesInFlight && len(b.queue) == 0 {
		b.inflight++
		b.mu.Unlock()
		// invokeOn releases the call.
		err := c.invokeOn(ctx, h, session, "", method, args, reply, nil)
		c.sendRest(h)
		return err
	}
	index, keyScoped := c.keyIndexes.forCall(args)
	if !keyScoped {
		index = c.observed.Load()
	}
	// One per attempt: an abandoned attempt's call may still be on its way
	// while the next carries its own index.
	call := newBatchCall(index, args)
	if call == nil {
		b.mu.Unlock()
		return c.invokeOn(ctx, h, session, "", method, args, reply, nil)
	}
	p := &pendingCall{ctx: ctx, method: method, args: args, reply: reply, call: call, size: proto.Size(call), done: make(chan struct{})}
	b.queue = append(b.queue, p)
	var batch []*pendingCall
	if b.inflight < c.cfg.BatchesInFlight {
		// Calls wait although a slot is free (a sender is between two
		// batches): this caller starts the next one.
		b.inflight++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
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

// takeLocked removes from the queue the calls of the next batch: up to
// maxBatchCalls and maxBatchBytes, at least one. b.mu must be held.
func (b *batcher) takeLocked() []*pendingCall {
	n, size := 0, 0
	for n < len(b.queue) && n < maxBatchCalls && (n == 0 || size+b.queue[n].size <= maxBatchBytes) {
		size += b.queue[n].size
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
// of them: a lone call goes as its own method, with its caller's context;
// two or more go in one Batch under AttemptTimeout.
func (c *Client) send(h *hsm, batch []*pendingCall) {
	c.mu.Lock()
	session, usable := h.session, h.usable()
	c.mu.Unlock()
	switch {
	case !usable:
		// The HSM failed while the calls queued: they go elsewhere.
		err := status.Errorf(codes.Unavailable, "client: HSM %s became unusable while the call waited for a batch", h.ep.ID)
		for _, p := range batch {
			c.release(h, session, err, false)
			c.answer(p, nil, err)
		}
	case len(batch) == 1:
		c.sendAlone(h, session, batch[0])
	default:
		c.sendBatch(h, session, batch)
	}
}

// sendAlone sends a queued call as its own RPC, under its caller's
// context, and answers it. The answer is decoded into a reply of its own:
// the caller may have given up meanwhile.
func (c *Client) sendAlone(h *hsm, session string, p *pendingCall) {
	reply := newReplyLike(p.reply)
	// invokeOn releases the call.
	err := c.invokeOn(p.ctx, h, session, "", p.method, p.args, reply, nil)
	c.answer(p, reply, err)
}

// sendBatch sends two or more calls in one Batch RPC and answers each.
func (c *Client) sendBatch(h *hsm, session string, batch []*pendingCall) {
	req := &hsmv1.BatchRequest{Calls: make([]*hsmv1.BatchCall, len(batch))}
	for i, p := range batch {
		req.Calls[i] = p.call
	}
	var resp hsmv1.BatchResponse
	actx, cancel := context.WithTimeout(c.ctx, c.cfg.AttemptTimeout)
	md := metadata.Pairs(metadataSession, session)
	err := h.conn.Invoke(metadata.NewOutgoingContext(actx, md), hsmv1.HsmService_Batch_FullMethodName, req, &resp)
	stalled, err := c.stalledAttempt(h, actx, c.ctx, err)
	cancel()
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = status.Errorf(codes.Internal, "client: HSM %s answered a batch of %d calls with %d results", h.ep.ID, len(batch), len(resp.GetResults()))
	}
	c.mu.Lock()
	h.batched += uint64(len(batch))
	c.mu.Unlock()
	for i, p := range batch {
		var out any
		callErr := err
		if err == nil {
			res := resp.GetResults()[i]
			if code := codes.Code(res.GetCode()); code != codes.OK {
				callErr = status.Error(code, res.GetMessage())
			} else if out, callErr = responseOf(res, p.reply); callErr != nil {
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
		dst, _ := p.reply.(proto.Message)
		src, _ := out.(proto.Message)
		proto.Reset(dst)
		proto.Merge(dst, src)
	}
	p.err = err
	close(p.done)
}

// responseOf returns the response res carries, which must be of reply's
// type.
func responseOf(res *hsmv1.BatchResult, reply any) (proto.Message, error) {
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
	out, ok := reply.(proto.Message)
	if m == nil || !ok || out.ProtoReflect().Descriptor() != m.ProtoReflect().Descriptor() {
		return nil, status.Errorf(codes.Internal, "client: a batch result of type %T does not answer a %T", res.GetResponse(), reply)
	}
	return m, nil
}

// newReplyLike returns a new, empty message of reply's type, for an answer
// nobody reads.
func newReplyLike(reply any) any {
	if m, ok := reply.(proto.Message); ok {
		return m.ProtoReflect().New().Interface()
	}
	return reply
}
