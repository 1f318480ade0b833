package kms

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// kmsUser is the crypto user KMS logs in as in a custom key store's cluster.
const kmsUser = "kmsuser"

// metadataSession is the HSM API's session metadata key (the node's
// MetadataSession; this package talks to HSMs only through the wire
// contract).
const metadataSession = "x-hsm-session"

// loginTimeout bounds the password check of a connection.
const loginTimeout = 5 * time.Second

// Connection error codes (botocore ConnectionErrorCodeType) this endpoint
// produces (reference §4.3):
//   - CLUSTER_NOT_FOUND: the cluster is gone; INTERNAL_ERROR: it is not
//     active, or KMS cannot open its copy of the password.
//   - INSUFFICIENT_CLOUDHSM_HSMS: the control plane lists no active HSM;
//     NETWORK_ERRORS: it lists some, but none answers.
//   - USER_NOT_FOUND, USER_LOCKED_OUT, USER_LOGGED_IN: what the HSMs'
//     user list says (ListUsers needs no login, as CloudHSM's "user list"):
//     no kmsuser, a locked one, or one that holds a session (someone logged
//     in as kmsuser, which would keep KMS from rotating its password).
//   - INVALID_CREDENTIALS: the HSM refused the password.
const (
	codeInvalidCredentials = "INVALID_CREDENTIALS"
	codeClusterNotFound    = "CLUSTER_NOT_FOUND"
	codeNetworkErrors      = "NETWORK_ERRORS"
	codeInternalError      = "INTERNAL_ERROR"
	codeInsufficientHSMs   = "INSUFFICIENT_CLOUDHSM_HSMS"
	codeUserLockedOut      = "USER_LOCKED_OUT"
	codeUserNotFound       = "USER_NOT_FOUND"
	codeUserLoggedIn       = "USER_LOGGED_IN"
)

// storeConn is a custom key store's connection: the goroutine that
// connects it, then its HSM client. Its hsm is set, under Service.mu, only
// while the storeConn is the store's entry in Service.conns.
type storeConn struct {
	cancel context.CancelFunc
	hsm    *clientHSM
	// resuming says the connection resumes one recorded CONNECTED (after a
	// restart): requests wait for it (resumedStoreHSM).
	resuming bool
	// settled is closed when the connecting goroutine has connected or
	// given up.
	settled chan struct{}
}

// stop ends the connection: the connecting goroutine, then the client.
// The storeConn must no longer be in Service.conns.
func (c *storeConn) stop() {
	c.cancel()
	if c.hsm != nil {
		c.hsm.close()
	}
}

// connectMode says how a connection behaves.
type connectMode int

const (
	// connectUser is ConnectCustomKeyStore's: one attempt from CONNECTING;
	// success rotates kmsuser's password and makes the store CONNECTED, a
	// failure makes it FAILED with the error code.
	connectUser connectMode = iota
	// connectResume reconnects, after a restart, a store recorded
	// CONNECTED with its stored password: it keeps trying while the
	// failure may pass (network, HSMs down), and marks the store FAILED
	// when the credentials are refused, since retrying a wrong password
	// would lock kmsuser.
	connectResume
)

// startConnectLocked starts connecting store id. s.mu must be held and id
// must have no entry in s.conns. After Close it does nothing.
func (s *Service) startConnectLocked(id string, mode connectMode) {
	if s.closed {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	c := &storeConn{cancel: cancel, resuming: mode == connectResume, settled: make(chan struct{})}
	s.conns[id] = c
	s.wg.Add(1)
	go s.runConnect(ctx, id, c, mode)
}

// resumeConnections reconnects, in the background, the stores recorded
// CONNECTED (with their stored password) or CONNECTING (a connection the
// previous process did not finish).
func (s *Service) resumeConnections() error {
	var stores []*store.CustomKeyStore
	if err := s.db.View(func(tx *store.Tx) (err error) {
		stores, err = tx.CustomKeyStores()
		return err
	}); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range stores {
		switch c.ConnectionState {
		case store.Connected:
			s.startConnectLocked(c.ID, connectResume)
		case store.Connecting:
			s.startConnectLocked(c.ID, connectUser)
		}
	}
	return nil
}

// runConnect connects store id as mode says.
func (s *Service) runConnect(ctx context.Context, id string, c *storeConn, mode connectMode) {
	defer s.wg.Done()
	settle := sync.OnceFunc(func() { close(c.settled) })
	defer settle()
	for {
		h, code, err := s.connectOnce(ctx, id, mode)
		if ctx.Err() != nil {
			if h != nil {
				h.close()
			}
			return
		}
		if err == nil {
			if mode == connectUser {
				s.rotatePassword(ctx, id, c, h)
			}
			if !s.finishConnect(id, c, h) {
				h.close()
				return
			}
			s.log.Info("custom key store connected", "custom_key_store_id", id)
			settle()
			s.followHSMs(ctx, id, h)
			return
		}
		s.log.Warn("custom key store connection failed", "custom_key_store_id", id, "connection_error_code", code, "error", err)
		if mode == connectUser || !transient(code) {
			s.failConnect(id, c, code)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.ReconnectInterval):
		}
	}
}

