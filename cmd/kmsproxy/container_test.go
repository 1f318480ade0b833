package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/container"
	"github.com/hsmsim/hsmsim/cluster/local"
)

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return writeFile(t, "kmsproxy.json", string(b))
}

func TestConfigFile(t *testing.T) {
	slots := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, cfg config)
	}{
		{name: "settings from the file", args: []string{"--config", writeJSON(t, map[string]any{
			"auth": "any", "addr": "0.0.0.0:4599", "region": "eu-west-1", "provisioner": "container", "slots-dir": slots,
		})}, check: func(t *testing.T, cfg config) {
			require.Equal(t, "0.0.0.0:4599", cfg.Server.Addr)
			require.Equal(t, "eu-west-1", cfg.Region)
			require.Equal(t, provisionerContainer, cfg.Provisioner)
			require.Equal(t, slots, cfg.SlotsDir)
			require.True(t, cfg.Server.AnyCredentials)
		}},
		{name: "the command line wins", args: []string{"--region", "us-west-2", "--config", writeJSON(t, map[string]any{"auth": "any", "region": "eu-west-1"})},
			check: func(t *testing.T, cfg config) {
				require.Equal(t, "us-west-2", cfg.Region)
				require.Equal(t, provisionerLocal, cfg.Provisioner)
			}},
		{name: "unknown setting", args: []string{"--config", writeJSON(t, map[string]any{"auth": "any", "colour": "blue"})}, wantErr: `unknown setting "colour"`},
		{name: "not an object", args: []string{"--config", writeFile(t, "bad.json", "[1]")}, wantErr: "not a JSON object"},
		{name: "missing file", args: []string{"--config", filepath.Join(slots, "none.json")}, wantErr: "--config"},
		{name: "list value", args: []string{"--config", writeJSON(t, map[string]any{"auth": []string{"any"}})}, wantErr: "unsupported value"},
		{name: "unknown provisioner", args: []string{"--auth", "any", "--provisioner", "cloud"}, wantErr: `--provisioner: unknown kind "cloud"`},
		{name: "container without slots", args: []string{"--auth", "any", "--provisioner", "container"}, wantErr: "needs --slots-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, io.Discard, io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func TestNewProvisioner(t *testing.T) {
	dir := t.TempDir()
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	p, err := newProvisioner(config{Provisioner: provisionerContainer, SlotsDir: dir}, dir, pki)
	require.NoError(t, err)
	require.IsType(t, &container.Provisioner{}, p)
	if _, err := local.FindBinary("hsmd"); err == nil {
		p, err = newProvisioner(config{Provisioner: provisionerLocal}, dir, pki)
		require.NoError(t, err)
		require.IsType(t, &local.Provisioner{}, p)
	}
}

func TestHealthcheck(t *testing.T) {
	base, stop := runKMSProxy(t, "--addr", "127.0.0.1:0", "--auth", "any")
	addr := strings.TrimPrefix(base, "http://")
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	check := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"--healthcheck"}, args...), &out, &errOut, nil)
		return code, out.String() + errOut.String()
	}
	code, out := check("--addr", addr)
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "healthy")
	code, out = check("--addr", "0.0.0.0:"+port)
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "127.0.0.1:"+port, "an unspecified host is probed on loopback")
	code, out = check("--config", writeJSON(t, map[string]any{"addr": addr}))
	require.Equal(t, exitOK, code, out)

	require.Equal(t, exitOK, stop())
	code, out = check("--addr", addr)
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "unhealthy")
	code, out = check("--config", filepath.Join(os.TempDir(), "no-such-kmsproxy.json"))
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "unhealthy")
}
