package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// cutOff blocks every Raft link between node i and the others of c.
func cutOff(t *testing.T, c *nodetest.Cluster, i int) {
	t.Helper()
	var others []string
	for j, n := range c.Nodes {
		if j == i {
			continue
		}
		others = append(others, n.RaftAddr())
		_, err := c.Control(j).SetFaults(context.Background(), &hsmv1.SetFaultsRequest{Faults: []*hsmv1.LinkFault{{Peer: c.Nodes[i].RaftAddr(), Blocked: true}}})
		require.NoError(t, err)
	}
	req := &hsmv1.SetFaultsRequest{}
	for _, p := range others {
		req.Faults = append(req.Faults, &hsmv1.LinkFault{Peer: p, Blocked: true})
	}
	_, err := c.Control(i).SetFaults(context.Background(), req)
	require.NoError(t, err)
}

// Crypto on a key waits only for that key's writes: an HSM that missed
// later writes to other keys (here, one cut off while another key was
// created, then left alone with no leader) serves the older key at once.
// With the Client-wide index it would wait for writes it cannot apply
// until a leader exists, which is how crypto stopped on the survivor of a
// two-HSM cluster whose leader died (DESIGN.md invariant 6).
func TestCryptoWaitsOnlyForItsKeysWrites(t *testing.T) {
	c := newCluster(t)
	cl, api := mustClient(t, c)
	older := createKey(t, api, "older")
	c.WaitConverged()

	lagging := c.Followers()[0].Index
	cutOff(t, c, lagging)
	newer := createKey(t, api, "newer")
	require.Greater(t, cl.ObservedIndex(), c.Nodes[lagging].Status().GetAppliedIndex(), "the cut-off HSM missed the write")
	for i := range c.Nodes {
		if i != lagging {
			c.Stop(i)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, roundTrip(ctx, api, older, []byte("still served")), "the older key is served by the HSM that is left")

	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: newer, Mechanism: gcm, Plaintext: []byte("x"), Aad: []byte("aad")})
	require.Error(t, err, "the newer key's creation is not applied there: read-your-writes holds for it")
}
