package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hsmsim/hsmsim/internal/testpki"
	"github.com/hsmsim/hsmsim/node"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// allFlags is every flag hsmd documents; the tests check each is declared,
// helped and parsed.
var allFlags = []string{
	"id", "az", "cluster-id", "data-dir", "api-addr", "raft-addr", "advertise-api", "advertise-raft",
	"metrics-addr", "device-cert", "device-key", "hardware-ca", "join", "join-trust-anchor",
	"heartbeat-timeout", "election-timeout", "leader-lease-timeout", "snapshot-threshold",
	"max-sessions", "log-level", "log-json", "config", "backup-key", "restore-from", "join-certificate-id",
	"wait-config", "healthcheck",
}

// pki is a hardware CA and a device certificate written as PEM files.
type pki struct {
	hw                        *testpki.CA
	device                    tls.Certificate
	dir                       string
	cert, key, ca, anchor     string
	otherKey, notPEM, dataDir string
}

func writePKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{hw: testpki.NewCA(t, "hsmsim hardware CA"), dir: dir, dataDir: filepath.Join(dir, "data")}
	p.device = p.hw.Issue(t, "hsm-x", false)
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	p.cert = write("device.pem", testpki.CertPEM(p.device.Certificate[0]))
	p.key = write("device-key.pem", testpki.KeyPEM(t, p.device.PrivateKey.(crypto.Signer)))
	p.ca = write("hardware-ca.pem", p.hw.CertPEM())
	p.anchor = write("customerCA.crt", testpki.NewCA(t, "customer CA").CertPEM())
	p.otherKey = write("other-key.pem", testpki.KeyPEM(t, testpki.NewKey(t)))
	p.notPEM = write("not.pem", []byte("not a certificate\n"))
	return p
}

// required is the smallest valid command line.
func (p *pki) required() []string {
	return []string{
		"--id", "hsm-x", "--az", "us-east-1a", "--cluster-id", "cluster-1", "--data-dir", p.dataDir,
		"--device-cert", p.cert, "--device-key", p.key, "--hardware-ca", p.ca,
	}
}

