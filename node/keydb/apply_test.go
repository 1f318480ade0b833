package keydb_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

const (
	codeOK           = hsmfsmv1.Code_CODE_OK
	codeNotFound     = hsmfsmv1.Code_CODE_NOT_FOUND
	codeExists       = hsmfsmv1.Code_CODE_ALREADY_EXISTS
	codeDenied       = hsmfsmv1.Code_CODE_PERMISSION_DENIED
	codePrecondition = hsmfsmv1.Code_CODE_FAILED_PRECONDITION
	codeInvalid      = hsmfsmv1.Code_CODE_INVALID_ARGUMENT
)

// with returns a copy of a command changed by edit.
func with[M proto.Message](m M, edit func(M)) M {
	c := proto.CloneOf(m)
	edit(c)
	return c
}

func editInit(edit func(*hsmfsmv1.InitCluster)) *hsmfsmv1.Command {
	c := initCmd()
	edit(c.GetInitCluster())
	return c
}

func editAES(edit func(*hsmv1.KeyAttributes)) *hsmfsmv1.Command {
	t := aesTemplate("new-aes")
	edit(t)
	return createKeyCmd(alice, t, []byte("sealed-new"))
}

func editPair(edit func(c *hsmfsmv1.CreateKey)) *hsmfsmv1.Command {
	c := ecPairCmd(alice, "new-ec")
	edit(c.GetCreateKey())
	return c
}

func labelAttr(l string) func(*hsmfsmv1.SetKeyAttribute) {
	return func(c *hsmfsmv1.SetKeyAttribute) { c.Attribute = &hsmfsmv1.SetKeyAttribute_Label{Label: l} }
}

func idAttr(id string) func(*hsmfsmv1.SetKeyAttribute) {
	return func(c *hsmfsmv1.SetKeyAttribute) { c.Attribute = &hsmfsmv1.SetKeyAttribute_Id{Id: []byte(id)} }
}

func extractableAttr(v bool) func(*hsmfsmv1.SetKeyAttribute) {
	return func(c *hsmfsmv1.SetKeyAttribute) { c.Attribute = &hsmfsmv1.SetKeyAttribute_Extractable{Extractable: v} }
}

