package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hsmsim/hsmsim/cluster/local"
	"github.com/hsmsim/hsmsim/internal/loadgen"
)

// floorProcessName labels the floor process in bench reports.
const floorProcessName = "floor-proc"

func floorCommands() []*command {
	return []*command{{name: "floor", summary: "serve hsmctl bench's no-op endpoint on loopback until stdin closes (what bench --floor-process runs)",
		flags: floorFlags, run: runFloor}}
}

type floorOpts struct {
	payloadBytes *int
	region       *string
}

func floorFlags(fs *flag.FlagSet) any {
	return &floorOpts{
		payloadBytes: fs.Int("payload-bytes", loadgen.DefaultPayloadBytes, "plaintext size the canned answers are sized for"),
		region:       fs.String("region", loadgen.DefaultRegion, "region of the canned key ARN"),
	}
}

// runFloor starts a Floor, prints its URL on a line of its own and serves
// until stdin reaches its end (the parent closed it or exited) or ctx ends.
func runFloor(ctx context.Context, e *env, o any, args []string) error {
	opts := o.(*floorOpts)
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected argument %q (flags only)", errUsage, args[0])
	}
	f, err := loadgen.StartFloor(*opts.payloadBytes, *opts.region)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintln(e.stdout, f.URL())
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return nil
}

// floorProcess is a floor served by a child process (hsmctl floor).
type floorProcess struct {
	url   string
	pid   int
	cmd   *exec.Cmd
	stdin io.Closer
	// drained is closed when the process's stdout ends (it exited).
	drained chan struct{}
}

// target is the floor process as a bench target, loaded with creds.
func (fp *floorProcess) target(creds loadgen.Credentials) loadgen.Target {
	return loadgen.Target{Name: floorProcessName, Endpoint: fp.url, Credentials: creds,
		PIDs: []int{fp.pid}, PIDNames: map[int]string{fp.pid: floorProcessName}}
}

// startFloorProcess runs hsmctl floor as a process of its own: its own
// session, as hsmctl up starts a deployment's processes, and the runtime
// settings the local provisioner would give a deployment of siblings+1
// processes (cluster/local). It returns once the floor listens.
func startFloorProcess(ctx context.Context, payloadBytes int, region string, siblings int) (*floorProcess, error) {
	bin, err := local.FindBinary("hsmctl")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "floor", "--payload-bytes", fmt.Sprint(payloadBytes), "--region", region)
	cmd.Env = local.ChildEnv(os.Environ(), local.GomaxprocsFor(runtime.NumCPU(), siblings+1))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the floor process: %w", err)
	}
	fp := &floorProcess{pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, drained: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		defer close(fp.drained)
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, r)
	}()
	select {
	case fp.url = <-line:
	case <-ctx.Done():
		fp.Close()
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		fp.Close()
		return nil, errors.New("the floor process did not start listening within 10s")
	}
	if !strings.HasPrefix(fp.url, "http://") {
		fp.Close()
		return nil, fmt.Errorf("the floor process did not start: it printed %q", fp.url)
	}
	return fp, nil
}

// Close stops the floor process: its stdin closes, and it is killed if it
// has not exited within 5 s; then it is reaped.
func (fp *floorProcess) Close() {
	fp.stdin.Close()
	select {
	case <-fp.drained:
	case <-time.After(5 * time.Second):
		fp.cmd.Process.Kill()
		<-fp.drained
	}
	fp.cmd.Wait()
}