// endpointsInterval is how often a connected store's client learns the
// cluster's HSMs from the control plane.
const endpointsInterval = 2 * time.Second

// followHSMs keeps a connected store's client in step with its cluster's
// HSMs until ctx ends (the store disconnects): KMS, like AWS's, uses the
// HSMs added after it connected and stops using the deleted ones.
func (s *Service) followHSMs(ctx context.Context, id string, h *clientHSM) {
	var clusterID string
	if err := s.db.View(func(tx *store.Tx) error {
		rec, err := tx.CustomKeyStore(id)
		if err == nil {
			clusterID = rec.ClusterID
		}
		return err
	}); err != nil {
		return
	}
	t := time.NewTicker(endpointsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := s.mgr.Cluster(clusterID)
		if err != nil {
			continue
		}
		cfg, err := clientConfig(c, s.cfg.ClientConfig)
		if err != nil {
			continue
		}
		if err := h.c.SetEndpoints(cfg.Endpoints); err != nil {
			s.log.Warn("cannot follow the cluster's HSMs", "custom_key_store_id", id, "error", err)
		}
	}
}

// resumeWait bounds how long a request waits for a store's resumed
// connection.
const resumeWait = 10 * time.Second

// resumedStoreHSM returns a connected store's HSM, as storeHSM does; for a
// store whose connection is being resumed after a restart (recorded
// CONNECTED, its client logging in again), it first waits, at most
// resumeWait or until ctx ends, for that connection, so that a restart of
// the endpoint delays requests rather than fail them.
func (s *Service) resumedStoreHSM(ctx context.Context, id string) *clientHSM {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if c.resuming {
		t := time.NewTimer(resumeWait)
		defer t.Stop()
		select {
		case <-c.settled:
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return s.storeHSM(id)
}

// transient reports whether a connection failure may pass by itself.
func transient(code string) bool {
	return code == codeNetworkErrors || code == codeInsufficientHSMs || code == codeInternalError
}

// connectOnce logs kmsuser in on the store's cluster: first a single
// login on one reachable HSM, which checks the password at the cost of one
// failed attempt at most (the multi-HSM client would try every HSM, each
// failure counting towards kmsuser's lock), then the client's login on
// every HSM. A pending password (a rotation whose outcome was not
// recorded) is tried when the current one is refused.
func (s *Service) connectOnce(ctx context.Context, id string, mode connectMode) (*clientHSM, string, error) {
	var rec *store.CustomKeyStore
	if err := s.db.View(func(tx *store.Tx) (err error) {
		rec, err = tx.CustomKeyStore(id)
		return err
	}); err != nil {
		return nil, codeInternalError, err
	}
	c, err := s.mgr.Cluster(rec.ClusterID)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
		return nil, codeClusterNotFound, err
	case err != nil:
		return nil, codeInternalError, err
	case !clusterActive(c):
		return nil, codeInternalError, errors.New("the cluster is " + string(c.State))
	}
	if len(activeHSMs(c)) == 0 {
		return nil, codeInsufficientHSMs, errors.New("the cluster has no active HSM")
	}
	reach := reachableHSMs(ctx, c)
	if len(reach) == 0 {
		return nil, codeNetworkErrors, errors.New("no active HSM of the cluster answers")
	}
	if code, err := checkKMSUser(ctx, c, reach, mode); err != nil {
		return nil, code, err
	}
	password, err := s.unseal(ctx, id, rec.SealedPassword)
	if err != nil {
		return nil, codeInternalError, err
	}
	usedPending := false
	err = checkLogin(ctx, c, reach[0], password)
	if status.Code(err) == codes.PermissionDenied && !isLocked(err) && rec.SealedPendingPassword != nil {
		if pending, perr := s.unseal(ctx, id, rec.SealedPendingPassword); perr == nil {
			if checkLogin(ctx, c, reach[0], pending) == nil {
				password, usedPending, err = pending, true, nil
			}
		}
	}
	if err != nil {
		return nil, loginCode(err), err
	}
	h, err := dialHSM(ctx, c, kmsUser, password, s.cfg.ClientConfig)
	if err != nil {
		return nil, loginCode(err), err
	}
	if rec.SealedPendingPassword != nil {
		// Settle the rotation: the pending password is the real one, or
		// the rotation never happened.
		err := s.db.Update(func(tx *store.Tx) error {
			cur, err := tx.CustomKeyStore(id)
			if err != nil || !bytes.Equal(cur.SealedPassword, rec.SealedPassword) || !bytes.Equal(cur.SealedPendingPassword, rec.SealedPendingPassword) {
				return err
			}
			if usedPending {
				cur.SealedPassword = cur.SealedPendingPassword
			}
			cur.SealedPendingPassword = nil
			return tx.PutCustomKeyStore(cur)
		})
		switch {
		case err != nil:
			s.log.Warn("cannot record the kmsuser password", "custom_key_store_id", id, "error", err)
		case usedPending:
			s.log.Info("kmsuser password of an unfinished rotation made current", "custom_key_store_id", id)
		}
	}
	return h, "", nil
}

// activeHSMs returns the HSMs of c that the control plane lists as active
// (ACTIVE, or DEGRADED: created, but not answering its last check).
func activeHSMs(c *cluster.Cluster) []*cluster.HSM {
	var out []*cluster.HSM
	for _, h := range c.Hsms {
		if (h.State == cluster.HsmActive || h.State == cluster.HsmDegraded) && h.Runtime.APIAddr != "" {
			out = append(out, h)
		}
	}
	return out
}

// checkKMSUser reads the user list of every HSM in reach, before KMS logs
// in: kmsuser must exist (USER_NOT_FOUND), be unlocked (USER_LOCKED_OUT,
// without spending a login attempt on a locked user), and, when KMS is about
// to rotate its password (connectUser), hold no session on any HSM
// (USER_LOGGED_IN). A connection that resumes after a restart skips the
// last check: the sessions it would find may be its own previous process's,
// which end as their connections close.
func checkKMSUser(ctx context.Context, c *cluster.Cluster, reach []*cluster.HSM, mode connectMode) (string, error) {
	anchor, err := parseCertPEM(c.TrustAnchor)
	if err != nil {
		return codeInternalError, err
	}
	conf := probeTLS(anchor, c.CertificateID)
	lists := make([]*hsmv1.ListUsersResponse, len(reach))
	errs := make([]error, len(reach))
	var wg sync.WaitGroup
	for i, h := range reach {
		wg.Go(func() { lists[i], errs[i] = listUsers(ctx, h.Runtime.APIAddr, conf) })
	}
	wg.Wait()
	answered := 0
	for i, l := range lists {
		if errs[i] != nil {
			continue
		}
		answered++
		var u *hsmv1.UserInfo
		for _, x := range l.GetUsers() {
			if x.GetUsername() == kmsUser {
				u = x
			}
		}
		switch {
		case u == nil || u.GetRole() != hsmv1.Role_ROLE_CRYPTO_USER:
			return codeUserNotFound, fmt.Errorf("HSM %s has no crypto user %s", reach[i].HsmID, kmsUser)
		case u.GetLocked():
			return codeUserLockedOut, fmt.Errorf("%s is locked on HSM %s", kmsUser, reach[i].HsmID)
		case mode == connectUser && l.GetSessions()[kmsUser] > 0:
			return codeUserLoggedIn, fmt.Errorf("%s is logged in on HSM %s", kmsUser, reach[i].HsmID)
		}
	}
	if answered == 0 {
		return loginCode(errs[0]), errs[0]
	}
	return "", nil
}

// listUsers asks the HSM at addr for its user list.
func listUsers(ctx context.Context, addr string, conf *tls.Config) (*hsmv1.ListUsersResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	return hsmv1.NewHsmServiceClient(conn).ListUsers(ctx, &hsmv1.ListUsersRequest{})
}

// checkLogin logs kmsuser in on one HSM and out again.
func checkLogin(ctx context.Context, c *cluster.Cluster, h *cluster.HSM, password string) error {
	anchor, err := parseCertPEM(c.TrustAnchor)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	conn, err := grpc.NewClient(h.Runtime.APIAddr, grpc.WithTransportCredentials(credentials.NewTLS(probeTLS(anchor, c.CertificateID))))
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	api := hsmv1.NewHsmServiceClient(conn)
	resp, err := api.Login(ctx, &hsmv1.LoginRequest{Username: kmsUser, Password: password, Role: hsmv1.Role_ROLE_CRYPTO_USER})
	if err != nil {
		return err
	}
	api.Logout(metadata.AppendToOutgoingContext(ctx, metadataSession, resp.GetSession()), &hsmv1.LogoutRequest{})
	return nil
}

// isLocked reports a login refused because the user is locked.
func isLocked(err error) bool {
	return strings.Contains(strings.ToLower(status.Convert(err).Message()), "locked")
}

// loginCode maps a login failure to a connection error code.
func loginCode(err error) string {
	st := status.Convert(err)
	msg := strings.ToLower(st.Message())
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated, codes.NotFound:
		switch {
		case strings.Contains(msg, "locked"):
			return codeUserLockedOut
		case strings.Contains(msg, "no such user"), strings.Contains(msg, "user not found"), strings.Contains(msg, "does not exist"):
			return codeUserNotFound
		}
		return codeInvalidCredentials
	case codes.Unavailable, codes.DeadlineExceeded:
		return codeNetworkErrors
	}
	return codeInternalError
}