// TestApplyCodes applies one command to a fixture (after optional setup
// commands) and checks the result's code.
func TestApplyCodes(t *testing.T) {
	longName := strings.Repeat("a", keydb.MaxUsernameLen+1)
	tests := []struct {
		name  string
		stage stage
		setup []*hsmfsmv1.Command
		cmd   *hsmfsmv1.Command
		want  hsmfsmv1.Code
	}{
		{"empty command", stageActive, nil, &hsmfsmv1.Command{}, codeInvalid},
		{"nil command", stageActive, nil, nil, codeInvalid},

		{"init ok", stageEmpty, nil, initCmd(), codeOK},
		{"init without first member", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.FirstMember = nil }), codeOK},
		{"init twice", stageInitialized, nil, initCmd(), codePrecondition},
		{"init after activation", stageActive, nil, initCmd(), codePrecondition},
		{"init without cluster id", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.ClusterId = "" }), codeInvalid},
		{"init without certificate", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.ClusterCertPem = "" }), codeInvalid},
		{"init without trust anchor", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.TrustAnchorPem = "" }), codeInvalid},
		{"init bad admin name", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.AdminUsername = "ad min" }), codeInvalid},
		{"init without password hash", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.AdminPasswordHash = "" }), codeInvalid},
		{"init bad first member", stageEmpty, nil, editInit(func(c *hsmfsmv1.InitCluster) { c.FirstMember.DeviceCertSha256 = nil }), codeInvalid},

		{"activate ok", stageInitialized, nil, activateCmd("h"), codeOK},
		{"activate before init", stageEmpty, nil, activateCmd("h"), codePrecondition},
		{"activate twice", stageActive, nil, activateCmd("h"), codePrecondition},
		{"activate without hash", stageInitialized, nil, activateCmd(""), codeInvalid},

		{"create user ok", stageActive, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), codeOK},
		{"create admin ok", stageActive, nil, createUserCmd(officer, "dave", hsmv1.Role_ROLE_ADMIN), codeOK},
		{"create user 31 chars", stageActive, nil, createUserCmd(admin, longName[1:], hsmv1.Role_ROLE_CRYPTO_USER), codeOK},
		{"create user charset", stageActive, nil, createUserCmd(admin, "Az09_-", hsmv1.Role_ROLE_CRYPTO_USER), codeOK},
		{"create user before init", stageEmpty, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), codePrecondition},
		{"create user before activation", stageInitialized, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), codePrecondition},
		{"create user 32 chars", stageActive, nil, createUserCmd(admin, longName, hsmv1.Role_ROLE_CRYPTO_USER), codeInvalid},
		{"create user empty name", stageActive, nil, createUserCmd(admin, "", hsmv1.Role_ROLE_CRYPTO_USER), codeInvalid},
		{"create user bad char", stageActive, nil, createUserCmd(admin, "da.ve", hsmv1.Role_ROLE_CRYPTO_USER), codeInvalid},
		{"create user non-ascii", stageActive, nil, createUserCmd(admin, "dävé", hsmv1.Role_ROLE_CRYPTO_USER), codeInvalid},
		{"create unactivated admin", stageActive, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_UNACTIVATED_ADMIN), codeInvalid},
		{"create appliance user", stageActive, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_APPLIANCE), codeInvalid},
		{"create user no role", stageActive, nil, createUserCmd(admin, "dave", hsmv1.Role_ROLE_UNSPECIFIED), codeInvalid},
		{"create user no hash", stageActive, nil, with(createUserCmd(admin, "dave", hsmv1.Role_ROLE_CRYPTO_USER), func(c *hsmfsmv1.Command) { c.GetCreateUser().PasswordHash = "" }), codeInvalid},
		{"create user by crypto user", stageActive, nil, createUserCmd(alice, "dave", hsmv1.Role_ROLE_CRYPTO_USER), codeDenied},
		{"create user by unknown actor", stageActive, nil, createUserCmd("ghost", "dave", hsmv1.Role_ROLE_CRYPTO_USER), codeDenied},
		{"create existing user", stageActive, nil, createUserCmd(admin, bob, hsmv1.Role_ROLE_CRYPTO_USER), codeExists},

		{"delete user ok", stageActive, nil, deleteUserCmd(admin, bob), codeOK},
		{"delete other admin", stageActive, nil, deleteUserCmd(admin, officer), codeOK},
		{"delete user before activation", stageInitialized, nil, deleteUserCmd(admin, bob), codePrecondition},
		{"delete missing user", stageActive, nil, deleteUserCmd(admin, "ghost"), codeNotFound},
		{"delete user by crypto user", stageActive, nil, deleteUserCmd(alice, bob), codeDenied},
		{"delete user owning keys", stageActive, nil, deleteUserCmd(admin, alice), codePrecondition},
		{"delete last admin", stageActive, []*hsmfsmv1.Command{deleteUserCmd(admin, officer)}, deleteUserCmd(admin, admin), codePrecondition},
		{"delete user after its keys", stageActive, []*hsmfsmv1.Command{deleteKeyCmd(alice, aliceKey), deleteKeyCmd(alice, alicePriv), deleteKeyCmd(alice, alicePub)}, deleteUserCmd(admin, alice), codeOK},

		{"set password by admin", stageActive, nil, setPasswordCmd(admin, alice, "h2"), codeOK},
		{"set own password", stageActive, nil, setPasswordCmd(alice, alice, "h2"), codeOK},
		{"set password before activation", stageInitialized, nil, setPasswordCmd(admin, admin, "h2"), codePrecondition},
		{"set other's password", stageActive, nil, setPasswordCmd(alice, bob, "h2"), codeDenied},
		{"set password by unknown actor", stageActive, nil, setPasswordCmd("ghost", "ghost", "h2"), codeDenied},
		{"set password of missing user", stageActive, nil, setPasswordCmd(admin, "ghost", "h2"), codeNotFound},
		{"set empty password hash", stageActive, nil, setPasswordCmd(admin, alice, ""), codeInvalid},

		{"login failure ok", stageActive, nil, loginFailureCmd(alice), codeOK},
		{"login failure before activation", stageInitialized, nil, loginFailureCmd(admin), codeOK},
		{"login failure before init", stageEmpty, nil, loginFailureCmd(admin), codePrecondition},
		{"login failure missing user", stageActive, nil, loginFailureCmd("ghost"), codeNotFound},
		{"reset failures ok", stageActive, nil, resetFailuresCmd(alice), codeOK},
		{"reset failures before init", stageEmpty, nil, resetFailuresCmd(admin), codePrecondition},
		{"reset failures missing user", stageActive, nil, resetFailuresCmd("ghost"), codeNotFound},

		{"create key ok", stageActive, nil, aesKeyCmd(bob, "bob-aes"), codeOK},
		{"create key without id", stageActive, nil, aesKeyCmd(bob, ""), codeOK},
		{"create hmac key", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Type = hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET }), codeOK},
		{"create pair ok", stageActive, nil, ecPairCmd(bob, "bob-ec"), codeOK},
		{"create pair with distinct ids", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.PublicTemplate.Id = []byte("other") }), codeOK},
		{"create rsa pair", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			for _, t := range []*hsmv1.KeyAttributes{c.Template, c.PublicTemplate} {
				t.Type, t.Curve, t.SizeBits = hsmv1.KeyType_KEY_TYPE_RSA, hsmv1.Curve_CURVE_UNSPECIFIED, 2048
			}
		}), codeOK},
		{"import public key", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			c.Template, c.Pair, c.PublicTemplate, c.SealedMaterial = c.PublicTemplate, false, nil, nil
		}), codeOK},
		{"create key with owner set to actor", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Owner = alice }), codeOK},
		{"create key before activation", stageInitialized, nil, aesKeyCmd(admin, "x"), codePrecondition},
		{"create key by admin", stageActive, nil, aesKeyCmd(admin, "x"), codeDenied},
		{"create key by unknown actor", stageActive, nil, aesKeyCmd("ghost", "x"), codeDenied},
		{"create key without template", stageActive, nil, createKeyCmd(alice, nil, []byte("s")), codeInvalid},
		{"create key with handle", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Handle = 99 }), codeInvalid},
		{"create key with pair handle", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.PairHandle = 99 }), codeInvalid},
		{"create key with shares", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.SharedUsers = []string{bob} }), codeInvalid},
		{"create key for another owner", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Owner = bob }), codeInvalid},
		{"create key long label", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Label = strings.Repeat("l", keydb.MaxLabelLen+1) }), codeInvalid},
		{"create key long id", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Id = bytes.Repeat([]byte{1}, keydb.MaxKeyIDLen+1) }), codeInvalid},
		{"create key no class", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Class = hsmv1.KeyClass_KEY_CLASS_UNSPECIFIED }), codeInvalid},
		{"create secret RSA key", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Type = hsmv1.KeyType_KEY_TYPE_RSA }), codeInvalid},
		{"create AES key with curve", stageActive, nil, editAES(func(t *hsmv1.KeyAttributes) { t.Curve = hsmv1.Curve_CURVE_P256 }), codeInvalid},
		{"create secret key without material", stageActive, nil, createKeyCmd(alice, aesTemplate("x"), nil), codeInvalid},
		{"create private key alone without material", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			c.Pair, c.PublicTemplate, c.SealedMaterial = false, nil, nil
		}), codeInvalid},
		{"create public key with material", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			c.Template, c.Pair, c.PublicTemplate = c.PublicTemplate, false, nil
		}), codeInvalid},
		{"create public key without key", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			c.Template, c.Pair, c.PublicTemplate, c.SealedMaterial = c.PublicTemplate, false, nil, nil
			c.Template.PublicKey = nil
		}), codeInvalid},
		{"create EC key without curve", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.Template.Curve = hsmv1.Curve_CURVE_UNSPECIFIED }), codeInvalid},
		{"create pair with swapped classes", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.Template, c.PublicTemplate = c.PublicTemplate, c.Template }), codeInvalid},
		{"create pair with mismatched curve", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.PublicTemplate.Curve = hsmv1.Curve_CURVE_P384 }), codeInvalid},
		{"create pair without public key", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.PublicTemplate.PublicKey = nil }), codeInvalid},
		{"create pair without material", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.SealedMaterial = nil }), codeInvalid},
		{"create pair without public template", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.PublicTemplate = nil }), codeInvalid},
		{"create key with stray public template", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) {
			c.Template, c.Pair = aesTemplate("x"), false
		}), codeInvalid},
		{"create key duplicate id", stageActive, nil, aesKeyCmd(bob, "alice-aes"), codeExists},
		{"create pair duplicate id", stageActive, nil, ecPairCmd(bob, "alice-ec"), codeExists},
		{"create pair public id taken", stageActive, nil, editPair(func(c *hsmfsmv1.CreateKey) { c.PublicTemplate.Id = []byte("alice-aes") }), codeExists},

		{"delete key ok", stageActive, nil, deleteKeyCmd(alice, aliceKey), codeOK},
		{"delete key before activation", stageInitialized, nil, deleteKeyCmd(admin, 1), codePrecondition},
		{"delete missing key", stageActive, nil, deleteKeyCmd(alice, 99), codeNotFound},
		{"delete key by non-owner", stageActive, nil, deleteKeyCmd(bob, aliceKey), codeDenied},
		{"delete shared key by non-owner", stageActive, []*hsmfsmv1.Command{shareCmd(alice, aliceKey, bob)}, deleteKeyCmd(bob, aliceKey), codeDenied},
		{"delete key by admin", stageActive, nil, deleteKeyCmd(admin, aliceKey), codeDenied},
		{"delete key by unknown actor", stageActive, nil, deleteKeyCmd("ghost", aliceKey), codeDenied},
		{"delete deleted key", stageActive, []*hsmfsmv1.Command{deleteKeyCmd(alice, aliceKey)}, deleteKeyCmd(alice, aliceKey), codeNotFound},

		{"set label", stageActive, nil, setAttrCmd(alice, aliceKey, labelAttr("new")), codeOK},
		{"set empty label", stageActive, nil, setAttrCmd(alice, aliceKey, labelAttr("")), codeOK},
		{"set id", stageActive, nil, setAttrCmd(alice, aliceKey, idAttr("fresh")), codeOK},
		{"set same id", stageActive, nil, setAttrCmd(alice, aliceKey, idAttr("alice-aes")), codeOK},
		{"set id to pair's", stageActive, []*hsmfsmv1.Command{setAttrCmd(alice, alicePub, idAttr("pub"))}, setAttrCmd(alice, alicePub, idAttr("alice-ec")), codeOK},
		{"clear id", stageActive, nil, setAttrCmd(alice, aliceKey, idAttr("")), codeOK},
		{"set extractable off", stageActive, nil, setAttrCmd(alice, aliceKey, extractableAttr(false)), codeOK},
		{"set extractable on while on", stageActive, nil, setAttrCmd(alice, aliceKey, extractableAttr(true)), codeOK},
		{"set flag", stageActive, nil, setAttrCmd(alice, aliceKey, func(c *hsmfsmv1.SetKeyAttribute) {
			c.Attribute = &hsmfsmv1.SetKeyAttribute_Wrap{Wrap: true}
		}), codeOK},
		{"set attribute before activation", stageInitialized, nil, setAttrCmd(admin, 1, labelAttr("x")), codePrecondition},
		{"set extractable back on", stageActive, []*hsmfsmv1.Command{setAttrCmd(alice, aliceKey, extractableAttr(false))}, setAttrCmd(alice, aliceKey, extractableAttr(true)), codePrecondition},
		{"set no attribute", stageActive, nil, setAttrCmd(alice, aliceKey, nil), codeInvalid},
		{"set long label", stageActive, nil, setAttrCmd(alice, aliceKey, labelAttr(strings.Repeat("l", keydb.MaxLabelLen+1))), codeInvalid},
		{"set long id", stageActive, nil, setAttrCmd(alice, aliceKey, idAttr(strings.Repeat("i", keydb.MaxKeyIDLen+1))), codeInvalid},
		{"set id taken", stageActive, nil, setAttrCmd(alice, aliceKey, idAttr("alice-ec")), codeExists},
		{"set attribute of missing key", stageActive, nil, setAttrCmd(alice, 99, labelAttr("x")), codeNotFound},
		{"set attribute by non-owner", stageActive, nil, setAttrCmd(bob, aliceKey, labelAttr("x")), codeDenied},

		{"share ok", stageActive, nil, shareCmd(alice, aliceKey, bob), codeOK},
		{"share before activation", stageInitialized, nil, shareCmd(admin, 1, bob), codePrecondition},
		{"share twice", stageActive, []*hsmfsmv1.Command{shareCmd(alice, aliceKey, bob)}, shareCmd(alice, aliceKey, bob), codeExists},
		{"share with missing user", stageActive, nil, shareCmd(alice, aliceKey, "ghost"), codeNotFound},
		{"share with admin", stageActive, nil, shareCmd(alice, aliceKey, officer), codePrecondition},
		{"share with owner", stageActive, nil, shareCmd(alice, aliceKey, alice), codePrecondition},
		{"share missing key", stageActive, nil, shareCmd(alice, 99, bob), codeNotFound},
		{"share by non-owner", stageActive, []*hsmfsmv1.Command{shareCmd(alice, aliceKey, bob)}, shareCmd(bob, aliceKey, carol), codeDenied},

		{"unshare ok", stageActive, []*hsmfsmv1.Command{shareCmd(alice, aliceKey, bob)}, unshareCmd(alice, aliceKey, bob), codeOK},
		{"unshare before activation", stageInitialized, nil, unshareCmd(admin, 1, bob), codePrecondition},
		{"unshare not shared", stageActive, nil, unshareCmd(alice, aliceKey, bob), codeNotFound},
		{"unshare missing key", stageActive, nil, unshareCmd(alice, 99, bob), codeNotFound},
		{"unshare by non-owner", stageActive, []*hsmfsmv1.Command{shareCmd(alice, aliceKey, bob)}, unshareCmd(bob, aliceKey, bob), codeDenied},

		{"admit ok", stageActive, nil, admitCmd(member("hsm-2", 2)), codeOK},
		{"admit before activation", stageInitialized, nil, admitCmd(member("hsm-2", 2)), codeOK},
		{"admit before init", stageEmpty, nil, admitCmd(member("hsm-2", 2)), codePrecondition},
		{"admit twice", stageActive, nil, admitCmd(member("hsm-1", 2)), codeExists},
		{"admit same device", stageActive, nil, admitCmd(member("hsm-2", 1)), codeExists},
		{"admit no member", stageActive, nil, admitCmd(nil), codeInvalid},
		{"admit no node id", stageActive, nil, admitCmd(member("", 2)), codeInvalid},
		{"admit no az", stageActive, nil, admitCmd(with(member("hsm-2", 2), func(m *hsmfsmv1.Member) { m.Az = "" })), codeInvalid},
		{"admit no address", stageActive, nil, admitCmd(with(member("hsm-2", 2), func(m *hsmfsmv1.Member) { m.RaftAddress = "" })), codeInvalid},
		{"admit short fingerprint", stageActive, nil, admitCmd(with(member("hsm-2", 2), func(m *hsmfsmv1.Member) { m.DeviceCertSha256 = []byte{1} })), codeInvalid},
		{"remove member ok", stageActive, nil, removeMemberCmd("hsm-1"), codeOK},
		{"remove member before init", stageEmpty, nil, removeMemberCmd("hsm-1"), codePrecondition},
		{"remove missing member", stageActive, nil, removeMemberCmd("hsm-9"), codeNotFound},

		{"quorum disable", stageActive, nil, quorumCmd(admin, keydb.ServiceUser, 1), codeOK},
		{"quorum 2 with two registered admins", stageActive, []*hsmfsmv1.Command{quorumKeyCmd(admin, []byte("k1")), quorumKeyCmd(officer, []byte("k2"))}, quorumCmd(admin, keydb.ServiceQuorum, 2), codeOK},
		{"quorum before activation", stageInitialized, nil, quorumCmd(admin, keydb.ServiceUser, 1), codePrecondition},
		{"quorum 2 with one registered admin", stageActive, []*hsmfsmv1.Command{quorumKeyCmd(admin, []byte("k1")), quorumKeyCmd(alice, []byte("k2"))}, quorumCmd(admin, keydb.ServiceUser, 2), codePrecondition},
		{"quorum 0", stageActive, nil, quorumCmd(admin, keydb.ServiceUser, 0), codeInvalid},
		{"quorum 9", stageActive, nil, quorumCmd(admin, keydb.ServiceUser, 9), codeInvalid},
		{"quorum unknown service", stageActive, nil, quorumCmd(admin, "cluster", 1), codeInvalid},
		{"quorum by crypto user", stageActive, nil, quorumCmd(alice, keydb.ServiceUser, 1), codeDenied},

		{"register quorum key", stageActive, nil, quorumKeyCmd(alice, []byte("der")), codeOK},
		{"register quorum key again", stageActive, []*hsmfsmv1.Command{quorumKeyCmd(alice, []byte("der"))}, quorumKeyCmd(alice, []byte("der2")), codeOK},
		{"register quorum key before activation", stageInitialized, nil, quorumKeyCmd(admin, []byte("der")), codePrecondition},
		{"register empty quorum key", stageActive, nil, quorumKeyCmd(alice, nil), codeInvalid},
		{"register huge quorum key", stageActive, nil, quorumKeyCmd(alice, make([]byte, keydb.MaxQuorumKeyLen+1)), codeInvalid},
		{"register quorum key unknown actor", stageActive, nil, quorumKeyCmd("ghost", []byte("der")), codeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.stage)
			for _, c := range tt.setup {
				h.mustOK(c)
			}
			before := h.snapshot()
			res := h.apply(tt.cmd)
			require.Equal(t, tt.want, res.GetCode(), "message: %s", res.GetMessage())
			require.Equal(t, h.index, h.db.AppliedIndex())
			if tt.want != codeOK {
				require.NotEmpty(t, res.GetMessage())
				require.NotContains(t, res.GetMessage(), "hash-", "a failure message must not carry a password hash")
				require.NotContains(t, res.GetMessage(), "sealed-", "a failure message must not carry key material")
				// A failure changes nothing but the applied index.
				restored := keydb.New()
				require.NoError(t, restored.Restore(before))
				restored.Apply(h.index, tt.cmd)
				require.Equal(t, h.snapshot(), mustSnapshot(t, restored))
			}
		})
	}
}

