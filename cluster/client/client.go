package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Timeouts of the Client's own calls.
const (
	// flowWindow is the fixed HTTP/2 flow-control window, per stream and
	// per connection, of the connections to HSMs (1 MiB, four times the
	// largest message an HSM accepts).
	flowWindow = 1 << 20
	// loginTimeout bounds one background re-login.
	loginTimeout = 5 * time.Second
	// logoutTimeout bounds the logouts of Close.
	logoutTimeout = 2 * time.Second
	// maxAuthBackoff caps the pause between re-logins an HSM refused with
	// PermissionDenied: each refused login of a wrong password counts
	// towards the user's lock, so the Client must not hammer.
	maxAuthBackoff = time.Minute
	// maxReconnectDelay caps grpc-go's reconnection backoff (120 s by
	// default), so that an HSM that comes back is seen within seconds.
	maxReconnectDelay = time.Second
)

// Client is a session on every HSM of a cluster, used as one connection:
// it implements grpc.ClientConnInterface, so hsmv1.NewHsmServiceClient(c)
// is the typed API. It is safe for concurrent use. See the package
// documentation for how calls are spread and retried.
type Client struct {
	cfg Config
	log hclog.Logger

	// ctx is canceled by Close; it bounds the background work, which wg
	// counts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// observed is the highest Raft index this Client has seen: requests
	// carry it so that any HSM serves them only after applying it.
	observed atomic.Uint64
	// keyIndexes scopes the index of calls on one key to that key's
	// writes (see indexTracker).
	keyIndexes *indexTracker
	// hedgeTokens is the hedging budget, in tenths of a hedge (see
	// hedgeCall); hedges counts the hedges started.
	hedgeTokens atomic.Int64
	hedges      atomic.Uint64

	// creds authenticate the HSMs (the cluster certificate under the
	// trust anchor).
	creds credentials.TransportCredentials

	mu sync.Mutex
	// hsms are the HSMs calls go to. SetEndpoints replaces the slice (a
	// new one each time); New fills it before the Client is shared.
	hsms []*hsm
	// password is the password re-logins use; a successful ChangePassword
	// of the Client's own user through the Client updates it.
	password string
	// next is the round-robin cursor that breaks ties between HSMs.
	next int
	// leader is the Raft leader's id as the last write's answer named it:
	// writes go there first (a follower would forward them to it).
	leader string
	closed bool
}

// hsm is the Client's view of one HSM. Its mutable fields are guarded by
// Client.mu.
type hsm struct {
	ep   Endpoint
	conn *grpc.ClientConn
	api  hsmv1.HsmServiceClient

	// session is the token of the Client's session there; "" when there is
	// none (not logged in yet, or the HSM refused it).
	session string
	// healthy is false after a connection-level failure, until a probe
	// logs in again.
	healthy     bool
	lastErr     string
	outstanding int
	served      uint64
	// probing is true while a re-login runs; silenceProbe while a probe
	// of an attempt a hedge beat runs (see Client.probeSilence).
	probing      bool
	silenceProbe bool
	// batched counts the calls that went to it in a Batch with others.
	batched uint64
	// batch queues crypto calls for the HSM's next batch; it has its own
	// lock.
	batch batcher
	// authFailures counts consecutive PermissionDenied logins; nextProbe is
	// when the next re-login may run.
	authFailures int
	nextProbe    time.Time
}

// usable reports whether calls may go to h.
func (h *hsm) usable() bool { return h.healthy && h.session != "" }

var _ grpc.ClientConnInterface = (*Client)(nil)