// rotatePassword changes kmsuser's password to a random one only KMS
// knows (reference §4.3). The new password is sealed and recorded as
// pending before the change, and made current after it, so that a crash
// in between loses nothing. A failed change (writes need a Raft leader,
// which a cluster that lost half its HSMs lacks) leaves the old password
// in force: the store connects anyway and rotates at the next connect.
func (s *Service) rotatePassword(ctx context.Context, id string, c *storeConn, h *clientHSM) {
	password := randomPassword()
	sealed, err := s.seal(ctx, id, password)
	if err != nil {
		s.log.Warn("kmsuser password not rotated: cannot seal", "custom_key_store_id", id, "error", err)
		return
	}
	if !s.updateIfCurrent(id, c, func(rec *store.CustomKeyStore) { rec.SealedPendingPassword = sealed }) {
		return
	}
	hctx, cancel := s.hsmCtx(ctx)
	err = h.changeOwnPassword(hctx, kmsUser, password)
	cancel()
	if err != nil {
		s.log.Warn("kmsuser password not rotated", "custom_key_store_id", id, "error", err)
		return
	}
	s.updateIfCurrent(id, c, func(rec *store.CustomKeyStore) {
		rec.SealedPassword, rec.SealedPendingPassword = sealed, nil
	})
	s.log.Info("kmsuser password rotated", "custom_key_store_id", id)
}

