package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/loadgen"
	"github.com/hsmsim/hsmsim/internal/testbin"
)

func TestBenchUsage(t *testing.T) {
	dir := t.TempDir() // no deployment there
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint and no deployment", nil, "no --endpoint, and no deployment"},
		{"unknown op", []string{"--endpoint", "floor", "--op", "sign"}, `unknown operation "sign"`},
		{"duration and requests", []string{"--endpoint", "floor", "--duration", "1s", "--requests", "10"}, "not both"},
		{"bad pid", []string{"--endpoint", "http://127.0.0.1:1", "--pid", "12,x"}, `"x" is not a process id`},
		{"floor twice", []string{"--endpoint", "floor", "--floor"}, "drop --floor"},
		{"zero concurrency", []string{"--endpoint", "floor", "--concurrency", "0"}, "concurrency 0"},
		{"payload too large", []string{"--endpoint", "floor", "--payload-bytes", "5000"}, "payload of 5000 bytes"},
		{"unknown client", []string{"--endpoint", "floor", "--client", "boto3"}, `client "boto3"`},
		{"not a URL", []string{"--endpoint", "127.0.0.1:4599"}, "is not an http://"},
		{"no compared deployment", []string{"--endpoint", "floor", "--compare-dir", dir}, "no deployment in"},
		{"a positional argument", []string{"--endpoint", "floor", "extra"}, `unexpected argument "extra"`},
		{"unknown compared op", []string{"--endpoint", "floor", "--compare-op", "sign"}, `unknown operation "sign"`},
		{"workloads on the floor", []string{"--endpoint", "floor", "--compare-op", "decrypt"}, "not on the floor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"bench", "--dir", dir}, tt.args...), &out, &errOut)
			require.Equal(t, 2, code, "stdout %s stderr %s", out.String(), errOut.String())
			require.Contains(t, errOut.String(), tt.want)
		})
	}
}

func TestBenchFloorJSON(t *testing.T) {
	var rep loadgen.Report
	out := hsmctl(t, "bench", "--dir", t.TempDir(), "--endpoint", "floor", "--requests", "100", "--concurrency", "4",
		"--warmup", "0", "--quiet", "--client", "raw", "--output", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Targets, 1)
	require.True(t, rep.Targets[0].Floor)
	require.Equal(t, uint64(100), rep.Targets[0].Requests)
	require.Zero(t, rep.Targets[0].Errors)
}

// TestBenchFloorProcess loads the floor served by a process of its own
// (hsmctl floor, found on PATH) beside the in-process floor, and checks
// that the process answered every request, that its CPU is counted, and
// that it is gone once the bench returns.
func TestBenchFloorProcess(t *testing.T) {
	putHsmctlOnPath(t)

	for _, client := range []loadgen.Client{loadgen.ClientSDK, loadgen.ClientRaw} {
		t.Run(string(client), func(t *testing.T) {
			var rep loadgen.Report
			out := hsmctl(t, "bench", "--dir", t.TempDir(), "--endpoint", "floor", "--floor-process", "--requests", "2000",
				"--concurrency", "4", "--warmup", "0", "--quiet", "--client", string(client), "--output", "json")
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			require.Len(t, rep.Targets, 2)
			floor, proc := rep.Targets[0], rep.Targets[1]
			require.True(t, floor.Floor)
			require.Equal(t, floorProcessName, proc.Name)
			require.False(t, proc.Floor, "a process of its own, loaded like any endpoint")
			require.Equal(t, uint64(2000), proc.Requests)
			require.Zero(t, proc.Errors, "%v", proc.ErrorsByCode)
			require.Len(t, proc.ServerPIDs, 1)
			require.Positive(t, proc.ServerCPU, "CPU time is read in clock ticks: 2,000 requests take several")
			require.Eventually(t, func() bool { return !alive(proc.ServerPIDs[0]) }, 5*time.Second, 20*time.Millisecond,
				"the floor process outlived the bench")
		})
	}
}

