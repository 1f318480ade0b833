package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"fmt"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Quorum authentication (M of N), after CloudHSM CLI's quorum token-sign
// commands (reference §5.3). An admin registers an ECDSA P-256 public key;
// an admin requests a token for a service and gets a random challenge; each
// approver signs SHA-256(challenge) offline with its private key and any
// admin session submits the signature, which this HSM verifies before it
// proposes the approval. The key database checks the token (service,
// requester, age, approvals) when the command that names it is applied, and
// consumes it. Times come from Config.Clock and travel in the commands, so
// applying stays deterministic.

// Audit event names of quorum authentication (the audit log accepts any
// snake_case name).
const (
	eventQuorumKeyRegister  = "quorum_key_register"
	eventQuorumTokenCreate  = "quorum_token_create"
	eventQuorumTokenApprove = "quorum_token_approve"
	eventQuorumValueSet     = "quorum_value_set"
)

// maxQuorumSignature bounds an approval's signature; a DER ECDSA P-256
// signature is at most 72 bytes.
const maxQuorumSignature = 256

// quorumServices are the services a quorum value applies to, sorted.
var quorumServices = []string{keydb.ServiceQuorum, keydb.ServiceUser}

func checkQuorumService(service string) error {
	if service != keydb.ServiceUser && service != keydb.ServiceQuorum {
		return invalid(fmt.Sprintf("unknown quorum service %q; want %q or %q", service, keydb.ServiceUser, keydb.ServiceQuorum))
	}
	return nil
}

// parseQuorumKey parses a registered quorum key: PKIX DER of an ECDSA P-256
// public key.
func parseQuorumKey(der []byte) (*ecdsa.PublicKey, error) {
	if len(der) == 0 || len(der) > keydb.MaxQuorumKeyLen {
		return nil, invalid("public_key_der must be a PKIX DER ECDSA P-256 public key")
	}
	pub, err := cryptocore.ParsePublicKey(der)
	if err != nil {
		return nil, invalid("public_key_der is not a valid PKIX DER public key")
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, invalid("a quorum key must be an ECDSA P-256 public key")
	}
	return ec, nil
}

// apiToken converts a stored token for the API.
func apiToken(t *hsmfsmv1.QuorumToken) *hsmv1.QuorumToken {
	return &hsmv1.QuorumToken{
		TokenId: t.GetId(), Service: t.GetService(), Challenge: t.GetChallenge(), Requester: t.GetRequester(),
		ExpiresAtUnix: t.GetIssuedAtUnix() + keydb.QuorumTokenLifetime, Approvers: t.GetApprovers(),
	}
}

// quorumToken returns a stored token or a NotFound error.
func (n *Node) quorumToken(id string) (*hsmfsmv1.QuorumToken, error) {
	t, ok := n.db.QuorumToken(id)
	if !ok {
		return nil, &resultErr{r: &hsmfsmv1.Result{Code: hsmfsmv1.Code_CODE_NOT_FOUND, Message: fmt.Sprintf("quorum token %q not found", id)}}
	}
	return t, nil
}

func (s *hsmServer) RegisterQuorumKey(ctx context.Context, req *hsmv1.RegisterQuorumKeyRequest) (*hsmv1.RegisterQuorumKeyResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	if _, err := parseQuorumKey(req.GetPublicKeyDer()); err != nil {
		return nil, toStatus(err)
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RegisterQuorumKey{RegisterQuorumKey: &hsmfsmv1.RegisterQuorumKey{
		Actor: sess.user, PublicKeyDer: req.GetPublicKeyDer()}}})
	s.n.record(eventQuorumKeyRegister, sess.user, err)
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("quorum key registered", "actor", sess.user)
	return &hsmv1.RegisterQuorumKeyResponse{}, nil
}

func (s *hsmServer) GenerateQuorumToken(ctx context.Context, req *hsmv1.GenerateQuorumTokenRequest) (*hsmv1.GenerateQuorumTokenResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := checkQuorumService(req.GetService()); err != nil {
		return nil, toStatus(err)
	}
	rawID, err := cryptocore.RandomBytes(16)
	if err != nil {
		return nil, toStatus(err)
	}
	challenge, err := cryptocore.RandomBytes(keydb.QuorumChallengeSize)
	if err != nil {
		return nil, toStatus(err)
	}
	id := "qt-" + hex.EncodeToString(rawID)
	res, err := s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateQuorumToken{CreateQuorumToken: &hsmfsmv1.CreateQuorumToken{
		Id: id, Service: req.GetService(), Requester: sess.user, Challenge: challenge, IssuedAtUnix: s.n.now().Unix()}}})
	if res.GetQuorumTokenId() != "" {
		// A retried request gets the token its first attempt created.
		id = res.GetQuorumTokenId()
	}
	s.n.record(eventQuorumTokenCreate, sess.user, err, "token_id", id, "service", req.GetService())
	if err != nil {
		return nil, toStatus(err)
	}
	t, err := s.n.quorumToken(id)
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("quorum token issued", "actor", sess.user, "token_id", id, "service", req.GetService())
	return &hsmv1.GenerateQuorumTokenResponse{Token: apiToken(t)}, nil
}

