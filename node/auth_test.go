package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// userInfo returns user's entry in ListUsers through s.
func userInfo(t *testing.T, s *userSession, user string) *hsmv1.UserInfo {
	t.Helper()
	resp, err := s.cl.ListUsers(s.ctx, &hsmv1.ListUsersRequest{})
	require.NoError(t, err)
	for _, u := range resp.GetUsers() {
		if u.GetUsername() == user {
			return u
		}
	}
	require.Failf(t, "user not listed", "user %q on node %d", user, s.i)
	return nil
}

// Five consecutive failed logins, wherever they happen, lock a user on every
// HSM; the lock holds against the right password; an admin's password reset
// unlocks. The failure counter is replicated, so the test waits for the
// replicas to converge before it checks another HSM: an HSM decides a login
// from its own replica.
func TestLockoutAfterFiveFailedLogins(t *testing.T) {
	const user = "carol"
	c := nodetest.New(t, 3)
	c.CreateCryptoUser(0, user, userPassword)
	c.WaitConverged()
	admins := make([]*userSession, len(c.Nodes))
	for i := range c.Nodes {
		admins[i] = loginAdmin(t, c, i)
	}
	fail := func(attempt int) {
		t.Helper()
		_, err := c.TryLogin(attempt%3, user, fmt.Sprintf("wrong-password-%d", attempt), hsmv1.Role_ROLE_CRYPTO_USER)
		st := requireCode(t, err, codes.PermissionDenied, "attempt %d", attempt)
		require.NotContains(t, st.Message(), "wrong-password")
	}

	// Failures must be consecutive: a successful login resets the counter.
	for attempt := range 4 {
		fail(attempt)
	}
	c.WaitConverged()
	require.EqualValues(t, 4, userInfo(t, admins[2], user).GetFailedLogins())
	c.Login(1, user, userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	c.WaitConverged()
	require.Zero(t, userInfo(t, admins[2], user).GetFailedLogins())

	for attempt := range 5 {
		fail(attempt)
	}
	c.WaitConverged()
	for i := range c.Nodes {
		_, err := c.TryLogin(i, user, userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		st := requireCode(t, err, codes.PermissionDenied, "node %d", i)
		require.Contains(t, st.Message(), "locked", "node %d", i)
		info := userInfo(t, admins[i], user)
		require.True(t, info.GetLocked(), "node %d", i)
		require.EqualValues(t, 5, info.GetFailedLogins(), "node %d: a login refused as locked is not counted", i)
	}

	const newPassword = "carol-password-2"
	_, err := admins[1].cl.ChangePassword(admins[1].ctx, &hsmv1.ChangePasswordRequest{Username: user, NewPassword: newPassword})
	require.NoError(t, err)
	c.WaitConverged()
	for i := range c.Nodes {
		c.Login(i, user, newPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		info := userInfo(t, admins[i], user)
		require.False(t, info.GetLocked(), "node %d", i)
		require.Zero(t, info.GetFailedLogins(), "node %d", i)
	}
}

// roleCase is one call that a role must not be allowed to make.
type roleCase struct {
	name string
	call func() error
	want codes.Code
}

func runRoleCases(t *testing.T, cases []roleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireCode(t, tc.call(), tc.want)
		})
	}
}

