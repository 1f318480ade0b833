package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/internal/cputime"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// BenchmarkEncrypt64 measures the HSM hop of a KMS Encrypt: AES-GCM of 64
// bytes through a Client spread over a 3-HSM in-process cluster, with 32
// callers. The client, the three HSMs and Raft share the process, so
// cpu-ns/op (the process's CPU time per call) is the whole hop's cost:
// the Client, gRPC and TLS both ways, and the HSM's session, key lookup,
// unsealing and AES-GCM.
func BenchmarkEncrypt64(b *testing.B) {
	c := nodetest.New(b, 3, func(cfg *node.Config) { cfg.Logger = hclog.NewNullLogger() })
	c.CreateCryptoUser(c.Leader().Index, user, password)
	c.WaitConverged()
	cfg := config(b, c, user, password)
	cfg.Logger = hclog.NewNullLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := client.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	api := hsmv1.NewHsmServiceClient(cl)
	key, err := api.GenerateSymmetricKey(ctx, aes256("bench"))
	if err != nil {
		b.Fatal(err)
	}
	req := &hsmv1.EncryptRequest{Handle: key.GetKey().GetHandle(), Mechanism: gcm, Plaintext: make([]byte, 64), Aad: make([]byte, 21)}
	for range 100 { // connections, sessions, caches
		if _, err := api.Encrypt(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	const callers = 32
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := cputime.Self(), time.Now()
	work := make(chan struct{}, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range work {
				if _, err := api.Encrypt(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cputime.Self()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}
