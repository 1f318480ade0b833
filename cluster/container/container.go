// Package container is the cluster.Provisioner of a container deployment
// (deploy/compose.yaml): every HSM runs in a container started before anyone
// asked for it, and CreateHsm claims an unassigned one in the requested AZ,
// as CloudHSM places an HSM on hardware that already sits in the AZ.
//
// # Slots
//
// An HSM container is a slot. It runs `hsmd --wait-config /slot/hsmd.json`
// and stays unassigned, serving nothing, until that file exists. Its slot
// directory is a volume it shares with the control plane (the one-shot
// hsmctl containers and the KMS endpoint), which sees every slot at
// Config.SlotsDir/<az>/<name>: the parent directory names the slot's AZ,
// and <name> is the container's host name on the deployment's networks.
// An HSM sees only its own slot, read-only, at Config.HSMDir (/slot), so no
// HSM can read another's device key. A slot directory holds:
//
//	claim               the id of the HSM that holds the slot, created with
//	                    O_EXCL: two control-plane processes never claim one
//	                    slot twice
//	hsmd.json           the running HSM's configuration (hsmd --config keys),
//	                    written last and atomically: its appearance starts
//	                    the HSM, its removal stops it
//	<hsm-id>/           what the provisioner gives that HSM: device.crt and
//	                    device.key (issued under the hardware CA),
//	                    hardware-ca.crt, backup.key, trust-anchor.crt (to
//	                    join) or restore.backup (to restore), and hsmd.json
//	                    while the HSM is stopped
//
// # Lifecycle
//
// Start claims the first free slot of the AZ (by name), writes the HSM's
// files and configuration and waits until <name>:APIPort accepts
// connections. The HSM listens on every interface and advertises
// <name>:APIPort and <name>:RaftPort: peers resolve the name with the
// networks' DNS at every dial and reach the HSM over whichever network they
// share with it, so a container that loses a network (a partition) or its
// address (a restart) is found again by name. Its data lives in
// Config.DataDir/<hsm-id>, on the container's own volume; the Runtime
// records that directory, which is how Stop, Restart and Running tell the
// HSM from another that holds the container later.
//
// Stop moves hsmd.json into the HSM's directory (hsmd notices, stops the
// HSM and waits again), waits until the port closes and releases the claim:
// the slot is free for the next CreateHsm, and DeleteHsm gives the
// container back. Restart claims the same slot again and puts the
// configuration back; a container that is down altogether (docker kill) is
// started again with `docker start`.
//
// # Faults
//
// Kill, Pause and Resume are `docker kill`, `docker pause` and `docker
// unpause` of the slot's container, found by its compose labels (project
// Config.Project, service <name>). They need the docker CLI, which only the
// Docker host has: the images hold none and no container gets the Docker
// socket, so elsewhere they fail with ErrNoDocker. Running needs no Docker:
// an HSM runs while it holds its slot, its configuration is in place and its
// port accepts connections (a paused container's kernel still accepts them,
// as a stopped process's does). Network faults stay the Manager's (SetFaults
// in each HSM's transport); real partitions are scripts/docker-fault.sh's
// `docker network disconnect`.
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// Files of a slot directory.
const (
	// ClaimFile holds the id of the HSM that holds the slot.
	ClaimFile = "claim"
	// ConfigFile is the running HSM's configuration, hsmd's --wait-config.
	ConfigFile = "hsmd.json"
)

// Defaults of Config.
const (
	DefaultHSMDir       = "/slot"
	DefaultDataDir      = "/data"
	DefaultAPIPort      = 2223
	DefaultRaftPort     = 2224
	DefaultProject      = "hsmsim"
	DefaultStartTimeout = 60 * time.Second
)

// Errors of the provisioner.
var (
	// ErrNoSlot means every HSM container of the AZ is assigned.
	ErrNoSlot = errors.New("container: no unassigned HSM container")
	// ErrSlotTaken means another HSM holds the slot a Restart needs.
	ErrSlotTaken = errors.New("container: the HSM's container holds another HSM")
	// ErrNoDocker means a fault needs the docker CLI and there is none.
	ErrNoDocker = errors.New("container: the docker CLI is not available here (container faults run on the Docker host: scripts/docker-fault.sh)")
)

