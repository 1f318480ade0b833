// Package local is the Provisioner that runs each HSM as an hsmd process on
// this machine: one data directory, one log file and two loopback ports
// each, in their own process group so that the launcher decides when they
// stop.
//
// # GOMAXPROCS
//
// A Go program sizes its scheduler to the machine (GOMAXPROCS = the number of
// cores). A local deployment runs several such programs on one machine
// (`hsmctl up`: six hsmd, for the customer's cluster and the fleet's, and the
// KMS endpoint), all busy at once under load; with more processes than cores,
// each one's extra Ps only add idle spinning, futex wake-ups and thread
// hand-offs between processes that compete for the same cores. Measured on a
// 2-core machine with hsmctl bench (Encrypt, 64 B, concurrency 16, two such
// deployments loaded in turn, one run): 485 µs of server CPU per operation
// with GOMAXPROCS=1 against 620 µs with the default of 2 (-22%), at 5% more
// throughput and a lower p99; an earlier measurement found -12%. So when the
// machine has fewer cores than the processes the deployment runs, the
// provisioner starts its children with GOMAXPROCS = max(1, cores/processes),
// unless the user's environment sets GOMAXPROCS, which the children then
// inherit unchanged. The count is Config.Processes, or what the provisioner
// sees (see gomaxprocs); a single HSM on a 2-core machine keeps the default.
//
// # sysmon
//
// Each Go program has a monitor thread, sysmon. When the program's every P
// is idle, sysmon sleeps deeply, and the next system call that a goroutine
// enters wakes it through a futex; after such a wake sysmon polls every 20
// µs for a millisecond or more. A deployment's processes go idle between
// requests thousands of times a second, so every process pays, again and
// again, a thread wake-up, the sysmon's short sleeps and the context
// switches of both: on the 2-core machine where hsmsim is developed (a
// paravirtualised VM, where a context switch is dear) that was a fifth of
// an HSM's CPU under load (perf: do_nanosleep, futex waits and
// runtime.entersyscallWakeSysmon). The runtime offers one way to keep
// sysmon from deep sleep: a scheduler trace period, GODEBUG=schedtrace=N.
// The provisioner gives its children N = 2^31-1 ms (24.8 days); sysmon's
// first trace falls due that long after the machine booted, so the trace
// itself prints at most one line at start (on a machine up that long) and
// then one every 24.8 days. Measured with hsmctl bench, two deployments
// loaded in turn in one run (one with the setting, one without), on 2
// cores: Encrypt 64 B at concurrency 64, +24% to +33% ops/s in 3 of 3 runs
// at 28% less server CPU per operation (212 to 150 µs); at concurrency 1,
// 553 against 635 µs p50; CreateKey at concurrency 32, +7% and +16% keys/s
// at 38% less server CPU per key. It costs an idle process no more: two
// idle deployments side by side, 30 s, took 53 ms of CPU per second with
// this setting and GOGC's below, 72 without either. A GODEBUG of the
// user's that sets schedtrace is left as it is (see ChildEnv).
//
// # GOGC
//
// Each process keeps a small live heap (tens of MiB) and allocates for
// every request, so at the runtime's default GOGC=100 the garbage collector
// runs several times a second under load, and was 8% of the endpoint's CPU
// in a profile. The provisioner gives its children GOGC=400 (a heap up to
// five times the live data between collections), unless the user's
// environment sets GOGC. Measured as above, raw and SDK clients, Encrypt at
// concurrency 64: more ops/s in 8 of 8 alternations (+4% to +19%), 4% to 13%
// less server CPU per operation; a local deployment's seven processes then
// held 393 MiB resident after the load, against 182 MiB.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
)

// Config configures the local provisioner.
type Config struct {
	// Dir is the deployment directory; HSMs live in Dir/hsms/<id>.
	Dir string
	// HsmdPath is the hsmd binary; default: beside the running executable,
	// else on PATH.
	HsmdPath string
	// PKI issues device certificates.
	PKI *cluster.PKI
	// Host is the address HSMs listen on; default 127.0.0.1.
	Host string
	// ExtraArgs are added to every hsmd command line (Raft timings, log level).
	ExtraArgs []string
	// StartTimeout bounds how long Start waits for the API port.
	StartTimeout time.Duration
	// Processes is how many processes (HSMs and other programs, such as the
	// KMS endpoint) the deployment runs at once, for the GOMAXPROCS rule (see
	// the package comment). 0 or a smaller count than the provisioner sees is
	// raised to the larger of the processes this Provisioner runs (with the
	// one it starts) and the HSMs the deployment directory holds.
	Processes int
}

// Provisioner runs hsmd processes.
type Provisioner struct {
	cfg Config
	mu  sync.Mutex
	// children are processes this Provisioner started, reaped when they exit.
	children map[int]*exec.Cmd
}

var _ cluster.Provisioner = (*Provisioner)(nil)

