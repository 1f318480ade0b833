package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/audit"
	"github.com/hsmsim/hsmsim/node/barrier"
	"github.com/hsmsim/hsmsim/node/keydb"
	"github.com/hsmsim/hsmsim/node/keyops"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Password length bounds for new passwords (CloudHSM: 8 to 32 characters).
const (
	minPasswordLen = 8
	maxPasswordLen = 32
	// maxLoginInput bounds what Login reads before refusing.
	maxLoginInput = 1024
	// maxRandom is the most GenerateRandom returns at once.
	maxRandom = 4096
	// materialVersion is the version of a key record's material: hsmsim
	// writes key material once, so it is always 1 for now.
	materialVersion = 1
)

// hsmServer serves hsmv1.HsmService, the customer's API.
type hsmServer struct {
	hsmv1.UnsafeHsmServiceServer
	n *Node
}

// sessionFor returns the caller's session after this replica has applied
// the session's last write (read-your-writes). The session's user must still
// exist with the session's role: a deleted user's sessions end everywhere.
func (n *Node) sessionFor(ctx context.Context, roles ...hsmv1.Role) (*session, error) {
	s, ok := n.sessions.get(tokenFrom(ctx))
	if !ok {
		return nil, ErrNoSession
	}
	if err := n.waitApplied(ctx, max(s.lastIndex.Load(), minIndexFrom(ctx))); err != nil {
		return nil, err
	}
	if u, ok := n.db.User(s.user); !ok || u.Info.GetRole() != s.role {
		n.sessions.close(tokenFrom(ctx))
		return nil, ErrNoSession
	}
	if len(roles) > 0 && !slices.Contains(roles, s.role) {
		err := fmt.Errorf("%w: a %s cannot make this call", ErrForbidden, roleName(s.role))
		method, _ := grpcMethod(ctx)
		n.record(audit.EventAuthorizationFailure, s.user, err, "method", method)
		return nil, err
	}
	return s, nil
}

// waitSessionIndex waits until this replica has applied what the caller
// has observed: its session's writes, if it sends a session, and the index
// it sends (MetadataIndex). It serves the calls that need no session.
func (n *Node) waitSessionIndex(ctx context.Context) error {
	index := minIndexFrom(ctx)
	if s, ok := n.sessions.get(tokenFrom(ctx)); ok {
		index = max(index, s.lastIndex.Load())
	}
	return n.waitApplied(ctx, index)
}

// write proposes cmd for the session, remembers its index for
// read-your-writes, and waits until this replica has applied it. The
// request's id (MetadataRequestID), if any, goes into the command, so that a
// retried write takes effect once.
func (n *Node) write(ctx context.Context, s *session, cmd *hsmfsmv1.Command) (*hsmfsmv1.Result, error) {
	id, err := requestIDFrom(ctx)
	if err != nil {
		return nil, err
	}
	cmd.RequestId = id
	res, index, err := n.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	// The index becomes the session's (and the client's, through the
	// header) only once this replica has applied it. A write committed by a
	// leader that died before this HSM learned so is not applied here until
	// a new leader says it is committed; the caller gets an error (its
	// outcome is unknown, so read-your-writes does not cover it), and the
	// session goes on serving from what this replica has, rather than
	// making every later call wait for an election.
	if err := n.waitApplied(ctx, index); err != nil {
		return nil, ErrAppliedNotVisible
	}
	if s != nil {
		s.observe(index)
	}
	// Tell the client the write's index, for read-your-writes on other HSMs,
	// and the leader, to send its next writes there.
	md := metadata.Pairs(MetadataIndex, strconv.FormatUint(index, 10))
	if r, err := n.raftNode(); err == nil {
		if _, leader := r.LeaderWithID(); leader != "" {
			md.Set(MetadataLeader, string(leader))
		}
	}
	_ = grpc.SetHeader(ctx, md)
	return res, resultError(res)
}