// updateIfCurrent changes store id's record while c is its connection.
func (s *Service) updateIfCurrent(id string, c *storeConn, f func(*store.CustomKeyStore)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[id] != c {
		return false
	}
	err := s.db.Update(func(tx *store.Tx) error {
		rec, err := tx.CustomKeyStore(id)
		if err != nil {
			return err
		}
		f(rec)
		return tx.PutCustomKeyStore(rec)
	})
	if err != nil {
		s.log.Warn("cannot update the custom key store", "custom_key_store_id", id, "error", err)
		return false
	}
	return true
}

// errStale is returned when a connection finishes for a store that moved on.
var errStale = errors.New("the store's connection state changed")

// finishConnect records a successful connection: the store is CONNECTED
// and h serves its keys. It reports false when c is no longer the store's
// connection (disconnected, reset, closed).
func (s *Service) finishConnect(id string, c *storeConn, h *clientHSM) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[id] != c {
		return false
	}
	err := s.db.Update(func(tx *store.Tx) error {
		rec, err := tx.CustomKeyStore(id)
		if err != nil {
			return err
		}
		switch rec.ConnectionState {
		case store.Connecting, store.Connected:
			rec.ConnectionState, rec.ConnectionErrorCode = store.Connected, ""
			return tx.PutCustomKeyStore(rec)
		}
		return errStale
	})
	if err != nil {
		delete(s.conns, id)
		c.cancel()
		return false
	}
	c.hsm = h
	return true
}

// failConnect records a failed connection: FAILED with code.
func (s *Service) failConnect(id string, c *storeConn, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[id] != c {
		return
	}
	delete(s.conns, id)
	c.cancel()
	err := s.db.Update(func(tx *store.Tx) error {
		rec, err := tx.CustomKeyStore(id)
		if err != nil {
			return err
		}
		if rec.ConnectionState != store.Connecting && rec.ConnectionState != store.Connected {
			return nil
		}
		rec.ConnectionState, rec.ConnectionErrorCode = store.Failed, code
		return tx.PutCustomKeyStore(rec)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("cannot record the failed connection", "custom_key_store_id", id, "error", err)
	}
}
