package keydb

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
	hsmfsmv1 "github.com/hsmsim/hsmsim/proto/hsmfsm/v1"
)

// MaxQuorumKeyLen bounds a registered quorum public key, in bytes of DER (an
// hsmsim bound; an RSA-4096 SubjectPublicKeyInfo is about 550 bytes).
const MaxQuorumKeyLen = 2048

// Apply applies cmd, committed at the given log index, and returns its
// result. It is deterministic and never panics on a command's content: an
// invalid or forbidden command yields a failed Result and changes nothing but
// the applied index. An empty command (no oneof case) fails with
// CODE_INVALID_ARGUMENT; the Raft adapter refuses such commands before they
// get here. Apply does not keep cmd or anything it points to.
//
// A command whose request id an earlier command carried returns
// that command's result, a failure included, and changes nothing but the
// applied index (see the package documentation).
func (db *DB) Apply(index uint64, cmd *hsmfsmv1.Command) *hsmfsmv1.Result {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.s.applied = index
	return db.s.applyOnce(index, cmd)
}

// apply dispatches on the command's oneof case, the command's type tag.
func (s *state) apply(cmd *hsmfsmv1.Command) *hsmfsmv1.Result {
	switch c := cmd.GetCommand().(type) {
	case *hsmfsmv1.Command_InitCluster:
		return s.initCluster(c.InitCluster)
	case *hsmfsmv1.Command_Activate:
		return s.activate(c.Activate)
	case *hsmfsmv1.Command_CreateUser:
		return s.createUser(c.CreateUser)
	case *hsmfsmv1.Command_DeleteUser:
		return s.deleteUser(c.DeleteUser)
	case *hsmfsmv1.Command_SetPassword:
		return s.setPassword(c.SetPassword)
	case *hsmfsmv1.Command_RecordLoginFailure:
		return s.recordLoginFailure(c.RecordLoginFailure)
	case *hsmfsmv1.Command_ResetLoginFailures:
		return s.resetLoginFailures(c.ResetLoginFailures)
	case *hsmfsmv1.Command_CreateKey:
		return s.createKey(c.CreateKey)
	case *hsmfsmv1.Command_DeleteKey:
		return s.deleteKey(c.DeleteKey)
	case *hsmfsmv1.Command_SetKeyAttribute:
		return s.setKeyAttribute(c.SetKeyAttribute)
	case *hsmfsmv1.Command_ShareKey:
		return s.shareKey(c.ShareKey)
	case *hsmfsmv1.Command_UnshareKey:
		return s.unshareKey(c.UnshareKey)
	case *hsmfsmv1.Command_AdmitMember:
		return s.admitMember(c.AdmitMember)
	case *hsmfsmv1.Command_RemoveMember:
		return s.removeMember(c.RemoveMember)
	case *hsmfsmv1.Command_SetQuorumValue:
		return s.setQuorumValue(c.SetQuorumValue)
	case *hsmfsmv1.Command_RegisterQuorumKey:
		return s.registerQuorumKey(c.RegisterQuorumKey)
	case *hsmfsmv1.Command_CreateQuorumToken:
		return s.createQuorumToken(c.CreateQuorumToken)
	case *hsmfsmv1.Command_ApproveQuorumToken:
		return s.approveQuorumToken(c.ApproveQuorumToken)
	default:
		return fail(hsmfsmv1.Code_CODE_INVALID_ARGUMENT, "empty or unknown command")
	}
}

// ok is the result of a successful command.
func ok() *hsmfsmv1.Result { return &hsmfsmv1.Result{Code: hsmfsmv1.Code_CODE_OK} }