// replay answers a retried write from this replica's table of applied
// requests, without proposing: for a write whose own checks fail once its
// first attempt has been applied (a deleted key is no longer visible to its
// deletion). It returns false when the request carries no id or this
// replica has not applied a command with it; cmd is the command the write
// would propose.
func (n *Node) replay(ctx context.Context, s *session, cmd *hsmfsmv1.Command) (*hsmfsmv1.Result, bool) {
	id, err := requestIDFrom(ctx)
	if err != nil || id == nil {
		return nil, false
	}
	cmd.RequestId = id
	res, index, ok := n.db.Replay(cmd)
	if !ok {
		return nil, false
	}
	s.observe(index)
	_ = grpc.SetHeader(ctx, metadata.Pairs(MetadataIndex, strconv.FormatUint(index, 10)))
	return res, true
}

func roleName(r hsmv1.Role) string {
	switch r {
	case hsmv1.Role_ROLE_ADMIN:
		return "admin"
	case hsmv1.Role_ROLE_CRYPTO_USER:
		return "crypto user"
	case hsmv1.Role_ROLE_UNACTIVATED_ADMIN:
		return "unactivated admin"
	case hsmv1.Role_ROLE_APPLIANCE:
		return "appliance user"
	}
	return "user"
}

func checkNewPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < minPasswordLen || n > maxPasswordLen || !utf8.ValidString(p) {
		return invalid(fmt.Sprintf("password must be %d to %d characters", minPasswordLen, maxPasswordLen))
	}
	return nil
}

func (s *hsmServer) Login(ctx context.Context, req *hsmv1.LoginRequest) (*hsmv1.LoginResponse, error) {
	resp, err := s.n.login(ctx, req)
	if !errors.As(err, new(invalidArgument)) {
		s.n.record(audit.EventLogin, req.GetUsername(), err, "role", roleName(req.GetRole()))
	}
	return resp, toStatus(err)
}

func (n *Node) login(ctx context.Context, req *hsmv1.LoginRequest) (*hsmv1.LoginResponse, error) {
	switch {
	case req.GetUsername() == "" || len(req.GetUsername()) > maxLoginInput:
		return nil, invalid("username is required (at most 1024 bytes)")
	case req.GetPassword() == "" || len(req.GetPassword()) > maxLoginInput:
		return nil, invalid("password is required")
	case req.GetRole() == hsmv1.Role_ROLE_UNSPECIFIED || hsmv1.Role_name[int32(req.GetRole())] == "":
		return nil, invalid("role is required")
	}
	// A password or user the caller changed elsewhere (MetadataIndex) must
	// be here first: checked against an older replica, the right password
	// would count as a failed login, towards the user's lock.
	if err := n.waitApplied(ctx, minIndexFrom(ctx)); err != nil {
		return nil, err
	}
	if n.db.Cluster().State == hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED {
		if _, err := n.raftNode(); err == nil {
			// A member whose replica has not replayed the log yet (just
			// after a restart or a join): retry, here or elsewhere.
			return nil, ErrReplicaBehind
		}
		return nil, ErrNotInitialized
	}
	u, ok := n.db.User(req.GetUsername())
	if !ok || u.Info.GetRole() != req.GetRole() {
		return nil, fmt.Errorf("%w: login failed", ErrForbidden)
	}
	if u.Info.GetLocked() {
		return nil, fmt.Errorf("%w: user %q is locked after too many failed logins; an admin must reset its password", ErrForbidden, req.GetUsername())
	}
	if err := cryptocore.VerifyPassword(u.PasswordHash, []byte(req.GetPassword())); err != nil {
		n.log.Info("login failed", "user", req.GetUsername())
		// Count the failure cluster-wide; the lock must hold on every HSM.
		_, index, perr := n.propose(ctx, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RecordLoginFailure{
			RecordLoginFailure: &hsmfsmv1.RecordLoginFailure{Username: req.GetUsername()}}})
		if perr != nil {
			n.log.Warn("cannot record a failed login", "user", req.GetUsername(), "error", perr)
		} else if n.waitApplied(ctx, index) == nil {
			if u, ok := n.db.User(req.GetUsername()); ok && u.Info.GetLocked() {
				n.log.Warn("user locked after failed logins", "user", req.GetUsername())
				n.record(audit.EventUserLock, req.GetUsername(), nil, "failed_logins", fmt.Sprint(u.Info.GetFailedLogins()))
			}
		}
		return nil, fmt.Errorf("%w: login failed", ErrForbidden)
	}
	index := n.fsm.AppliedIndex()
	if u.Info.GetFailedLogins() > 0 {
		res, i, err := n.propose(ctx, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ResetLoginFailures{
			ResetLoginFailures: &hsmfsmv1.ResetLoginFailures{Username: req.GetUsername()}}})
		if err != nil {
			return nil, err
		}
		if err := resultError(res); err != nil {
			return nil, err
		}
		index = i
	}
	token, _, err := n.sessions.open(u.Info.GetUsername(), u.Info.GetRole(), index, connIDFrom(ctx))
	if err != nil {
		return nil, err
	}
	n.log.Info("login", "user", req.GetUsername(), "role", roleName(u.Info.GetRole()))
	return &hsmv1.LoginResponse{Session: token, HsmId: n.cfg.NodeID, AppliedIndex: index}, nil
}

