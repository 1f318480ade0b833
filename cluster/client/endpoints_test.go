package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// endpoint returns node i of c as a client endpoint.
func endpoint(c *nodetest.Cluster, i int) client.Endpoint {
	n := c.Nodes[i]
	return client.Endpoint{ID: n.ID(), AZ: nodetest.AZs[i%len(nodetest.AZs)], Addr: n.APIAddr()}
}

// SetEndpoints follows a cluster that gains and loses HSMs under load: a
// new HSM is logged in to and serves calls, a removed one gets none, and no
// call fails on the way.
func TestSetEndpoints(t *testing.T) {
	c := newCluster(t)
	cfg := config(t, c, user, password)
	cfg.Endpoints = cfg.Endpoints[:2]
	cl, err := client.New(opContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	api := hsmv1.NewHsmServiceClient(cl)
	key := createKey(t, api, "endpoints")
	ids := func() []string {
		var out []string
		for _, h := range cl.Health() {
			out = append(out, h.ID)
		}
		return out
	}
	require.Equal(t, []string{c.Nodes[0].ID(), c.Nodes[1].ID()}, ids())

	l := startLoad(t, api, key, 6, "endpoints")
	l.waitFor(t, 50, 5)
	require.NoError(t, cl.SetEndpoints([]client.Endpoint{endpoint(c, 1), endpoint(c, 2)}))
	require.Equal(t, []string{c.Nodes[1].ID(), c.Nodes[2].ID()}, ids())
	require.Eventually(t, func() bool {
		for _, h := range cl.Health() {
			if h.ID == c.Nodes[2].ID() {
				return h.Healthy && h.Served > 0
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the added HSM serves calls: %+v", cl.Health())
	require.Eventually(t, func() bool {
		users, err := c.Client(0).ListUsers(opContext(t), &hsmv1.ListUsersRequest{})
		return err == nil && users.GetSessions()[user] == 0
	}, 10*time.Second, 10*time.Millisecond, "the removed HSM is disconnected, which ends the session there")
	l.waitFor(t, 100, 10)
	l.halt()
	require.Zero(t, l.failures.Load(), "%v", l.errs)

	require.NoError(t, cl.SetEndpoints([]client.Endpoint{endpoint(c, 1), endpoint(c, 2)}), "the same list changes nothing")
	require.Equal(t, []string{c.Nodes[1].ID(), c.Nodes[2].ID()}, ids())
}

// Writes go to the Raft leader, which every write's answer names, so that
// no follower has to forward them.
func TestWritesGoToTheLeader(t *testing.T) {
	c := newCluster(t)
	cl, api := mustClient(t, c)
	createKey(t, api, "first") // names the leader, wherever it ran
	served := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, h := range cl.Health() {
			out[h.ID] = h.Served
		}
		return out
	}
	before := served()
	for i := range 10 {
		createKey(t, api, fmt.Sprintf("key-%d", i))
	}
	after := served()
	leader := c.Leader().ID()
	require.Equal(t, before[leader]+10, after[leader], "every write went to the leader: %v -> %v", before, after)
}
