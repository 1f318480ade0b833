package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// createAndEncrypt creates a key in s and encrypts a fresh plaintext with it.
func createAndEncrypt(t *testing.T, s *userSession, label string) ackedKey {
	t.Helper()
	h := s.createAES(t, label)
	pt := []byte("plaintext of " + label)
	return ackedKey{handle: h, plaintext: pt, ciphertext: s.encrypt(t, h, pt)}
}

// requireKeys asserts that s sees every key of want and that each decrypts
// its ciphertext.
func requireKeys(t *testing.T, s *userSession, want []ackedKey) {
	t.Helper()
	have := s.handles(t)
	for _, k := range want {
		require.Contains(t, have, k.handle, "node %d lacks key %d", s.i, k.handle)
		require.Equal(t, k.plaintext, s.decrypt(t, k.handle, k.ciphertext), "key %d on node %d", k.handle, s.i)
	}
}

// Invariants 6 and 7: losing the leader stops writes for one election only,
// and no acknowledged key is lost.
func TestLeaderKilledWritesContinue(t *testing.T) {
	c := nodetest.New(t, 3)
	old := c.Leader()
	c.CreateCryptoUser(old.Index, "alice", userPassword)
	c.WaitConverged()
	fs := c.Followers()
	survivors := []*userSession{loginCU(t, c, fs[0].Index, "alice", userPassword), loginCU(t, c, fs[1].Index, "alice", userPassword)}

	var acked []ackedKey
	for i := range 4 {
		acked = append(acked, createAndEncrypt(t, survivors[i%2], fmt.Sprintf("before-%d", i)))
	}

	// Kill the leader and keep writing through the followers at once: the
	// first writes wait for (or retry after) the election.
	c.Stop(old.Index)
	for i := range 10 {
		acked = append(acked, createAndEncrypt(t, survivors[i%2], fmt.Sprintf("after-%d", i)))
	}
	leader := c.Leader()
	require.NotEqual(t, old.Index, leader.Index, "a survivor must lead")

	c.WaitConverged()
	for _, s := range survivors {
		requireKeys(t, s, acked)
	}

	// The old leader comes back as a follower and catches up.
	c.Restart(old.Index)
	c.WaitConverged()
	require.Equal(t, "Follower", old.Status().GetRaftState())
	requireKeys(t, loginCU(t, c, old.Index, "alice", userPassword), acked)
}

// A follower that missed more than the leader keeps in its log catches up
// from a snapshot. What is asserted: the leader's snapshot store holds a
// snapshot, the leader logs "installing snapshot on" for the follower and
// the follower logs "copied to local snapshot" (hashicorp/raft's
// installSnapshot, which only runs when a leader sends InstallSnapshot) after
// its restart, and the follower ends with every key, whose material opens.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	logs := newLogCapture(t)
	c := nodetest.New(t, 3, func(cfg *node.Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
		cfg.SnapshotInterval = 50 * time.Millisecond
		logs.configure(cfg)
	})
	leader := c.Leader()
	c.CreateCryptoUser(leader.Index, "alice", userPassword)
	c.WaitConverged()
	f := c.Followers()[0]
	c.Stop(f.Index)

	s := loginCU(t, c, leader.Index, "alice", userPassword)
	var acked []ackedKey
	for i := range 45 {
		acked = append(acked, createAndEncrypt(t, s, fmt.Sprintf("k-%d", i)))
	}
	// Snapshot now, after the last write, so that the log the follower
	// needs is compacted away (TrailingLogs 4 < 45 writes). An automatic
	// snapshot that already covers the last index is as good.
	require.Eventually(t, func() bool {
		err := leader.Snapshot()
		return err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot)
	}, 10*time.Second, 10*time.Millisecond)
	snaps, err := filepath.Glob(filepath.Join(c.DataDir(leader.Index), "raft", "snapshots", "*", "meta.json"))
	require.NoError(t, err)
	require.NotEmpty(t, snaps, "the leader has no snapshot")

	before := len(logs.text(f.ID()))
	c.Restart(f.Index)
	c.WaitConverged()
	require.Eventually(t, func() bool {
		return strings.Contains(logs.text(f.ID())[before:], "copied to local snapshot")
	}, 10*time.Second, 10*time.Millisecond, "the follower did not install a snapshot from the leader")
	require.Regexp(t, "installing snapshot on: .*peer="+f.ID()+" ", logs.text(leader.ID()))

	fs := loginCU(t, c, f.Index, "alice", userPassword)
	require.Len(t, fs.handles(t), len(acked))
	requireKeys(t, fs, acked)
}