func (s *hsmServer) Logout(ctx context.Context, _ *hsmv1.LogoutRequest) (*hsmv1.LogoutResponse, error) {
	sess, ok := s.n.sessions.get(tokenFrom(ctx))
	if !ok {
		return nil, toStatus(ErrNoSession)
	}
	s.n.sessions.close(tokenFrom(ctx))
	s.n.record(audit.EventLogout, sess.user, nil)
	return &hsmv1.LogoutResponse{}, nil
}

func (s *hsmServer) ActivateCluster(ctx context.Context, req *hsmv1.ActivateClusterRequest) (*hsmv1.ActivateClusterResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_UNACTIVATED_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := checkNewPassword(req.GetAdminPassword()); err != nil {
		return nil, toStatus(err)
	}
	hash, err := cryptocore.HashPassword([]byte(req.GetAdminPassword()), s.n.cfg.PasswordParams)
	if err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_Activate{Activate: &hsmfsmv1.Activate{PasswordHash: hash}}})
	s.n.record(audit.EventClusterActivate, sess.user, err)
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("cluster activated", "cluster_id", s.n.cfg.ClusterID)
	return &hsmv1.ActivateClusterResponse{}, nil
}

func (s *hsmServer) CreateUser(ctx context.Context, req *hsmv1.CreateUserRequest) (*hsmv1.CreateUserResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	switch {
	case req.GetUsername() == "":
		return nil, toStatus(invalid("username is required"))
	case req.GetRole() != hsmv1.Role_ROLE_ADMIN && req.GetRole() != hsmv1.Role_ROLE_CRYPTO_USER:
		return nil, toStatus(invalid("role must be admin or crypto user"))
	}
	if err := checkNewPassword(req.GetPassword()); err != nil {
		return nil, toStatus(err)
	}
	hash, err := cryptocore.HashPassword([]byte(req.GetPassword()), s.n.cfg.PasswordParams)
	if err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateUser{CreateUser: &hsmfsmv1.CreateUser{
		Actor: sess.user, Username: req.GetUsername(), Role: req.GetRole(), PasswordHash: hash,
		QuorumTokenId: req.GetQuorumTokenId(), NowUnix: s.n.now().Unix()}}})
	s.n.record(audit.EventUserCreate, sess.user, err, "target_user", req.GetUsername(), "role", roleName(req.GetRole()))
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("user created", "actor", sess.user, "user", req.GetUsername(), "role", roleName(req.GetRole()))
	return &hsmv1.CreateUserResponse{}, nil
}

func (s *hsmServer) DeleteUser(ctx context.Context, req *hsmv1.DeleteUserRequest) (*hsmv1.DeleteUserResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetUsername() == "" {
		return nil, toStatus(invalid("username is required"))
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_DeleteUser{DeleteUser: &hsmfsmv1.DeleteUser{
		Actor: sess.user, Username: req.GetUsername(), QuorumTokenId: req.GetQuorumTokenId(), NowUnix: s.n.now().Unix()}}})
	s.n.record(audit.EventUserDelete, sess.user, err, "target_user", req.GetUsername())
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.sessions.closeUser(req.GetUsername())
	s.n.log.Info("user deleted", "actor", sess.user, "user", req.GetUsername())
	return &hsmv1.DeleteUserResponse{}, nil
}