func mustSnapshot(t *testing.T, db *keydb.DB) []byte {
	t.Helper()
	b, err := db.Snapshot()
	require.NoError(t, err)
	return b
}

func TestInitAndActivate(t *testing.T) {
	h := newHarness(t, stageEmpty)
	require.Equal(t, keydb.ClusterInfo{State: hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED}, h.db.Cluster())

	h.mustOK(initCmd())
	c := h.db.Cluster()
	require.Equal(t, hsmfsmv1.ClusterState_CLUSTER_STATE_INITIALIZED, c.State)
	require.Equal(t, "cluster-test", c.ID)
	require.NotEmpty(t, c.CertPEM)
	require.NotEmpty(t, c.TrustAnchorPEM)
	u, found := h.db.User(admin)
	require.True(t, found)
	require.Equal(t, hsmv1.Role_ROLE_UNACTIVATED_ADMIN, u.Info.GetRole())
	require.Equal(t, "hash-preco", u.PasswordHash)
	require.Len(t, h.db.Members(), 1)

	h.mustOK(activateCmd("hash-new"))
	require.Equal(t, hsmfsmv1.ClusterState_CLUSTER_STATE_ACTIVE, h.db.Cluster().State)
	u, _ = h.db.User(admin)
	require.Equal(t, hsmv1.Role_ROLE_ADMIN, u.Info.GetRole())
	require.Equal(t, "hash-new", u.PasswordHash)

	res := h.apply(activateCmd("again"))
	require.Equal(t, codePrecondition, res.GetCode())
	require.Equal(t, "cluster already activated", res.GetMessage())
}

