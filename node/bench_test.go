package node_test

// Benchmarks of the HSM node's customer API, with the bare crypto under it
// measured in the same run as a baseline. They start in-process 3-node
// clusters (nodetest), so run them on their own and with a fixed iteration
// count; the key quota (keydb.MaxKeys per cluster) bounds BenchmarkCreateKey:
//
//	go test ./node/ -run '^$' -bench . -benchtime 2000x -count 1
//
// Besides ns/op, each sub-benchmark reports the median and 99th percentile of
// the per-operation latencies ("p50-ms", "p99-ms", from time.Now around each
// call, so they include the ~50 ns of the two clock reads) and the throughput
// ("ops/s"). The nodes run with a null logger so that logging does not weigh
// on the numbers. The clients, the servers and Raft share the same process and
// cores: the figures are for comparing revisions on one machine, not an
// estimate of a real deployment.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/keydb"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	benchUser     = "bench-user"
	benchPassword = "bench-password-1"
	// benchConcurrency is the number of client goroutines of the
	// concurrent sub-benchmarks.
	benchConcurrency = 32
	// benchKeyBudget is how many keys BenchmarkCreateKey lets a cluster hold
	// before it deletes them, below keydb.MaxKeys.
	benchKeyBudget = 15000
	// benchRunTimeout bounds one run of a sub-benchmark, so that a stuck
	// cluster fails the benchmark instead of hanging it.
	benchRunTimeout = 5 * time.Minute
	// benchWarmup is how many untimed operations precede the timed loop of
	// bare-cryptocore.
	benchWarmup = 10000
)

// benchCluster starts a quiet 3-node cluster with a crypto user.
func benchCluster(b *testing.B) *nodetest.Cluster {
	b.Helper()
	c := nodetest.New(b, 3, func(cfg *node.Config) { cfg.Logger = hclog.NewNullLogger() })
	c.CreateCryptoUser(c.Leader().Index, benchUser, benchPassword)
	c.WaitConverged()
	return c
}

func benchAES256Request() *hsmv1.GenerateSymmetricKeyRequest {
	return &hsmv1.GenerateSymmetricKeyRequest{Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: "bench",
		Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}}
}