// fail is a failed result. Messages name users, handles and node ids, never
// password hashes or key material.
func fail(code hsmfsmv1.Code, format string, args ...any) *hsmfsmv1.Result {
	return &hsmfsmv1.Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Shorthands for the codes, roles and states the handlers use.
const (
	codeNotFound       = hsmfsmv1.Code_CODE_NOT_FOUND
	codeExists         = hsmfsmv1.Code_CODE_ALREADY_EXISTS
	codeDenied         = hsmfsmv1.Code_CODE_PERMISSION_DENIED
	codePrecondition   = hsmfsmv1.Code_CODE_FAILED_PRECONDITION
	codeInvalid        = hsmfsmv1.Code_CODE_INVALID_ARGUMENT
	roleAdmin          = hsmv1.Role_ROLE_ADMIN
	roleCryptoUser     = hsmv1.Role_ROLE_CRYPTO_USER
	roleUnactivated    = hsmv1.Role_ROLE_UNACTIVATED_ADMIN
	stateUninitialized = hsmfsmv1.ClusterState_CLUSTER_STATE_UNINITIALIZED
	stateActive        = hsmfsmv1.ClusterState_CLUSTER_STATE_ACTIVE
)

// requireInitialized fails unless InitCluster has been applied.
func (s *state) requireInitialized() *hsmfsmv1.Result {
	if s.cluster.GetState() == stateUninitialized {
		return fail(codePrecondition, "cluster is not initialized")
	}
	return nil
}

// requireActive fails unless the cluster has been activated.
func (s *state) requireActive() *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	if s.cluster.GetState() != stateActive {
		return fail(codePrecondition, "cluster is not activated")
	}
	return nil
}

// actor returns the user on whose behalf a command runs. A missing actor (a
// session whose user has since been deleted) is denied.
func (s *state) actor(name string) (*hsmfsmv1.User, *hsmfsmv1.Result) {
	u, found := s.users[name]
	if !found {
		return nil, fail(codeDenied, "actor %q is not a user", name)
	}
	return u, nil
}

// adminActor returns the actor if it is an admin.
func (s *state) adminActor(name, what string) (*hsmfsmv1.User, *hsmfsmv1.Result) {
	u, r := s.actor(name)
	if r != nil {
		return nil, r
	}
	if u.GetInfo().GetRole() != roleAdmin {
		return nil, fail(codeDenied, "only an admin may %s", what)
	}
	return u, nil
}

// validUsername reports whether name is 1..MaxUsernameLen characters of
// [A-Za-z0-9_-].
func validUsername(name string) bool {
	if len(name) == 0 || len(name) > MaxUsernameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (s *state) initCluster(c *hsmfsmv1.InitCluster) *hsmfsmv1.Result {
	if s.cluster.GetState() != stateUninitialized {
		return fail(codePrecondition, "cluster already initialized")
	}
	switch {
	case c.GetClusterId() == "":
		return fail(codeInvalid, "cluster id is required")
	case c.GetClusterCertPem() == "" || c.GetTrustAnchorPem() == "":
		return fail(codeInvalid, "cluster certificate and trust anchor are required")
	case !validUsername(c.GetAdminUsername()):
		return fail(codeInvalid, "invalid admin username %q", c.GetAdminUsername())
	case c.GetAdminPasswordHash() == "":
		return fail(codeInvalid, "admin password hash is required")
	}
	if m := c.GetFirstMember(); m != nil {
		if r := checkMember(m); r != nil {
			return r
		}
	}

	s.cluster = &hsmfsmv1.Cluster{
		State:          hsmfsmv1.ClusterState_CLUSTER_STATE_INITIALIZED,
		ClusterId:      c.GetClusterId(),
		ClusterCertPem: c.GetClusterCertPem(),
		TrustAnchorPem: c.GetTrustAnchorPem(),
	}
	s.users[c.GetAdminUsername()] = &hsmfsmv1.User{
		Info:         &hsmv1.UserInfo{Username: c.GetAdminUsername(), Role: roleUnactivated},
		PasswordHash: c.GetAdminPasswordHash(),
	}
	if m := c.GetFirstMember(); m != nil {
		s.members[m.GetNodeId()] = proto.CloneOf(m)
	}
	return ok()
}

func (s *state) activate(c *hsmfsmv1.Activate) *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	if s.cluster.GetState() == stateActive {
		return fail(codePrecondition, "cluster already activated")
	}
	if c.GetPasswordHash() == "" {
		return fail(codeInvalid, "password hash is required")
	}
	// Before activation no user command is accepted, so the unactivated
	// admin is the only user: this loop's order cannot matter.
	var admin *hsmfsmv1.User
	for _, u := range s.users {
		if u.GetInfo().GetRole() == roleUnactivated {
			admin = u
		}
	}
	if admin == nil {
		return fail(codePrecondition, "no unactivated admin")
	}

	admin.Info.Role = roleAdmin
	admin.Info.Locked = false
	admin.Info.FailedLogins = 0
	admin.PasswordHash = c.GetPasswordHash()
	s.cluster.State = stateActive
	return ok()
}