// without returns args minus the flag name and its value.
func without(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--"+name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// writeConfig writes a JSON config file and returns its path.
func writeConfig(t *testing.T, settings map[string]any) string {
	t.Helper()
	data, err := json.Marshal(settings)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "hsmd.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestParseConfig(t *testing.T) {
	p := writePKI(t)
	def := node.DefaultConfig()
	fileSettings := func() map[string]any {
		return map[string]any{
			"id": "hsm-file", "az": "us-east-1b", "cluster-id": "cluster-file", "data-dir": p.dataDir,
			"device-cert": p.cert, "device-key": p.key, "hardware-ca": p.ca,
			"heartbeat-timeout": "2s", "election-timeout": "3s", "snapshot-threshold": 12345678901,
			"max-sessions": 7, "log-json": true, "join": []string{"10.0.0.1:2223", "10.0.0.2:2223"},
			"join-trust-anchor": p.anchor,
		}
	}
	backupKey := bytes.Repeat([]byte{0xb7}, 32)
	writeFile := func(name string, data []byte) string {
		path := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	rawKey := writeFile("backup.key", backupKey)
	hexKey := writeFile("backup.hex", []byte(" "+hex.EncodeToString(backupKey)+"\n"))
	shortKey := writeFile("short.key", backupKey[:31])
	badHexKey := writeFile("bad.hex", bytes.Repeat([]byte("zz"), 32))
	backupFile := writeFile("backup.bin", []byte("sealed backup bytes"))
	emptyFile := writeFile("empty.bin", nil)
	type testCase struct {
		name    string
		args    []string
		wantErr []string // substrings of the error
		check   func(t *testing.T, cfg node.Config, logs *bytes.Buffer)
	}
	tests := []testCase{
		{
			name: "required flags only take the defaults",
			args: p.required(),
			check: func(t *testing.T, cfg node.Config, _ *bytes.Buffer) {
				require.Equal(t, "hsm-x", cfg.NodeID)
				require.Equal(t, "us-east-1a", cfg.AZ)
				require.Equal(t, "cluster-1", cfg.ClusterID)
				require.Equal(t, p.dataDir, cfg.DataDir)
				require.Equal(t, "127.0.0.1:2223", cfg.APIAddr)
				require.Equal(t, "127.0.0.1:2224", cfg.RaftAddr)
				require.Empty(t, cfg.AdvertiseAPI)
				require.Empty(t, cfg.AdvertiseRaft)
				require.Empty(t, cfg.MetricsAddr)
				require.Nil(t, cfg.Join)
				require.Equal(t, p.device.Certificate, cfg.DeviceCert.Certificate)
				require.True(t, p.hw.Cert.Equal(cfg.HardwareCA))
				require.Equal(t, def.HeartbeatTimeout, cfg.HeartbeatTimeout)
				require.Equal(t, def.ElectionTimeout, cfg.ElectionTimeout)
				require.Equal(t, def.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
				require.Equal(t, def.SnapshotThreshold, cfg.SnapshotThreshold)
				require.Equal(t, def.MaxSessions, cfg.MaxSessions)
				require.Equal(t, def.PasswordParams, cfg.PasswordParams)
				require.True(t, cfg.Logger.IsInfo())
				require.False(t, cfg.Logger.IsDebug())
			},
		},
		{
			name: "every flag lands in the config",
			args: append(p.required(),
				"--api-addr", "0.0.0.0:3223", "--raft-addr", "0.0.0.0:3224",
				"--advertise-api", "hsm-x.local:3223", "--advertise-raft", "hsm-x.local:3224",
				"--metrics-addr", "127.0.0.1:9100",
				"--join", "10.0.0.1:2223, 10.0.0.2:2223", "--join-trust-anchor", p.anchor,
				"--heartbeat-timeout", "1500ms", "--election-timeout", "2s", "--leader-lease-timeout", "700ms",
				"--snapshot-threshold", "99", "--max-sessions", "3", "--log-level", "debug", "--log-json"),
			check: func(t *testing.T, cfg node.Config, logs *bytes.Buffer) {
				require.Equal(t, "0.0.0.0:3223", cfg.APIAddr)
				require.Equal(t, "0.0.0.0:3224", cfg.RaftAddr)
				require.Equal(t, "hsm-x.local:3223", cfg.AdvertiseAPI)
				require.Equal(t, "hsm-x.local:3224", cfg.AdvertiseRaft)
				require.Equal(t, "127.0.0.1:9100", cfg.MetricsAddr)
				require.NotNil(t, cfg.Join)
				require.Equal(t, []string{"10.0.0.1:2223", "10.0.0.2:2223"}, cfg.Join.Addrs)
				anchor, err := os.ReadFile(p.anchor)
				require.NoError(t, err)
				require.Equal(t, string(anchor), cfg.Join.TrustAnchorPEM)
				require.Empty(t, cfg.Join.CertificateID)
				require.Equal(t, 1500*time.Millisecond, cfg.HeartbeatTimeout)
				require.Equal(t, 2*time.Second, cfg.ElectionTimeout)
				require.Equal(t, 700*time.Millisecond, cfg.LeaderLeaseTimeout)
				require.Equal(t, uint64(99), cfg.SnapshotThreshold)
				require.Equal(t, 3, cfg.MaxSessions)
				require.True(t, cfg.Logger.IsDebug())
				require.False(t, cfg.Logger.IsTrace())
				cfg.Logger.Info("probe", "k", "v")
				var line map[string]any
				require.NoError(t, json.Unmarshal(logs.Bytes(), &line), "log line %q is not JSON", logs.String())
				require.Equal(t, "probe", line["@message"])
			},
		},
		{
			name: "config file, with flags overriding it",
			args: []string{"--id", "hsm-flag", "--heartbeat-timeout", "4s", "--config", writeConfig(t, fileSettings())},
			check: func(t *testing.T, cfg node.Config, logs *bytes.Buffer) {
				require.Equal(t, "hsm-flag", cfg.NodeID)
				require.Equal(t, 4*time.Second, cfg.HeartbeatTimeout)
				require.Equal(t, "us-east-1b", cfg.AZ)
				require.Equal(t, "cluster-file", cfg.ClusterID)
				require.Equal(t, 3*time.Second, cfg.ElectionTimeout)
				require.Equal(t, def.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
				require.Equal(t, uint64(12345678901), cfg.SnapshotThreshold)
				require.Equal(t, 7, cfg.MaxSessions)
				require.Equal(t, []string{"10.0.0.1:2223", "10.0.0.2:2223"}, cfg.Join.Addrs)
				require.Equal(t, p.device.Certificate, cfg.DeviceCert.Certificate)
				cfg.Logger.Info("probe")
				require.True(t, json.Valid(logs.Bytes()), "log-json from the file: %q", logs.String())
			},
		},
		{
			name: "a flag before --config still wins",
			args: []string{"--config", writeConfig(t, fileSettings()), "--az", "us-east-1c", "--log-json=false"},
			check: func(t *testing.T, cfg node.Config, logs *bytes.Buffer) {
				require.Equal(t, "us-east-1c", cfg.AZ)
				require.Equal(t, "hsm-file", cfg.NodeID)
				cfg.Logger.Info("probe")
				require.False(t, json.Valid(logs.Bytes()), "--log-json=false overrides the file: %q", logs.String())
			},
		},
		{
			name: "raw backup key and a backup to restore",
			args: append(p.required(), "--backup-key", rawKey, "--restore-from", backupFile),
			check: func(t *testing.T, cfg node.Config, _ *bytes.Buffer) {
				require.Equal(t, backupKey, cfg.BackupKey)
				require.Equal(t, []byte("sealed backup bytes"), cfg.RestoreFrom)
			},
		},
		{
			name: "hex backup key",
			args: append(p.required(), "--backup-key", hexKey),
			check: func(t *testing.T, cfg node.Config, _ *bytes.Buffer) {
				require.Equal(t, backupKey, cfg.BackupKey)
				require.Nil(t, cfg.RestoreFrom)
			},
		},
		{
			name: "no backup key by default",
			args: p.required(),
			check: func(t *testing.T, cfg node.Config, _ *bytes.Buffer) {
				require.Nil(t, cfg.BackupKey)
				require.Nil(t, cfg.RestoreFrom)
			},
		},
		{
			name: "join a restored cluster",
			args: append(p.required(), "--join", "10.0.0.1:2223", "--join-trust-anchor", p.anchor, "--join-certificate-id", "cluster-source"),
			check: func(t *testing.T, cfg node.Config, _ *bytes.Buffer) {
				require.Equal(t, "cluster-source", cfg.Join.CertificateID)
			},
		},
		{name: "certificate id without join", args: append(p.required(), "--join-certificate-id", "cluster-source"),
			wantErr: []string{"--join-certificate-id is only used with --join"}},
		{name: "short backup key", args: append(p.required(), "--backup-key", shortKey),
			wantErr: []string{"--backup-key", "32 raw bytes or 64 hex characters", "got 31 bytes"}},
		{name: "backup key not hex", args: append(p.required(), "--backup-key", badHexKey),
			wantErr: []string{"--backup-key", "64 hex characters"}},
		{name: "unreadable backup key", args: append(p.required(), "--backup-key", filepath.Join(p.dir, "none.key")),
			wantErr: []string{"--backup-key", "no such file"}},
		{name: "restore without backup key", args: append(p.required(), "--restore-from", backupFile),
			wantErr: []string{"--restore-from needs --backup-key"}},
		{name: "restore and join", args: append(p.required(), "--backup-key", rawKey, "--restore-from", backupFile,
			"--join", "10.0.0.1:2223", "--join-trust-anchor", p.anchor),
			wantErr: []string{"--restore-from and --join exclude each other"}},
		{name: "unreadable backup", args: append(p.required(), "--backup-key", rawKey, "--restore-from", filepath.Join(p.dir, "none.bin")),
			wantErr: []string{"--restore-from", "no such file"}},
		{name: "empty backup", args: append(p.required(), "--backup-key", rawKey, "--restore-from", emptyFile),
			wantErr: []string{"--restore-from", "empty file"}},
		{name: "unreadable device cert", args: append(p.required(), "--device-cert", filepath.Join(p.dir, "missing.pem")),
			wantErr: []string{"--device-cert", "missing.pem", "no such file"}},
		{name: "unreadable device key", args: append(p.required(), "--device-key", filepath.Join(p.dir, "missing-key.pem")),
			wantErr: []string{"--device-key", "missing-key.pem", "no such file"}},
		{name: "device key does not match the cert", args: append(p.required(), "--device-key", p.otherKey),
			wantErr: []string{"--device-cert", "--device-key", "does not match"}},
		{name: "device cert is not PEM", args: append(p.required(), "--device-cert", p.notPEM),
			wantErr: []string{"--device-cert", "not.pem"}},
		{name: "unreadable hardware CA", args: append(p.required(), "--hardware-ca", filepath.Join(p.dir, "nope.pem")),
			wantErr: []string{"--hardware-ca", "nope.pem", "no such file"}},
		{name: "hardware CA is not PEM", args: append(p.required(), "--hardware-ca", p.notPEM),
			wantErr: []string{"--hardware-ca", "no PEM CERTIFICATE"}},
		{name: "join without trust anchor", args: append(p.required(), "--join", "10.0.0.1:2223"),
			wantErr: []string{"--join needs --join-trust-anchor"}},
		{name: "trust anchor without join", args: append(p.required(), "--join-trust-anchor", p.anchor),
			wantErr: []string{"--join-trust-anchor is only used with --join"}},
		{name: "join trust anchor is not PEM", args: append(p.required(), "--join", "10.0.0.1:2223", "--join-trust-anchor", p.notPEM),
			wantErr: []string{"--join-trust-anchor", "no PEM CERTIFICATE"}},
		{name: "join address without port", args: append(p.required(), "--join", "10.0.0.1:2223,10.0.0.2", "--join-trust-anchor", p.anchor),
			wantErr: []string{"--join", `"10.0.0.2"`}},
		{name: "empty join entry", args: append(p.required(), "--join", "10.0.0.1:2223,", "--join-trust-anchor", p.anchor),
			wantErr: []string{"--join", `""`}},
		{name: "bad duration", args: append(p.required(), "--heartbeat-timeout", "5"),
			wantErr: []string{"heartbeat-timeout", "missing unit"}},
		{name: "bad number", args: append(p.required(), "--max-sessions", "many"),
			wantErr: []string{"max-sessions"}},
		{name: "bad log level", args: append(p.required(), "--log-level", "loud"),
			wantErr: []string{"--log-level", `"loud"`}},
		{name: "lease longer than heartbeat fails Validate", args: append(p.required(), "--leader-lease-timeout", "2s"),
			wantErr: []string{"invalid configuration", "LeaderLeaseTimeout"}},
		{name: "zero sessions fails Validate", args: append(p.required(), "--max-sessions", "0"),
			wantErr: []string{"invalid configuration", "MaxSessions"}},
		{name: "unknown flag", args: append(p.required(), "--frobnicate"),
			wantErr: []string{"frobnicate"}},
		{name: "positional argument", args: append(p.required(), "extra"),
			wantErr: []string{`unexpected argument "extra"`}},
		{name: "missing config file", args: []string{"--config", filepath.Join(p.dir, "none.json")},
			wantErr: []string{"--config", "none.json", "no such file"}},
		{name: "config file is not JSON", args: []string{"--config", p.notPEM},
			wantErr: []string{"--config", "not a JSON object"}},
		{name: "config file names an unknown setting", args: []string{"--config", writeConfig(t, map[string]any{"id": "x", "color": "blue"})},
			wantErr: []string{"--config", `unknown setting "color"`}},
		{name: "config file may not nest --config", args: []string{"--config", writeConfig(t, map[string]any{"config": "other.json"})},
			wantErr: []string{`unknown setting "config"`}},
		{name: "config file with a bad value", args: []string{"--config", writeConfig(t, map[string]any{"election-timeout": "soon"})},
			wantErr: []string{`setting "election-timeout"`, "soon"}},
		{name: "config file list for a scalar flag", args: []string{"--config", writeConfig(t, map[string]any{"az": []string{"a", "b"}})},
			wantErr: []string{`setting "az"`, "list is not allowed"}},
		{name: "config file still needs the required settings", args: []string{"--config", writeConfig(t, map[string]any{"id": "x"})},
			wantErr: []string{"missing required flag --az"}},
	}
	for _, name := range requiredFlags {
		tests = append(tests, testCase{
			name: "missing --" + name, args: without(p.required(), name),
			wantErr: []string{"missing required flag --" + name},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var help, logs bytes.Buffer
			cfg, err := parseConfig(tt.args, &help, &logs)
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					require.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
			tt.check(t, cfg, &logs)
		})
	}
}

// TestEveryFlagIsTested keeps allFlags (and so the tests above and the help
// test) in step with the flags hsmd declares.
func TestEveryFlagIsTested(t *testing.T) {
	cfg := node.DefaultConfig()
	var declared []string
	newFlagSet(&options{}, &cfg).VisitAll(func(f *flag.Flag) { declared = append(declared, f.Name) })
	require.ElementsMatch(t, allFlags, declared)
}

func TestRun(t *testing.T) {
	p := writePKI(t)
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    []string
		wantErr    []string
	}{
		{name: "--help", args: []string{"--help"}, wantStatus: 0,
			wantOut: []string{"Usage:", "(default: 127.0.0.1:2223)", "(default: 127.0.0.1:2224)", "(default: 500ms)", "(default: 500ms)", "(default: 8192)", "(default: 1024)", "(default: info)", "(required)"}},
		{name: "-h", args: []string{"-h"}, wantStatus: 0, wantOut: []string{"Usage:"}},
		{name: "bad configuration", args: without(p.required(), "cluster-id"), wantStatus: 2,
			wantErr: []string{"hsmd: missing required flag --cluster-id", "hsmd --help"}},
		{name: "invalid configuration", args: append(p.required(), "--election-timeout", "1ms"), wantStatus: 2,
			wantErr: []string{"hsmd: invalid configuration", "Raft timeouts too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, tt.wantStatus, run(tt.args, &out, &errOut, nil))
			for _, want := range tt.wantOut {
				require.Contains(t, out.String(), want)
			}
			for _, want := range tt.wantErr {
				require.Contains(t, errOut.String(), want)
			}
			if tt.wantStatus == 0 {
				require.Empty(t, errOut.String())
				for _, name := range allFlags {
					require.Contains(t, out.String(), "\n  --"+name, "help for --%s", name)
				}
			} else {
				require.Empty(t, out.String())
			}
		})
	}
}

// TestRunStartsAndStops runs an HSM in-process and stops it through the
// stop channel, as a signal would.
func TestRunStartsAndStops(t *testing.T) {
	p := writePKI(t)
	args := append(p.required(), "--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--log-level", "debug")
	stop := make(chan os.Signal, 1)
	stop <- syscall.SIGTERM
	logs := &syncBuffer{t: t}
	require.Equal(t, 0, run(args, io.Discard, logs, stop), "logs:\n%s", logs)
	require.Contains(t, logs.String(), "hsmd running")
	require.Contains(t, logs.String(), "stopped")
	// The HSM created its device key: it really started on the data dir.
	entries, err := os.ReadDir(p.dataDir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
}

// TestProcess builds hsmd, runs it as a process, waits until it answers
// GetStatus over TLS as an uninitialized HSM, then stops it with SIGTERM.
func TestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hsmd binary")
	}
	bin := filepath.Join(t.TempDir(), "hsmd")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	p := writePKI(t)
	apiAddr, raftAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, append(p.required(), "--api-addr", apiAddr, "--raft-addr", raftAddr, "--log-json")...)
	logs := &syncBuffer{t: t}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	reaped := false
	t.Cleanup(func() {
		if !reaped { // the test failed before hsmd stopped
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	control := p.hw.Issue(t, "control-plane", false)
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{control},
		InsecureSkipVerify: true, // VerifyConnection checks the device certificate below.
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			if leaf.Subject.CommonName != "hsm-x" {
				return fmt.Errorf("server is %q, want hsm-x", leaf.Subject.CommonName)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: p.hw.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
	cc, err := grpc.NewClient(apiAddr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	require.NoError(t, err)
	defer cc.Close()
	client := hsmv1.NewClusterServiceClient(cc)
	var status *hsmv1.GetStatusResponse
	require.Eventually(t, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true // fail below instead of waiting out the deadline
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		status, err = client.GetStatus(ctx, &hsmv1.GetStatusRequest{})
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "hsmd never answered GetStatus; logs:\n%s", logs)
	require.NotNil(t, status, "hsmd exited early; logs:\n%s", logs)
	require.Equal(t, "uninitialized", status.GetState())
	require.Equal(t, "hsm-x", status.GetNodeId())
	require.Equal(t, "us-east-1a", status.GetAz())

	pid := cmd.Process.Pid
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		reaped = true
		require.NoError(t, err, "hsmd exit; logs:\n%s", logs)
		require.Equal(t, 0, cmd.ProcessState.ExitCode())
	case <-time.After(10 * time.Second):
		t.Fatalf("hsmd still running 10s after SIGTERM; logs:\n%s", logs)
	}
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d remains", pid)
	require.True(t, logs.hasJSONMessage("stopped"), "no JSON \"stopped\" log line; logs:\n%s", logs)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// syncBuffer collects a process's output and mirrors it to t.Log.
type syncBuffer struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.t.Log(strings.TrimRight(string(p), "\n"))
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hasJSONMessage reports whether a JSON log line carries message msg (and
// every line is JSON).
func (b *syncBuffer) hasJSONMessage(msg string) bool {
	found := false
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return false
		}
		found = found || line["@message"] == msg
	}
	return found
}