// putHsmctlOnPath puts a freshly built hsmctl on PATH, where bench finds
// the floor process's binary.
func putHsmctlOnPath(t *testing.T) {
	t.Helper()
	bin, err := testbin.Build("hsmctl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(bin) })
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestStartFloorProcess checks the floor process itself: it serves, it runs
// in its own session with the runtime settings of a deployment's process
// (cluster/local), and Close ends it.
func TestStartFloorProcess(t *testing.T) {
	putHsmctlOnPath(t)
	t.Setenv("GOGC", "")
	require.NoError(t, os.Unsetenv("GOGC"))
	fp, err := startFloorProcess(context.Background(), 64, "us-east-1", 7)
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			fp.Close()
		}
	})
	require.True(t, strings.HasPrefix(fp.url, "http://127.0.0.1:"), fp.url)
	resp, err := http.Post(fp.url, "application/x-amz-json-1.1", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no X-Amz-Target: the floor's UnknownOperationException")

	environ, err := os.ReadFile(filepath.Join("/proc", itoa(fp.pid), "environ"))
	require.NoError(t, err)
	env := map[string]string{}
	for kv := range strings.SplitSeq(string(environ), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	require.Contains(t, strings.Split(env["GODEBUG"], ","), "schedtrace=2147483647")
	require.Equal(t, "400", env["GOGC"])
	stat, err := os.ReadFile(filepath.Join("/proc", itoa(fp.pid), "stat"))
	require.NoError(t, err)
	// After "(comm)": state, ppid, pgrp, session.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	require.Equal(t, itoa(fp.pid), fields[3], "a session of its own")

	fp.Close()
	closed = true
	require.False(t, alive(fp.pid), "Close reaps the floor process")
}

// buildKMS puts freshly built hsmd and kmsproxy on PATH for the launcher.
func buildKMS(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	for _, name := range []string{"hsmd", "kmsproxy"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "github.com/hsmsim/hsmsim/cmd/"+name).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestBenchAgainstDeployment runs hsmctl bench on a fresh local deployment:
// 200 Encrypts under a custom key store key, with the deployment's
// endpoint, credentials and process ids found from its directory, compared
// with the floor.
func TestBenchAgainstDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a deployment")
	}
	buildKMS(t)
	dir := filepath.Join(t.TempDir(), "dep")
	var up upResult
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "up", "--detach", "--dir", dir, "--output", "json")), &up))
	t.Cleanup(func() {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"down", "--dir", dir}, &out, &errOut); code != 0 {
			t.Logf("hsmctl down: %s", errOut.String())
			for _, h := range up.Hsms {
				syscall.Kill(h.Runtime.PID, syscall.SIGKILL)
			}
		}
	})
	require.NotNil(t, up.KMS)
	require.NotEmpty(t, up.KMS.CustomKeyStoreID)

	var rep loadgen.Report
	out := hsmctl(t, "bench", "--dir", dir, "--requests", "200", "--concurrency", "8", "--warmup", "0",
		"--custom-key-store-id", up.KMS.CustomKeyStoreID, "--floor", "--quiet", "--output", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Targets, 2)
	a, floor := rep.Targets[0], rep.Targets[1]
	require.Equal(t, up.KMS.Endpoint, a.Endpoint)
	require.Equal(t, uint64(200), a.Requests)
	require.Zero(t, a.Errors, "%v", a.ErrorsByCode)
	require.Positive(t, a.OpsPerSec)
	require.Positive(t, a.Latency.P50)
	require.Len(t, a.ServerPIDs, 1+2*3, "kmsproxy and two clusters of three HSMs")
	require.Positive(t, a.ServerCPU)
	var names []string
	for _, p := range a.Processes {
		names = append(names, p.Name)
	}
	require.Contains(t, names, "kmsproxy")
	require.True(t, floor.Floor)
	require.Equal(t, uint64(200), floor.Requests)
	require.Positive(t, floor.ThroughputVsFirst)

	// Every workload, with each client, against the real endpoint: what
	// the floor answers with canned bodies, hsmsim must accept too.
	for _, client := range []loadgen.Client{loadgen.ClientSDK, loadgen.ClientRaw} {
		for _, op := range loadgen.Ops {
			t.Run(string(client)+"/"+string(op), func(t *testing.T) {
				var rep loadgen.Report
				out := hsmctl(t, "bench", "--dir", dir, "--op", string(op), "--client", string(client),
					"--requests", "20", "--concurrency", "4", "--warmup", "0",
					"--custom-key-store-id", up.KMS.CustomKeyStoreID, "--quiet", "--output", "json")
				require.NoError(t, json.Unmarshal([]byte(out), &rep))
				require.Len(t, rep.Targets, 1)
				a := rep.Targets[0]
				require.Equal(t, uint64(20), a.Requests)
				require.Zero(t, a.Errors, "%v", a.ErrorsByCode)
				require.Positive(t, a.OpsPerSec)
			})
		}
	}

	t.Run("compare with moto_server", func(t *testing.T) {
		moto := startMoto(t)
		for _, client := range []loadgen.Client{loadgen.ClientSDK, loadgen.ClientRaw} {
			var rep loadgen.Report
			out := hsmctl(t, "bench", "--dir", dir, "--requests", "100", "--concurrency", "4", "--warmup", "0",
				"--client", string(client), "--custom-key-store-id", up.KMS.CustomKeyStoreID, "--compare", moto,
				"--quiet", "--output", "json")
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			require.Len(t, rep.Targets, 2)
			a, b := rep.Targets[0], rep.Targets[1]
			require.Equal(t, up.KMS.Endpoint, a.Endpoint)
			require.Equal(t, moto, b.Endpoint)
			for _, tg := range rep.Targets {
				require.Equal(t, uint64(100), tg.Requests, "%s, %s client", tg.Endpoint, client)
				require.Zero(t, tg.Errors, "%s, %s client: %v", tg.Endpoint, client, tg.ErrorsByCode)
				require.Positive(t, tg.OpsPerSec, tg.Endpoint)
			}
			require.InDelta(t, b.OpsPerSec/a.OpsPerSec, b.ThroughputVsFirst, 1e-9, "the ratio is B's throughput over A's")
		}
	})

	// Decrypt of a blob made with the key created for the run, in text.
	text := hsmctl(t, "bench", "--dir", dir, "--op", "decrypt", "--requests", "50", "--concurrency", "4", "--warmup", "0", "--quiet")
	require.Contains(t, text, "decrypt, 64-byte payload")
	require.True(t, strings.Contains(text, " 50 ") && strings.Contains(text, up.KMS.Endpoint), text)
}

// startMoto runs moto_server on a free loopback port until the test ends
// and returns its URL; the test skips when moto is not installed.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Skip("moto_server is not installed (pip install 'moto[server]')")
	}
	addr, err := freeLoopback()
	require.NoError(t, err)
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	cmd := exec.Command(bin, "-H", host, "-p", port)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	url := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 30*time.Second, 100*time.Millisecond, "moto_server at %s did not start", url)
	return url
}