func TestLockout(t *testing.T) {
	h := newHarness(t, stageActive)
	for i := 1; i < keydb.MaxLoginFailures; i++ {
		h.mustOK(loginFailureCmd(alice))
		u, _ := h.db.User(alice)
		require.False(t, u.Info.GetLocked(), "after %d failures", i)
		require.EqualValues(t, i, u.Info.GetFailedLogins())
	}
	// A successful login resets the count: the next 4 do not lock either.
	h.mustOK(resetFailuresCmd(alice))
	u, _ := h.db.User(alice)
	require.Zero(t, u.Info.GetFailedLogins())

	for range keydb.MaxLoginFailures {
		h.mustOK(loginFailureCmd(alice))
	}
	u, _ = h.db.User(alice)
	require.True(t, u.Info.GetLocked())
	require.EqualValues(t, keydb.MaxLoginFailures, u.Info.GetFailedLogins())

	// Resetting the counter does not unlock; an admin's password reset does.
	h.mustOK(resetFailuresCmd(alice))
	u, _ = h.db.User(alice)
	require.True(t, u.Info.GetLocked())

	h.mustOK(loginFailureCmd(alice))
	h.mustOK(setPasswordCmd(officer, alice, "hash-reset"))
	u, _ = h.db.User(alice)
	require.False(t, u.Info.GetLocked())
	require.Zero(t, u.Info.GetFailedLogins())
	require.Equal(t, "hash-reset", u.PasswordHash)

	// A user's own change keeps the counter (it does not unlock either).
	h.mustOK(loginFailureCmd(bob))
	h.mustOK(setPasswordCmd(bob, bob, "hash-bob-2"))
	u, _ = h.db.User(bob)
	require.EqualValues(t, 1, u.Info.GetFailedLogins())
	require.Equal(t, "hash-bob-2", u.PasswordHash)
}

