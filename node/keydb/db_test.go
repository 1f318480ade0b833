package keydb_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/hsmsim/hsmsim/node/keydb"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

func requireProtoEqual[M proto.Message](t *testing.T, want, got M) {
	t.Helper()
	require.True(t, proto.Equal(want, got), "want %v\ngot  %v", want, got)
}

func requireProtosEqual[M proto.Message](t *testing.T, want, got []M) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		requireProtoEqual(t, want[i], got[i])
	}
}

func TestReadsReturnCopies(t *testing.T) {
	h := richHarness(t)
	before := h.snapshot()

	u, found := h.db.User(carol)
	require.True(t, found)
	u.Info.Locked = false
	u.Info.Username = "mallory"
	u.Info.QuorumPublicKey = []byte("x")

	users := h.db.Users()
	users[0].Role = hsmv1.Role_ROLE_CRYPTO_USER
	users[1] = nil

	k, found := h.db.Key(aliceKey)
	require.True(t, found)
	k.SealedMaterial[0] ^= 0xff
	k.Attributes.SharedUsers[0] = "mallory"
	k.Attributes.Id[0] = 'X'
	k.Attributes.Owner = bob

	keys := h.db.FindKeys(keydb.KeyFilter{UsableBy: bob})
	keys[0].SharedUsers = append(keys[0].SharedUsers[:0], "mallory")
	keys[0].PublicKey = nil

	admins := h.db.Users()
	admins[0].QuorumPublicKey[0] = 'Z'

	members := h.db.Members()
	members[0].DeviceCertSha256[0] ^= 0xff
	members[0].NodeId = "other"
	m, _ := h.db.Member("hsm-2")
	m.RaftAddress = "evil:1"

	require.Equal(t, before, h.snapshot(), "mutating returned values must not change the database")
	u, _ = h.db.User(carol)
	require.True(t, u.Info.GetLocked())
}

func TestApplyDoesNotKeepCommand(t *testing.T) {
	h := newHarness(t, stageActive)
	cmd := aesKeyCmd(bob, "bob-aes")
	member := member("hsm-2", 2)
	h.mustOK(cmd)
	h.mustOK(admitCmd(member))
	before := h.snapshot()

	c := cmd.GetCreateKey()
	c.Template.Label = "changed"
	c.Template.Id[0] = 'X'
	c.SealedMaterial[0] = 'X'
	member.DeviceCertSha256[0] ^= 0xff
	require.Equal(t, before, h.snapshot())
}

// TestConcurrentReads reads while applying; run with -race.
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t, stageActive)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				for _, a := range h.db.FindKeys(keydb.KeyFilter{UsableBy: bob}) {
					_, _ = h.db.Key(a.GetHandle())
				}
				_ = h.db.Users()
				_, _ = h.db.User(bob)
				_ = h.db.Counts()
				_, err := h.db.Snapshot()
				if err != nil {
					panic(err)
				}
			}
		}()
	}
	for range 200 {
		r := h.mustOK(aesKeyCmd(alice, ""))
		h.mustOK(shareCmd(alice, r.GetHandle(), bob))
		h.mustOK(loginFailureCmd(bob))
		h.mustOK(resetFailuresCmd(bob))
	}
	close(done)
	wg.Wait()
	require.Len(t, h.db.FindKeys(keydb.KeyFilter{UsableBy: bob}), 200)
}
