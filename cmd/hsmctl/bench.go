package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/internal/loadgen"
)

// floorEndpoint is the --endpoint value that benchmarks the floor alone.
const floorEndpoint = "floor"

func benchCommands() []*command {
	return []*command{{name: "bench", summary: "load a KMS endpoint (the deployment's, or any with --endpoint) and report ops/s, latency and CPU per op", flags: benchFlags, run: runBench}}
}

type benchOpts struct {
	dir, endpoint, compare, compareDir    *string
	floor, floorProcess                   *bool
	op, compareOp, client                 *string
	concurrency, requests, payloadBytes   *int
	duration, slice, warmup, timeout      *time.Duration
	keyID, customKeyStoreID, compareKeyID *string
	compareCustomKeyStoreID               *string
	credentialsFile, profile, region      *string
	pids, comparePIDs                     *string
	quiet                                 *bool
}

func benchFlags(fs *flag.FlagSet) any {
	return &benchOpts{
		dir:                     fs.String("dir", DefaultDir, "deployment directory: its KMS endpoint, credentials and process ids are the defaults"),
		endpoint:                fs.String("endpoint", "", "KMS endpoint URL (default: the deployment's); \"floor\" benchmarks the floor alone"),
		compare:                 fs.String("compare", "", "a second endpoint URL, loaded in turn with the first (A, B, A, B... in slices); the report gives the ratio"),
		compareDir:              fs.String("compare-dir", "", "another deployment directory to compare with: its endpoint (unless --compare), credentials and process ids"),
		floor:                   fs.Bool("floor", false, "also load a no-op endpoint on loopback that answers every request with a canned valid response"),
		floorProcess:            fs.Bool("floor-process", false, "also load the no-op endpoint run as a process of its own (hsmctl floor), as a deployment runs its endpoint: the floor of any endpoint in its own process"),
		op:                      fs.String("op", string(loadgen.OpEncrypt), "workload: encrypt, decrypt, generate-data-key, re-encrypt, create-key or mix"),
		compareOp:               fs.String("compare-op", "", "workload of the compared target; without --compare or --compare-dir, compare two workloads on the one endpoint"),
		client:                  fs.String("client", string(loadgen.ClientSDK), "client: sdk (aws-sdk-go-v2's KMS client) or raw (prebuilt bodies signed with the SDK's SigV4 signer)"),
		concurrency:             fs.Int("concurrency", loadgen.DefaultConcurrency, "workers, each with one request in flight"),
		duration:                fs.Duration("duration", 0, "measured time per endpoint (default 10s unless --requests)"),
		requests:                fs.Int("requests", 0, "measured requests per endpoint, instead of --duration"),
		payloadBytes:            fs.Int("payload-bytes", loadgen.DefaultPayloadBytes, "plaintext size of Encrypt (1 to 4096)"),
		keyID:                   fs.String("key-id", "", "KMS key to use (default: create one)"),
		customKeyStoreID:        fs.String("custom-key-store-id", "", "create keys (the run's, and every create-key) in this custom key store"),
		compareKeyID:            fs.String("compare-key-id", "", "KMS key to use on --compare's endpoint (default: create one there)"),
		compareCustomKeyStoreID: fs.String("compare-custom-key-store-id", "", "--custom-key-store-id on the compared endpoint"),
		credentialsFile:         fs.String("credentials-file", "", "AWS shared credentials file (default: the deployment's; without one, any credentials)"),
		profile:                 fs.String("profile", "", "profile of --credentials-file (default: hsmsim for the deployment's file, else default)"),
		region:                  fs.String("region", loadgen.DefaultRegion, "region to sign for"),
		pids:                    fs.String("pid", "", "comma-separated process ids of the endpoint, for its CPU time per op (default: the deployment's kmsproxy and HSMs)"),
		comparePIDs:             fs.String("compare-pid", "", "comma-separated process ids of --compare's endpoint"),
		slice:                   fs.Duration("slice", loadgen.DefaultSlice, "how long one endpoint is loaded before the next one's turn"),
		warmup:                  fs.Duration("warmup", loadgen.DefaultWarmup, "unmeasured load of each endpoint before the run"),
		timeout:                 fs.Duration("timeout", loadgen.DefaultTimeout, "bound on one request"),
		quiet:                   fs.Bool("quiet", false, "no progress line"),
	}
}