func TestCreateKey(t *testing.T) {
	h := newHarness(t, stageActive)

	k, found := h.db.Key(aliceKey)
	require.True(t, found)
	a := k.Attributes
	require.Equal(t, aliceKey, a.GetHandle())
	require.Equal(t, alice, a.GetOwner())
	require.True(t, a.GetToken(), "every stored key is a token key")
	require.Equal(t, []byte("alice-aes"), a.GetId())
	require.Equal(t, []byte{1, 2, 3}, a.GetKcv())
	require.Equal(t, []byte("sealed-alice-aes"), k.SealedMaterial)

	priv, found := h.db.Key(alicePriv)
	require.True(t, found)
	pub, found := h.db.Key(alicePub)
	require.True(t, found)
	require.Equal(t, alicePub, priv.Attributes.GetPairHandle())
	require.Equal(t, alicePriv, pub.Attributes.GetPairHandle())
	require.Equal(t, hsmv1.KeyClass_KEY_CLASS_PRIVATE, priv.Attributes.GetClass())
	require.Equal(t, hsmv1.KeyClass_KEY_CLASS_PUBLIC, pub.Attributes.GetClass())
	require.Equal(t, []byte("sealed-alice-ec"), priv.SealedMaterial)
	require.Empty(t, pub.SealedMaterial)
	require.Equal(t, []byte("spki-alice-ec"), pub.Attributes.GetPublicKey())

	// Handles keep counting after a failure and a deletion.
	require.Equal(t, codeExists, h.apply(aesKeyCmd(bob, "alice-aes")).GetCode())
	h.mustOK(deleteKeyCmd(alice, aliceKey))
	res := h.mustOK(aesKeyCmd(bob, "alice-aes")) // the id is free again
	require.EqualValues(t, 4, res.GetHandle())
	require.Zero(t, res.GetPublicHandle())
	_, found = h.db.Key(aliceKey)
	require.False(t, found)
	require.Equal(t, 3, h.db.Counts().Keys)
}