// Config configures the container provisioner.
type Config struct {
	// SlotsDir is where the control plane sees the slots: SlotsDir/<az>/<name>.
	SlotsDir string
	// PKI issues device certificates.
	PKI *cluster.PKI
	// HSMDir is where each HSM sees its own slot directory (default
	// DefaultHSMDir). "same" means at the control plane's path: HSMs on the
	// same file system, as in tests.
	HSMDir string
	// DataDir is the HSMs' data directory; an HSM keeps its data in
	// DataDir/<hsm-id> (default DefaultDataDir).
	DataDir string
	// APIPort and RaftPort are the HSMs' ports (default 2223 and 2224).
	APIPort, RaftPort int
	// ListenOnSlotHost makes HSMs listen on their slot's host name only,
	// instead of every interface (tests, where slots are loopback addresses).
	ListenOnSlotHost bool
	// Settings are more hsmd settings for every HSM, by flag name (Raft
	// timings, log level).
	Settings map[string]any
	// StartTimeout bounds how long Start and Restart wait for the API port
	// (default DefaultStartTimeout), and Stop for it to close.
	StartTimeout time.Duration
	// Docker is the docker CLI for faults (default "docker" on PATH).
	Docker string
	// Project is the compose project whose containers are the slots
	// (default DefaultProject).
	Project string
	// Logger receives the provisioner's logs (default: none).
	Logger hclog.Logger
}

// Provisioner claims HSM containers. It is safe for concurrent use, by
// several processes too: claims are files created exclusively.
type Provisioner struct {
	cfg Config
	log hclog.Logger
}

var _ cluster.Provisioner = (*Provisioner)(nil)