// benchDeployment is what a bench takes from the deployment directory.
type benchDeployment struct {
	endpoint        string
	credentialsFile string
	pids            []int
	// names labels pids: kmsproxy, or an HSM's id.
	names map[int]string
}

// loadBenchDeployment reads the deployment in dir; ok is false when there
// is none.
func loadBenchDeployment(dir string) (benchDeployment, bool, error) {
	if _, err := os.Stat(filepath.Join(dir, cluster.StateFile)); err != nil {
		return benchDeployment{}, false, nil
	}
	store, err := cluster.NewStore(dir)
	if err != nil {
		return benchDeployment{}, false, err
	}
	st, err := store.Load()
	if err != nil {
		return benchDeployment{}, false, err
	}
	d := benchDeployment{endpoint: st.Endpoints["kms"], names: map[int]string{}}
	if f := filepath.Join(store.Dir(), "credentials"); fileExists(f) {
		d.credentialsFile = f
	}
	if p, ok := st.Processes["kmsproxy"]; ok && p.PID > 0 {
		d.pids = append(d.pids, p.PID)
		d.names[p.PID] = "kmsproxy"
	}
	for _, c := range st.Clusters {
		role := "customer"
		if c.Tags[FleetRoleTag] == FleetRole {
			role = "fleet"
		}
		for _, h := range c.Hsms {
			if h.Runtime.PID > 0 {
				d.pids = append(d.pids, h.Runtime.PID)
				d.names[h.Runtime.PID] = role + " " + h.HsmID
			}
		}
	}
	return d, true, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// parsePIDs parses a comma-separated list of process ids.
func parsePIDs(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%w: --%s: %q is not a process id", errUsage, flagName, f)
		}
		out = append(out, pid)
	}
	return out, nil
}