func TestDeletePairHalf(t *testing.T) {
	h := newHarness(t, stageActive)
	h.mustOK(deleteKeyCmd(alice, alicePriv))
	pub, found := h.db.Key(alicePub)
	require.True(t, found, "deleting one half leaves the other")
	require.Zero(t, pub.Attributes.GetPairHandle(), "the remaining half is unlinked")
	require.Equal(t, []byte("alice-ec"), pub.Attributes.GetId())
	// The id stays taken by the remaining half.
	require.Equal(t, codeExists, h.apply(aesKeyCmd(bob, "alice-ec")).GetCode())
	h.mustOK(deleteKeyCmd(alice, alicePub))
	h.mustOK(aesKeyCmd(bob, "alice-ec"))
}

func TestSetKeyAttribute(t *testing.T) {
	h := newHarness(t, stageActive)
	h.mustOK(setAttrCmd(alice, aliceKey, labelAttr("renamed")))
	h.mustOK(setAttrCmd(alice, aliceKey, idAttr("new-id")))
	h.mustOK(setAttrCmd(alice, aliceKey, extractableAttr(false)))
	h.mustOK(setAttrCmd(alice, aliceKey, func(c *hsmfsmv1.SetKeyAttribute) {
		c.Attribute = &hsmfsmv1.SetKeyAttribute_Decrypt{Decrypt: false}
	}))
	h.mustOK(setAttrCmd(alice, alicePriv, func(c *hsmfsmv1.SetKeyAttribute) {
		c.Attribute = &hsmfsmv1.SetKeyAttribute_Unwrap{Unwrap: true}
	}))
	h.mustOK(setAttrCmd(alice, alicePub, func(c *hsmfsmv1.SetKeyAttribute) {
		c.Attribute = &hsmfsmv1.SetKeyAttribute_Verify{Verify: false}
	}))
	k, _ := h.db.Key(aliceKey)
	require.Equal(t, "renamed", k.Attributes.GetLabel())
	require.Equal(t, []byte("new-id"), k.Attributes.GetId())
	require.False(t, k.Attributes.GetExtractable())
	require.False(t, k.Attributes.GetDecrypt())
	require.True(t, k.Attributes.GetEncrypt())
	priv, _ := h.db.Key(alicePriv)
	require.True(t, priv.Attributes.GetUnwrap())
	pub, _ := h.db.Key(alicePub)
	require.False(t, pub.Attributes.GetVerify())

	// The old id is free, the new one taken.
	h.mustOK(aesKeyCmd(bob, "alice-aes"))
	require.Equal(t, codeExists, h.apply(aesKeyCmd(bob, "new-id")).GetCode())
	require.Len(t, h.db.FindKeys(keydb.KeyFilter{ID: []byte("new-id")}), 1)
}