// New dials every endpoint of cfg, logs in on each HSM and returns the
// Client. It succeeds when at least one login succeeds; the other HSMs are
// probed in the background until they accept a login. When none does, it
// returns the most telling failure, a PermissionDenied (wrong password,
// locked user) before a connection failure, keeping its gRPC code.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Logger.Named("hsm_client"), password: cfg.Password, keyIndexes: newIndexTracker(),
		creds: credentials.NewTLS(clientTLS(cfg.TrustAnchor, cfg.CertificateID))}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.hedgeTokens.Store(hedgeBurst * hedgeRatio)
	for _, ep := range cfg.Endpoints {
		h, err := c.dial(ep)
		if err != nil {
			c.closeConns()
			c.cancel()
			return nil, err
		}
		c.hsms = append(c.hsms, h)
	}

	errs := make([]error, len(c.hsms))
	var wg sync.WaitGroup
	for i, h := range c.hsms {
		wg.Go(func() {
			// An HSM that does not answer (paused, or a black hole) must
			// not hold New up: the health loop keeps trying it.
			ctx, cancel := context.WithTimeout(ctx, cfg.AttemptTimeout)
			defer cancel()
			errs[i] = c.login(ctx, h)
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
			continue
		}
		c.log.Warn("login failed", "hsm_id", c.hsms[i].ep.ID, "addr", c.hsms[i].ep.Addr, "error", err)
	}
	if ok == 0 {
		c.closeConns()
		c.cancel()
		return nil, loginFailure(c.hsms, errs)
	}
	c.log.Info("logged in", "user", cfg.Username, "hsms", ok, "endpoints", len(c.hsms))
	c.wg.Add(1)
	go c.healthLoop()
	return c, nil
}

// dial returns the Client's view of the HSM at ep, connecting lazily.
func (c *Client) dial(ep Endpoint) (*hsm, error) {
	conn, err := grpc.NewClient(ep.Addr,
		grpc.WithTransportCredentials(c.creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: loginTimeout,
		}),
		// Fixed flow-control windows turn off gRPC's bandwidth-delay
		// probing: a PING and its ack per burst of small messages, extra
		// writes and wake-ups on every crypto call.
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow))
	if err != nil {
		return nil, fmt.Errorf("client: endpoint %q: %w", ep.ID, err)
	}
	return &hsm{ep: ep, conn: conn, api: hsmv1.NewHsmServiceClient(conn)}, nil
}

// loginFailure builds New's error when every login failed: the first
// PermissionDenied if any (the caller's credentials are wrong, whatever
// else is down), else the first error, with its gRPC code kept.
func loginFailure(hsms []*hsm, errs []error) error {
	pick := 0
	for i, err := range errs {
		if status.Code(err) == codes.PermissionDenied {
			pick = i
			break
		}
	}
	st := status.Convert(errs[pick])
	return status.Errorf(st.Code(), "client: login failed on every HSM (%s: %s)", hsms[pick].ep.ID, st.Message())
}

// clientTLS returns the TLS configuration that authenticates HSMs: TLS 1.3
// and a chain from the cluster certificate to anchor, whose leaf's common
// name is certID.
//
// InsecureSkipVerify turns off only Go's built-in verification, which would
// check the dialed host name against the certificate's SANs: the cluster
// certificate names the cluster (its common name), not any address, as in
// CloudHSM, where the client checks the HSM against customerCA.crt alone.
// VerifyConnection then does the whole check itself, on every handshake
// (resumed ones included), so nothing is left unverified.
func clientTLS(anchor *x509.Certificate, certID string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // see above: VerifyConnection verifies the chain and the name.
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyClusterChain(cs.PeerCertificates, roots, certID)
		},
	}
}

// verifyClusterChain checks that certs (leaf first) chain to roots and that
// the leaf's common name is certID. It repeats transport.VerifyClusterChain
// of the node, which this package must not import.
func verifyClusterChain(certs []*x509.Certificate, roots *x509.CertPool, certID string) error {
	if len(certs) == 0 {
		return errors.New("client: the HSM presented no certificate")
	}
	inters := x509.NewCertPool()
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	leaf := certs[0]
	// The cluster certificate is the CSR's, signed by the customer as it
	// sees fit: no extended key usage is required of it.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("client: the HSM's certificate does not chain to the trust anchor: %w", err)
	}
	if leaf.Subject.CommonName != certID {
		return fmt.Errorf("client: the HSM's certificate is for %q, want %q", leaf.Subject.CommonName, certID)
	}
	return nil
}