func (s *state) createUser(c *hsmfsmv1.CreateUser) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	switch {
	case !validUsername(c.GetUsername()):
		return fail(codeInvalid, "invalid username %q: want 1..%d characters of [A-Za-z0-9_-]", c.GetUsername(), MaxUsernameLen)
	case c.GetRole() != roleAdmin && c.GetRole() != roleCryptoUser:
		return fail(codeInvalid, "role %s cannot be created; want ROLE_ADMIN or ROLE_CRYPTO_USER", c.GetRole())
	case c.GetPasswordHash() == "":
		return fail(codeInvalid, "password hash is required")
	}
	if _, r := s.adminActor(c.GetActor(), "create users"); r != nil {
		return r
	}
	if r := s.checkQuorum(ServiceUser, c.GetActor(), c.GetQuorumTokenId(), c.GetNowUnix()); r != nil {
		return r
	}
	if _, exists := s.users[c.GetUsername()]; exists {
		return fail(codeExists, "user %q already exists", c.GetUsername())
	}
	if len(s.users) >= MaxUsers {
		return fail(codePrecondition, "the cluster already has the maximum of %d users", MaxUsers)
	}

	s.consumeToken(ServiceUser, c.GetQuorumTokenId())
	s.users[c.GetUsername()] = &hsmfsmv1.User{
		Info:         &hsmv1.UserInfo{Username: c.GetUsername(), Role: c.GetRole()},
		PasswordHash: c.GetPasswordHash(),
	}
	return ok()
}

func (s *state) deleteUser(c *hsmfsmv1.DeleteUser) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	if _, r := s.adminActor(c.GetActor(), "delete users"); r != nil {
		return r
	}
	if r := s.checkQuorum(ServiceUser, c.GetActor(), c.GetQuorumTokenId(), c.GetNowUnix()); r != nil {
		return r
	}
	name := c.GetUsername()
	u, found := s.users[name]
	if !found {
		return fail(codeNotFound, "user %q not found", name)
	}
	if n := s.owned[name]; n > 0 {
		return fail(codePrecondition, "user %q owns %d keys; delete them first", name, n)
	}
	if u.GetInfo().GetRole() == roleAdmin && s.countRole(roleAdmin) == 1 {
		return fail(codePrecondition, "cannot delete the last admin")
	}

	s.consumeToken(ServiceUser, c.GetQuorumTokenId())
	delete(s.users, name)
	// A deleted user loses its shares, so that a new user of the same name
	// does not inherit them. Each key is changed independently of the others:
	// the map's order does not matter.
	for _, k := range s.keys {
		a := k.GetAttributes()
		if i, shared := slices.BinarySearch(a.GetSharedUsers(), name); shared {
			a.SharedUsers = slices.Delete(a.SharedUsers, i, i+1)
		}
	}
	return ok()
}

// countRole counts the users with a role.
func (s *state) countRole(role hsmv1.Role) int {
	n := 0
	for _, u := range s.users {
		if u.GetInfo().GetRole() == role {
			n++
		}
	}
	return n
}

func (s *state) setPassword(c *hsmfsmv1.SetPassword) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	if c.GetPasswordHash() == "" {
		return fail(codeInvalid, "password hash is required")
	}
	actor, r := s.actor(c.GetActor())
	if r != nil {
		return r
	}
	byAdmin := actor.GetInfo().GetRole() == roleAdmin
	if !byAdmin && c.GetActor() != c.GetUsername() {
		return fail(codeDenied, "only an admin may set another user's password")
	}
	if byAdmin {
		// An admin's password change is user management: quorum applies. A
		// crypto user changing its own password needs no quorum.
		if r := s.checkQuorum(ServiceUser, c.GetActor(), c.GetQuorumTokenId(), c.GetNowUnix()); r != nil {
			return r
		}
	}
	u, found := s.users[c.GetUsername()]
	if !found {
		return fail(codeNotFound, "user %q not found", c.GetUsername())
	}

	if byAdmin {
		s.consumeToken(ServiceUser, c.GetQuorumTokenId())
	}
	u.PasswordHash = c.GetPasswordHash()
	if byAdmin {
		// An admin's reset is how a locked user is unlocked (CloudHSM).
		u.Info.Locked = false
		u.Info.FailedLogins = 0
	}
	return ok()
}