// New returns a local provisioner.
func New(cfg Config) (*Provisioner, error) {
	if cfg.Dir == "" || cfg.PKI == nil {
		return nil, errors.New("local: Dir and PKI are required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.HsmdPath == "" {
		p, err := FindBinary("hsmd")
		if err != nil {
			return nil, err
		}
		cfg.HsmdPath = p
	}
	return &Provisioner{cfg: cfg, children: map[int]*exec.Cmd{}}, nil
}

// FindBinary finds a hsmsim binary beside the running executable or on PATH.
func FindBinary(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("local: cannot find %s beside this program or on PATH (run make build): %w", name, err)
	}
	return p, nil
}

// Start writes the HSM's device certificate, picks two free ports and
// starts hsmd.
func (p *Provisioner) Start(ctx context.Context, spec cluster.HSMSpec) (cluster.Runtime, error) {
	home := filepath.Join(p.cfg.Dir, "hsms", spec.HsmID)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return cluster.Runtime{}, err
	}
	certPEM, keyPEM, err := p.cfg.PKI.IssueDevice(spec.HsmID)
	if err != nil {
		return cluster.Runtime{}, err
	}
	certFile, keyFile := filepath.Join(home, "device.crt"), filepath.Join(home, "device.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return cluster.Runtime{}, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return cluster.Runtime{}, err
	}
	apiAddr, err := p.freeAddr()
	if err != nil {
		return cluster.Runtime{}, err
	}
	raftAddr, err := p.freeAddr()
	if err != nil {
		return cluster.Runtime{}, err
	}
	rt := cluster.Runtime{
		APIAddr: apiAddr, RaftAddr: raftAddr,
		DataDir: filepath.Join(home, "data"),
		LogFile: filepath.Join(p.cfg.Dir, "logs", spec.HsmID+".log"),
	}
	args := []string{
		"--id", spec.HsmID, "--az", spec.AZ, "--cluster-id", spec.ClusterID, "--data-dir", rt.DataDir,
		"--api-addr", apiAddr, "--raft-addr", raftAddr,
		"--device-cert", certFile, "--device-key", keyFile, "--hardware-ca", p.cfg.PKI.HardwareCAPath(),
		"--backup-key", p.cfg.PKI.BackupKeyPath(),
	}
	if spec.RestoreFrom != "" {
		args = append(args, "--restore-from", spec.RestoreFrom)
	}
	if spec.Join != nil {
		anchorFile := filepath.Join(home, "trust-anchor.crt")
		if err := os.WriteFile(anchorFile, []byte(spec.Join.TrustAnchorPEM), 0o600); err != nil {
			return cluster.Runtime{}, err
		}
		args = append(args, "--join", strings.Join(spec.Join.Addrs, ","), "--join-trust-anchor", anchorFile)
		if spec.Join.CertificateID != "" && spec.Join.CertificateID != spec.ClusterID {
			args = append(args, "--join-certificate-id", spec.Join.CertificateID)
		}
	}
	rt.Args = append(args, p.cfg.ExtraArgs...)
	rt.Binary = p.cfg.HsmdPath
	return p.run(ctx, rt)
}

// StartProgram runs another hsmsim program (the KMS endpoint) the way HSMs
// run: its own session, a log file in Dir/logs, and a wait until addr
// accepts connections. Stop, Kill and Running work on the Runtime it returns.
func (p *Provisioner) StartProgram(ctx context.Context, binary, name string, args []string, addr string) (cluster.Runtime, error) {
	rt := cluster.Runtime{APIAddr: addr, LogFile: filepath.Join(p.cfg.Dir, "logs", name+".log"), Args: args, Binary: binary}
	return p.run(ctx, rt)
}

// Restart starts hsmd again with the arguments it had.
func (p *Provisioner) Restart(ctx context.Context, rt cluster.Runtime) (cluster.Runtime, error) {
	if p.Running(rt) {
		return rt, fmt.Errorf("local: process %d is still running", rt.PID)
	}
	return p.run(ctx, rt)
}

func (p *Provisioner) run(ctx context.Context, rt cluster.Runtime) (cluster.Runtime, error) {
	if err := os.MkdirAll(filepath.Dir(rt.LogFile), 0o700); err != nil {
		return rt, err
	}
	logf, err := os.OpenFile(rt.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return rt, err
	}
	defer logf.Close()
	binary := rt.Binary
	if binary == "" {
		binary = p.cfg.HsmdPath
	}
	cmd := exec.Command(binary, rt.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = ChildEnv(os.Environ(), p.gomaxprocs())
	// Its own session: a terminal's Ctrl-C goes to the launcher, which
	// stops the HSMs in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return rt, fmt.Errorf("local: start %s: %w", filepath.Base(binary), err)
	}
	rt.PID = cmd.Process.Pid
	exited := make(chan struct{})
	p.mu.Lock()
	p.children[rt.PID] = cmd
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		p.mu.Lock()
		delete(p.children, rt.PID)
		p.mu.Unlock()
		close(exited)
	}()
	deadline := time.Now().Add(p.cfg.StartTimeout)
	for {
		c, err := net.DialTimeout("tcp", rt.APIAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return rt, nil
		}
		select {
		case <-exited:
			return rt, fmt.Errorf("local: %s exited at start; see %s", filepath.Base(binary), rt.LogFile)
		case <-ctx.Done():
			syscall.Kill(rt.PID, syscall.SIGKILL)
			return rt, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			syscall.Kill(rt.PID, syscall.SIGKILL)
			return rt, fmt.Errorf("local: %s did not listen on %s in %v; see %s", filepath.Base(binary), rt.APIAddr, p.cfg.StartTimeout, rt.LogFile)
		}
	}
}

