package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// quorumAdmin is an admin's session and its quorum signing key.
type quorumAdmin struct {
	*userSession
	name string
	key  *ecdsa.PrivateKey
}

// newQuorumAdmin logs name in on node i and registers a new P-256 quorum key.
func newQuorumAdmin(t *testing.T, c *nodetest.Cluster, i int, name, password string) *quorumAdmin {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	a := &quorumAdmin{userSession: login(t, c, i, name, password, hsmv1.Role_ROLE_ADMIN), name: name, key: key}
	_, err = a.cl.RegisterQuorumKey(a.ctx, &hsmv1.RegisterQuorumKeyRequest{PublicKeyDer: der})
	require.NoError(t, err)
	return a
}

// register registers der as a's quorum key.
func (a *quorumAdmin) register(der []byte) error {
	_, err := a.cl.RegisterQuorumKey(a.ctx, &hsmv1.RegisterQuorumKeyRequest{PublicKeyDer: der})
	return err
}

// sign signs a token's challenge offline, as an approver does.
func (a *quorumAdmin) sign(t *testing.T, tok *hsmv1.QuorumToken) []byte {
	t.Helper()
	digest := sha256.Sum256(tok.GetChallenge())
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	require.NoError(t, err)
	return sig
}

// token requests a token for service.
func (a *quorumAdmin) token(t *testing.T, service string) *hsmv1.QuorumToken {
	t.Helper()
	resp, err := a.cl.GenerateQuorumToken(a.ctx, &hsmv1.GenerateQuorumTokenRequest{Service: service})
	require.NoError(t, err)
	return resp.GetToken()
}

// approve submits approver's signature of tok through a's session.
func (a *quorumAdmin) approve(tok *hsmv1.QuorumToken, approver string, sig []byte) (*hsmv1.QuorumToken, error) {
	resp, err := a.cl.ApproveQuorumToken(a.ctx, &hsmv1.ApproveQuorumTokenRequest{TokenId: tok.GetTokenId(), ApproverUsername: approver, Signature: sig})
	return resp.GetToken(), err
}

// createCU creates a crypto user through a's session with an optional token.
func (a *quorumAdmin) createCU(name, tokenID string) error {
	_, err := a.cl.CreateUser(a.ctx, &hsmv1.CreateUserRequest{Username: name, Role: hsmv1.Role_ROLE_CRYPTO_USER,
		Password: userPassword, QuorumTokenId: tokenID})
	return err
}

