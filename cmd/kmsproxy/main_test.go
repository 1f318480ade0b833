package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

// allFlags is every flag kmsproxy documents; the tests check each is
// declared and helped.
var allFlags = []string{
	"addr", "account", "region", "auth", "credentials-file", "data-dir", "deployment-dir",
	"fleet-cluster-id", "fleet-password-file", "log-level", "pprof-addr",
	"config", "provisioner", "slots-dir", "healthcheck",
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run([]string{"--help"}, &out, &errOut, nil))
	require.Empty(t, errOut.String())
	declared := 0
	newFlagSet(&options{}).VisitAll(func(*flag.Flag) { declared++ })
	require.Equal(t, len(allFlags), declared, "allFlags lists every declared flag")
	for _, name := range allFlags {
		require.Regexp(t, `(?m)^  --`+regexp.QuoteMeta(name)+`\b.*\n      \S`, out.String(), "--%s is documented", name)
	}
	require.Contains(t, out.String(), "(default: 127.0.0.1:4599)")
	require.Contains(t, out.String(), "/moto-api/reset")
}

func TestParseConfig(t *testing.T) {
	creds := writeFile(t, "credentials", "[hsmsim]\naws_access_key_id = AKIAHSMSIM0000000001\naws_secret_access_key = s3cr3t/value+x\n")
	t.Run("defaults with --auth any", func(t *testing.T) {
		cfg, err := parseConfig([]string{"--auth", "any"}, io.Discard, io.Discard)
		require.NoError(t, err)
		require.Equal(t, kmsproxy.DefaultAddr, cfg.Server.Addr)
		require.Equal(t, kmsproxy.DefaultAccount, cfg.Server.Account)
		require.Equal(t, DefaultRegion, cfg.Region)
		require.True(t, cfg.Server.AnyCredentials)
		require.Empty(t, cfg.Server.Credentials)
		require.NotNil(t, cfg.Server.Logger)
	})
	t.Run("every flag", func(t *testing.T) {
		cfg, err := parseConfig([]string{
			"--addr", "127.0.0.1:0", "--account", "111122223333", "--region", "eu-west-3",
			"--credentials-file", creds, "--data-dir", "/d", "--deployment-dir", "/dep",
			"--fleet-cluster-id", "cluster-abcdefghijk", "--fleet-password-file", "/dep/kms/password", "--log-level", "debug",
		}, io.Discard, io.Discard)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:0", cfg.Server.Addr)
		require.Equal(t, "111122223333", cfg.Server.Account)
		require.Equal(t, "eu-west-3", cfg.Region)
		require.False(t, cfg.Server.AnyCredentials)
		require.Equal(t, []sigv4.Credential{{AccessKeyID: "AKIAHSMSIM0000000001", SecretAccessKey: "s3cr3t/value+x", UserName: "hsmsim"}}, cfg.Server.Credentials)
		require.Equal(t, "/d", cfg.DataDir)
		require.Equal(t, "/dep", cfg.DeploymentDir)
		require.Equal(t, "cluster-abcdefghijk", cfg.FleetClusterID)
		require.Equal(t, "/dep/kms/password", cfg.FleetPasswordFile)
		require.True(t, cfg.Server.Logger.IsDebug())
	})
	empty := writeFile(t, "empty", "# nothing\n[default]\nregion = us-east-1\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"sigv4 without credentials", nil, "--auth sigv4 needs --credentials-file"},
		{"unknown auth", []string{"--auth", "none"}, `--auth: unknown mode "none"`},
		{"bad region", []string{"--auth", "any", "--region", "Mars"}, `--region: "Mars" is not a region name`},
		{"bad account", []string{"--auth", "any", "--account", "42"}, `account "42" is not 12 digits`},
		{"bad log level", []string{"--auth", "any", "--log-level", "loud"}, `--log-level: unknown level "loud"`},
		{"missing credentials file", []string{"--credentials-file", "/no/such/file"}, "--credentials-file: open /no/such/file"},
		{"credentials file without keys", []string{"--credentials-file", empty}, "no profile with aws_access_key_id"},
		{"positional argument", []string{"--auth", "any", "serve"}, `unexpected argument "serve"`},
		{"unknown flag", []string{"--port", "1"}, "flag provided but not defined: -port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestLoadCredentials(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []sigv4.Credential
		wantErr string
	}{
		{
			name: "profiles, comments, nested settings and accounts",
			file: `# AWS credentials
[default]
aws_access_key_id=AKIADEFAULT000000001
aws_secret_access_key=defaultsecret
; a comment
[profile ci]
aws_access_key_id = AKIACI00000000000001
aws_secret_access_key = cisecret==
aws_session_token = IQoJb3JpZ2luX2VjEXAMPLE
aws_account_id = 111122223333
s3 =
  max_concurrent_requests = 4
[region-only]
region = eu-west-1
`,
			want: []sigv4.Credential{
				{AccessKeyID: "AKIADEFAULT000000001", SecretAccessKey: "defaultsecret", UserName: "default"},
				{AccessKeyID: "AKIACI00000000000001", SecretAccessKey: "cisecret==", Account: "111122223333", UserName: "ci"},
			},
		},
		{name: "secret without id", file: "[a]\naws_secret_access_key = topsecret\n", wantErr: "profile a has aws_secret_access_key but no aws_access_key_id"},
		{name: "id without secret", file: "[a]\naws_access_key_id = AKIAX\n", wantErr: "profile a has aws_access_key_id but no aws_secret_access_key"},
		{name: "setting before a section", file: "aws_access_key_id = AKIAX\n", wantErr: ":1: setting outside a [profile] section"},
		{name: "unterminated section", file: "[a\n", wantErr: ":1: unterminated section header"},
		{name: "not key = value", file: "[a]\ntopsecret\n", wantErr: ":2: want key = value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadCredentials(writeFile(t, "credentials", tt.file))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "topsecret", "errors never quote a secret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runKMSProxy runs the command until the returned stop function sends
// SIGTERM; it returns the endpoint's URL and a function that stops it and
// returns the exit status.
func runKMSProxy(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	stop := make(chan os.Signal, 2)
	logs := &syncBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run(args, io.Discard, logs, stop) }()
	running := regexp.MustCompile(`kmsproxy running: addr=(\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		if m := running.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "kmsproxy did not start: %s", logs)
	stopped := false
	stopFn := func() int {
		if stopped {
			return exitOK
		}
		stopped = true
		stop <- syscall.SIGTERM
		select {
		case code := <-exit:
			t.Log(logs.String())
			return code
		case <-time.After(15 * time.Second):
			t.Fatalf("kmsproxy did not stop: %s", logs)
			return -1
		}
	}
	t.Cleanup(func() { stopFn() })
	return "http://" + addr, stopFn
}

func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func getClock(t *testing.T, base string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + kmsproxy.PathClock)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func TestRun(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "kms")
	creds := writeFile(t, "credentials", "[hsmsim]\naws_access_key_id = AKIAHSMSIM0000000001\naws_secret_access_key = secret\n")
	args := []string{"--addr", "127.0.0.1:0", "--credentials-file", creds, "--data-dir", dataDir, "--log-level", "debug"}

	base, stop := runKMSProxy(t, args...)
	require.Equal(t, map[string]any{"reset": true}, postJSON(t, base+kmsproxy.PathReset, ""))
	postJSON(t, base+kmsproxy.PathClockAdvance, `{"duration":"7d"}`)
	require.Equal(t, float64(7*24*3600), getClock(t, base)["offset_seconds"])

	// No services yet: an AWS call is a JSON error, not a crash.
	resp, err := http.Post(base+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, exitOK, stop())
	_, err = http.Get(base + kmsproxy.PathClock)
	require.Error(t, err, "stopped")

	// The clock offset survives a restart.
	require.FileExists(t, filepath.Join(dataDir, clockFile))
	base, stop = runKMSProxy(t, args...)
	require.Equal(t, float64(7*24*3600), getClock(t, base)["offset_seconds"])
	require.Equal(t, exitOK, stop())
}

func TestRunUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, exitUsage, run([]string{"--auth", "maybe"}, &out, &errOut, nil))
	require.Contains(t, errOut.String(), `kmsproxy: --auth: unknown mode "maybe"`)
	require.Contains(t, errOut.String(), "Run 'kmsproxy --help' for usage.")
	require.Empty(t, out.String())
}