// Expect tells the Provisioner how many processes the deployment will run
// at once (Config.Processes), before it starts the first: the GOMAXPROCS
// rule then applies to every child, not only to those started once the
// others exist.
func (p *Provisioner) Expect(processes int) {
	p.mu.Lock()
	p.cfg.Processes = processes
	p.mu.Unlock()
}

// gomaxprocs returns the GOMAXPROCS to give the next child, 0 to leave it to
// the child's runtime: see the package comment.
func (p *Provisioner) gomaxprocs() int {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return 0
	}
	p.mu.Lock()
	running := len(p.children) + 1 // with the one starting
	expected := p.cfg.Processes
	p.mu.Unlock()
	procs := max(expected, running, p.hsmCount())
	return GomaxprocsFor(runtime.NumCPU(), procs)
}

// sysmonAwake is the GODEBUG setting that keeps a child's sysmon out of deep
// sleep: see the package comment.
const sysmonAwake = "schedtrace=2147483647"

// gcPercent is the children's GOGC: see the package comment.
const gcPercent = "400"

// ChildEnv is the environment the provisioner gives a child: environ (its
// own process's), with GOMAXPROCS=gomaxprocs unless gomaxprocs is 0, GOGC
// (400) unless environ sets GOGC, and the GODEBUG setting that keeps sysmon
// awake added unless GODEBUG already sets schedtrace: see the package
// comment. hsmctl bench uses it for the floor it runs as a process.
func ChildEnv(environ []string, gomaxprocs int) []string {
	env := slices.Clone(environ)
	if gomaxprocs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	godebug, gogcSet := "", false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v // the last one counts, as in exec.Cmd
		}
		gogcSet = gogcSet || strings.HasPrefix(kv, "GOGC=")
	}
	if !gogcSet {
		env = append(env, "GOGC="+gcPercent)
	}
	for setting := range strings.SplitSeq(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(setting), "schedtrace=") {
			return env
		}
	}
	if godebug != "" {
		godebug += ","
	}
	// exec.Cmd uses the last value of a duplicated key.
	return append(env, "GODEBUG="+godebug+sysmonAwake)
}

// GomaxprocsFor is the GOMAXPROCS rule: 0 (the runtime's default) when the
// machine's cores cover the processes, else an even share of the cores, at
// least one.
func GomaxprocsFor(cores, processes int) int {
	if cores >= processes {
		return 0
	}
	return max(1, cores/processes)
}

// hsmCount is the number of HSMs in the deployment directory, running or not.
func (p *Provisioner) hsmCount() int {
	entries, err := os.ReadDir(filepath.Join(p.cfg.Dir, "hsms"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// Stop sends SIGTERM (and SIGCONT, in case it is paused), waits, then SIGKILL.
func (p *Provisioner) Stop(ctx context.Context, rt cluster.Runtime) error {
	if !p.Running(rt) {
		return nil
	}
	syscall.Kill(rt.PID, syscall.SIGTERM)
	syscall.Kill(rt.PID, syscall.SIGCONT)
	deadline := time.Now().Add(10 * time.Second)
	for p.Running(rt) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return p.Kill(rt)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Provisioner) Kill(rt cluster.Runtime) error {
	if err := signal(rt, syscall.SIGKILL); err != nil {
		return err
	}
	for i := 0; i < 500 && p.Running(rt); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Pause sends SIGSTOP.
func (p *Provisioner) Pause(rt cluster.Runtime) error { return signal(rt, syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (p *Provisioner) Resume(rt cluster.Runtime) error { return signal(rt, syscall.SIGCONT) }

// Running reports whether the process exists and is not a zombie.
func (p *Provisioner) Running(rt cluster.Runtime) bool {
	if rt.PID <= 0 || syscall.Kill(rt.PID, 0) != nil {
		return false
	}
	// A zombie (exited, not yet reaped by its parent) answers signal 0.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rt.PID))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

func signal(rt cluster.Runtime, sig syscall.Signal) error {
	if rt.PID <= 0 {
		return errors.New("local: no process")
	}
	if err := syscall.Kill(rt.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local: signal %v to %d: %w", sig, rt.PID, err)
	}
	return nil
}

// freeAddr returns a loopback address with a port that was free just now.
func (p *Provisioner) freeAddr() (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(p.cfg.Host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
