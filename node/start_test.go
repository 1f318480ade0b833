package node_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/barrier"
)

// A Start that fails leaves nothing open, and Close after it is harmless.
func TestFailedStartReleasesEverything(t *testing.T) {
	hw := testpki.NewCA(t, "hw")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, barrier.SecretsFile), []byte("not an envelope"), 0o600))
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.AZ, cfg.ClusterID, cfg.DataDir = "hsm-x", "us-east-1a", "cluster-x", dir
	cfg.APIListener, cfg.RaftListener = apiLn, raftLn
	cfg.DeviceCert, cfg.HardwareCA = hw.Issue(t, "hsm-x", false), hw.Cert
	cfg.Logger = hclog.NewNullLogger()
	n, err := node.New(cfg)
	require.NoError(t, err)
	require.Error(t, n.Start(context.Background()))
	require.NoError(t, n.Close(context.Background()))

	// Both ports are free again.
	for _, addr := range []string{apiLn.Addr().String(), raftLn.Addr().String()} {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err, "%s still held", addr)
		ln.Close()
	}
}
