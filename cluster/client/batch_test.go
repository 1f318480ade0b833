package client_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster/client"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// batchedCall is one call of TestBatching's load, with what it must answer.
type batchedCall struct {
	name string
	// do makes the call through api and checks its answer; a call meant to
	// fail returns its error unchecked.
	do func(ctx context.Context, api hsmv1.HsmServiceClient) error
	// fails says the call must fail, with the error the same call gets
	// when sent alone.
	fails bool
}

// TestBatching checks that concurrent crypto calls share Batch RPCs and
// that each caller gets exactly the answer, or the error, its call gets
// when sent alone; and that a lone caller's calls go alone.
func TestBatching(t *testing.T) {
	c := newCluster(t)
	cfg := config(t, c, user, password)
	cfg.BatchesInFlight = 1 // few workers are enough to fill the queues
	ctx := opContext(t)
	cl, err := client.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	api := hsmv1.NewHsmServiceClient(cl)
	requireAllHealthy(t, cl)

	unbatchedCfg := config(t, c, user, password)
	unbatchedCfg.Unbatched = true
	alone, err := client.New(ctx, unbatchedCfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, alone.Close()) })
	aloneAPI := hsmv1.NewHsmServiceClient(alone)

	key := createKey(t, api, "batched")
	sealed, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte("sealed"), Aad: []byte("aad")})
	require.NoError(t, err)
	const missing = 1 << 40 // no such key
	// The unbatched client must see the key on whichever HSM it reaches.
	alone.ObserveIndex(cl.ObservedIndex())

	calls := []batchedCall{
		{name: "encrypt", do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			return roundTrip(ctx, api, key, []byte("batched plaintext"))
		}},
		{name: "decrypt", do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			resp, err := api.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: key, Mechanism: gcm, Ciphertext: sealed.GetCiphertext(), Aad: []byte("aad")})
			if err == nil && !bytes.Equal(resp.GetPlaintext(), []byte("sealed")) {
				return fmt.Errorf("decrypt returned %q", resp.GetPlaintext())
			}
			return err
		}},
		{name: "random", do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			resp, err := api.GenerateRandom(ctx, &hsmv1.GenerateRandomRequest{Length: 33})
			if err == nil && len(resp.GetRandom()) != 33 {
				return fmt.Errorf("GenerateRandom returned %d bytes, want 33", len(resp.GetRandom()))
			}
			return err
		}},
		{name: "missing key", fails: true, do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			_, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: missing, Mechanism: gcm, Plaintext: []byte("x")})
			return err
		}},
		{name: "wrong aad", fails: true, do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			_, err := api.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: key, Mechanism: gcm, Ciphertext: sealed.GetCiphertext(), Aad: []byte("other")})
			return err
		}},
		{name: "invalid length", fails: true, do: func(ctx context.Context, api hsmv1.HsmServiceClient) error {
			_, err := api.GenerateRandom(ctx, &hsmv1.GenerateRandomRequest{Length: 0})
			return err
		}},
	}
	// The errors of the calls meant to fail, sent alone.
	want := make(map[string]*status.Status)
	for _, call := range calls {
		if call.fails {
			err := call.do(ctx, aloneAPI)
			require.Error(t, err, call.name)
			want[call.name] = status.Convert(err)
		}
	}
	require.Zero(t, batchedCalls(alone), "an unbatched client sends every call alone")

	// A lone caller's calls go alone.
	for _, call := range calls {
		err := call.do(ctx, api)
		require.Equal(t, call.fails, err != nil, "%s: %v", call.name, err)
	}
	require.Zero(t, batchedCalls(cl), "a lone caller waits for no one")

	const workers, rounds = 24, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				call := calls[(w+r)%len(calls)]
				err := call.do(ctx, api)
				switch {
				case !call.fails && err != nil:
					errs <- fmt.Errorf("%s: %w", call.name, err)
				case call.fails && err == nil:
					errs <- fmt.Errorf("%s: succeeded", call.name)
				case call.fails && (status.Code(err) != want[call.name].Code() || status.Convert(err).Message() != want[call.name].Message()):
					errs <- fmt.Errorf("%s: got %v, want %v as when sent alone", call.name, err, want[call.name].Err())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Positive(t, batchedCalls(cl), "concurrent calls must share batches: %+v", cl.Health())
	for _, h := range cl.Health() {
		require.Zero(t, h.Outstanding, "%+v", h)
		require.True(t, h.Healthy, "%+v", h)
	}
}

// batchedCalls sums the calls cl sent in batches.
func batchedCalls(cl *client.Client) uint64 {
	var n uint64
	for _, h := range cl.Health() {
		n += h.Batched
	}
	return n
}

// TestBatchedCallerGivesUp checks that a caller whose context ends while
// its call waits for a batch returns at once with its context's error,
// and that the call is still answered and released.
func TestBatchedCallerGivesUp(t *testing.T) {
	c := newCluster(t)
	cfg := config(t, c, user, password)
	cfg.BatchesInFlight = 1
	cl, err := client.New(opContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	api := hsmv1.NewHsmServiceClient(cl)
	key := createKey(t, api, "give-up")

	var wg sync.WaitGroup
	for i := range 64 {
		ctx, cancel := context.WithCancel(opContext(t))
		wg.Go(func() {
			defer cancel()
			if i%2 == 1 {
				cancel() // gives up before or while its call waits
			}
			_, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte("x")})
			if i%2 == 0 {
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		for _, h := range cl.Health() {
			if h.Outstanding != 0 {
				return false
			}
		}
		return true
	}, opTimeout, 10*time.Millisecond, "every call is released: %+v", cl.Health())
	require.NoError(t, roundTrip(opContext(t), api, key, []byte("still works")))
}

// TestBatchedCallersKeepTheirDeadlines checks that callers whose calls wait
// for, or travel in, a batch to an HSM that does not answer return at their
// own deadlines, not at the batch's AttemptTimeout.
func TestBatchedCallersKeepTheirDeadlines(t *testing.T) {
	c := newCluster(t)
	cfg := config(t, c, user, password)
	cfg.AttemptTimeout = time.Minute
	cfg.BatchesInFlight = 1
	proxy := newPausableProxy(t, cfg.Endpoints[0].Addr)
	cfg.Endpoints = []client.Endpoint{{ID: cfg.Endpoints[0].ID, AZ: cfg.Endpoints[0].AZ, Addr: proxy.addr()}}
	cl, err := client.New(opContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cl.Close()) })
	api := hsmv1.NewHsmServiceClient(cl)
	key := createKey(t, api, "deadlines")

	proxy.hold(requests, responses)
	const callers, deadline = 16, 300 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	codes := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: key, Mechanism: gcm, Plaintext: []byte("x")})
			codes <- err
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(codes)
	for err := range codes {
		require.Error(t, err)
	}
	require.Less(t, elapsed, cfg.AttemptTimeout/2, "callers returned at their deadlines, not the batch's")
	proxy.release()
	require.Eventually(t, func() bool { return roundTrip(opContext(t), api, key, []byte("after")) == nil },
		opTimeout, 10*time.Millisecond, "the HSM serves again once it answers: %+v", cl.Health())
}