// New returns a container provisioner.
func New(cfg Config) (*Provisioner, error) {
	if cfg.SlotsDir == "" || cfg.PKI == nil {
		return nil, errors.New("container: SlotsDir and PKI are required")
	}
	if st, err := os.Stat(cfg.SlotsDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("container: slots directory %s: %w", cfg.SlotsDir, errors.Join(err, errIfFile(st)))
	}
	if cfg.HSMDir == "" {
		cfg.HSMDir = DefaultHSMDir
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.APIPort == 0 {
		cfg.APIPort = DefaultAPIPort
	}
	if cfg.RaftPort == 0 {
		cfg.RaftPort = DefaultRaftPort
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Docker == "" {
		cfg.Docker = "docker"
	}
	if cfg.Project == "" {
		cfg.Project = DefaultProject
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Provisioner{cfg: cfg, log: log.Named("container")}, nil
}

func errIfFile(st os.FileInfo) error {
	if st != nil && !st.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// Slot is one HSM container.
type Slot struct {
	// Name is the container's host name (its compose service).
	Name string `json:"name"`
	AZ   string `json:"az"`
	// HsmID is the HSM that holds the slot; empty when it is unassigned.
	HsmID string `json:"hsm_id,omitempty"`
	// Dir is the slot directory as the control plane sees it.
	Dir string `json:"dir"`
}

// Slots lists every slot, by AZ then name.
func (p *Provisioner) Slots() ([]Slot, error) {
	azs, err := os.ReadDir(p.cfg.SlotsDir)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	var out []Slot
	for _, az := range azs {
		if !az.IsDir() {
			continue
		}
		slots, err := p.slotsIn(az.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, slots...)
	}
	return out, nil
}

func (p *Provisioner) slotsIn(az string) ([]Slot, error) {
	entries, err := os.ReadDir(filepath.Join(p.cfg.SlotsDir, az))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	var out []Slot
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s := Slot{Name: e.Name(), AZ: az, Dir: filepath.Join(p.cfg.SlotsDir, az, e.Name())}
		if b, err := os.ReadFile(filepath.Join(s.Dir, ClaimFile)); err == nil {
			s.HsmID = strings.TrimSpace(string(b))
		}
		out = append(out, s)
	}
	return out, nil // os.ReadDir sorts by name
}

// slotOf finds the slot a Runtime names by its host.
func (p *Provisioner) slotOf(rt cluster.Runtime) (Slot, error) {
	host, _, err := net.SplitHostPort(rt.APIAddr)
	if err != nil {
		return Slot{}, fmt.Errorf("container: runtime address %q: %w", rt.APIAddr, err)
	}
	slots, err := p.Slots()
	if err != nil {
		return Slot{}, err
	}
	for _, s := range slots {
		if s.Name == host {
			return s, nil
		}
	}
	return Slot{}, fmt.Errorf("container: no HSM container %s in %s", host, p.cfg.SlotsDir)
}

// hsmIDOf is the id of the HSM a Runtime describes: Start names its data
// directory after it.
func hsmIDOf(rt cluster.Runtime) string { return filepath.Base(rt.DataDir) }

// claim takes the slot for hsmID, or reports false when someone holds it.
func claim(s Slot, hsmID string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, ClaimFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("container: claim %s: %w", s.Name, err)
	}
	_, err = f.WriteString(hsmID + "\n")
	return true, errors.Join(err, f.Sync(), f.Close())
}

func release(s Slot) error {
	if err := os.Remove(filepath.Join(s.Dir, ClaimFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("container: release %s: %w", s.Name, err)
	}
	return nil
}

// Start claims an unassigned HSM container in spec.AZ, gives it the HSM's
// identity and configuration, and waits until its API accepts connections.
func (p *Provisioner) Start(ctx context.Context, spec cluster.HSMSpec) (cluster.Runtime, error) {
	slots, err := p.slotsIn(spec.AZ)
	if err != nil {
		return cluster.Runtime{}, err
	}
	var slot *Slot
	for i := range slots {
		if slots[i].HsmID != "" {
			continue
		}
		ok, err := claim(slots[i], spec.HsmID)
		if err != nil {
			return cluster.Runtime{}, err
		}
		if ok {
			slot = &slots[i]
			break
		}
	}
	if slot == nil {
		return cluster.Runtime{}, fmt.Errorf("%w in %s (%d containers there)", ErrNoSlot, spec.AZ, len(slots))
	}
	slot.HsmID = spec.HsmID
	rt, err := p.assign(ctx, *slot, spec)
	if err == nil {
		p.log.Info("HSM container claimed", "hsm_id", spec.HsmID, "az", spec.AZ, "container", slot.Name)
		if err = p.waitPort(ctx, rt.APIAddr, true); err == nil {
			return rt, nil
		}
	}
	os.Remove(filepath.Join(slot.Dir, ConfigFile))
	release(*slot)
	return cluster.Runtime{}, err
}

// assign writes the HSM's files into its slot, its configuration last.
func (p *Provisioner) assign(ctx context.Context, s Slot, spec cluster.HSMSpec) (cluster.Runtime, error) {
	apiAddr := net.JoinHostPort(s.Name, strconv.Itoa(p.cfg.APIPort))
	// A configuration without a claim is a leftover of a control plane that
	// crashed mid-way: stop whatever it runs first.
	if err := os.Remove(filepath.Join(s.Dir, ConfigFile)); err == nil {
		if err := p.waitPort(ctx, apiAddr, false); err != nil {
			return cluster.Runtime{}, err
		}
	}
	own := filepath.Join(s.Dir, spec.HsmID)
	if err := os.MkdirAll(own, 0o700); err != nil {
		return cluster.Runtime{}, fmt.Errorf("container: %w", err)
	}
	// seen maps a file of own to where the HSM reads it.
	seen := func(name string) string {
		if p.cfg.HSMDir == "same" {
			return filepath.Join(own, name)
		}
		return filepath.Join(p.cfg.HSMDir, spec.HsmID, name)
	}
	certPEM, keyPEM, err := p.cfg.PKI.IssueDevice(spec.HsmID)
	if err != nil {
		return cluster.Runtime{}, err
	}
	hardwareCA, err := os.ReadFile(p.cfg.PKI.HardwareCAPath())
	if err != nil {
		return cluster.Runtime{}, err
	}
	backupKey, err := os.ReadFile(p.cfg.PKI.BackupKeyPath())
	if err != nil {
		return cluster.Runtime{}, err
	}
	files := map[string][]byte{"device.crt": certPEM, "device.key": keyPEM, "hardware-ca.crt": hardwareCA, "backup.key": backupKey}
	listen := "0.0.0.0"
	if p.cfg.ListenOnSlotHost {
		listen = s.Name
	}
	rt := cluster.Runtime{
		APIAddr:  apiAddr,
		RaftAddr: net.JoinHostPort(s.Name, strconv.Itoa(p.cfg.RaftPort)),
		DataDir:  filepath.Join(p.cfg.DataDir, spec.HsmID),
	}
	settings := map[string]any{}
	for k, v := range p.cfg.Settings {
		settings[k] = v
	}
	for k, v := range map[string]any{
		"id": spec.HsmID, "az": spec.AZ, "cluster-id": spec.ClusterID, "data-dir": rt.DataDir,
		"api-addr":      net.JoinHostPort(listen, strconv.Itoa(p.cfg.APIPort)),
		"raft-addr":     net.JoinHostPort(listen, strconv.Itoa(p.cfg.RaftPort)),
		"advertise-api": rt.APIAddr, "advertise-raft": rt.RaftAddr,
		"device-cert": seen("device.crt"), "device-key": seen("device.key"),
		"hardware-ca": seen("hardware-ca.crt"), "backup-key": seen("backup.key"),
	} {
		settings[k] = v
	}
	if spec.Join != nil {
		files["trust-anchor.crt"] = []byte(spec.Join.TrustAnchorPEM)
		settings["join"] = spec.Join.Addrs
		settings["join-trust-anchor"] = seen("trust-anchor.crt")
		if spec.Join.CertificateID != "" && spec.Join.CertificateID != spec.ClusterID {
			settings["join-certificate-id"] = spec.Join.CertificateID
		}
	}
	if spec.RestoreFrom != "" {
		b, err := os.ReadFile(spec.RestoreFrom)
		if err != nil {
			return cluster.Runtime{}, fmt.Errorf("container: backup to restore: %w", err)
		}
		files["restore.backup"] = b
		settings["restore-from"] = seen("restore.backup")
	}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(own, name), data, 0o600); err != nil {
			return cluster.Runtime{}, fmt.Errorf("container: write %s: %w", name, err)
		}
	}
	conf, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return cluster.Runtime{}, err
	}
	// The configuration goes last: its appearance starts the HSM.
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, ConfigFile), append(conf, '\n'), 0o600); err != nil {
		return cluster.Runtime{}, fmt.Errorf("container: write %s: %w", ConfigFile, err)
	}
	return rt, nil
}

