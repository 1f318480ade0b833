package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGomaxprocsFor(t *testing.T) {
	tests := []struct {
		cores, processes, want int
	}{
		{2, 1, 0},
		{2, 2, 0},
		{2, 3, 1},
		{2, 4, 1},
		{8, 4, 0},
		{3, 4, 1},
		{16, 20, 1},
		{1, 4, 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, GomaxprocsFor(tt.cores, tt.processes), "%d cores, %d processes", tt.cores, tt.processes)
	}
}

// unsetGOMAXPROCS unsets GOMAXPROCS for the test, restoring it after.
func unsetGOMAXPROCS(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	require.NoError(t, os.Unsetenv("GOMAXPROCS"))
}

func TestGomaxprocsCountsTheDeployment(t *testing.T) {
	unsetGOMAXPROCS(t)
	dir := t.TempDir()
	p := &Provisioner{cfg: Config{Dir: dir}, children: map[int]*exec.Cmd{}}
	cores := runtime.NumCPU()
	require.Equal(t, GomaxprocsFor(cores, 1), p.gomaxprocs(), "one process, the one starting")
	for i := range cores + 1 {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "hsms", fmt.Sprintf("hsm-%d", i)), 0o700))
	}
	require.Equal(t, 1, p.gomaxprocs(), "more HSMs in the deployment than cores")
	t.Setenv("GOMAXPROCS", "2")
	require.Zero(t, p.gomaxprocs(), "the user's GOMAXPROCS wins")
}

func TestGomaxprocsFromConfig(t *testing.T) {
	unsetGOMAXPROCS(t)
	p := &Provisioner{cfg: Config{Dir: t.TempDir(), Processes: runtime.NumCPU() + 1}, children: map[int]*exec.Cmd{}}
	require.Equal(t, 1, p.gomaxprocs())
}