func TestShareAndDeleteUser(t *testing.T) {
	h := newHarness(t, stageActive)
	// Shares are kept sorted whatever the order.
	h.mustOK(shareCmd(alice, aliceKey, carol))
	h.mustOK(shareCmd(alice, aliceKey, bob))
	k, _ := h.db.Key(aliceKey)
	require.Equal(t, []string{bob, carol}, k.Attributes.GetSharedUsers())

	require.Len(t, h.db.FindKeys(keydb.KeyFilter{UsableBy: bob}), 1)
	h.mustOK(unshareCmd(alice, aliceKey, carol))
	require.Empty(t, h.db.FindKeys(keydb.KeyFilter{UsableBy: carol}))

	// A deleted user loses its shares; a new user of the same name has none.
	h.mustOK(deleteUserCmd(admin, bob))
	k, _ = h.db.Key(aliceKey)
	require.Empty(t, k.Attributes.GetSharedUsers())
	h.mustOK(createUserCmd(admin, bob, hsmv1.Role_ROLE_CRYPTO_USER))
	require.Empty(t, h.db.FindKeys(keydb.KeyFilter{UsableBy: bob}))
	_, found := h.db.User(bob)
	require.True(t, found)
}

func TestQuorum(t *testing.T) {
	h := newHarness(t, stageActive)
	require.EqualValues(t, 1, h.db.QuorumValue(keydb.ServiceUser))
	h.mustOK(quorumKeyCmd(admin, []byte("k-admin")))
	h.mustOK(quorumKeyCmd(officer, []byte("k-officer")))
	u, _ := h.db.User(officer)
	require.Equal(t, []byte("k-officer"), u.Info.GetQuorumPublicKey())

	h.mustOK(quorumCmd(admin, keydb.ServiceUser, 2))
	require.EqualValues(t, 2, h.db.QuorumValue(keydb.ServiceUser))
	require.EqualValues(t, 1, h.db.QuorumValue(keydb.ServiceQuorum))
	require.Equal(t, codePrecondition, h.apply(quorumCmd(admin, keydb.ServiceUser, 3)).GetCode())
	h.mustOK(quorumCmd(admin, keydb.ServiceUser, 1))
	require.EqualValues(t, 1, h.db.QuorumValue(keydb.ServiceUser))
}