// Stopping every HSM and starting them again loses nothing: users, keys and
// their material, sharing.
func TestRestartKeepsEveryKey(t *testing.T) {
	c := nodetest.New(t, 3)
	c.CreateCryptoUser(0, "alice", userPassword)
	c.CreateCryptoUser(0, "bob", userPassword)
	admin := loginAdmin(t, c, 0)
	_, err := admin.cl.CreateUser(admin.ctx, &hsmv1.CreateUserRequest{Username: "admin2", Role: hsmv1.Role_ROLE_ADMIN, Password: "admin2-password"})
	require.NoError(t, err)
	c.WaitConverged()

	s := loginCU(t, c, 1, "alice", userPassword)
	var acked []ackedKey
	for i := range 3 {
		acked = append(acked, createAndEncrypt(t, s, fmt.Sprintf("aes-%d", i)))
	}
	mac, err := s.cl.GenerateSymmetricKey(s.ctx, &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, SizeBits: 256,
		Label: "hmac", Usage: &hsmv1.KeyUsage{Sign: true, Verify: true}})
	require.NoError(t, err)
	msg := []byte("message")
	tag, err := s.cl.GenerateMac(s.ctx, &hsmv1.GenerateMacRequest{Handle: mac.GetKey().GetHandle(), Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
	require.NoError(t, err)
	pair, err := s.cl.GenerateKeyPair(s.ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_EC, Curve: hsmv1.Curve_CURVE_P256,
		Label: "ec", Usage: &hsmv1.KeyUsage{Sign: true, Verify: true}})
	require.NoError(t, err)
	sig, err := s.cl.Sign(s.ctx, &hsmv1.SignRequest{Handle: pair.GetPrivateKey().GetHandle(), Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
		Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
	require.NoError(t, err)
	_, err = s.cl.ShareKey(s.ctx, &hsmv1.ShareKeyRequest{Handle: acked[0].handle, Username: "bob"})
	require.NoError(t, err)
	c.WaitConverged()

	for i := range c.Nodes {
		c.Stop(i)
	}
	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitConverged()

	for i := range c.Nodes {
		admin := loginAdmin(t, c, i)
		users, err := admin.cl.ListUsers(admin.ctx, &hsmv1.ListUsersRequest{})
		require.NoError(t, err)
		var names []string
		for _, u := range users.GetUsers() {
			names = append(names, u.GetUsername())
		}
		require.Equal(t, []string{node.AdminUsername, "admin2", "alice", "bob"}, names, "users on node %d", i)
		login(t, c, i, "admin2", "admin2-password", hsmv1.Role_ROLE_ADMIN)

		s := loginCU(t, c, i, "alice", userPassword)
		require.Len(t, s.handles(t), len(acked)+3, "alice's keys on node %d", i)
		requireKeys(t, s, acked)
		again, err := s.cl.GenerateMac(s.ctx, &hsmv1.GenerateMacRequest{Handle: mac.GetKey().GetHandle(), Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
		require.NoError(t, err)
		require.Equal(t, tag.GetMac(), again.GetMac(), "the HMAC key changed on node %d", i)
		ok, err := s.cl.Verify(s.ctx, &hsmv1.VerifyRequest{Handle: pair.GetPrivateKey().GetHandle(), Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
			Hash: hsmv1.Hash_HASH_SHA256, Message: msg, Signature: sig.GetSignature()})
		require.NoError(t, err)
		require.True(t, ok.GetValid(), "the EC key changed on node %d", i)

		bob := loginCU(t, c, i, "bob", userPassword)
		require.Equal(t, []uint64{acked[0].handle}, bob.handles(t), "bob's shared key on node %d", i)
		require.Equal(t, acked[0].plaintext, bob.decrypt(t, acked[0].handle, acked[0].ciphertext))
	}
	// The public half verifies outside the HSM too: the key is the one made
	// before the restart.
	pub, err := cryptocore.ParsePublicKey(pair.GetPublicKey().GetPublicKey())
	require.NoError(t, err)
	digest := sha256.Sum256(msg)
	require.True(t, ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig.GetSignature()))
}

// setFaults replaces node i's faults with blocks of peers (none heals).
func setFaults(t *testing.T, c *nodetest.Cluster, i int, blocked ...string) {
	t.Helper()
	req := &hsmv1.SetFaultsRequest{}
	for _, p := range blocked {
		req.Faults = append(req.Faults, &hsmv1.LinkFault{Peer: p, Blocked: true})
	}
	_, err := c.Control(i).SetFaults(context.Background(), req)
	require.NoError(t, err)
}

// blockedPeers returns the node ids node i's GetStatus reports blocked.
func blockedPeers(t *testing.T, c *nodetest.Cluster, i int) []string {
	t.Helper()
	st, err := c.Control(i).GetStatus(context.Background(), &hsmv1.GetStatusRequest{})
	require.NoError(t, err)
	var out []string
	for _, p := range st.GetPeers() {
		if p.GetBlocked() {
			out = append(out, p.GetNodeId())
		}
	}
	return out
}

// Partitioning the leader away (faults injected through ClusterService)
// elects a new leader on the majority side, which keeps taking writes; the
// isolated HSM keeps serving crypto but not writes; healing brings it back
// as a follower with every key.
func TestFaultsPartitionElectsNewLeader(t *testing.T) {
	c := nodetest.New(t, 3)
	old := c.Leader()
	c.CreateCryptoUser(old.Index, "alice", userPassword)
	c.WaitConverged()
	fs := c.Followers()
	minority := loginCU(t, c, old.Index, "alice", userPassword)
	majority := loginCU(t, c, fs[0].Index, "alice", userPassword)
	acked := []ackedKey{createAndEncrypt(t, minority, "before")}
	c.WaitConverged()

	setFaults(t, c, old.Index, fs[0].RaftAddr(), fs[1].RaftAddr())
	for _, f := range fs {
		setFaults(t, c, f.Index, old.RaftAddr())
	}
	require.ElementsMatch(t, []string{fs[0].ID(), fs[1].ID()}, blockedPeers(t, c, old.Index))
	for _, f := range fs {
		require.Equal(t, []string{old.ID()}, blockedPeers(t, c, f.Index))
	}

	require.Eventually(t, func() bool {
		return old.Status().GetRaftState() != "Leader" &&
			(fs[0].Status().GetRaftState() == "Leader" || fs[1].Status().GetRaftState() == "Leader")
	}, 10*time.Second, 10*time.Millisecond, "no new leader on the majority side")

	for i := range 5 {
		acked = append(acked, createAndEncrypt(t, majority, fmt.Sprintf("majority-%d", i)))
	}

	// The isolated HSM still runs crypto from its replica, but cannot write.
	require.Equal(t, acked[0].plaintext, minority.decrypt(t, acked[0].handle, acked[0].ciphertext))
	ctx, cancel := context.WithTimeout(minority.ctx, time.Second)
	defer cancel()
	_, err := minority.cl.GenerateSymmetricKey(ctx, aes256("minority"))
	require.Contains(t, []codes.Code{codes.Unavailable, codes.DeadlineExceeded}, status.Code(err), "write on the minority side: %v", err)

	for i := range c.Nodes {
		setFaults(t, c, i)
		require.Empty(t, blockedPeers(t, c, i))
	}
	require.Eventually(t, func() bool {
		st := old.Status()
		return st.GetRaftState() == "Follower" && st.GetLeaderId() != "" && st.GetLeaderId() != old.ID()
	}, 10*time.Second, 10*time.Millisecond, "the old leader did not rejoin as a follower")
	c.WaitConverged()
	requireKeys(t, minority, acked)
}

// Status reports each peer's health: a killed follower becomes unreachable
// in the leader's view, and ok again once it is back.
func TestStatusPeerHealth(t *testing.T) {
	c := nodetest.New(t, 3)
	leader := c.Leader()
	victim := c.Followers()[0]
	healthOf := func(id string) string {
		for _, p := range leader.Status().GetPeers() {
			if p.GetNodeId() == id {
				return p.GetHealth()
			}
		}
		return ""
	}
	require.Equal(t, "self", healthOf(leader.ID()))
	require.Equal(t, "ok", healthOf(victim.ID()))
	c.Stop(victim.Index)
	require.Eventually(t, func() bool { return healthOf(victim.ID()) == "unreachable" }, 10*time.Second, 20*time.Millisecond)
	c.Restart(victim.Index)
	require.Eventually(t, func() bool { return healthOf(victim.ID()) == "ok" }, 10*time.Second, 20*time.Millisecond)
	// A follower sees the leader.
	for _, p := range c.Followers()[0].Status().GetPeers() {
		if p.GetNodeId() == leader.ID() {
			require.Equal(t, "ok", p.GetHealth())
		}
	}
}
