package client

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// TestHedgeBudget checks the rationing of hedges: a burst of hedgeBurst,
// then one per hedgeRatio successful calls, never more than the burst
// saved up; and no hedge without another usable HSM.
func TestHedgeBudget(t *testing.T) {
	slow := &hsm{ep: Endpoint{ID: "slow"}, healthy: true, session: "s1"}
	other := &hsm{ep: Endpoint{ID: "other"}, healthy: true, session: "s2"}
	c := &Client{log: hclog.NewNullLogger(), hsms: []*hsm{slow, other}}
	c.hedgeTokens.Store(hedgeBurst * hedgeRatio)

	require.False(t, c.mayHedge(nil), "no hedge while the primary has no HSM")
	for i := range hedgeBurst {
		require.True(t, c.mayHedge(slow), "hedge %d of the burst", i)
	}
	require.False(t, c.mayHedge(slow), "the burst is spent")
	for range hedgeRatio - 1 {
		c.earnHedge()
	}
	require.False(t, c.mayHedge(slow), "%d successes do not earn a hedge", hedgeRatio-1)
	c.earnHedge()
	require.True(t, c.mayHedge(slow), "%d successes earn one", hedgeRatio)
	require.False(t, c.mayHedge(slow))

	for range 100 * hedgeBurst * hedgeRatio {
		c.earnHedge()
	}
	for range hedgeBurst {
		require.True(t, c.mayHedge(slow))
	}
	require.False(t, c.mayHedge(slow), "no more than the burst is saved up")
	require.Equal(t, uint64(2*hedgeBurst+1), c.Hedges())

	c.earnHedge()
	other.healthy = false
	for range hedgeRatio - 1 {
		c.earnHedge()
	}
	require.False(t, c.mayHedge(slow), "no hedge without another usable HSM")
	other.healthy = true
	require.True(t, c.mayHedge(slow), "the refusal kept the budget")
}
