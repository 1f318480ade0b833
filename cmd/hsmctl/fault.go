package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

type faultOpts struct {
	dir     *string
	hsm     *string
	az      *string
	between *string
	ms      *uint
}

func faultFlags(hsm, az, latency bool) func(fs *flag.FlagSet) any {
	return func(fs *flag.FlagSet) any {
		o := &faultOpts{dir: fs.String("dir", DefaultDir, "deployment directory")}
		if hsm {
			o.hsm = fs.String("hsm", "", "the HSM's id (required)")
		}
		if az {
			o.az = fs.String("az", "", "the availability zone (required)")
		}
		if latency {
			o.between = fs.String("between", "", "two availability zones, AZ1,AZ2 (required)")
			o.ms = fs.Uint("ms", 0, "added latency in milliseconds (required)")
		}
		return o
	}
}

func faultCommands() []*command {
	hsmFault := func(name, summary string, do func(ctx context.Context, d *deployment, id string) error) *command {
		return &command{name: "fault " + name, summary: summary, flags: faultFlags(true, false, false),
			run: func(ctx context.Context, e *env, o any, _ []string) error {
				opts := o.(*faultOpts)
				if *opts.hsm == "" {
					return fmt.Errorf("%w: --hsm is required", errUsage)
				}
				return withDeployment(ctx, e, *opts.dir, name, func(d *deployment) error { return do(ctx, d, *opts.hsm) })
			}}
	}
	return []*command{
		hsmFault("kill", "kill an HSM process (SIGKILL)", func(_ context.Context, d *deployment, id string) error { return d.mgr.Kill(id) }),
		hsmFault("pause", "freeze an HSM process (SIGSTOP)", func(_ context.Context, d *deployment, id string) error { return d.mgr.Pause(id) }),
		hsmFault("resume", "thaw a paused HSM (SIGCONT)", func(_ context.Context, d *deployment, id string) error { return d.mgr.Resume(id) }),
		hsmFault("restart", "start a killed HSM again (or restart a running one)", func(ctx context.Context, d *deployment, id string) error { return d.mgr.Restart(ctx, id) }),
		hsmFault("isolate", "cut one HSM off from every other", func(ctx context.Context, d *deployment, id string) error { return d.mgr.Isolate(ctx, id) }),
		{name: "fault partition", summary: "cut an availability zone off from the others", flags: faultFlags(false, true, false),
			run: func(ctx context.Context, e *env, o any, _ []string) error {
				opts := o.(*faultOpts)
				if *opts.az == "" {
					return fmt.Errorf("%w: --az is required", errUsage)
				}
				return withDeployment(ctx, e, *opts.dir, "partition", func(d *deployment) error { return d.mgr.PartitionAZ(ctx, *opts.az) })
			}},
		{name: "fault latency", summary: "add latency between two availability zones", flags: faultFlags(false, false, true),
			run: func(ctx context.Context, e *env, o any, _ []string) error {
				opts := o.(*faultOpts)
				azs := strings.Split(*opts.between, ",")
				if len(azs) != 2 || *opts.ms == 0 {
					return fmt.Errorf("%w: --between AZ1,AZ2 and --ms N are required", errUsage)
				}
				return withDeployment(ctx, e, *opts.dir, "latency", func(d *deployment) error {
					return d.mgr.Latency(ctx, azs[0], azs[1], uint32(*opts.ms))
				})
			}},
		{name: "fault heal", summary: "clear every network fault", flags: faultFlags(false, false, false),
			run: func(ctx context.Context, e *env, o any, _ []string) error {
				return withDeployment(ctx, e, *o.(*faultOpts).dir, "heal", func(d *deployment) error { return d.mgr.Heal(ctx) })
			}},
	}
}

// withDeployment opens the deployment, runs f and reports what was done.
func withDeployment(ctx context.Context, e *env, dir, what string, f func(d *deployment) error) error {
	d, err := openDeployment(dir, false, nil)
	if err != nil {
		return err
	}
	if err := f(d); err != nil {
		return err
	}
	return e.emit(map[string]any{"done": what}, func(w io.Writer) { fmt.Fprintf(w, "%s: done\n", what) })
}
