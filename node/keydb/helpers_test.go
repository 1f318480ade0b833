package keydb_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// Users of the active fixture.
const (
	admin   = "admin"   // the activated admin
	officer = "officer" // a second admin
	alice   = "alice"   // crypto user, owns aliceKey
	bob     = "bob"     // crypto user
	carol   = "carol"   // crypto user
)

// Keys of the active fixture (handles come from the counter, starting at 1).
const (
	aliceKey  uint64 = 1 // AES, id "alice-aes"
	alicePriv uint64 = 2 // EC private half, id "alice-ec"
	alicePub  uint64 = 3 // EC public half, id "alice-ec"
)

// stage is how far a fixture database has been set up.
type stage int

const (
	stageEmpty       stage = iota // New()
	stageInitialized              // InitCluster applied
	stageActive                   // activated, users and keys created
)

// harness applies commands with increasing log indexes.
type harness struct {
	t     *testing.T
	db    *keydb.DB
	index uint64
}

func newHarness(t *testing.T, s stage) *harness {
	t.Helper()
	h := &harness{t: t, db: keydb.New()}
	if s >= stageInitialized {
		h.mustOK(initCmd())
	}
	if s >= stageActive {
		h.mustOK(activateCmd("hash-admin-2"))
		h.mustOK(createUserCmd(admin, officer, hsmv1.Role_ROLE_ADMIN))
		for _, u := range []string{alice, bob, carol} {
			h.mustOK(createUserCmd(admin, u, hsmv1.Role_ROLE_CRYPTO_USER))
		}
		r := h.mustOK(aesKeyCmd(alice, "alice-aes"))
		require.Equal(t, aliceKey, r.GetHandle())
		r = h.mustOK(ecPairCmd(alice, "alice-ec"))
		require.Equal(t, alicePriv, r.GetHandle())
		require.Equal(t, alicePub, r.GetPublicHandle())
	}
	return h
}

func (h *harness) apply(cmd *hsmfsmv1.Command) *hsmfsmv1.Result {
	h.t.Helper()
	h.index++
	res := h.db.Apply(h.index, cmd)
	require.NotNil(h.t, res)
	return res
}

func (h *harness) mustOK(cmd *hsmfsmv1.Command) *hsmfsmv1.Result {
	h.t.Helper()
	res := h.apply(cmd)
	require.Equal(h.t, hsmfsmv1.Code_CODE_OK, res.GetCode(), res.GetMessage())
	return res
}

func (h *harness) snapshot() []byte {
	h.t.Helper()
	b, err := h.db.Snapshot()
	require.NoError(h.t, err)
	return b
}

func fingerprint(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }

func member(id string, n byte) *hsmfsmv1.Member {
	return &hsmfsmv1.Member{
		NodeId:           id,
		Az:               "az-" + id,
		RaftAddress:      id + ":7000",
		ApiAddress:       id + ":7001",
		DeviceCertSha256: fingerprint(n),
	}
}

func initCmd() *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_InitCluster{InitCluster: &hsmfsmv1.InitCluster{
		ClusterId:         "cluster-test",
		ClusterCertPem:    "-----BEGIN CERTIFICATE-----cluster",
		TrustAnchorPem:    "-----BEGIN CERTIFICATE-----anchor",
		AdminUsername:     admin,
		AdminPasswordHash: "hash-preco",
		FirstMember:       member("hsm-1", 1),
	}}}
}

func activateCmd(hash string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_Activate{Activate: &hsmfsmv1.Activate{PasswordHash: hash}}}
}

func createUserCmd(actor, name string, role hsmv1.Role) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateUser{CreateUser: &hsmfsmv1.CreateUser{
		Actor: actor, Username: name, Role: role, PasswordHash: "hash-" + name,
	}}}
}

func deleteUserCmd(actor, name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_DeleteUser{DeleteUser: &hsmfsmv1.DeleteUser{Actor: actor, Username: name}}}
}

func setPasswordCmd(actor, name, hash string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetPassword{SetPassword: &hsmfsmv1.SetPassword{
		Actor: actor, Username: name, PasswordHash: hash,
	}}}
}

func loginFailureCmd(name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RecordLoginFailure{RecordLoginFailure: &hsmfsmv1.RecordLoginFailure{Username: name}}}
}