// benchConfig turns the flags into the load generator's configuration
// (without --floor-process's target, which runBench adds once the process
// runs).
func benchConfig(o *benchOpts, progress io.Writer) (loadgen.Config, error) {
	op, err := loadgen.ParseOp(*o.op)
	if err != nil {
		return loadgen.Config{}, fmt.Errorf("%w: --op: %w", errUsage, err)
	}
	if *o.duration != 0 && *o.requests != 0 {
		return loadgen.Config{}, fmt.Errorf("%w: give --duration or --requests, not both", errUsage)
	}
	pids, err := parsePIDs("pid", *o.pids)
	if err != nil {
		return loadgen.Config{}, err
	}
	comparePIDs, err := parsePIDs("compare-pid", *o.comparePIDs)
	if err != nil {
		return loadgen.Config{}, err
	}
	endpoint, credsFile, profile := *o.endpoint, *o.credentialsFile, *o.profile
	dep, haveDep, err := loadBenchDeployment(*o.dir)
	if err != nil {
		return loadgen.Config{}, err
	}
	fromDeployment := endpoint == "" || (haveDep && endpoint == dep.endpoint)
	if endpoint == "" {
		if !haveDep || dep.endpoint == "" {
			return loadgen.Config{}, fmt.Errorf("%w: no --endpoint, and no deployment with a KMS endpoint in %s (start one with hsmctl up)", errUsage, *o.dir)
		}
		endpoint = dep.endpoint
	}
	var names map[int]string
	if fromDeployment && haveDep {
		if len(pids) == 0 {
			pids, names = dep.pids, dep.names
		}
		if credsFile == "" {
			credsFile = dep.credentialsFile
			if profile == "" {
				profile = credentialsProfile
			}
		}
	}
	if profile == "" {
		profile = "default"
	}
	creds := loadgen.AnyCredentials
	if credsFile != "" {
		if creds, err = loadgen.LoadCredentials(credsFile, profile); err != nil {
			return loadgen.Config{}, fmt.Errorf("--credentials-file: %w", err)
		}
	}
	compare, compareCreds, compareNames := *o.compare, creds, map[int]string(nil)
	if *o.compareDir != "" {
		other, ok, err := loadBenchDeployment(*o.compareDir)
		switch {
		case err != nil:
			return loadgen.Config{}, err
		case !ok:
			return loadgen.Config{}, fmt.Errorf("%w: --compare-dir: no deployment in %s", errUsage, *o.compareDir)
		}
		if compare == "" {
			compare = other.endpoint
		}
		if len(comparePIDs) == 0 {
			comparePIDs, compareNames = other.pids, other.names
		}
		if other.credentialsFile != "" {
			if compareCreds, err = loadgen.LoadCredentials(other.credentialsFile, credentialsProfile); err != nil {
				return loadgen.Config{}, fmt.Errorf("--compare-dir: %w", err)
			}
		}
	}
	cfg := loadgen.Config{
		Op: op, Client: loadgen.Client(*o.client), Concurrency: *o.concurrency, Duration: *o.duration,
		Requests: *o.requests, PayloadBytes: *o.payloadBytes, Region: *o.region,
		Slice: *o.slice, Warmup: *o.warmup, Timeout: *o.timeout, Progress: progress,
	}
	if endpoint == floorEndpoint {
		if *o.floor {
			return loadgen.Config{}, fmt.Errorf("%w: --endpoint floor already benchmarks the floor; drop --floor", errUsage)
		}
		cfg.Targets = append(cfg.Targets, loadgen.Target{Name: "floor", Floor: true, Credentials: creds})
	} else {
		cfg.Targets = append(cfg.Targets, loadgen.Target{Name: "A", Endpoint: endpoint, Credentials: creds,
			KeyID: *o.keyID, CustomKeyStoreID: *o.customKeyStoreID, PIDs: pids, PIDNames: names})
	}
	var compareOp loadgen.Op
	if *o.compareOp != "" {
		if compareOp, err = loadgen.ParseOp(*o.compareOp); err != nil {
			return loadgen.Config{}, fmt.Errorf("%w: --compare-op: %w", errUsage, err)
		}
		if compare == "" {
			if endpoint == floorEndpoint {
				return loadgen.Config{}, fmt.Errorf("%w: --compare-op compares workloads on an endpoint, not on the floor", errUsage)
			}
			// The same endpoint, key store and processes, another workload.
			compare, compareCreds, comparePIDs, compareNames = endpoint, creds, pids, names
			if *o.compareCustomKeyStoreID == "" {
				*o.compareCustomKeyStoreID = *o.customKeyStoreID
			}
			if *o.compareKeyID == "" {
				*o.compareKeyID = *o.keyID
			}
		}
	}
	if compare != "" {
		cfg.Targets = append(cfg.Targets, loadgen.Target{Name: "B", Endpoint: compare, Credentials: compareCreds, Op: compareOp,
			KeyID: *o.compareKeyID, CustomKeyStoreID: *o.compareCustomKeyStoreID, PIDs: comparePIDs, PIDNames: compareNames})
	}
	if *o.floor {
		cfg.Targets = append(cfg.Targets, loadgen.Target{Name: "floor", Floor: true, Credentials: creds})
	}
	if err := validateBench(cfg); err != nil {
		return loadgen.Config{}, err
	}
	return cfg, nil
}

// validateBench checks cfg as the load generator will, so that a mistake
// is a usage error.
func validateBench(cfg loadgen.Config) error {
	check := cfg
	if check.Duration == 0 && check.Requests == 0 {
		check.Duration = loadgen.DefaultDuration
	}
	if err := check.Validate(); err != nil {
		if errors.Is(err, loadgen.ErrConfig) {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	}
	return nil
}

func runBench(ctx context.Context, e *env, o any, args []string) error {
	opts := o.(*benchOpts)
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected argument %q (flags only)", errUsage, args[0])
	}
	var progress io.Writer
	if !*opts.quiet {
		progress = e.stderr
	}
	cfg, err := benchConfig(opts, progress)
	if err != nil {
		return err
	}
	if *opts.floorProcess {
		// Its runtime settings are those of a deployment of the first
		// target's processes and this one.
		fp, err := startFloorProcess(ctx, *opts.payloadBytes, *opts.region, max(1, len(cfg.Targets[0].PIDs)))
		if err != nil {
			return err
		}
		defer fp.Close()
		cfg.Targets = append(cfg.Targets, fp.target(cfg.Targets[0].Credentials))
	}
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil && rep == nil {
		return err
	}
	if perr := e.emit(rep, rep.WriteText); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	for _, t := range rep.Targets {
		if t.Requests > 0 && t.Errors == t.Requests {
			return fmt.Errorf("%w: every request to %s (%s) failed", ErrBenchFailed, t.Name, t.Endpoint)
		}
	}
	return nil
}

// ErrBenchFailed is returned when every request to a target failed.
var ErrBenchFailed = errors.New("bench failed")