// ListUsers needs no session: CloudHSM lets any client list users.
func (s *hsmServer) ListUsers(ctx context.Context, _ *hsmv1.ListUsersRequest) (*hsmv1.ListUsersResponse, error) {
	if err := s.n.waitSessionIndex(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.ListUsersResponse{Users: s.n.db.Users(), Sessions: s.n.sessions.perUser()}, nil
}

func (s *hsmServer) ChangePassword(ctx context.Context, req *hsmv1.ChangePasswordRequest) (*hsmv1.ChangePasswordResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetUsername() == "" {
		return nil, toStatus(invalid("username is required"))
	}
	if err := checkNewPassword(req.GetNewPassword()); err != nil {
		return nil, toStatus(err)
	}
	hash, err := cryptocore.HashPassword([]byte(req.GetNewPassword()), s.n.cfg.PasswordParams)
	if err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetPassword{SetPassword: &hsmfsmv1.SetPassword{
		Actor: sess.user, Username: req.GetUsername(), PasswordHash: hash,
		QuorumTokenId: req.GetQuorumTokenId(), NowUnix: s.n.now().Unix()}}})
	s.n.record(audit.EventUserPasswordChange, sess.user, err, "target_user", req.GetUsername())
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("password changed", "actor", sess.user, "user", req.GetUsername())
	return &hsmv1.ChangePasswordResponse{}, nil
}

// createKey seals material, proposes the key (a pair when pub is set) and
// returns the stored attributes.
func (n *Node) createKey(ctx context.Context, sess *session, attrs, pub *hsmv1.KeyAttributes, material []byte) (*hsmv1.KeyAttributes, *hsmv1.KeyAttributes, error) {
	defer cryptocore.Zero(material)
	rid, err := cryptocore.RandomBytes(barrier.RecordIDSize)
	if err != nil {
		return nil, nil, err
	}
	attrs.RecordId = rid
	sealed, err := n.barrier.SealRecord(rid, materialVersion, material)
	if err != nil {
		return nil, nil, err
	}
	cmd := &hsmfsmv1.CreateKey{Actor: sess.user, Template: attrs, SealedMaterial: sealed}
	if pub != nil {
		if pub.RecordId, err = cryptocore.RandomBytes(barrier.RecordIDSize); err != nil {
			return nil, nil, err
		}
		cmd.Pair, cmd.PublicTemplate = true, pub
	}
	res, err := n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateKey{CreateKey: cmd}})
	n.record(audit.EventKeyCreate, sess.user, err, "handle", fmt.Sprint(res.GetHandle()),
		"public_handle", fmt.Sprint(res.GetPublicHandle()), "type", attrs.GetType().String(), "label", attrs.GetLabel())
	if err != nil {
		return nil, nil, err
	}
	k, ok := n.db.Key(res.GetHandle())
	if !ok {
		// A retry answered from the request table, for a key deleted since:
		// report what was created.
		attrs.Handle, attrs.Owner = res.GetHandle(), sess.user
		if pub != nil {
			pub.Handle, pub.Owner, pub.PairHandle, attrs.PairHandle = res.GetPublicHandle(), sess.user, res.GetHandle(), res.GetPublicHandle()
		}
		return attrs, pub, nil
	}
	n.log.Info("key created", "actor", sess.user, "handle", res.GetHandle())
	if pub == nil {
		return k.Attributes, nil, nil
	}
	p, ok := n.db.Key(res.GetPublicHandle())
	if !ok {
		// The public half was deleted since (a retry answered from the
		// request table): report what was created.
		pub.Handle, pub.Owner, pub.PairHandle = res.GetPublicHandle(), sess.user, res.GetHandle()
		return k.Attributes, pub, nil
	}
	return k.Attributes, p.Attributes, nil
}

func (s *hsmServer) GenerateSymmetricKey(ctx context.Context, req *hsmv1.GenerateSymmetricKeyRequest) (*hsmv1.GenerateSymmetricKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	attrs, material, err := keyops.GenerateSymmetric(req)
	if err != nil {
		return nil, toStatus(err)
	}
	key, _, err := s.n.createKey(ctx, sess, attrs, nil, material)
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.GenerateSymmetricKeyResponse{Key: key}, nil
}

func (s *hsmServer) GenerateKeyPair(ctx context.Context, req *hsmv1.GenerateKeyPairRequest) (*hsmv1.GenerateKeyPairResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	pub, priv, material, err := keyops.GenerateKeyPair(req)
	if err != nil {
		return nil, toStatus(err)
	}
	privAttrs, pubAttrs, err := s.n.createKey(ctx, sess, priv, pub, material)
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.GenerateKeyPairResponse{PublicKey: pubAttrs, PrivateKey: privAttrs}, nil
}