// BenchmarkEncrypt64 measures AES-256-GCM encryption of 64 bytes: bare
// cryptocore (a fresh AEAD per call, as the node builds one from the unsealed
// key material per request), then through the gRPC API of a follower of a
// 3-node cluster, the realistic place for a session since a client spreads
// over every HSM. Encrypt runs on the session's node from its local replica,
// so the follower adds no Raft round trip. grpc-1conn is one caller on one
// client connection; grpc-32concurrent is 32 callers on that same connection.
func BenchmarkEncrypt64(b *testing.B) {
	plaintext := make([]byte, 64)

	b.Run("bare-cryptocore", func(b *testing.B) {
		key, err := cryptocore.RandomBytes(cryptocore.KeySize)
		if err != nil {
			b.Fatal(err)
		}
		seal := func(context.Context) error {
			a, err := cryptocore.NewAEAD(key)
			if err != nil {
				return err
			}
			_, err = a.Seal(nil, plaintext, nil)
			return err
		}
		// Warm up (heap, caches) untimed: at -benchtime 2000x the timed
		// loop lasts about a millisecond, and a cold start would dominate it.
		for range benchWarmup {
			if err := seal(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		measureSequential(b, context.Background(), seal)
	})

	c := benchCluster(b)
	f := c.Followers()[0].Index
	session := c.Login(f, benchUser, benchPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	client := c.Client(f) // one connection for both gRPC sub-benchmarks
	key, err := client.GenerateSymmetricKey(session, benchAES256Request())
	if err != nil {
		b.Fatal(err)
	}
	newRequest := func() *hsmv1.EncryptRequest {
		return &hsmv1.EncryptRequest{Handle: key.GetKey().GetHandle(),
			Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: plaintext}
	}
	// Dial and handshake before any timing.
	if _, err := client.Encrypt(session, newRequest()); err != nil {
		b.Fatal(err)
	}
	encrypt := func(req *hsmv1.EncryptRequest) func(context.Context) error {
		return func(ctx context.Context) error {
			resp, err := client.Encrypt(ctx, req)
			if err == nil && len(resp.GetCiphertext()) != cryptocore.NonceSize+len(plaintext)+cryptocore.TagSize {
				err = fmt.Errorf("ciphertext of %d bytes", len(resp.GetCiphertext()))
			}
			return err
		}
	}

	b.Run("grpc-1conn", func(b *testing.B) {
		measureSequential(b, session, encrypt(newRequest()))
	})
	b.Run(fmt.Sprintf("grpc-%dconcurrent", benchConcurrency), func(b *testing.B) {
		measureConcurrent(b, session, benchConcurrency, func() func(context.Context) error {
			return encrypt(newRequest()) // a request per goroutine
		})
	})
}

// BenchmarkCreateKey measures AES-256 key generation on a 3-node cluster
// through a session on the leader: a Raft write (the key material is made and
// sealed on the node, then the command is committed by a majority). A session
// on a follower would add one forward hop to the leader (ApplyCommand) per
// write. writers-N is N callers on one client connection.
//
// The cluster holds at most keydb.MaxKeys keys: before a run that would go past
// benchKeyBudget keys the benchmark deletes the keys it made (untimed), and a
// run of more than benchKeyBudget iterations fails; keep -benchtime at a fixed
// count such as 2000x.
func BenchmarkCreateKey(b *testing.B) {
	c := benchCluster(b)
	leader := c.Leader().Index
	session := c.Login(leader, benchUser, benchPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	client := c.Client(leader)
	keys := &benchKeys{client: client, session: session}
	// Dial and handshake before any timing.
	if _, err := client.GenerateRandom(session, &hsmv1.GenerateRandomRequest{Length: 16}); err != nil {
		b.Fatal(err)
	}
	create := func() func(context.Context) error {
		req := benchAES256Request()
		return func(ctx context.Context) error {
			resp, err := client.GenerateSymmetricKey(ctx, req)
			if err != nil {
				return err
			}
			keys.add(resp.GetKey().GetHandle())
			return nil
		}
	}

	for _, writers := range []int{1, benchConcurrency} {
		b.Run(fmt.Sprintf("writers-%d", writers), func(b *testing.B) {
			keys.makeRoom(b, b.N)
			if writers == 1 {
				measureSequential(b, session, create())
				return
			}
			measureConcurrent(b, session, writers, create)
		})
	}
}

// benchKeys tracks the keys BenchmarkCreateKey made, to stay under the quota.
type benchKeys struct {
	client  hsmv1.HsmServiceClient
	session context.Context
	mu      sync.Mutex
	handles []uint64
}

func (k *benchKeys) add(h uint64) {
	k.mu.Lock()
	k.handles = append(k.handles, h)
	k.mu.Unlock()
}

// makeRoom makes sure n more keys fit in benchKeyBudget, deleting the keys
// made so far if needed. It runs before the timer starts.
func (k *benchKeys) makeRoom(b *testing.B, n int) {
	b.Helper()
	if n > benchKeyBudget {
		b.Fatalf("%d iterations would make more than %d keys (quota %d per cluster); use a smaller -benchtime, e.g. 2000x",
			n, benchKeyBudget, keydb.MaxKeys)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.handles)+n <= benchKeyBudget {
		return
	}
	ctx, cancel := context.WithTimeout(k.session, benchRunTimeout)
	defer cancel()
	work := make(chan uint64)
	errs := make(chan error, benchConcurrency)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			for h := range work {
				if _, err := k.client.DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: h}); err != nil {
					errs <- fmt.Errorf("delete key %d: %w", h, err)
					cancel()
					return
				}
			}
		})
	}
send:
	for _, h := range k.handles {
		select {
		case work <- h:
		case <-ctx.Done():
			break send
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	k.handles = k.handles[:0]
}

// measureSequential runs op b.N times in a row and reports the latencies.
func measureSequential(b *testing.B, ctx context.Context, op func(context.Context) error) {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, benchRunTimeout)
	defer cancel()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, durations, elapsed)
}

// measureConcurrent runs b.N operations from about goroutines goroutines
// (b.SetParallelism rounds up to a multiple of GOMAXPROCS: 16 per P, so 32,
// on 2 cores) and reports the latencies. newOp is called once per goroutine.
func measureConcurrent(b *testing.B, ctx context.Context, goroutines int, newOp func() func(context.Context) error) {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, benchRunTimeout)
	defer cancel()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((goroutines + procs - 1) / procs)
	var mu sync.Mutex
	all := make([]time.Duration, 0, b.N)
	perGoroutine := b.N/goroutines + 1
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		op := newOp()
		durations := make([]time.Duration, 0, perGoroutine)
		for pb.Next() {
			t0 := time.Now()
			if err := op(ctx); err != nil {
				b.Error(err) // Fatal may not be called from a RunParallel goroutine
				cancel()
				break
			}
			durations = append(durations, time.Since(t0))
		}
		mu.Lock()
		all = append(all, durations...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if b.Failed() {
		return
	}
	reportLatencies(b, all, elapsed)
}

// reportLatencies reports the median and 99th percentile of durations (one
// per operation) and the throughput over elapsed.
func reportLatencies(b *testing.B, durations []time.Duration, elapsed time.Duration) {
	b.Helper()
	if len(durations) != b.N {
		b.Fatalf("%d latencies for %d operations", len(durations), b.N)
	}
	slices.Sort(durations)
	b.ReportMetric(percentile(durations, 50).Seconds()*1e3, "p50-ms")
	b.ReportMetric(percentile(durations, 99).Seconds()*1e3, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

// percentile is the nearest-rank p-th percentile of sorted, which is not empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