// login opens a session on h and makes h usable. A session it replaces is
// logged out, best effort.
func (c *Client) login(ctx context.Context, h *hsm) error {
	c.mu.Lock()
	password := c.password
	c.mu.Unlock()
	if index := c.keyIndexes.forLogin(); index > 0 {
		// The HSM checks the password once it has applied the Client's
		// last write to users, such as the change to this password.
		ctx = metadata.AppendToOutgoingContext(ctx, metadataIndex, strconv.FormatUint(index, 10))
	}
	resp, err := h.api.Login(ctx, &hsmv1.LoginRequest{Username: c.cfg.Username, Password: password, Role: c.cfg.Role})
	c.mu.Lock()
	if err != nil {
		h.lastErr = err.Error()
		if isConnectionError(err) {
			h.healthy = false
		}
		if status.Code(err) == codes.PermissionDenied {
			h.authFailures++
			h.nextProbe = time.Now().Add(min(c.cfg.HealthInterval<<min(h.authFailures, 16), maxAuthBackoff))
		}
		c.mu.Unlock()
		return err
	}
	old := h.session
	h.session, h.healthy, h.lastErr, h.authFailures = resp.GetSession(), true, "", 0
	c.mu.Unlock()
	c.observe(resp.GetAppliedIndex())
	c.keyIndexes.login(resp.GetAppliedIndex())
	if old != "" && old != resp.GetSession() {
		c.logout(ctx, h, old)
	}
	return nil
}

// logout closes session on h, best effort.
func (c *Client) logout(ctx context.Context, h *hsm, session string) {
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(metadataSession, session))
	if _, err := h.api.Logout(ctx, &hsmv1.LogoutRequest{}); err != nil {
		c.log.Debug("logout failed", "hsm_id", h.ep.ID, "error", err)
	}
}

// observe raises the observed index to index.
func (c *Client) observe(index uint64) {
	for {
		cur := c.observed.Load()
		if index <= cur || c.observed.CompareAndSwap(cur, index) {
			return
		}
	}
}

// ObservedIndex returns the highest Raft index this Client has observed: the
// index of its latest write, or of the replica it last logged in to.
func (c *Client) ObservedIndex() uint64 { return c.observed.Load() }

// ObserveIndex makes every later call of this Client, key-scoped ones
// included, wait for index on the HSM that serves it, as if the Client had
// made the write at index itself: what a caller uses to read, through this
// Client, what it wrote through another (index being that one's
// ObservedIndex).
func (c *Client) ObserveIndex(index uint64) {
	c.observe(index)
	c.keyIndexes.login(index)
}

// Invoke performs a unary call on one HSM, chosen and retried as the package
// documentation says. Login and Logout are refused with FailedPrecondition:
// the Client manages its sessions itself.
func (c *Client) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	switch method {
	case hsmv1.HsmService_Login_FullMethodName, hsmv1.HsmService_Logout_FullMethodName:
		return status.Errorf(codes.FailedPrecondition, "client: %s is not available: the client logs in and out of every HSM itself", method)
	}
	if c.ctx.Err() != nil {
		return status.Error(codes.FailedPrecondition, "client: closed")
	}
	kind := kindOf(method)
	// One request id for every attempt of a write: the HSMs apply it once.
	// A caller that set its own (to span several calls) keeps it.
	var requestID string
	if md, _ := metadata.FromOutgoingContext(ctx); kind == kindWrite && len(md.Get(metadataRequestID)) == 0 {
		id, err := newRequestID()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		requestID = id
	}
	batch := c.batchable(ctx, method, opts)
	if kind == kindRead && !c.cfg.Unhedged {
		if hc := c.newHedgeCall(ctx, method, args, reply, opts, batch); hc != nil {
			err := c.attempts(ctx, kind, requestID, method, args, reply, opts, batch, hc, nil)
			hc.close()
			if err == nil {
				c.earnHedge()
			}
			return err
		}
	}
	return c.attempts(ctx, kind, requestID, method, args, reply, opts, batch, nil, nil)
}