func (s *hsmServer) FindKeys(ctx context.Context, req *hsmv1.FindKeysRequest) (*hsmv1.FindKeysResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	f := keydb.KeyFilter{Label: req.GetLabel(), ID: req.GetId(), Class: req.GetClass(), Type: req.GetType(), Owner: req.GetOwner()}
	if sess.role == hsmv1.Role_ROLE_CRYPTO_USER {
		f.UsableBy = sess.user
	}
	keys := s.n.db.FindKeys(f)
	s.n.readIndexHeader(ctx)
	return &hsmv1.FindKeysResponse{Keys: keys}, nil
}

// readIndexHeader tells the client the index of the state a read saw (an
// upper bound: the replica's applied index, taken after the read), so that
// its next request, on any HSM, sees at least as much.
func (n *Node) readIndexHeader(ctx context.Context) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(MetadataIndex, strconv.FormatUint(n.db.AppliedIndex(), 10)))
}

// visibleKey returns a key the session may see: any key for an admin, the
// keys it owns or that are shared with it for a crypto user. Other keys are
// reported as not found, as CloudHSM does.
func (n *Node) visibleKey(sess *session, handle uint64) (keydb.Key, error) {
	if handle == 0 {
		return keydb.Key{}, invalid("handle is required")
	}
	k, ok := n.db.Key(handle)
	if ok && (sess.role == hsmv1.Role_ROLE_ADMIN || k.Attributes.GetOwner() == sess.user ||
		slices.Contains(k.Attributes.GetSharedUsers(), sess.user)) {
		return k, nil
	}
	return keydb.Key{}, &resultErr{r: &hsmfsmv1.Result{Code: hsmfsmv1.Code_CODE_NOT_FOUND, Message: fmt.Sprintf("key %d not found", handle)}}
}

// usableKey returns a key a crypto user may use, with its material opened.
// The caller zeroes the material.
func (n *Node) usableKey(ctx context.Context, handle uint64) (*hsmv1.KeyAttributes, []byte, error) {
	sess, err := n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, nil, err
	}
	k, err := n.visibleKey(sess, handle)
	if err != nil {
		return nil, nil, err
	}
	if len(k.SealedMaterial) == 0 {
		return k.Attributes, nil, nil
	}
	material, err := n.barrier.OpenRecord(k.Attributes.GetRecordId(), materialVersion, k.SealedMaterial)
	if err != nil {
		n.log.Error("cannot open a key record", "handle", handle, "error", err)
		return nil, nil, fmt.Errorf("node: key %d: %w", handle, err)
	}
	return k.Attributes, material, nil
}

func (s *hsmServer) GetAttributes(ctx context.Context, req *hsmv1.GetAttributesRequest) (*hsmv1.GetAttributesResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	k, err := s.n.visibleKey(sess, req.GetHandle())
	s.n.readIndexHeader(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.GetAttributesResponse{Key: k.Attributes}, nil
}

func (s *hsmServer) SetAttribute(ctx context.Context, req *hsmv1.SetAttributeRequest) (*hsmv1.SetAttributeResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.n.visibleKey(sess, req.GetHandle()); err != nil {
		return nil, toStatus(err)
	}
	cmd := &hsmfsmv1.SetKeyAttribute{Actor: sess.user, Handle: req.GetHandle()}
	switch a := req.GetAttribute().(type) {
	case *hsmv1.SetAttributeRequest_Label:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Label{Label: a.Label}
	case *hsmv1.SetAttributeRequest_Id:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Id{Id: a.Id}
	case *hsmv1.SetAttributeRequest_Extractable:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Extractable{Extractable: a.Extractable}
	case *hsmv1.SetAttributeRequest_Encrypt:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Encrypt{Encrypt: a.Encrypt}
	case *hsmv1.SetAttributeRequest_Decrypt:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Decrypt{Decrypt: a.Decrypt}
	case *hsmv1.SetAttributeRequest_Wrap:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Wrap{Wrap: a.Wrap}
	case *hsmv1.SetAttributeRequest_Unwrap:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Unwrap{Unwrap: a.Unwrap}
	case *hsmv1.SetAttributeRequest_Sign:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Sign{Sign: a.Sign}
	case *hsmv1.SetAttributeRequest_Verify:
		cmd.Attribute = &hsmfsmv1.SetKeyAttribute_Verify{Verify: a.Verify}
	default:
		return nil, toStatus(invalid("an attribute to set is required"))
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetKeyAttribute{SetKeyAttribute: cmd}})
	s.n.record(audit.EventKeyAttributeChange, sess.user, err, "handle", fmt.Sprint(req.GetHandle()))
	if err != nil {
		return nil, toStatus(err)
	}
	k, err := s.n.visibleKey(sess, req.GetHandle())
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.SetAttributeResponse{Key: k.Attributes}, nil
}