// Admins manage users and never touch keys; crypto users use keys and never
// manage users; a key is its owner's, shared keys can be used but not
// managed, and unshared keys are invisible to other crypto users. The
// unactivated admin can only activate the cluster (and read what every
// session may read: ListUsers, GenerateRandom, as CloudHSM lets every user
// list users).
func TestRoleSeparation(t *testing.T) {
	c := nodetest.New(t, 1)
	c.CreateCryptoUser(0, "alice", userPassword)
	c.CreateCryptoUser(0, "bob", userPassword)
	admin := loginAdmin(t, c, 0)
	alice := loginCU(t, c, 0, "alice", userPassword)
	bob := loginCU(t, c, 0, "bob", userPassword)
	cl := c.Client(0)
	key := alice.createAES(t, "alice's")
	ct := alice.encrypt(t, key, []byte("secret"))

	encrypt := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte("x")})
			return err
		}
	}
	decrypt := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: key, Mechanism: gcm, Ciphertext: ct, Aad: []byte("aad")})
			return err
		}
	}
	deleteKey := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: key})
			return err
		}
	}
	shareKey := func(ctx context.Context, with string) func() error {
		return func() error {
			_, err := cl.ShareKey(ctx, &hsmv1.ShareKeyRequest{Handle: key, Username: with})
			return err
		}
	}
	setLabel := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.SetAttribute(ctx, &hsmv1.SetAttributeRequest{Handle: key, Attribute: &hsmv1.SetAttributeRequest_Label{Label: "mine"}})
			return err
		}
	}
	getAttributes := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Handle: key})
			return err
		}
	}
	generate := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.GenerateSymmetricKey(ctx, aes256("x"))
			return err
		}
	}
	generatePair := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.GenerateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC, Curve: hsmv1.Curve_CURVE_P256})
			return err
		}
	}
	createUser := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.CreateUser(ctx, &hsmv1.CreateUserRequest{Username: "mallory", Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: userPassword})
			return err
		}
	}
	deleteUser := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.DeleteUser(ctx, &hsmv1.DeleteUserRequest{Username: "bob"})
			return err
		}
	}
	changeBobsPassword := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Username: "bob", NewPassword: "new-password-1"})
			return err
		}
	}
	activate := func(ctx context.Context) func() error {
		return func() error {
			_, err := cl.ActivateCluster(ctx, &hsmv1.ActivateClusterRequest{AdminPassword: "new-password-1"})
			return err
		}
	}

	t.Run("before sharing", func(t *testing.T) {
		runRoleCases(t, []roleCase{
			{"admin cannot encrypt", encrypt(admin.ctx), codes.PermissionDenied},
			{"admin cannot decrypt", decrypt(admin.ctx), codes.PermissionDenied},
			{"admin cannot generate a symmetric key", generate(admin.ctx), codes.PermissionDenied},
			{"admin cannot generate a key pair", generatePair(admin.ctx), codes.PermissionDenied},
			{"admin cannot delete a key", deleteKey(admin.ctx), codes.PermissionDenied},
			{"admin cannot share a key", shareKey(admin.ctx, "bob"), codes.PermissionDenied},
			{"admin cannot set an attribute", setLabel(admin.ctx), codes.PermissionDenied},
			{"admin cannot activate again", activate(admin.ctx), codes.PermissionDenied},
			{"crypto user cannot create a user", createUser(alice.ctx), codes.PermissionDenied},
			{"crypto user cannot delete a user", deleteUser(alice.ctx), codes.PermissionDenied},
			{"crypto user cannot change another user's password", changeBobsPassword(alice.ctx), codes.PermissionDenied},
			{"crypto user cannot activate", activate(alice.ctx), codes.PermissionDenied},
			{"non-owner cannot see an unshared key", getAttributes(bob.ctx), codes.NotFound},
			{"non-owner cannot encrypt with an unshared key", encrypt(bob.ctx), codes.NotFound},
			{"non-owner cannot decrypt with an unshared key", decrypt(bob.ctx), codes.NotFound},
			// A key the caller cannot see does not exist for it, whatever the call.
			{"non-owner cannot delete a key", deleteKey(bob.ctx), codes.NotFound},
			{"non-owner cannot share a key", shareKey(bob.ctx, "bob"), codes.NotFound},
			{"non-owner cannot set an attribute", setLabel(bob.ctx), codes.NotFound},
		})
		require.Empty(t, bob.handles(t), "bob must not find alice's unshared key")
	})

	_, err := cl.ShareKey(alice.ctx, &hsmv1.ShareKeyRequest{Handle: key, Username: "bob"})
	require.NoError(t, err)
	t.Run("shared", func(t *testing.T) {
		require.Equal(t, []uint64{key}, bob.handles(t))
		require.NoError(t, encrypt(bob.ctx)())
		require.Equal(t, []byte("secret"), bob.decrypt(t, key, ct))
		runRoleCases(t, []roleCase{
			{"shared user cannot delete", deleteKey(bob.ctx), codes.PermissionDenied},
			{"shared user cannot share on", shareKey(bob.ctx, "alice"), codes.PermissionDenied},
			{"shared user cannot set an attribute", setLabel(bob.ctx), codes.PermissionDenied},
		})
	})

	_, err = cl.UnshareKey(alice.ctx, &hsmv1.UnshareKeyRequest{Handle: key, Username: "bob"})
	require.NoError(t, err)
	t.Run("unshared", func(t *testing.T) {
		runRoleCases(t, []roleCase{
			{"unshared user cannot encrypt", encrypt(bob.ctx), codes.NotFound},
			{"unshared user cannot decrypt", decrypt(bob.ctx), codes.NotFound},
		})
		require.Empty(t, bob.handles(t))
		// The owner still can, and the key survived every refused call.
		require.Equal(t, []byte("secret"), alice.decrypt(t, key, ct))
		require.NoError(t, deleteKey(alice.ctx)())
	})

	t.Run("unactivated admin", func(t *testing.T) {
		u := nodetest.NewUninitialized(t)
		u.Initialize()
		pre := u.Login(0, node.AdminUsername, node.PreCOPassword, hsmv1.Role_ROLE_UNACTIVATED_ADMIN)
		ucl := u.Client(0)
		call := func(f func(context.Context) error) func() error { return func() error { return f(pre) } }
		runRoleCases(t, []roleCase{
			{"create user", call(func(ctx context.Context) error {
				_, err := ucl.CreateUser(ctx, &hsmv1.CreateUserRequest{Username: "mallory", Role: hsmv1.Role_ROLE_ADMIN, Password: userPassword})
				return err
			}), codes.PermissionDenied},
			{"delete user", call(func(ctx context.Context) error {
				_, err := ucl.DeleteUser(ctx, &hsmv1.DeleteUserRequest{Username: node.AdminUsername})
				return err
			}), codes.PermissionDenied},
			{"change password", call(func(ctx context.Context) error {
				_, err := ucl.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Username: node.AdminUsername, NewPassword: "new-password-1"})
				return err
			}), codes.PermissionDenied},
			{"generate key", call(func(ctx context.Context) error {
				_, err := ucl.GenerateSymmetricKey(ctx, aes256("x"))
				return err
			}), codes.PermissionDenied},
			{"generate key pair", call(func(ctx context.Context) error {
				_, err := ucl.GenerateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC, Curve: hsmv1.Curve_CURVE_P256})
				return err
			}), codes.PermissionDenied},
			{"find keys", call(func(ctx context.Context) error {
				_, err := ucl.FindKeys(ctx, &hsmv1.FindKeysRequest{})
				return err
			}), codes.PermissionDenied},
			{"get attributes", call(func(ctx context.Context) error {
				_, err := ucl.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Handle: 1})
				return err
			}), codes.PermissionDenied},
			{"encrypt", call(func(ctx context.Context) error {
				_, err := ucl.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: 1, Mechanism: gcm, Plaintext: []byte("x")})
				return err
			}), codes.PermissionDenied},
			{"admin login before activation", func() error {
				_, err := u.TryLogin(0, node.AdminUsername, node.PreCOPassword, hsmv1.Role_ROLE_ADMIN)
				return err
			}, codes.PermissionDenied},
		})
		_, err := ucl.ActivateCluster(pre, &hsmv1.ActivateClusterRequest{AdminPassword: nodetest.AdminPassword})
		require.NoError(t, err)
		loginAdmin(t, u, 0)
	})
}

