package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// listening reports whether addr accepts TCP connections.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestHealthcheck(t *testing.T) {
	p := writePKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	open := ln.Addr().String()
	_, port, _ := net.SplitHostPort(open)
	closed := freeAddr(t)
	settings := func(apiAddr string) map[string]any {
		return map[string]any{"id": "hsm-x", "az": "us-east-1a", "cluster-id": "cluster-1", "data-dir": p.dataDir,
			"device-cert": p.cert, "device-key": p.key, "hardware-ca": p.ca, "api-addr": apiAddr}
	}
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		want       string
	}{
		{"unassigned container", []string{"--healthcheck", "--wait-config", filepath.Join(t.TempDir(), "absent.json")}, exitOK, "unassigned"},
		{"assigned, listening", []string{"--healthcheck", "--wait-config", writeConfig(t, settings(open))}, exitOK, "healthy"},
		{"unspecified host probes loopback", []string{"--healthcheck", "--wait-config", writeConfig(t, settings("0.0.0.0:"+port))}, exitOK, "127.0.0.1:" + port},
		{"assigned, not listening", []string{"--healthcheck", "--wait-config", writeConfig(t, settings(closed))}, exitFailure, "unhealthy"},
		{"--config file", []string{"--healthcheck", "--config", writeConfig(t, settings(open))}, exitOK, "healthy"},
		{"command line beats the file", []string{"--healthcheck", "--api-addr", closed, "--config", writeConfig(t, settings(open))}, exitFailure, "unhealthy"},
		{"corrupt file", []string{"--healthcheck", "--wait-config", writeConfig(t, map[string]any{"no-such-flag": 1})}, exitFailure, "unknown setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, tt.wantStatus, run(tt.args, &out, &errOut, nil), "stdout %s stderr %s", &out, &errOut)
			require.Contains(t, out.String()+errOut.String(), tt.want)
		})
	}
}

// TestWaitConfig runs an unassigned HSM: it serves once its configuration
// appears, goes back to waiting when the configuration is removed, serves
// again when it is back, and stops on a signal.
func TestWaitConfig(t *testing.T) {
	p := writePKI(t)
	api, raft := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "hsmd.json")
	body := writeConfig(t, map[string]any{"id": "hsm-x", "az": "us-east-1a", "cluster-id": "cluster-1", "data-dir": p.dataDir,
		"device-cert": p.cert, "device-key": p.key, "hardware-ca": p.ca, "api-addr": api, "raft-addr": raft})
	data, err := os.ReadFile(body)
	require.NoError(t, err)

	stop := make(chan os.Signal, 1)
	logs := &syncBuffer{t: t}
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"--wait-config", cfgFile, "--log-level", "debug"}, &bytes.Buffer{}, logs, stop)
	}()
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("unassigned")) }, 5*time.Second, 10*time.Millisecond)
	require.False(t, listening(api))

	for round := 0; round < 2; round++ {
		require.NoError(t, os.WriteFile(cfgFile, data, 0o600))
		require.Eventually(t, func() bool { return listening(api) }, 15*time.Second, 20*time.Millisecond, "round %d: logs:\n%s", round, logs)
		require.NoError(t, os.Remove(cfgFile))
		require.Eventually(t, func() bool { return !listening(api) }, 15*time.Second, 20*time.Millisecond, "round %d", round)
		require.Eventually(t, func() bool {
			return bytes.Count([]byte(logs.String()), []byte("released: the configuration was removed")) == round+1
		},
			15*time.Second, 20*time.Millisecond)
	}
	select {
	case code := <-exited:
		t.Fatalf("hsmd exited with %d while unassigned", code)
	default:
	}

	// A signal while serving stops hsmd for good.
	require.NoError(t, os.WriteFile(cfgFile, data, 0o600))
	require.Eventually(t, func() bool { return listening(api) }, 15*time.Second, 20*time.Millisecond)
	stop <- syscall.SIGTERM
	select {
	case code := <-exited:
		require.Equal(t, exitOK, code)
	case <-time.After(15 * time.Second):
		t.Fatal("hsmd did not stop on SIGTERM")
	}
	require.False(t, listening(api))
}

func TestWaitConfigStopsWhileUnassigned(t *testing.T) {
	stop := make(chan os.Signal, 1)
	stop <- syscall.SIGTERM
	var errOut bytes.Buffer
	require.Equal(t, exitOK, run([]string{"--wait-config", filepath.Join(t.TempDir(), "never.json")}, &bytes.Buffer{}, &errOut, stop))
	require.Contains(t, errOut.String(), "stopped while unassigned")
}

func TestWaitConfigExcludesConfig(t *testing.T) {
	var errOut bytes.Buffer
	require.Equal(t, exitUsage, run([]string{"--wait-config", "a.json", "--config", "b.json"}, &bytes.Buffer{}, &errOut, nil))
	require.Contains(t, errOut.String(), "exclude each other")
}