func (s *hsmServer) ShareKey(ctx context.Context, req *hsmv1.ShareKeyRequest) (*hsmv1.ShareKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetHandle() == 0 || req.GetUsername() == "" {
		return nil, toStatus(invalid("handle and username are required"))
	}
	if _, err := s.n.visibleKey(sess, req.GetHandle()); err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ShareKey{ShareKey: &hsmfsmv1.ShareKey{
		Actor: sess.user, Handle: req.GetHandle(), Username: req.GetUsername()}}})
	s.n.record(audit.EventKeyShare, sess.user, err, "handle", fmt.Sprint(req.GetHandle()), "target_user", req.GetUsername())
	return &hsmv1.ShareKeyResponse{}, toStatus(err)
}

func (s *hsmServer) UnshareKey(ctx context.Context, req *hsmv1.UnshareKeyRequest) (*hsmv1.UnshareKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetHandle() == 0 || req.GetUsername() == "" {
		return nil, toStatus(invalid("handle and username are required"))
	}
	if _, err := s.n.visibleKey(sess, req.GetHandle()); err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_UnshareKey{UnshareKey: &hsmfsmv1.UnshareKey{
		Actor: sess.user, Handle: req.GetHandle(), Username: req.GetUsername()}}})
	s.n.record(audit.EventKeyUnshare, sess.user, err, "handle", fmt.Sprint(req.GetHandle()), "target_user", req.GetUsername())
	return &hsmv1.UnshareKeyResponse{}, toStatus(err)
}

func (s *hsmServer) DeleteKey(ctx context.Context, req *hsmv1.DeleteKeyRequest) (*hsmv1.DeleteKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	cmd := &hsmfsmv1.Command{Command: &hsmfsmv1.Command_DeleteKey{DeleteKey: &hsmfsmv1.DeleteKey{
		Actor: sess.user, Handle: req.GetHandle()}}}
	if _, err := s.n.visibleKey(sess, req.GetHandle()); err != nil {
		// A retry whose first attempt deleted the key gets that answer.
		if res, ok := s.n.replay(ctx, sess, cmd); ok {
			return &hsmv1.DeleteKeyResponse{}, toStatus(resultError(res))
		}
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, cmd)
	s.n.record(audit.EventKeyDelete, sess.user, err, "handle", fmt.Sprint(req.GetHandle()))
	if err == nil {
		s.n.log.Info("key deleted", "actor", sess.user, "handle", req.GetHandle())
	}
	return &hsmv1.DeleteKeyResponse{}, toStatus(err)
}

// withKey runs op on the material of the key handle names, for the
// session's crypto user, zeroes the material afterwards and maps errors to
// gRPC statuses: the shape of every single-key crypto call.
func withKey[Req any, Out any](ctx context.Context, n *Node, handle uint64, req Req,
	op func(*hsmv1.KeyAttributes, []byte, Req) (Out, error)) (Out, error) {
	var zero Out
	attrs, material, err := n.usableKey(ctx, handle)
	if err != nil {
		return zero, toStatus(err)
	}
	defer cryptocore.Zero(material)
	out, err := op(attrs, material, req)
	if err != nil {
		return zero, toStatus(err)
	}
	return out, nil
}

func (s *hsmServer) Encrypt(ctx context.Context, req *hsmv1.EncryptRequest) (*hsmv1.EncryptResponse, error) {
	ct, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.Encrypt)
	if err != nil {
		return nil, err
	}
	return &hsmv1.EncryptResponse{Ciphertext: ct}, nil
}