// waitPort waits until addr accepts connections (up) or stops accepting
// them (!up), for StartTimeout.
func (p *Provisioner) waitPort(ctx context.Context, addr string, up bool) error {
	deadline := time.Now().Add(p.cfg.StartTimeout)
	for accepts(ctx, addr) != up {
		if time.Now().After(deadline) {
			if up {
				return fmt.Errorf("container: the HSM at %s did not listen within %v (docker logs of its container tell why)", addr, p.cfg.StartTimeout)
			}
			return fmt.Errorf("container: the HSM at %s did not stop within %v", addr, p.cfg.StartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func accepts(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Restart brings a stopped HSM back in its container: it claims the slot
// again and puts its configuration back, or starts the container when it is
// down (docker start).
func (p *Provisioner) Restart(ctx context.Context, rt cluster.Runtime) (cluster.Runtime, error) {
	s, err := p.slotOf(rt)
	if err != nil {
		return rt, err
	}
	id := hsmIDOf(rt)
	if s.HsmID == "" {
		ok, err := claim(s, id)
		if err != nil {
			return rt, err
		}
		if !ok {
			return rt, fmt.Errorf("%w: %s claimed it meanwhile", ErrSlotTaken, s.Name)
		}
		s.HsmID = id
	}
	if s.HsmID != id {
		return rt, fmt.Errorf("%w: %s holds %s, not %s", ErrSlotTaken, s.Name, s.HsmID, id)
	}
	active, stopped := filepath.Join(s.Dir, ConfigFile), filepath.Join(s.Dir, id, ConfigFile)
	if _, err := os.Stat(active); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(stopped, active); err != nil {
			release(s)
			return rt, fmt.Errorf("container: restore the configuration of %s: %w", id, err)
		}
	} else if accepts(ctx, rt.APIAddr) {
		return rt, fmt.Errorf("container: HSM %s in %s is still running", id, s.Name)
	} else if running, err := p.containerRunning(ctx, s.Name); err == nil && !running {
		if _, err := p.docker(ctx, "start", s.Name); err != nil {
			return rt, err
		}
	}
	p.log.Info("HSM restarted", "hsm_id", id, "container", s.Name)
	return rt, p.waitPort(ctx, rt.APIAddr, true)
}

// Stop stops the HSM and gives its container back: hsmd stops the HSM when
// its configuration goes away, and the slot is released once its port
// closes. The HSM's data and files stay for a Restart.
func (p *Provisioner) Stop(ctx context.Context, rt cluster.Runtime) error {
	s, err := p.slotOf(rt)
	if err != nil {
		return err
	}
	id := hsmIDOf(rt)
	if s.HsmID != id {
		return nil // not running here: already stopped
	}
	active := filepath.Join(s.Dir, ConfigFile)
	if _, err := os.Stat(active); err == nil {
		if err := os.Rename(active, filepath.Join(s.Dir, id, ConfigFile)); err != nil {
			return fmt.Errorf("container: stop %s: %w", id, err)
		}
	}
	// A paused container would never notice.
	if _, err := exec.LookPath(p.cfg.Docker); err == nil {
		p.docker(ctx, "unpause", s.Name)
	}
	if err := p.waitPort(ctx, rt.APIAddr, false); err != nil {
		return err
	}
	p.log.Info("HSM stopped, container released", "hsm_id", id, "container", s.Name)
	return release(s)
}

// Kill kills the HSM's container (docker kill), as a crash would.
func (p *Provisioner) Kill(rt cluster.Runtime) error { return p.fault(rt, "kill") }

// Pause freezes the HSM's container (docker pause).
func (p *Provisioner) Pause(rt cluster.Runtime) error { return p.fault(rt, "pause") }

// Resume thaws the HSM's container (docker unpause).
func (p *Provisioner) Resume(rt cluster.Runtime) error { return p.fault(rt, "unpause") }

func (p *Provisioner) fault(rt cluster.Runtime, verb string) error {
	s, err := p.slotOf(rt)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = p.docker(ctx, verb, s.Name)
	return err
}

// Running reports whether the HSM holds its container, its configuration is
// in place and its API port accepts connections.
func (p *Provisioner) Running(rt cluster.Runtime) bool {
	s, err := p.slotOf(rt)
	if err != nil || s.HsmID != hsmIDOf(rt) {
		return false
	}
	if _, err := os.Stat(filepath.Join(s.Dir, ConfigFile)); err != nil {
		return false
	}
	return accepts(context.Background(), rt.APIAddr)
}

// docker runs `docker verb <the service's container>` and returns its output.
func (p *Provisioner) docker(ctx context.Context, verb, service string) (string, error) {
	id, err := p.containerID(ctx, service)
	if err != nil {
		return "", err
	}
	return p.run(ctx, verb, id)
}

// containerRunning reports whether the service's container runs (paused
// counts as running).
func (p *Provisioner) containerRunning(ctx context.Context, service string) (bool, error) {
	id, err := p.containerID(ctx, service)
	if err != nil {
		return false, err
	}
	out, err := p.run(ctx, "inspect", "--format", "{{.State.Running}}", id)
	return strings.TrimSpace(out) == "true", err
}

// containerID finds the compose service's container by its labels.
func (p *Provisioner) containerID(ctx context.Context, service string) (string, error) {
	out, err := p.run(ctx, "ps", "--all", "--quiet",
		"--filter", "label=com.docker.compose.project="+p.cfg.Project,
		"--filter", "label=com.docker.compose.service="+service)
	if err != nil {
		return "", err
	}
	ids := strings.Fields(out)
	if len(ids) != 1 {
		return "", fmt.Errorf("container: %d containers of service %s in compose project %s, want 1", len(ids), service, p.cfg.Project)
	}
	return ids[0], nil
}

func (p *Provisioner) run(ctx context.Context, args ...string) (string, error) {
	bin, err := exec.LookPath(p.cfg.Docker)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoDocker, err)
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("container: docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	p.log.Debug("docker", "args", strings.Join(args, " "))
	return string(out), nil
}
