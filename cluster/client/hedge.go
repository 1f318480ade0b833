package client

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Hedging budget: a token bucket counted in tenths of a hedge.
const (
	// hedgeBurst is how many hedges may go at once after a quiet spell.
	hedgeBurst = 10
	// hedgeRatio is how many successful calls earn one hedge: hedges add
	// at most a tenth to the load, however slow the HSMs get.
	hedgeRatio = 10
)

// hedgeCall is the hedge of one read or crypto call, calls that change
// nothing on the HSMs. The call's own attempts (the primary) run in its
// caller's goroutine, as without hedging. When an attempt has not
// answered within HedgeDelay, a timer starts the hedge: the same call, in
// a goroutine of its own, on the other HSMs, with retries. When the
// budget or the HSMs do not allow one, the timer asks again a HedgeDelay
// later. The first success is the call's: a hedge that succeeds first
// cancels the primary's attempt in flight (or answers its queued batch
// call), and the primary returns the hedge's answer; a primary that
// returns first cancels the hedge. A hedge's failure changes nothing: the
// primary's outcome stands.
//
// Cancelling the primary's attempt would hide an HSM that does not
// answer, which the attempt's AttemptTimeout finds out, so the hedge then
// sends that HSM a probe (see probeSilence) that does the finding.
//
// The hedge reads the call's request, which is its caller's again once
// the call returns, so the call returns only after its hedge has ended.
// The hedge decodes its answer into a reply of its own, of replyType,
// taken before the primary's attempts start, which write the caller's.
type hedgeCall struct {
	c      *Client
	ctx    context.Context
	method string
	args   any
	// replyType is the type of the call's reply.
	replyType protoreflect.MessageType
	opts      []grpc.CallOption
	batch     bool
	timer     *time.Timer
	// ended is closed when the hedge's goroutine returns.
	ended chan struct{}

	mu sync.Mutex
	// on is the HSM of the primary's attempt in flight, nil between
	// attempts; cancel and pending are how to end that attempt early:
	// the cancel function of its context, or its queued batch call.
	on      *hsm
	cancel  context.CancelFunc
	pending *pendingCall
	// won is the hedge's answer once it has succeeded first.
	won any
	// started is set when the hedge has started; stop cancels it.
	started bool
	stop    context.CancelFunc
	// done is set when the call has returned.
	done bool
}

// newHedgeCall arms the hedge of a read or crypto call, or returns nil
// when the call cannot be hedged: its reply is not a protobuf message, or
// it has call options that two attempts at once could not share.
func (c *Client) newHedgeCall(ctx context.Context, method string, args, reply any, opts []grpc.CallOption, batch bool) *hedgeCall {
	m, ok := reply.(proto.Message)
	if !ok || !staticOptions(opts) {
		return nil
	}
	hc := &hedgeCall{c: c, ctx: ctx, method: method, args: args, replyType: m.ProtoReflect().Type(), opts: opts, batch: batch}
	hc.mu.Lock()
	hc.timer = time.AfterFunc(c.cfg.HedgeDelay, hc.fire)
	hc.mu.Unlock()
	return hc
}

// begin records that the primary's next attempt goes to h.
func (hc *hedgeCall) begin(h *hsm) {
	if hc == nil {
		return
	}
	hc.mu.Lock()
	hc.on = h
	hc.mu.Unlock()
}

// setCancel records how to end the primary's attempt in flight, or ends
// it at once when the hedge has already answered.
func (hc *hedgeCall) setCancel(cancel context.CancelFunc) {
	if hc == nil {
		return
	}
	hc.mu.Lock()
	won := hc.won != nil
	if !won {
		hc.cancel = cancel
	}
	hc.mu.Unlock()
	if won {
		cancel()
	}
}

// setPending records the primary's queued batch call, or answers it at
// once when the hedge has already answered.
func (hc *hedgeCall) setPending(p *pendingCall) {
	if hc == nil {
		return
	}
	hc.mu.Lock()
	won := hc.won
	if won == nil {
		hc.pending = p
	}
	hc.mu.Unlock()
	if won != nil {
		hc.c.answer(p, won, nil)
	}
}