// A session sees its own writes at once, on a follower too: the HSM waits
// until its replica has applied the session's last write.
func TestReadYourWrites(t *testing.T) {
	c := nodetest.New(t, 3)
	f := c.Followers()[0]
	admin := loginAdmin(t, c, f.Index)
	_, err := admin.cl.CreateUser(admin.ctx, &hsmv1.CreateUserRequest{Username: "dave", Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: userPassword})
	require.NoError(t, err)
	s := loginCU(t, c, f.Index, "dave", userPassword)

	for i := range 50 {
		h := s.createAES(t, fmt.Sprintf("ryw-%d", i))
		pt := []byte(fmt.Sprintf("message %d", i))
		require.Equal(t, pt, s.decrypt(t, h, s.encrypt(t, h, pt)), "key %d", h)
	}

	// Attribute changes and sharing are visible to the session at once too.
	h := s.createAES(t, "relabel")
	set, err := s.cl.SetAttribute(s.ctx, &hsmv1.SetAttributeRequest{Handle: h, Attribute: &hsmv1.SetAttributeRequest_Encrypt{Encrypt: false}})
	require.NoError(t, err)
	require.False(t, set.GetKey().GetEncrypt())
	_, err = s.cl.Encrypt(s.ctx, &hsmv1.EncryptRequest{Handle: h, Mechanism: gcm, Plaintext: []byte("x")})
	requireCode(t, err, codes.PermissionDenied)
	_, err = s.cl.DeleteKey(s.ctx, &hsmv1.DeleteKeyRequest{Handle: h})
	require.NoError(t, err)
	_, err = s.cl.GetAttributes(s.ctx, &hsmv1.GetAttributesRequest{Handle: h})
	requireCode(t, err, codes.NotFound)
}

// TestLoginWaitsForTheCallersIndex checks that a login is checked against
// a replica that has applied the index it carries (MetadataIndex): a
// password changed through the leader and used at once on a follower that
// has not heard of the change yet waits there (Unavailable if the replica
// does not catch up in time), then opens a session, instead of failing
// and counting towards the user's lock.
func TestLoginWaitsForTheCallersIndex(t *testing.T) {
	const user, newPassword = "erin", "erin-password-2"
	c := nodetest.New(t, 3)
	leader := c.Leader()
	c.CreateCryptoUser(leader.Index, user, userPassword)
	c.WaitConverged()
	admin := loginAdmin(t, c, leader.Index)
	f := c.Followers()[0]
	c.CutOff(f.Index)

	var header metadata.MD
	_, err := admin.cl.ChangePassword(admin.ctx, &hsmv1.ChangePasswordRequest{Username: user, NewPassword: newPassword}, grpc.Header(&header))
	require.NoError(t, err)
	require.Len(t, header.Get(node.MetadataIndex), 1)
	ctx := metadata.AppendToOutgoingContext(context.Background(), node.MetadataIndex, header.Get(node.MetadataIndex)[0])
	login := func() error {
		_, err := c.Client(f.Index).Login(ctx, &hsmv1.LoginRequest{Username: user, Password: newPassword, Role: hsmv1.Role_ROLE_CRYPTO_USER})
		return err
	}

	requireCode(t, login(), codes.Unavailable, "the follower cannot apply the change while cut off")
	loggedIn := make(chan error, 1)
	go func() { loggedIn <- login() }()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, c.Heal())
	require.NoError(t, <-loggedIn, "the login waited for the change, which arrived once healed")
	c.WaitConverged()
	require.Zero(t, userInfo(t, admin, user).GetFailedLogins())
}