func (s *state) recordLoginFailure(c *hsmfsmv1.RecordLoginFailure) *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	u, found := s.users[c.GetUsername()]
	if !found {
		return fail(codeNotFound, "user %q not found", c.GetUsername())
	}
	if u.Info.FailedLogins < math.MaxUint32 {
		u.Info.FailedLogins++
	}
	if u.Info.FailedLogins >= MaxLoginFailures {
		u.Info.Locked = true
	}
	return ok()
}

func (s *state) resetLoginFailures(c *hsmfsmv1.ResetLoginFailures) *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	u, found := s.users[c.GetUsername()]
	if !found {
		return fail(codeNotFound, "user %q not found", c.GetUsername())
	}
	u.Info.FailedLogins = 0
	return ok()
}

func (s *state) createKey(c *hsmfsmv1.CreateKey) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	actor, r := s.actor(c.GetActor())
	if r != nil {
		return r
	}
	if actor.GetInfo().GetRole() != roleCryptoUser {
		return fail(codeDenied, "only a crypto user may own keys")
	}
	priv, pub := c.GetTemplate(), c.GetPublicTemplate()
	if r := checkTemplate(priv, c.GetActor()); r != nil {
		return r
	}
	material := len(c.GetSealedMaterial()) > 0
	if c.GetPair() {
		if r := checkTemplate(pub, c.GetActor()); r != nil {
			return r
		}
		switch {
		case priv.GetClass() != hsmv1.KeyClass_KEY_CLASS_PRIVATE || pub.GetClass() != hsmv1.KeyClass_KEY_CLASS_PUBLIC:
			return fail(codeInvalid, "a key pair needs a private and a public template")
		case priv.GetType() != pub.GetType() || priv.GetCurve() != pub.GetCurve() || priv.GetSizeBits() != pub.GetSizeBits():
			return fail(codeInvalid, "the two halves of a key pair differ in type, curve or size")
		case len(pub.GetPublicKey()) == 0:
			return fail(codeInvalid, "the public key is required")
		case !material:
			return fail(codeInvalid, "sealed material is required for a private key")
		}
	} else {
		switch {
		case pub != nil:
			return fail(codeInvalid, "public template is set without pair")
		case priv.GetClass() == hsmv1.KeyClass_KEY_CLASS_PUBLIC && material:
			return fail(codeInvalid, "a public key has no sealed material")
		case priv.GetClass() == hsmv1.KeyClass_KEY_CLASS_PUBLIC && len(priv.GetPublicKey()) == 0:
			return fail(codeInvalid, "the public key is required")
		case priv.GetClass() != hsmv1.KeyClass_KEY_CLASS_PUBLIC && !material:
			return fail(codeInvalid, "sealed material is required for a %s key", priv.GetClass())
		}
	}
	for _, t := range []*hsmv1.KeyAttributes{priv, pub} {
		if id := t.GetId(); len(id) > 0 && len(s.ids[string(id)]) > 0 {
			return fail(codeExists, "a key with id %x already exists", id)
		}
	}
	n := 1
	if c.GetPair() {
		n = 2
	}
	if len(s.keys)+n > MaxKeys {
		return fail(codePrecondition, "the cluster already has the maximum of %d keys", MaxKeys)
	}

	handle := s.nextHandle
	s.addKey(handle, priv, c.GetActor(), c.GetSealedMaterial())
	res := ok()
	res.Handle = handle
	if c.GetPair() {
		pubHandle := handle + 1
		s.addKey(pubHandle, pub, c.GetActor(), nil)
		s.keys[handle].Attributes.PairHandle = pubHandle
		s.keys[pubHandle].Attributes.PairHandle = handle
		res.PublicHandle = pubHandle
	}
	s.nextHandle += uint64(n)
	return res
}

