package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// target is a Target while the run goes.
type target struct {
	Target
	endpoint string
	floor    *Floor
	httpc    *http.Client
	kms      *kms.Client
	caller   caller
	fx       *fixture

	// Per worker, written only by that worker while a slice runs.
	hists []Histogram
	errs  []map[string]uint64

	// For the progress line.
	completed atomic.Uint64
	failed    atomic.Uint64
	latencyNS atomic.Int64

	// budget is what is left of Config.Requests.
	budget atomic.Int64

	measured  time.Duration
	serverCPU time.Duration
	cpuByPID  map[int]time.Duration
	selfCPU   time.Duration
	missing   map[int]bool
}

// Run loads every target of cfg in turn with the same workload and
// reports what each served. It stops early, with what it measured and
// ctx's error, when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets := make([]*target, 0, len(cfg.Targets))
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	for _, spec := range cfg.Targets {
		t, err := openTarget(ctx, cfg, spec)
		if t != nil {
			targets = append(targets, t)
		}
		if err != nil {
			return nil, err
		}
	}
	p := startProgress(cfg.Progress, targets)
	defer p.stop()
	if cfg.Warmup > 0 {
		for _, t := range targets {
			runSlice(ctx, cfg, t, cfg.Warmup, false)
		}
	}
	for _, t := range targets {
		t.budget.Store(int64(cfg.Requests))
	}
	for ctx.Err() == nil {
		active := 0
		for _, t := range targets {
			if t.done(cfg) {
				continue
			}
			active++
			d := cfg.Slice
			if cfg.Requests == 0 {
				d = min(d, cfg.Duration-t.measured)
			}
			runSlice(ctx, cfg, t, d, true)
		}
		if active == 0 {
			break
		}
	}
	p.stop()
	return buildReport(cfg, targets), ctx.Err()
}

// openTarget starts the target's floor if it has one, builds its clients
// and prepares its fixture (the key, the blob).
func openTarget(ctx context.Context, cfg Config, spec Target) (*target, error) {
	t := &target{Target: spec, endpoint: spec.Endpoint, cpuByPID: map[int]time.Duration{}}
	if spec.Floor {
		f, err := StartFloor(cfg.PayloadBytes, cfg.Region)
		if err != nil {
			return nil, err
		}
		t.floor, t.endpoint = f, f.URL()
	}
	t.httpc = newHTTPClient(cfg.Concurrency)
	t.kms = newKMSClient(t.endpoint, cfg.Region, spec.Credentials, t.httpc)
	fx, err := prepare(ctx, cfg, spec, t.kms)
	if err != nil {
		return t, fmt.Errorf("loadgen: target %s (%s): %w", spec.Name, t.endpoint, err)
	}
	t.fx = fx
	switch cfg.Client {
	case ClientRaw:
		if t.caller, err = newRawCaller(t.endpoint, cfg.Region, spec.Credentials, t.httpc, fx, spec.Op); err != nil {
			return t, err
		}
	default:
		t.caller = &sdkCaller{kms: t.kms, httpc: t.httpc, fx: fx}
	}
	t.hists = make([]Histogram, cfg.Concurrency)
	t.errs = make([]map[string]uint64, cfg.Concurrency)
	for i := range t.errs {
		t.errs[i] = map[string]uint64{}
	}
	return t, nil
}

func (t *target) close() {
	if t.caller != nil {
		t.caller.close()
	} else if t.httpc != nil {
		t.httpc.CloseIdleConnections()
	}
	if t.floor != nil {
		t.floor.Close()
	}
}

// done reports whether t has been measured enough.
func (t *target) done(cfg Config) bool {
	if cfg.Requests > 0 {
		return t.budget.Load() <= 0
	}
	return t.measured >= cfg.Duration
}

// prepare makes what the workload's requests carry: a random plaintext,
// the key (created unless given), and a blob encrypted under it.
func prepare(ctx context.Context, cfg Config, spec Target, cl *kms.Client) (*fixture, error) {
	fx := &fixture{customKeyStoreID: spec.CustomKeyStoreID, plaintext: make([]byte, cfg.PayloadBytes)}
	if _, err := rand.Read(fx.plaintext); err != nil {
		return nil, err
	}
	if !spec.Op.needsKey() {
		return fx, nil
	}
	fx.keyID = spec.KeyID
	if fx.keyID == "" {
		out, err := createKey(ctx, cl, spec.CustomKeyStoreID)
		if err != nil {
			return nil, fmt.Errorf("create the key: %w", err)
		}
		if out.KeyMetadata == nil || aws.ToString(out.KeyMetadata.KeyId) == "" {
			return nil, errors.New("create the key: no key id in the answer")
		}
		fx.keyID = aws.ToString(out.KeyMetadata.KeyId)
	}
	if spec.Op.needsBlob() {
		out, err := cl.Encrypt(ctx, &kms.EncryptInput{KeyId: &fx.keyID, Plaintext: fx.plaintext})
		if err != nil {
			return nil, fmt.Errorf("encrypt the blob to decrypt: %w", err)
		}
		fx.blob = out.CiphertextBlob
	}
	return fx, nil
}

// runSlice loads t with every worker for d (or until t's request budget is
// spent, when Config.Requests is set). With record it counts what the
// slice served; a warmup does not.
func runSlice(ctx context.Context, cfg Config, t *target, d time.Duration, record bool) {
	cycle := t.Op.cycle()
	budgeted := record && cfg.Requests > 0
	var self, server map[int]time.Duration
	selfPID := []int{os.Getpid()}
	if record {
		server, self = sampleCPU(t.PIDs), sampleCPU(selfPID)
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			k := w % len(cycle)
			h, errs := &t.hists[w], t.errs[w]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if budgeted && t.budget.Add(-1) < 0 {
					return
				}
				op := cycle[k]
				k = (k + 1) % len(cycle)
				cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				t0 := time.Now()
				err := t.caller.call(cctx, op)
				lat := time.Since(t0)
				cancel()
				if err != nil && ctx.Err() != nil {
					return // the run was stopped: not the endpoint's failure.
				}
				t.completed.Add(1)
				t.latencyNS.Add(int64(lat))
				if err != nil {
					t.failed.Add(1)
				}
				if !record {
					continue
				}
				if err != nil {
					errs[errorCode(err)]++
				} else {
					h.Record(lat)
				}
			}
		})
	}
	wg.Wait()
	if !record {
		return
	}
	t.measured += time.Since(start)
	t.serverCPU += addCPUDelta(t.cpuByPID, server, sampleCPU(t.PIDs))
	t.selfCPU += addCPUDelta(nil, self, sampleCPU(selfPID))
	for _, pid := range t.PIDs {
		if _, ok := server[pid]; !ok {
			if t.missing == nil {
				t.missing = map[int]bool{}
			}
			t.missing[pid] = true
		}
	}
}