// end closes the primary's attempt and returns the hedge's answer, nil
// unless the hedge has succeeded. An attempt the hedge beat fails
// (cancelled), or was answered with the hedge's answer (a queued batch
// call).
func (hc *hedgeCall) end() any {
	if hc == nil {
		return nil
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.on, hc.cancel, hc.pending = nil, nil, nil
	return hc.won
}

// close ends the hedge when the call returns, and waits until the
// hedge's goroutine has returned: a hedge that is cancelled ends its
// attempt at once, so the wait is short.
func (hc *hedgeCall) close() {
	hc.mu.Lock()
	hc.done = true
	hc.timer.Stop()
	stop := hc.stop
	hc.mu.Unlock()
	if stop != nil {
		stop()
		<-hc.ended
	}
}

// fire runs when an attempt has waited HedgeDelay: it starts the hedge
// when the primary is on an HSM, another HSM is usable and the budget has
// a hedge; else it asks again a HedgeDelay later.
func (hc *hedgeCall) fire() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.done || hc.started {
		return
	}
	slow := hc.on
	if !hc.c.mayHedge(slow) {
		hc.timer.Reset(hc.c.cfg.HedgeDelay)
		return
	}
	hc.started = true
	ctx, stop := context.WithCancel(hc.ctx)
	hc.stop = stop
	hc.ended = make(chan struct{})
	hc.c.log.Debug("hedging", "method", hc.method, "slow_hsm_id", slow.ep.ID)
	go hc.run(ctx, slow)
}

// run makes the hedge's attempts, on every HSM but slow first, and hands
// its answer to the primary if it succeeds first.
func (hc *hedgeCall) run(ctx context.Context, slow *hsm) {
	defer close(hc.ended)
	c := hc.c
	out := hc.replyType.New().Interface()
	if c.attempts(ctx, kindRead, "", hc.method, hc.args, out, hc.opts, hc.batch, nil, slow) != nil {
		return
	}
	hc.mu.Lock()
	if hc.done {
		hc.mu.Unlock()
		return
	}
	hc.won = out
	cancel, pending, on := hc.cancel, hc.pending, hc.on
	hc.mu.Unlock()
	if pending != nil {
		c.answer(pending, out, nil)
	}
	if cancel != nil {
		cancel()
	}
	if on != nil {
		c.probeSilence(on)
	}
}

// mayHedge reports whether a hedge of a call whose attempt is on slow may
// start: another HSM is usable and the budget has a hedge, which it takes.
func (c *Client) mayHedge(slow *hsm) bool {
	if slow == nil {
		return false // the primary is between two attempts
	}
	c.mu.Lock()
	other := false
	for _, h := range c.hsms {
		if h != slow && h.usable() {
			other = true
			break
		}
	}
	c.mu.Unlock()
	if !other {
		return false
	}
	for {
		t := c.hedgeTokens.Load()
		if t < hedgeRatio {
			return false
		}
		if c.hedgeTokens.CompareAndSwap(t, t-hedgeRatio) {
			c.hedges.Add(1)
			return true
		}
	}
}

// earnHedge credits the budget with a successful call: a tenth of a hedge.
func (c *Client) earnHedge() {
	for {
		t := c.hedgeTokens.Load()
		if t >= hedgeBurst*hedgeRatio || c.hedgeTokens.CompareAndSwap(t, t+1) {
			return
		}
	}
}

// Hedges returns how many hedges the Client has started.
func (c *Client) Hedges() uint64 { return c.hedges.Load() }

// probeSilence sends h, whose answer a hedge beat, a GenerateRandom of
// one byte under AttemptTimeout, in the background, unless a probe is
// already out to h: an HSM that does not answer it is made unhealthy, as
// the cancelled attempt would have been (see Health).
func (c *Client) probeSilence(h *hsm) {
	c.mu.Lock()
	if h.silenceProbe || !h.usable() || c.closed {
		c.mu.Unlock()
		return
	}
	h.silenceProbe = true
	h.outstanding++
	session := h.session
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		// invokeOn releases the call.
		err := c.invokeOn(c.ctx, h, session, "", hsmv1.HsmService_GenerateRandom_FullMethodName,
			&hsmv1.GenerateRandomRequest{Length: 1}, &hsmv1.GenerateRandomResponse{}, nil, nil)
		c.mu.Lock()
		h.silenceProbe = false
		c.mu.Unlock()
		c.log.Debug("silence probe", "hsm_id", h.ep.ID, "error", err)
	}()
}

// copyReply makes dst, a protobuf message, a copy of src, of the same
// type.
func copyReply(dst, src any) {
	d, _ := dst.(proto.Message)
	s, _ := src.(proto.Message)
	proto.Reset(d)
	proto.Merge(d, s)
}