func (s *hsmServer) Decrypt(ctx context.Context, req *hsmv1.DecryptRequest) (*hsmv1.DecryptResponse, error) {
	pt, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.Decrypt)
	if err != nil {
		return nil, err
	}
	return &hsmv1.DecryptResponse{Plaintext: pt}, nil
}

func (s *hsmServer) Sign(ctx context.Context, req *hsmv1.SignRequest) (*hsmv1.SignResponse, error) {
	sig, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.Sign)
	if err != nil {
		return nil, err
	}
	return &hsmv1.SignResponse{Signature: sig}, nil
}

func (s *hsmServer) Verify(ctx context.Context, req *hsmv1.VerifyRequest) (*hsmv1.VerifyResponse, error) {
	ok, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.Verify)
	if err != nil {
		return nil, err
	}
	return &hsmv1.VerifyResponse{Valid: ok}, nil
}

func (s *hsmServer) GenerateMac(ctx context.Context, req *hsmv1.GenerateMacRequest) (*hsmv1.GenerateMacResponse, error) {
	mac, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.GenerateMac)
	if err != nil {
		return nil, err
	}
	return &hsmv1.GenerateMacResponse{Mac: mac}, nil
}

func (s *hsmServer) VerifyMac(ctx context.Context, req *hsmv1.VerifyMacRequest) (*hsmv1.VerifyMacResponse, error) {
	ok, err := withKey(ctx, s.n, req.GetHandle(), req, keyops.VerifyMac)
	if err != nil {
		return nil, err
	}
	return &hsmv1.VerifyMacResponse{Valid: ok}, nil
}

func (s *hsmServer) WrapKey(ctx context.Context, req *hsmv1.WrapKeyRequest) (*hsmv1.WrapKeyResponse, error) {
	wAttrs, wMaterial, err := s.n.usableKey(ctx, req.GetWrappingHandle())
	if err != nil {
		return nil, toStatus(err)
	}
	defer cryptocore.Zero(wMaterial)
	kAttrs, kMaterial, err := s.n.usableKey(ctx, req.GetKeyHandle())
	if err != nil {
		return nil, toStatus(err)
	}
	defer cryptocore.Zero(kMaterial)
	wrapped, err := keyops.WrapKey(wAttrs, wMaterial, kAttrs, kMaterial, req)
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("key wrapped", "handle", req.GetKeyHandle(), "wrapping_handle", req.GetWrappingHandle())
	return &hsmv1.WrapKeyResponse{Wrapped: wrapped}, nil
}

func (s *hsmServer) UnwrapKey(ctx context.Context, req *hsmv1.UnwrapKeyRequest) (*hsmv1.UnwrapKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_CRYPTO_USER)
	if err != nil {
		return nil, toStatus(err)
	}
	uAttrs, uMaterial, err := s.n.usableKey(ctx, req.GetUnwrappingHandle())
	if err != nil {
		return nil, toStatus(err)
	}
	defer cryptocore.Zero(uMaterial)
	attrs, material, err := keyops.UnwrapKey(uAttrs, uMaterial, req)
	if err != nil {
		return nil, toStatus(err)
	}
	key, _, err := s.n.createKey(ctx, sess, attrs, nil, material)
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.UnwrapKeyResponse{Key: key}, nil
}

func (s *hsmServer) GenerateRandom(ctx context.Context, req *hsmv1.GenerateRandomRequest) (*hsmv1.GenerateRandomResponse, error) {
	if _, err := s.n.sessionFor(ctx); err != nil {
		return nil, toStatus(err)
	}
	if req.GetLength() < 1 || req.GetLength() > maxRandom {
		return nil, toStatus(invalid(fmt.Sprintf("length must be 1 to %d", maxRandom)))
	}
	b, err := cryptocore.RandomBytes(int(req.GetLength()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &hsmv1.GenerateRandomResponse{Random: b}, nil
}

// grpcMethod returns the full gRPC method name of the call in ctx: for a
// call of a Batch, the method the call would have alone.
func grpcMethod(ctx context.Context) (string, bool) {
	if m, ok := ctx.Value(batchMethodKey{}).(string); ok {
		return m, true
	}
	return grpc.Method(ctx)
}
