package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// StateFile is the deployment's state file in its directory.
const StateFile = "deployment.json"

// State is everything the control plane keeps about a deployment. It is
// written to DIR/deployment.json, which is also what a user reads to find
// endpoints, HSMs and credential files.
type State struct {
	// Region is the simulated region.
	Region string `json:"region"`
	// Dir is the deployment directory.
	Dir string `json:"dir"`
	// Clusters and Backups are the control plane's records.
	Clusters []*Cluster `json:"clusters"`
	Backups  []*Backup  `json:"backups"`
	// Endpoints name the deployment's services (for example "kms").
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// Files name the deployment's files: customer CA, password files, logs.
	Files map[string]string `json:"files,omitempty"`
	// LauncherPID is the process that started the deployment, if it stays up.
	LauncherPID int `json:"launcher_pid,omitempty"`
	// Faults are the network faults in force, applied in every HSM's transport.
	Faults []FaultRule `json:"faults,omitempty"`
	// Processes are the deployment's other processes (the KMS endpoint), by name.
	Processes map[string]Runtime `json:"processes,omitempty"`
}

// Cluster returns the cluster with id, or nil.
func (s *State) Cluster(id string) *Cluster {
	for _, c := range s.Clusters {
		if c.ClusterID == id {
			return c
		}
	}
	return nil
}

// Backup returns the backup with id, or nil.
func (s *State) Backup(id string) *Backup {
	for _, b := range s.Backups {
		if b.BackupID == id {
			return b
		}
	}
	return nil
}

// Store keeps State in a JSON file. Several processes may share it (hsmctl
// and the KMS endpoint): every Update holds an exclusive flock on a lock
// file beside it, and writes go through a temporary file and a rename.
type Store struct {
	dir string
}

// NewStore returns a Store for the deployment directory dir, creating it.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: deployment dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Store{dir: abs}, nil
}

// Dir is the deployment directory.
func (s *Store) Dir() string { return s.dir }

// Load reads the state; a missing file is an empty state.
func (s *Store) Load() (*State, error) {
	unlock, err := s.lock(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.read()
}

// Update reads the state, lets f change it and writes it back, all under
// the lock. When f fails nothing is written.
func (s *Store) Update(f func(*State) error) error {
	unlock, err := s.lock(syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.read()
	if err != nil {
		return err
	}
	if err := f(st); err != nil {
		return err
	}
	sort.Slice(st.Clusters, func(i, j int) bool { return st.Clusters[i].CreatedAt.Before(st.Clusters[j].CreatedAt) })
	sort.Slice(st.Backups, func(i, j int) bool { return st.Backups[i].CreatedAt.Before(st.Backups[j].CreatedAt) })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.dir, StateFile), append(b, '\n'), 0o600)
}

func (s *Store) read() (*State, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Region: "us-east-1", Dir: s.dir}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("cluster: %s is corrupt: %w", StateFile, err)
	}
	return &st, nil
}

func (s *Store) lock(how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".deployment.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("cluster: lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