func (s *hsmServer) ApproveQuorumToken(ctx context.Context, req *hsmv1.ApproveQuorumTokenRequest) (*hsmv1.ApproveQuorumTokenResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	switch {
	case req.GetTokenId() == "":
		return nil, toStatus(invalid("token_id is required"))
	case req.GetApproverUsername() == "":
		return nil, toStatus(invalid("approver_username is required"))
	case len(req.GetSignature()) == 0 || len(req.GetSignature()) > maxQuorumSignature:
		return nil, toStatus(invalid("signature must be an ASN.1 DER ECDSA signature"))
	}
	err = s.n.approveQuorumToken(ctx, sess, req)
	s.n.record(eventQuorumTokenApprove, sess.user, err, "token_id", req.GetTokenId(), "approver", req.GetApproverUsername())
	if err != nil {
		return nil, toStatus(err)
	}
	t, err := s.n.quorumToken(req.GetTokenId())
	if err != nil {
		// Consumed between the approval and this read.
		return nil, toStatus(err)
	}
	s.n.log.Info("quorum token approved", "token_id", req.GetTokenId(), "approver", req.GetApproverUsername(), "approvals", len(t.GetApprovers()))
	return &hsmv1.ApproveQuorumTokenResponse{Token: apiToken(t)}, nil
}

// approveQuorumToken verifies the approver's signature of the token's
// challenge with its registered key, then proposes the approval naming that
// key, which the key database checks is still the registered one.
func (n *Node) approveQuorumToken(ctx context.Context, sess *session, req *hsmv1.ApproveQuorumTokenRequest) error {
	t, err := n.quorumToken(req.GetTokenId())
	if err != nil {
		return err
	}
	u, ok := n.db.User(req.GetApproverUsername())
	if !ok || u.Info.GetRole() != hsmv1.Role_ROLE_ADMIN {
		return fmt.Errorf("%w: %q is not an admin", ErrForbidden, req.GetApproverUsername())
	}
	der := u.Info.GetQuorumPublicKey()
	if len(der) == 0 {
		return &resultErr{r: &hsmfsmv1.Result{Code: hsmfsmv1.Code_CODE_FAILED_PRECONDITION,
			Message: fmt.Sprintf("admin %q has no registered quorum key", req.GetApproverUsername())}}
	}
	pub, err := parseQuorumKey(der)
	if err != nil {
		return fmt.Errorf("%w: admin %q's registered quorum key is unusable", ErrForbidden, req.GetApproverUsername())
	}
	if err := cryptocore.VerifyEC(pub, cryptocore.SHA256, t.GetChallenge(), false, req.GetSignature()); err != nil {
		return fmt.Errorf("%w: the signature is not %q's signature of token %q's challenge", ErrForbidden, req.GetApproverUsername(), req.GetTokenId())
	}
	_, err = n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ApproveQuorumToken{ApproveQuorumToken: &hsmfsmv1.ApproveQuorumToken{
		Id: req.GetTokenId(), Approver: req.GetApproverUsername(), NowUnix: n.now().Unix(), ApproverPublicKeyDer: der}}})
	return err
}

func (s *hsmServer) ListQuorumTokens(ctx context.Context, _ *hsmv1.ListQuorumTokensRequest) (*hsmv1.ListQuorumTokensResponse, error) {
	if _, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN); err != nil {
		return nil, toStatus(err)
	}
	resp := &hsmv1.ListQuorumTokensResponse{}
	for _, t := range s.n.db.QuorumTokens() {
		resp.Tokens = append(resp.Tokens, apiToken(t))
	}
	for _, service := range quorumServices {
		resp.Values = append(resp.Values, &hsmv1.QuorumValue{Service: service, Value: s.n.db.QuorumValue(service)})
	}
	return resp, nil
}

func (s *hsmServer) SetQuorumValue(ctx context.Context, req *hsmv1.SetQuorumValueRequest) (*hsmv1.SetQuorumValueResponse, error) {
	sess, err := s.n.sessionFor(ctx, hsmv1.Role_ROLE_ADMIN)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := checkQuorumService(req.GetService()); err != nil {
		return nil, toStatus(err)
	}
	if req.GetValue() < 1 || req.GetValue() > keydb.MaxQuorumValue {
		return nil, toStatus(invalid(fmt.Sprintf("value must be 1 to %d", keydb.MaxQuorumValue)))
	}
	_, err = s.n.write(ctx, sess, &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetQuorumValue{SetQuorumValue: &hsmfsmv1.SetQuorumValue{
		Actor: sess.user, Service: req.GetService(), M: req.GetValue(), QuorumTokenId: req.GetQuorumTokenId(), NowUnix: s.n.now().Unix()}}})
	s.n.record(eventQuorumValueSet, sess.user, err, "service", req.GetService(), "value", fmt.Sprint(req.GetValue()))
	if err != nil {
		return nil, toStatus(err)
	}
	s.n.log.Info("quorum value set", "actor", sess.user, "service", req.GetService(), "value", req.GetValue())
	return &hsmv1.SetQuorumValueResponse{}, nil
}