// checkTemplate validates a key template: what the key database assigns is
// unset, the class and type agree, labels and ids fit.
func checkTemplate(t *hsmv1.KeyAttributes, actor string) *hsmfsmv1.Result {
	if t == nil {
		return fail(codeInvalid, "key template is required")
	}
	switch {
	case t.GetHandle() != 0 || t.GetPairHandle() != 0 || len(t.GetSharedUsers()) > 0:
		return fail(codeInvalid, "handle, pair handle and shared users are assigned by the HSM")
	case t.GetOwner() != "" && t.GetOwner() != actor:
		return fail(codeInvalid, "the owner of a new key is its creator")
	case len(t.GetLabel()) > MaxLabelLen:
		return fail(codeInvalid, "label longer than %d bytes", MaxLabelLen)
	case len(t.GetId()) > MaxKeyIDLen:
		return fail(codeInvalid, "id longer than %d bytes", MaxKeyIDLen)
	case (t.GetType() == hsmv1.KeyType_KEY_TYPE_EC) != (t.GetCurve() != hsmv1.Curve_CURVE_UNSPECIFIED):
		return fail(codeInvalid, "a curve is required for, and only for, an EC key")
	}
	symmetric := t.GetType() == hsmv1.KeyType_KEY_TYPE_AES || t.GetType() == hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET
	asymmetric := t.GetType() == hsmv1.KeyType_KEY_TYPE_RSA || t.GetType() == hsmv1.KeyType_KEY_TYPE_EC
	switch t.GetClass() {
	case hsmv1.KeyClass_KEY_CLASS_SECRET:
		if !symmetric {
			return fail(codeInvalid, "a secret key must be AES or generic secret, not %s", t.GetType())
		}
	case hsmv1.KeyClass_KEY_CLASS_PUBLIC, hsmv1.KeyClass_KEY_CLASS_PRIVATE:
		if !asymmetric {
			return fail(codeInvalid, "a %s key must be RSA or EC, not %s", t.GetClass(), t.GetType())
		}
	default:
		return fail(codeInvalid, "key class %s is not valid", t.GetClass())
	}
	return nil
}

// addKey stores a copy of template as the key object handle, owned by owner.
// Every key hsmsim stores is a token key.
func (s *state) addKey(handle uint64, template *hsmv1.KeyAttributes, owner string, sealed []byte) {
	a := proto.CloneOf(template)
	a.Handle = handle
	a.Owner = owner
	a.Token = true
	a.SharedUsers = nil
	a.PairHandle = 0
	s.keys[handle] = &hsmfsmv1.Key{Attributes: a, SealedMaterial: bytes.Clone(sealed)}
	s.indexID(a.GetId(), handle)
	s.owned[owner]++
}

// removeKey deletes a key object and unlinks its pair.
func (s *state) removeKey(handle uint64) {
	a := s.keys[handle].GetAttributes()
	delete(s.keys, handle)
	s.unindexID(a.GetId(), handle)
	if s.owned[a.GetOwner()]--; s.owned[a.GetOwner()] <= 0 {
		delete(s.owned, a.GetOwner())
	}
	if other, found := s.keys[a.GetPairHandle()]; found {
		other.Attributes.PairHandle = 0
	}
}

// indexID records that handle holds id.
func (s *state) indexID(id []byte, handle uint64) {
	if len(id) == 0 {
		return
	}
	hs := s.ids[string(id)]
	if i, found := slices.BinarySearch(hs, handle); !found {
		s.ids[string(id)] = slices.Insert(hs, i, handle)
	}
}

// unindexID records that handle no longer holds id.
func (s *state) unindexID(id []byte, handle uint64) {
	if len(id) == 0 {
		return
	}
	hs := s.ids[string(id)]
	if i, found := slices.BinarySearch(hs, handle); found {
		hs = slices.Delete(hs, i, i+1)
	}
	if len(hs) == 0 {
		delete(s.ids, string(id))
	} else {
		s.ids[string(id)] = hs
	}
}

// ownedKey returns a key the actor owns, for the commands only an owner may
// run.
func (s *state) ownedKey(actor string, handle uint64) (*hsmfsmv1.Key, *hsmfsmv1.Result) {
	if _, r := s.actor(actor); r != nil {
		return nil, r
	}
	k, found := s.keys[handle]
	if !found {
		return nil, fail(codeNotFound, "key %d not found", handle)
	}
	if k.GetAttributes().GetOwner() != actor {
		return nil, fail(codeDenied, "only the owner of key %d may change it", handle)
	}
	return k, nil
}

func (s *state) deleteKey(c *hsmfsmv1.DeleteKey) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	if _, r := s.ownedKey(c.GetActor(), c.GetHandle()); r != nil {
		return r
	}
	s.removeKey(c.GetHandle())
	return ok()
}

