package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// TestHedging checks that crypto does not stop for an HSM that does not
// answer: with one HSM of three paused (both directions held, as a
// SIGSTOPped process looks), every call succeeds within a deadline far
// shorter than the AttemptTimeout the paused HSM would otherwise cost it,
// one caller alone and eight at once, batched and unbatched. Without
// hedging a lone caller's calls that land on the paused HSM miss their
// deadline, which shows that the check can fail.
func TestHedging(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name      string
		unhedged  bool
		unbatched bool
		deadline  time.Duration
	}{
		{name: "hedged", deadline: 3 * time.Second},
		{name: "hedged, unbatched", unbatched: true, deadline: 3 * time.Second},
		{name: "unhedged", unhedged: true, deadline: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, c, user, password)
			cfg.AttemptTimeout = time.Minute
			cfg.HedgeDelay = 50 * time.Millisecond
			cfg.Unhedged, cfg.Unbatched = tc.unhedged, tc.unbatched
			cl, api, key := pausedHSMClient(t, c, cfg, 0, "hedging-"+tc.name)
			var mu sync.Mutex
			var errs []error
			call := func(i int) {
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				if err := roundTrip(ctx, api, key, fmt.Appendf(nil, "pt-%d", i)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
			for i := range 6 { // a lone caller: calls go round the HSMs
				call(i)
			}
			if tc.unhedged {
				require.NotEmpty(t, errs, "without hedging, calls wait for the paused HSM")
				require.Equal(t, codes.DeadlineExceeded, status.Code(errs[0]), "%v", errs[0])
				require.Zero(t, cl.Hedges())
				return
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range 4 {
						call(100 + 10*w + i)
					}
				})
			}
			wg.Wait()
			require.Empty(t, errs)
			require.Positive(t, cl.Hedges(), "calls on the paused HSM were hedged")
			require.LessOrEqual(t, cl.Hedges(), uint64(10), "hedges are rationed")
		})
	}
}

// TestHedgedCallsFindTheSilentHSM checks that an HSM that does not answer
// is still made unhealthy at AttemptTimeout although hedges answered its
// callers long before, by cancelling their attempts there: the probe sent
// in their place finds it out.
func TestHedgedCallsFindTheSilentHSM(t *testing.T) {
	c := newCluster(t)
	for _, unbatched := range []bool{false, true} {
		t.Run(fmt.Sprintf("unbatched=%v", unbatched), func(t *testing.T) {
			cfg := config(t, c, user, password)
			cfg.AttemptTimeout = 500 * time.Millisecond
			cfg.HedgeDelay = 20 * time.Millisecond
			cfg.Unbatched = unbatched
			cl, api, key := pausedHSMClient(t, c, cfg, 0, fmt.Sprintf("silent-%v", unbatched))
			for i := range 3 { // round robin: one of them goes to the paused HSM
				start := time.Now()
				require.NoError(t, roundTrip(opContext(t), api, key, fmt.Appendf(nil, "pt-%d", i)))
				require.Less(t, time.Since(start), cfg.AttemptTimeout, "call %d waited for the paused HSM", i)
			}
			require.Positive(t, cl.Hedges())
			require.Eventually(t, func() bool { return !cl.Health()[0].Healthy }, 10*time.Second, 10*time.Millisecond,
				"the paused HSM is found out: %+v", cl.Health()[0])
			require.Contains(t, cl.Health()[0].LastError, "no answer from HSM")
		})
	}
}

// TestWritesAreNotHedged checks that a write is never sent to a second
// HSM while its attempt waits: with the Raft leader, where writes go
// first, paused to the Client, a key creation waits out its attempt there
// (AttemptTimeout, not HedgeDelay), is retried on another HSM, which
// forwards it to the leader, and makes exactly one key, with no hedge.
func TestWritesAreNotHedged(t *testing.T) {
	c := newCluster(t)
	cfg := config(t, c, user, password)
	cfg.AttemptTimeout = 500 * time.Millisecond
	cfg.HedgeDelay = 20 * time.Millisecond
	cl, api, _ := pausedHSMClient(t, c, cfg, c.Leader().Index, "not-hedged-first")

	start := time.Now()
	_, err := api.GenerateSymmetricKey(opContext(t), aes256("not-hedged"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), cfg.AttemptTimeout, "the write waited for its attempt on the paused leader")
	require.Zero(t, cl.Hedges(), "writes are not hedged")
	c.WaitConverged()
	requireKeysExactly(t, api, []string{"not-hedged-first", "not-hedged"})
}

// pausedHSMClient returns a Client of cfg whose HSM at index paused is
// behind a proxy, and a key made with label, then pauses that HSM (both
// directions held) until the test ends.
func pausedHSMClient(t *testing.T, c *nodetest.Cluster, cfg client.Config, paused int, label string) (*client.Client, hsmv1.HsmServiceClient, uint64) {
	t.Helper()
	proxy := newPausableProxy(t, cfg.Endpoints[paused].Addr)
	cfg.Endpoints[paused].Addr = proxy.addr()
	cl, err := client.New(opContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	requireAllHealthy(t, cl)
	api := hsmv1.NewHsmServiceClient(cl)
	key := createKey(t, api, label)
	c.WaitConverged()
	proxy.hold(requests, responses)
	t.Cleanup(proxy.release) // before the Client's Close, which logs out
	return cl, api, key
}

// TestReturnedCallsLeaveTheirRequests checks that a call's request is
// the caller's again once the call returns: its hedge, the attempt its
// hedge beat and a queued batch call its caller gave up on must not read
// it afterwards. Callers here overwrite each request's plaintext as soon
// as their call returns, as the KMS endpoint zeroes key material; hedges
// start after a microsecond, so most calls have one racing the primary,
// and some callers give up while their calls wait for a batch. The race
// detector (make test) reports a read after the return.
func TestReturnedCallsLeaveTheirRequests(t *testing.T) {
	c := newCluster(t)
	for _, unbatched := range []bool{false, true} {
		t.Run(fmt.Sprintf("unbatched=%v", unbatched), func(t *testing.T) {
			cfg := config(t, c, user, password)
			cfg.HedgeDelay = time.Microsecond
			cfg.Unbatched = unbatched
			cl, err := client.New(opContext(t), cfg)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, cl.Close()) })
			api := hsmv1.NewHsmServiceClient(cl)
			key := createKey(t, api, fmt.Sprintf("returned-%v", unbatched))
			c.WaitConverged()

			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range 40 {
						timeout := opTimeout
						if i%4 == 3 {
							timeout = time.Duration(i) * 20 * time.Microsecond // gives up, often while queued
						}
						ctx, cancel := context.WithTimeout(context.Background(), timeout)
						pt := fmt.Appendf(nil, "secret-%d-%d", w, i)
						req := &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: pt, Aad: []byte("aad")}
						_, err := api.Encrypt(ctx, req)
						cancel()
						clear(pt)
						req.Plaintext, req.Aad = nil, nil
						if timeout == opTimeout {
							require.NoError(t, err)
						}
					}
				})
			}
			wg.Wait()
			require.Positive(t, cl.Hedges())
		})
	}
}