// With the "user" service's quorum value at 2, user management needs a
// token for that service, issued to the caller, approved by two admins'
// signatures, less than 10 minutes old; a token is used once. The "quorum"
// service guards quorum values the same way.
func TestQuorumAuthentication(t *testing.T) {
	const officerPassword = "officer-password-1"
	clock := nodetest.NewClock(time.Unix(1_900_000_000, 0))
	c := nodetest.New(t, 3, func(cfg *node.Config) {
		nodetest.Steady(cfg)
		cfg.Clock = clock.Now
	})
	// Every call goes to one follower: writes are forwarded to the leader,
	// reads see them (read-your-writes within the session's HSM).
	i := c.Followers()[0].Index
	first := loginAdmin(t, c, i)
	_, err := first.cl.CreateUser(first.ctx, &hsmv1.CreateUserRequest{Username: "officer", Role: hsmv1.Role_ROLE_ADMIN, Password: officerPassword})
	require.NoError(t, err)
	admin := newQuorumAdmin(t, c, i, node.AdminUsername, nodetest.AdminPassword)
	officer := newQuorumAdmin(t, c, i, "officer", officerPassword)

	require.NoError(t, admin.createCU("eve", ""))
	eve := loginCU(t, c, i, "eve", userPassword)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384DER, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	refusals := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"register a P-384 key", func() error { return admin.register(p384DER) }, codes.InvalidArgument},
		{"register an RSA key", func() error { return admin.register(rsaDER) }, codes.InvalidArgument},
		{"register garbage", func() error { return admin.register([]byte("not a key")) }, codes.InvalidArgument},
		{"register nothing", func() error { return admin.register(nil) }, codes.InvalidArgument},
		{"a token for an unknown service", func() error {
			_, err := admin.cl.GenerateQuorumToken(admin.ctx, &hsmv1.GenerateQuorumTokenRequest{Service: "cluster"})
			return err
		}, codes.InvalidArgument},
		{"quorum value 9", func() error {
			_, err := admin.cl.SetQuorumValue(admin.ctx, &hsmv1.SetQuorumValueRequest{Service: "user", Value: 9})
			return err
		}, codes.InvalidArgument},
		{"a crypto user requests a token", func() error {
			_, err := eve.cl.GenerateQuorumToken(eve.ctx, &hsmv1.GenerateQuorumTokenRequest{Service: "user"})
			return err
		}, codes.PermissionDenied},
		{"a crypto user sets a quorum value", func() error {
			_, err := eve.cl.SetQuorumValue(eve.ctx, &hsmv1.SetQuorumValueRequest{Service: "user", Value: 1})
			return err
		}, codes.PermissionDenied},
		{"a crypto user registers a key", func() error {
			_, err := eve.cl.RegisterQuorumKey(eve.ctx, &hsmv1.RegisterQuorumKeyRequest{PublicKeyDer: p384DER})
			return err
		}, codes.PermissionDenied},
	}
	for _, tt := range refusals {
		requireCode(t, tt.call(), tt.code, tt.name)
	}

	// Raising "user" from 1 to 2 is guarded by the "quorum" service, at 1.
	_, err = admin.cl.SetQuorumValue(admin.ctx, &hsmv1.SetQuorumValueRequest{Service: "user", Value: 2})
	require.NoError(t, err)
	list, err := admin.cl.ListQuorumTokens(admin.ctx, &hsmv1.ListQuorumTokensRequest{})
	require.NoError(t, err)
	require.Equal(t, []string{"quorum:1", "user:2"}, quorumValues(list))

	err = admin.createCU("carol", "")
	st := requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "quorum token required")

	tok := admin.token(t, "user")
	require.Len(t, tok.GetChallenge(), 32)
	require.Equal(t, node.AdminUsername, tok.GetRequester())
	require.Equal(t, clock.Now().Add(10*time.Minute).Unix(), tok.GetExpiresAtUnix())

	// A signature by the wrong key does not count.
	_, err = admin.approve(tok, "officer", admin.sign(t, tok))
	requireCode(t, err, codes.PermissionDenied)
	// The requester approves its own token, once.
	got, err := admin.approve(tok, node.AdminUsername, admin.sign(t, tok))
	require.NoError(t, err)
	require.Equal(t, []string{node.AdminUsername}, got.GetApprovers())
	_, err = admin.approve(tok, node.AdminUsername, admin.sign(t, tok))
	requireCode(t, err, codes.AlreadyExists)

	err = admin.createCU("carol", tok.GetTokenId())
	st = requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "not enough approvals (1 of 2)")

	// The officer signs offline; any admin session submits the signature.
	got, err = admin.approve(tok, "officer", officer.sign(t, tok))
	require.NoError(t, err)
	require.Equal(t, []string{node.AdminUsername, "officer"}, got.GetApprovers())

	// Only the requester uses its token.
	err = officer.createCU("carol", tok.GetTokenId())
	st = requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "issued to")

	require.NoError(t, admin.createCU("carol", tok.GetTokenId()))
	loginCU(t, c, i, "carol", userPassword)

	// A used token is gone.
	err = admin.createCU("dave", tok.GetTokenId())
	st = requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "quorum token required")
	list, err = admin.cl.ListQuorumTokens(admin.ctx, &hsmv1.ListQuorumTokensRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetTokens())

	// A fully approved token expires 10 minutes after it was issued.
	expiring := admin.token(t, "user")
	for _, a := range []*quorumAdmin{admin, officer} {
		_, err := admin.approve(expiring, a.name, a.sign(t, expiring))
		require.NoError(t, err)
	}
	clock.Advance(11 * time.Minute)
	err = admin.createCU("dave", expiring.GetTokenId())
	st = requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "quorum token expired")

	// The other user commands are guarded too, and consume their token.
	approved := func(service string) string {
		tok := admin.token(t, service)
		for _, a := range []*quorumAdmin{admin, officer} {
			_, err := officer.approve(tok, a.name, a.sign(t, tok))
			require.NoError(t, err)
		}
		return tok.GetTokenId()
	}
	_, err = admin.cl.ChangePassword(admin.ctx, &hsmv1.ChangePasswordRequest{Username: "carol", NewPassword: "new-password-1"})
	requireCode(t, err, codes.PermissionDenied)
	_, err = admin.cl.ChangePassword(admin.ctx, &hsmv1.ChangePasswordRequest{Username: "carol", NewPassword: "new-password-1",
		QuorumTokenId: approved("user")})
	require.NoError(t, err)
	// A crypto user changes its own password without a token.
	carol := loginCU(t, c, i, "carol", "new-password-1")
	_, err = carol.cl.ChangePassword(carol.ctx, &hsmv1.ChangePasswordRequest{Username: "carol", NewPassword: userPassword})
	require.NoError(t, err)
	_, err = admin.cl.DeleteUser(admin.ctx, &hsmv1.DeleteUserRequest{Username: "carol"})
	requireCode(t, err, codes.PermissionDenied)
	_, err = admin.cl.DeleteUser(admin.ctx, &hsmv1.DeleteUserRequest{Username: "carol", QuorumTokenId: approved("user")})
	require.NoError(t, err)

	// The "quorum" service at 2 guards quorum values with its own tokens.
	_, err = admin.cl.SetQuorumValue(admin.ctx, &hsmv1.SetQuorumValueRequest{Service: "quorum", Value: 2})
	require.NoError(t, err)
	_, err = admin.cl.SetQuorumValue(admin.ctx, &hsmv1.SetQuorumValueRequest{Service: "user", Value: 1, QuorumTokenId: approved("user")})
	st = requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), `for the "user" service`)
	_, err = admin.cl.SetQuorumValue(admin.ctx, &hsmv1.SetQuorumValueRequest{Service: "user", Value: 1, QuorumTokenId: approved("quorum")})
	require.NoError(t, err)
	require.NoError(t, admin.createCU("dave", ""), "quorum 1: no token needed")

	// Every HSM holds the same tokens and values.
	c.WaitConverged()
	for j := range c.Nodes {
		s := loginAdmin(t, c, j)
		l, err := s.cl.ListQuorumTokens(s.ctx, &hsmv1.ListQuorumTokensRequest{})
		require.NoError(t, err)
		require.Equal(t, []string{"quorum:2", "user:1"}, quorumValues(l), "node %d", j)
	}
}

// quorumValues renders a listing's values as "service:value".
func quorumValues(l *hsmv1.ListQuorumTokensResponse) []string {
	var out []string
	for _, v := range l.GetValues() {
		out = append(out, fmt.Sprintf("%s:%d", v.GetService(), v.GetValue()))
	}
	return out
}