// attempts makes a call's attempts, one HSM after another, until one
// succeeds, one fails for good or MaxAttempts is reached, and returns the
// last outcome. hc, when set, is the call's hedge (see hedgeCall): the
// first success of either is the call's. skip, when set, is an HSM the
// first round leaves out (a hedge's, the HSM its primary waits for).
func (c *Client) attempts(ctx context.Context, kind methodKind, requestID, method string, args, reply any,
	opts []grpc.CallOption, batch bool, hc *hedgeCall, skip *hsm) error {
	tried := make(map[*hsm]bool, 4)
	if skip != nil {
		tried[skip] = true
	}
	var lastErr error
	for attempt := 0; attempt < c.cfg.MaxAttempts; {
		h, session := c.acquire(tried, kind == kindWrite)
		if h == nil {
			// A full round is over, or no HSM is usable: pause, then start
			// a new round. A pause with nothing tried counts as an attempt,
			// so that a Client with no usable HSM gives up.
			if len(tried) == 0 {
				attempt++
				if lastErr == nil {
					lastErr = status.Error(codes.Unavailable, "client: no healthy HSM with a session")
				}
			}
			clear(tried)
			if attempt >= c.cfg.MaxAttempts {
				break
			}
			if err := c.pause(ctx); err != nil {
				return status.Errorf(status.FromContextError(err).Code(), "client: %v (last error: %v)", err, lastErr)
			}
			continue
		}
		attempt++
		tried[h] = true
		hc.begin(h)
		var err error
		if batch {
			err = c.invokeBatched(ctx, h, session, method, args, reply, hc)
		} else {
			err = c.invokeOn(ctx, h, session, requestID, method, args, reply, opts, hc)
		}
		if won := hc.end(); err != nil && won != nil {
			copyReply(reply, won) // the hedge answered first
			return nil
		}
		if err == nil {
			c.afterSuccess(method, args)
			return nil
		}
		lastErr = err
		if !retryable(ctx, kind, err) {
			return err
		}
		c.log.Debug("retrying on another HSM", "method", method, "hsm_id", h.ep.ID, "attempt", attempt, "error", err)
	}
	return lastErr
}

// NewStream returns Unimplemented: the HSM API has only unary calls.
func (c *Client) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "client: streaming calls are not supported: the HSM API is unary")
}

// pause sleeps RetryInterval, or less if ctx or the Client ends first.
func (c *Client) pause(ctx context.Context) error {
	t := time.NewTimer(c.cfg.RetryInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return context.Canceled
	case <-t.C:
		return nil
	}
}

// acquire picks the usable HSM not in tried with the fewest outstanding
// requests, ties broken round robin (for a write, the Raft leader first,
// when known and usable), counts the request as outstanding and returns
// the HSM and its session; nil when no HSM qualifies.
func (c *Client) acquire(tried map[*hsm]bool, write bool) (*hsm, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := -1
	if write && c.leader != "" {
		best = slices.IndexFunc(c.hsms, func(h *hsm) bool { return h.ep.ID == c.leader && h.usable() && !tried[h] })
	}
	for k := range c.hsms {
		if best >= 0 && write {
			break
		}
		i := (c.next + k) % len(c.hsms)
		h := c.hsms[i]
		if !h.usable() || tried[h] {
			continue
		}
		if best < 0 || h.outstanding < c.hsms[best].outstanding {
			best = i
		}
	}
	if best < 0 {
		return nil, ""
	}
	if !write {
		// Writes (mostly to the leader) leave the round robin to the
		// reads and crypto, which it spreads.
		c.next = (best + 1) % len(c.hsms)
	}
	h := c.hsms[best]
	h.outstanding++
	return h, h.session
}