func resetFailuresCmd(name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ResetLoginFailures{ResetLoginFailures: &hsmfsmv1.ResetLoginFailures{Username: name}}}
}

func aesTemplate(id string) *hsmv1.KeyAttributes {
	t := &hsmv1.KeyAttributes{
		Label: "label-" + id, Class: hsmv1.KeyClass_KEY_CLASS_SECRET, Type: hsmv1.KeyType_KEY_TYPE_AES,
		SizeBits: 256, Extractable: true, Encrypt: true, Decrypt: true, Kcv: []byte{1, 2, 3},
	}
	if id != "" {
		t.Id = []byte(id)
	}
	return t
}

func createKeyCmd(actor string, template *hsmv1.KeyAttributes, sealed []byte) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateKey{CreateKey: &hsmfsmv1.CreateKey{
		Actor: actor, Template: template, SealedMaterial: sealed,
	}}}
}

func aesKeyCmd(actor, id string) *hsmfsmv1.Command {
	return createKeyCmd(actor, aesTemplate(id), []byte("sealed-"+id))
}

func ecTemplates(id string) (priv, pub *hsmv1.KeyAttributes) {
	priv = &hsmv1.KeyAttributes{
		Label: "ec", Id: []byte(id), Class: hsmv1.KeyClass_KEY_CLASS_PRIVATE, Type: hsmv1.KeyType_KEY_TYPE_EC,
		Curve: hsmv1.Curve_CURVE_P256, Sign: true, PublicKey: []byte("spki-" + id),
	}
	pub = &hsmv1.KeyAttributes{
		Label: "ec", Id: []byte(id), Class: hsmv1.KeyClass_KEY_CLASS_PUBLIC, Type: hsmv1.KeyType_KEY_TYPE_EC,
		Curve: hsmv1.Curve_CURVE_P256, Verify: true, PublicKey: []byte("spki-" + id),
	}
	return priv, pub
}

func pairCmd(actor string, priv, pub *hsmv1.KeyAttributes, sealed []byte) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_CreateKey{CreateKey: &hsmfsmv1.CreateKey{
		Actor: actor, Template: priv, SealedMaterial: sealed, Pair: true, PublicTemplate: pub,
	}}}
}

func ecPairCmd(actor, id string) *hsmfsmv1.Command {
	priv, pub := ecTemplates(id)
	return pairCmd(actor, priv, pub, []byte("sealed-"+id))
}

func deleteKeyCmd(actor string, handle uint64) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_DeleteKey{DeleteKey: &hsmfsmv1.DeleteKey{Actor: actor, Handle: handle}}}
}

// setAttrCmd builds a SetKeyAttribute; set, if not nil, chooses the attribute.
func setAttrCmd(actor string, handle uint64, set func(*hsmfsmv1.SetKeyAttribute)) *hsmfsmv1.Command {
	c := &hsmfsmv1.SetKeyAttribute{Actor: actor, Handle: handle}
	if set != nil {
		set(c)
	}
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetKeyAttribute{SetKeyAttribute: c}}
}

func shareCmd(actor string, handle uint64, name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_ShareKey{ShareKey: &hsmfsmv1.ShareKey{Actor: actor, Handle: handle, Username: name}}}
}

func unshareCmd(actor string, handle uint64, name string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_UnshareKey{UnshareKey: &hsmfsmv1.UnshareKey{Actor: actor, Handle: handle, Username: name}}}
}

func admitCmd(m *hsmfsmv1.Member) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_AdmitMember{AdmitMember: &hsmfsmv1.AdmitMember{Member: m}}}
}

func removeMemberCmd(id string) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RemoveMember{RemoveMember: &hsmfsmv1.RemoveMember{NodeId: id}}}
}

func quorumCmd(actor, service string, m uint32) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_SetQuorumValue{SetQuorumValue: &hsmfsmv1.SetQuorumValue{Actor: actor, Service: service, M: m}}}
}

func quorumKeyCmd(actor string, der []byte) *hsmfsmv1.Command {
	return &hsmfsmv1.Command{Command: &hsmfsmv1.Command_RegisterQuorumKey{RegisterQuorumKey: &hsmfsmv1.RegisterQuorumKey{Actor: actor, PublicKeyDer: der}}}
}