func TestMembers(t *testing.T) {
	h := newHarness(t, stageInitialized)
	h.mustOK(admitCmd(member("hsm-3", 3)))
	h.mustOK(admitCmd(member("hsm-2", 2)))
	var ids []string
	for _, m := range h.db.Members() {
		ids = append(ids, m.GetNodeId())
	}
	require.Equal(t, []string{"hsm-1", "hsm-2", "hsm-3"}, ids)
	m, found := h.db.Member("hsm-2")
	require.True(t, found)
	require.Equal(t, fingerprint(2), m.GetDeviceCertSha256())

	h.mustOK(removeMemberCmd("hsm-2"))
	_, found = h.db.Member("hsm-2")
	require.False(t, found)
	// The fingerprint may be admitted again under a new id.
	h.mustOK(admitCmd(member("hsm-4", 2)))
}

func TestQuotas(t *testing.T) {
	t.Run("users", func(t *testing.T) {
		h := newHarness(t, stageActive)
		for i := h.db.Counts().Users; i < keydb.MaxUsers; i++ {
			h.mustOK(createUserCmd(admin, fmt.Sprintf("user-%d", i), hsmv1.Role_ROLE_CRYPTO_USER))
		}
		require.Equal(t, keydb.MaxUsers, h.db.Counts().Users)
		require.Equal(t, codePrecondition, h.apply(createUserCmd(admin, "one-more", hsmv1.Role_ROLE_CRYPTO_USER)).GetCode())
		h.mustOK(deleteUserCmd(admin, "user-10"))
		h.mustOK(createUserCmd(admin, "one-more", hsmv1.Role_ROLE_CRYPTO_USER))
	})
	t.Run("keys", func(t *testing.T) {
		if testing.Short() {
			t.Skip("creates 16,666 keys")
		}
		h := newHarness(t, stageActive)
		for i := h.db.Counts().Keys; i < keydb.MaxKeys-1; i++ {
			h.mustOK(aesKeyCmd(bob, ""))
		}
		// One slot left: a pair needs two.
		require.Equal(t, codePrecondition, h.apply(ecPairCmd(bob, "bob-ec")).GetCode())
		h.mustOK(aesKeyCmd(bob, ""))
		require.Equal(t, keydb.MaxKeys, h.db.Counts().Keys)
		require.Equal(t, codePrecondition, h.apply(aesKeyCmd(bob, "")).GetCode())
	})
	t.Run("members", func(t *testing.T) {
		h := newHarness(t, stageInitialized)
		for i := h.db.Counts().Members; i < keydb.MaxMembers; i++ {
			h.mustOK(admitCmd(member(fmt.Sprintf("hsm-x%d", i), byte(100+i))))
		}
		require.Equal(t, codePrecondition, h.apply(admitCmd(member("hsm-last", 200))).GetCode())
	})
}

func TestFindKeys(t *testing.T) {
	h := newHarness(t, stageActive)
	h.mustOK(aesKeyCmd(bob, "bob-aes"))      // 4
	h.mustOK(shareCmd(bob, 4, alice))        // alice may use 4
	h.mustOK(shareCmd(alice, alicePub, bob)) // bob may use 3

	handles := func(f keydb.KeyFilter) []uint64 {
		var out []uint64
		for _, a := range h.db.FindKeys(f) {
			out = append(out, a.GetHandle())
		}
		return out
	}
	tests := []struct {
		name   string
		filter keydb.KeyFilter
		want   []uint64
	}{
		{"all", keydb.KeyFilter{}, []uint64{1, 2, 3, 4}},
		{"label", keydb.KeyFilter{Label: "ec"}, []uint64{2, 3}},
		{"id", keydb.KeyFilter{ID: []byte("alice-ec")}, []uint64{2, 3}},
		{"class", keydb.KeyFilter{Class: hsmv1.KeyClass_KEY_CLASS_SECRET}, []uint64{1, 4}},
		{"type", keydb.KeyFilter{Type: hsmv1.KeyType_KEY_TYPE_EC}, []uint64{2, 3}},
		{"owner", keydb.KeyFilter{Owner: bob}, []uint64{4}},
		{"usable by alice", keydb.KeyFilter{UsableBy: alice}, []uint64{1, 2, 3, 4}},
		{"usable by bob", keydb.KeyFilter{UsableBy: bob}, []uint64{3, 4}},
		{"usable by carol", keydb.KeyFilter{UsableBy: carol}, nil},
		{"combined", keydb.KeyFilter{UsableBy: bob, Class: hsmv1.KeyClass_KEY_CLASS_PUBLIC, Owner: alice}, []uint64{3}},
		{"no match", keydb.KeyFilter{Label: "none"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, handles(tt.filter))
		})
	}
}