// invokeOn makes one attempt of a call on h with session, under
// AttemptTimeout, and updates h's state and the observed index from the
// outcome. requestID, when set, is the call's request id; hc, when set, is
// the call's hedge, which may cancel the attempt when it answers first.
func (c *Client) invokeOn(ctx context.Context, h *hsm, session, requestID, method string, args, reply any, opts []grpc.CallOption, hc *hedgeCall) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(metadataSession, session)
	index, keyScoped := c.keyIndexes.forCall(args)
	if !keyScoped {
		index = c.observed.Load()
	}
	if index > 0 {
		md.Set(metadataIndex, strconv.FormatUint(index, 10))
	}
	if requestID != "" {
		md.Set(metadataRequestID, requestID)
	}
	var header metadata.MD
	callOpts := append(append(make([]grpc.CallOption, 0, len(opts)+1), opts...), grpc.Header(&header))
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	hc.setCancel(cancel)
	err := h.conn.Invoke(metadata.NewOutgoingContext(actx, md), method, args, reply, callOpts...)
	stalled, err := c.stalledAttempt(h, actx, ctx, err)
	cancel()
	if v := header.Get(metadataIndex); len(v) == 1 {
		if index, perr := strconv.ParseUint(v[0], 10, 64); perr == nil {
			c.observe(index)
			if err == nil && kindOf(method) == kindWrite {
				c.keyIndexes.wrote(index, args, reply)
			}
		}
	}
	if v := header.Get(metadataLeader); len(v) == 1 {
		c.mu.Lock()
		c.leader = v[0]
		c.mu.Unlock()
	}
	c.release(h, session, err, stalled)
	return err
}

// stalledAttempt reports whether an attempt on h under actx, made for a
// caller whose context is ctx, failed because actx's own deadline passed
// and not the caller's: the HSM did not answer in time (paused,
// overloaded, or cut off without a reset). It then returns err reworded
// to say so.
func (c *Client) stalledAttempt(h *hsm, actx, ctx context.Context, err error) (bool, error) {
	if status.Code(err) != codes.DeadlineExceeded || actx.Err() == nil || ctx.Err() != nil {
		return false, err
	}
	return true, status.Errorf(codes.DeadlineExceeded, "client: no answer from HSM %s within %v: %v", h.ep.ID, c.cfg.AttemptTimeout, err)
}

// release ends an attempt on h: the request is no longer outstanding, a
// success is counted, a connection failure or an attempt that timed out
// (stalled) makes h unhealthy and a refused session is dropped and replaced
// in the background.
func (c *Client) release(h *hsm, session string, err error, stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h.outstanding--
	switch {
	case err == nil:
		h.served++
	case stalled || isConnectionError(err):
		if h.healthy {
			c.log.Warn("hsm unhealthy", "hsm_id", h.ep.ID, "addr", h.ep.Addr, "error", err)
		}
		h.healthy, h.lastErr = false, err.Error()
	case status.Code(err) == codes.Unauthenticated:
		if h.session == session {
			c.log.Info("session lost; logging in again", "hsm_id", h.ep.ID, "error", err)
			h.session, h.lastErr = "", err.Error()
			c.startProbeLocked(h)
		}
	}
}

// afterSuccess keeps the Client's password in step when its own user's
// password was changed through it, so that later re-logins work.
func (c *Client) afterSuccess(method string, args any) {
	if method != hsmv1.HsmService_ChangePassword_FullMethodName {
		return
	}
	if req, ok := args.(*hsmv1.ChangePasswordRequest); ok && req.GetUsername() == c.cfg.Username {
		c.mu.Lock()
		c.password = req.GetNewPassword()
		c.mu.Unlock()
	}
}

// Close stops the background probes, logs out of every HSM and closes the
// connections. Calls made after Close fail with FailedPrecondition.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
	defer cancel()
	var wg sync.WaitGroup
	c.mu.Lock()
	for _, h := range c.hsms {
		if session := h.session; session != "" {
			h.session = ""
			wg.Go(func() { c.logout(ctx, h, session) })
		}
	}
	c.mu.Unlock()
	wg.Wait()
	c.log.Info("closed")
	return c.closeConns()
}

// closeConns closes every connection.
func (c *Client) closeConns() error {
	c.mu.Lock()
	hsms := c.hsms
	c.mu.Unlock()
	var errs []error
	for _, h := range hsms {
		if err := h.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("client: close %s: %w", h.ep.ID, err))
		}
	}
	return errors.Join(errs...)
}