func (s *state) setKeyAttribute(c *hsmfsmv1.SetKeyAttribute) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	if c.GetAttribute() == nil {
		return fail(codeInvalid, "no attribute to set")
	}
	k, r := s.ownedKey(c.GetActor(), c.GetHandle())
	if r != nil {
		return r
	}
	a := k.GetAttributes()
	switch v := c.GetAttribute().(type) {
	case *hsmfsmv1.SetKeyAttribute_Label:
		if len(v.Label) > MaxLabelLen {
			return fail(codeInvalid, "label longer than %d bytes", MaxLabelLen)
		}
		a.Label = v.Label
	case *hsmfsmv1.SetKeyAttribute_Id:
		if len(v.Id) > MaxKeyIDLen {
			return fail(codeInvalid, "id longer than %d bytes", MaxKeyIDLen)
		}
		// Only the key itself and its other half may already hold the id.
		for _, h := range s.ids[string(v.Id)] {
			if h != a.GetHandle() && h != a.GetPairHandle() {
				return fail(codeExists, "a key with id %x already exists", v.Id)
			}
		}
		s.unindexID(a.GetId(), a.GetHandle())
		a.Id = bytes.Clone(v.Id)
		s.indexID(a.GetId(), a.GetHandle())
	case *hsmfsmv1.SetKeyAttribute_Extractable:
		if v.Extractable && !a.GetExtractable() {
			return fail(codePrecondition, "extractable cannot be turned back on")
		}
		a.Extractable = v.Extractable
	case *hsmfsmv1.SetKeyAttribute_Encrypt:
		a.Encrypt = v.Encrypt
	case *hsmfsmv1.SetKeyAttribute_Decrypt:
		a.Decrypt = v.Decrypt
	case *hsmfsmv1.SetKeyAttribute_Wrap:
		a.Wrap = v.Wrap
	case *hsmfsmv1.SetKeyAttribute_Unwrap:
		a.Unwrap = v.Unwrap
	case *hsmfsmv1.SetKeyAttribute_Sign:
		a.Sign = v.Sign
	case *hsmfsmv1.SetKeyAttribute_Verify:
		a.Verify = v.Verify
	default:
		return fail(codeInvalid, "unknown attribute")
	}
	return ok()
}

func (s *state) shareKey(c *hsmfsmv1.ShareKey) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	k, r := s.ownedKey(c.GetActor(), c.GetHandle())
	if r != nil {
		return r
	}
	a := k.GetAttributes()
	target, found := s.users[c.GetUsername()]
	switch {
	case !found:
		return fail(codeNotFound, "user %q not found", c.GetUsername())
	case target.GetInfo().GetRole() != roleCryptoUser:
		return fail(codePrecondition, "user %q is not a crypto user", c.GetUsername())
	case c.GetUsername() == a.GetOwner():
		return fail(codePrecondition, "user %q owns key %d", c.GetUsername(), c.GetHandle())
	}
	i, shared := slices.BinarySearch(a.GetSharedUsers(), c.GetUsername())
	if shared {
		return fail(codeExists, "key %d is already shared with %q", c.GetHandle(), c.GetUsername())
	}
	a.SharedUsers = slices.Insert(a.SharedUsers, i, c.GetUsername())
	return ok()
}

func (s *state) unshareKey(c *hsmfsmv1.UnshareKey) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	k, r := s.ownedKey(c.GetActor(), c.GetHandle())
	if r != nil {
		return r
	}
	a := k.GetAttributes()
	i, shared := slices.BinarySearch(a.GetSharedUsers(), c.GetUsername())
	if !shared {
		return fail(codeNotFound, "key %d is not shared with %q", c.GetHandle(), c.GetUsername())
	}
	a.SharedUsers = slices.Delete(a.SharedUsers, i, i+1)
	return ok()
}

// checkMember validates a member description.
func checkMember(m *hsmfsmv1.Member) *hsmfsmv1.Result {
	switch {
	case m.GetNodeId() == "":
		return fail(codeInvalid, "node id is required")
	case m.GetAz() == "":
		return fail(codeInvalid, "availability zone is required")
	case m.GetRaftAddress() == "" || m.GetApiAddress() == "":
		return fail(codeInvalid, "raft and api addresses are required")
	case len(m.GetDeviceCertSha256()) != 32:
		return fail(codeInvalid, "device certificate fingerprint must be 32 bytes, got %d", len(m.GetDeviceCertSha256()))
	}
	return nil
}

func (s *state) admitMember(c *hsmfsmv1.AdmitMember) *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	m := c.GetMember()
	if m == nil {
		return fail(codeInvalid, "member is required")
	}
	if r := checkMember(m); r != nil {
		return r
	}
	if _, exists := s.members[m.GetNodeId()]; exists {
		return fail(codeExists, "member %q already admitted", m.GetNodeId())
	}
	// Only whether a match exists matters, not which: order-independent.
	for _, other := range s.members {
		if bytes.Equal(other.GetDeviceCertSha256(), m.GetDeviceCertSha256()) {
			return fail(codeExists, "device certificate already admitted")
		}
	}
	if len(s.members) >= MaxMembers {
		return fail(codePrecondition, "the cluster already has the maximum of %d HSMs", MaxMembers)
	}
	s.members[m.GetNodeId()] = proto.CloneOf(m)
	return ok()
}

func (s *state) removeMember(c *hsmfsmv1.RemoveMember) *hsmfsmv1.Result {
	if r := s.requireInitialized(); r != nil {
		return r
	}
	if _, found := s.members[c.GetNodeId()]; !found {
		return fail(codeNotFound, "member %q not found", c.GetNodeId())
	}
	delete(s.members, c.GetNodeId())
	return ok()
}

func (s *state) setQuorumValue(c *hsmfsmv1.SetQuorumValue) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	switch {
	case c.GetService() != ServiceUser && c.GetService() != ServiceQuorum:
		return fail(codeInvalid, "unknown quorum service %q; want %q or %q", c.GetService(), ServiceUser, ServiceQuorum)
	case c.GetM() < 1 || c.GetM() > MaxQuorumValue:
		return fail(codeInvalid, "quorum value %d out of range 1..%d", c.GetM(), MaxQuorumValue)
	}
	if _, r := s.adminActor(c.GetActor(), "set quorum values"); r != nil {
		return r
	}
	if r := s.checkQuorum(ServiceQuorum, c.GetActor(), c.GetQuorumTokenId(), c.GetNowUnix()); r != nil {
		return r
	}
	// M approvals need M admins able to sign, or admin work stops for good.
	if m := c.GetM(); m > 1 {
		n := 0
		for _, u := range s.users {
			if u.GetInfo().GetRole() == roleAdmin && len(u.GetInfo().GetQuorumPublicKey()) > 0 {
				n++
			}
		}
		if uint32(n) < m {
			return fail(codePrecondition, "quorum value %d needs %d admins with registered quorum keys, have %d", m, m, n)
		}
	}
	s.consumeToken(ServiceQuorum, c.GetQuorumTokenId())
	if c.GetM() == 1 {
		delete(s.quorum, c.GetService())
	} else {
		s.quorum[c.GetService()] = c.GetM()
	}
	return ok()
}

func (s *state) registerQuorumKey(c *hsmfsmv1.RegisterQuorumKey) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	switch n := len(c.GetPublicKeyDer()); {
	case n == 0:
		return fail(codeInvalid, "public key is required")
	case n > MaxQuorumKeyLen:
		return fail(codeInvalid, "public key longer than %d bytes", MaxQuorumKeyLen)
	}
	u, r := s.actor(c.GetActor())
	if r != nil {
		return r
	}
	u.Info.QuorumPublicKey = bytes.Clone(c.GetPublicKeyDer())
	return ok()
}

// validService reports whether service is a quorum-controlled service.
func validService(service string) bool {
	return service == ServiceUser || service == ServiceQuorum
}

// quorumValue is a service's quorum value M.
func (s *state) quorumValue(service string) uint32 {
	if m, found := s.quorum[service]; found {
		return m
	}
	return 1
}

// expired reports whether t is no longer accepted at now (Unix seconds).
func expired(t *hsmfsmv1.QuorumToken, now int64) bool {
	return now-t.GetIssuedAtUnix() > QuorumTokenLifetime
}

// approvals counts the approvers of t that are still admins with a
// registered quorum key: a deleted or demoted approver no longer counts.
func (s *state) approvals(t *hsmfsmv1.QuorumToken) uint32 {
	var n uint32
	for _, name := range t.GetApprovers() {
		if u, found := s.users[name]; found && u.GetInfo().GetRole() == roleAdmin && len(u.GetInfo().GetQuorumPublicKey()) > 0 {
			n++
		}
	}
	return n
}

// checkQuorum checks that a command of service run by actor may proceed:
// the service's quorum value is 1, or tokenID names a token for the service,
// issued to actor, not expired at now and approved by enough admins. It
// changes nothing; the handler calls consumeToken once its own checks pass.
func (s *state) checkQuorum(service, actor, tokenID string, now int64) *hsmfsmv1.Result {
	m := s.quorumValue(service)
	if m <= 1 {
		return nil
	}
	if tokenID == "" {
		return fail(codeDenied, "quorum token required: the %q service needs %d approvals", service, m)
	}
	t, found := s.tokens[tokenID]
	switch {
	case !found:
		return fail(codeDenied, "quorum token required: token %q not found", tokenID)
	case t.GetService() != service:
		return fail(codeDenied, "quorum token %q is for the %q service, not %q", tokenID, t.GetService(), service)
	case t.GetRequester() != actor:
		return fail(codeDenied, "quorum token %q was issued to %q, not %q", tokenID, t.GetRequester(), actor)
	case expired(t, now):
		return fail(codeDenied, "quorum token expired: token %q was issued more than %d s ago", tokenID, QuorumTokenLifetime)
	}
	if k := s.approvals(t); k < m {
		return fail(codeDenied, "not enough approvals (%d of %d) on quorum token %q", k, m, tokenID)
	}
	return nil
}

// consumeToken deletes the token a successful command used, when the
// service needed one.
func (s *state) consumeToken(service, tokenID string) {
	if s.quorumValue(service) > 1 {
		delete(s.tokens, tokenID)
	}
}

func (s *state) createQuorumToken(c *hsmfsmv1.CreateQuorumToken) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	now := c.GetIssuedAtUnix()
	switch {
	case c.GetId() == "" || len(c.GetId()) > MaxQuorumTokenIDLen:
		return fail(codeInvalid, "quorum token id must be 1..%d characters", MaxQuorumTokenIDLen)
	case !validService(c.GetService()):
		return fail(codeInvalid, "unknown quorum service %q; want %q or %q", c.GetService(), ServiceUser, ServiceQuorum)
	case len(c.GetChallenge()) != QuorumChallengeSize:
		return fail(codeInvalid, "quorum challenge must be %d bytes", QuorumChallengeSize)
	case now <= 0:
		return fail(codeInvalid, "issue time is required")
	}
	if _, r := s.adminActor(c.GetRequester(), "request quorum tokens"); r != nil {
		return r
	}
	if _, exists := s.tokens[c.GetId()]; exists {
		return fail(codeExists, "quorum token %q already exists", c.GetId())
	}
	live := 0
	for _, t := range s.tokens {
		if !expired(t, now) {
			live++
		}
	}
	if live >= MaxQuorumTokens {
		return fail(codePrecondition, "the cluster already holds the maximum of %d quorum tokens", MaxQuorumTokens)
	}

	// Drop every token expired at the new token's issue time: which tokens
	// go depends only on the state and the command, not on map order.
	for id, t := range s.tokens {
		if expired(t, now) {
			delete(s.tokens, id)
		}
	}
	s.tokens[c.GetId()] = &hsmfsmv1.QuorumToken{
		Id: c.GetId(), Service: c.GetService(), Requester: c.GetRequester(),
		Challenge: bytes.Clone(c.GetChallenge()), IssuedAtUnix: now,
	}
	return &hsmfsmv1.Result{Code: hsmfsmv1.Code_CODE_OK, QuorumTokenId: c.GetId()}
}

func (s *state) approveQuorumToken(c *hsmfsmv1.ApproveQuorumToken) *hsmfsmv1.Result {
	if r := s.requireActive(); r != nil {
		return r
	}
	t, found := s.tokens[c.GetId()]
	if !found {
		return fail(codeNotFound, "quorum token %q not found", c.GetId())
	}
	if expired(t, c.GetNowUnix()) {
		return fail(codeDenied, "quorum token expired: token %q was issued more than %d s ago", c.GetId(), QuorumTokenLifetime)
	}
	u, r := s.adminActor(c.GetApprover(), "approve quorum tokens")
	if r != nil {
		return r
	}
	switch key := u.GetInfo().GetQuorumPublicKey(); {
	case len(key) == 0:
		return fail(codePrecondition, "admin %q has no registered quorum key", c.GetApprover())
	case !bytes.Equal(key, c.GetApproverPublicKeyDer()):
		return fail(codeDenied, "the approval was verified with a key that is not %q's registered quorum key", c.GetApprover())
	}
	i, approved := slices.BinarySearch(t.GetApprovers(), c.GetApprover())
	if approved {
		return fail(codeExists, "quorum token %q is already approved by %q", c.GetId(), c.GetApprover())
	}
	t.Approvers = slices.Insert(t.Approvers, i, c.GetApprover())
	return ok()
}
