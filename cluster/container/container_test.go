package container_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/bringup"
	"github.com/hsmsim/hsmsim/cluster/container"
)

// hsmdPath is built once for the package's tests.
var hsmdPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hsmd-bin")
	if err != nil {
		panic(err)
	}
	hsmdPath = filepath.Join(dir, "hsmd")
	out, err := exec.Command("go", "build", "-o", hsmdPath, "github.com/hsmsim/hsmsim/cmd/hsmd").CombinedOutput()
	if err != nil {
		panic("build hsmd: " + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// containers stands for a compose deployment without Docker: one
// `hsmd --wait-config` process per slot, each slot a loopback address (its
// "host name") with the same two ports, as containers have.
type containers struct {
	t        *testing.T
	slotsDir string
	api, raf int
	// fakeDocker is a docker CLI that logs its arguments to dockerLog.
	fakeDocker, dockerLog string
}

// slots are the test's AZs and their slot addresses.
var slots = map[string][]string{
	"us-east-1a": {"127.0.0.11", "127.0.0.12"},
	"us-east-1b": {"127.0.0.21"},
}

func startContainers(t *testing.T) *containers {
	t.Helper()
	c := &containers{t: t, slotsDir: filepath.Join(t.TempDir(), "provision")}
	c.api, c.raf = freePorts(t)
	for az, hosts := range slots {
		for _, host := range hosts {
			dir := filepath.Join(c.slotsDir, az, host)
			require.NoError(t, os.MkdirAll(dir, 0o700))
			cmd := exec.Command(hsmdPath, "--wait-config", filepath.Join(dir, container.ConfigFile), "--log-level", "warn")
			cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
			require.NoError(t, cmd.Start())
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
			})
		}
	}
	c.dockerLog = filepath.Join(t.TempDir(), "docker.log")
	c.fakeDocker = filepath.Join(t.TempDir(), "docker")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\ncase \"$1\" in ps) echo 0123abcd ;; inspect) echo true ;; esac\n", c.dockerLog)
	require.NoError(t, os.WriteFile(c.fakeDocker, []byte(script), 0o700))
	return c
}

// freePorts returns two ports free on every slot address.
func freePorts(t *testing.T) (int, int) {
	t.Helper()
	var ports []int
	for len(ports) < 2 {
		ln, err := net.Listen("tcp", "127.0.0.11:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		free := true
		for _, hosts := range slots {
			for _, h := range hosts {
				if h == "127.0.0.11" {
					continue
				}
				l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
				if err != nil {
					free = false
					continue
				}
				l.Close()
			}
		}
		ln.Close()
		if free {
			ports = append(ports, port)
		}
	}
	return ports[0], ports[1]
}

func (c *containers) provisioner(t *testing.T, pki *cluster.PKI, docker string) *container.Provisioner {
	t.Helper()
	p, err := container.New(container.Config{
		SlotsDir: c.slotsDir, PKI: pki, HSMDir: "same", DataDir: filepath.Join(t.TempDir(), "data"),
		APIPort: c.api, RaftPort: c.raf, ListenOnSlotHost: true, StartTimeout: 30 * time.Second,
		Settings: map[string]any{"heartbeat-timeout": "300ms", "election-timeout": "300ms", "leader-lease-timeout": "150ms"},
		Docker:   docker, Project: "hsmsim-test",
	})
	require.NoError(t, err)
	return p
}

func listening(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// TestLifecycle runs CloudHSM's workflow over the container provisioner:
// the HSMs claim containers by AZ, join by name, give their containers back
// when deleted and come back after a restart.
func TestLifecycle(t *testing.T) {
	c := startContainers(t)
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	prov := c.provisioner(t, pki, c.fakeDocker)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
	mgr := cluster.NewManager(store, prov, pki, log)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mgr.StopAll(ctx)
	})

	res, err := bringup.Cluster(ctx, mgr, bringup.Spec{AZs: []string{"us-east-1a", "us-east-1b"}, Dir: dir, CryptoUser: "kmsuser", Logger: log})
	require.NoError(t, err)
	require.Len(t, res.Hsms, 2)
	first, second := res.Hsms[0], res.Hsms[1]
	require.Equal(t, net.JoinHostPort("127.0.0.11", strconv.Itoa(c.api)), first.Runtime.APIAddr, "the first slot of us-east-1a")
	require.Equal(t, net.JoinHostPort("127.0.0.21", strconv.Itoa(c.api)), second.Runtime.APIAddr)
	require.Equal(t, net.JoinHostPort("127.0.0.21", strconv.Itoa(c.raf)), second.Runtime.RaftAddr)
	require.Equal(t, "127.0.0.21", second.EniIP)

	got, err := prov.Slots()
	require.NoError(t, err)
	require.Equal(t, []container.Slot{
		{Name: "127.0.0.11", AZ: "us-east-1a", HsmID: first.HsmID, Dir: filepath.Join(c.slotsDir, "us-east-1a", "127.0.0.11")},
		{Name: "127.0.0.12", AZ: "us-east-1a", Dir: filepath.Join(c.slotsDir, "us-east-1a", "127.0.0.12")},
		{Name: "127.0.0.21", AZ: "us-east-1b", HsmID: second.HsmID, Dir: filepath.Join(c.slotsDir, "us-east-1b", "127.0.0.21")},
	}, got)
	// The HSM's own files sit in its folder of the slot, the key readable by its owner only.
	st, err := os.Stat(filepath.Join(c.slotsDir, "us-east-1b", "127.0.0.21", second.HsmID, "device.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.FileExists(t, filepath.Join(c.slotsDir, "us-east-1b", "127.0.0.21", second.HsmID, "trust-anchor.crt"))

	// us-east-1b has no container left; us-east-1a has one.
	_, err = mgr.CreateHsm(ctx, res.ClusterID, "us-east-1b")
	require.ErrorIs(t, err, container.ErrNoSlot)
	third, err := mgr.CreateHsm(ctx, res.ClusterID, "us-east-1a")
	require.NoError(t, err)
	require.Equal(t, net.JoinHostPort("127.0.0.12", strconv.Itoa(c.api)), third.Runtime.APIAddr)
	_, err = mgr.CreateHsm(ctx, res.ClusterID, "us-east-1a")
	require.ErrorIs(t, err, container.ErrNoSlot)
	requireLeaderAndFollowers(t, ctx, mgr, res.ClusterID, 3)

	// DeleteHsm gives the container back: hsmd waits again, and the next
	// CreateHsm claims it for a new HSM.
	require.NoError(t, mgr.DeleteHsm(ctx, res.ClusterID, third.HsmID))
	require.False(t, listening(third.Runtime.APIAddr))
	require.NoFileExists(t, filepath.Join(c.slotsDir, "us-east-1a", "127.0.0.12", container.ClaimFile))
	fourth, err := mgr.CreateHsm(ctx, res.ClusterID, "us-east-1a")
	require.NoError(t, err)
	require.NotEqual(t, third.HsmID, fourth.HsmID)
	require.Equal(t, third.Runtime.APIAddr, fourth.Runtime.APIAddr)
	requireLeaderAndFollowers(t, ctx, mgr, res.ClusterID, 3)

	// A restart stops the HSM, claims its container again and resumes its
	// membership from its data.
	require.True(t, prov.Running(second.Runtime))
	require.NoError(t, mgr.Restart(ctx, second.HsmID))
	require.True(t, prov.Running(second.Runtime))
	requireLeaderAndFollowers(t, ctx, mgr, res.ClusterID, 3)
	require.False(t, prov.Running(third.Runtime), "a deleted HSM does not run, though its container does")

	// Faults are the docker CLI's, on the slot's container.
	require.NoError(t, mgr.Pause(first.HsmID))
	require.NoError(t, mgr.Resume(first.HsmID))
	require.NoError(t, mgr.Kill(first.HsmID))
	logged, err := os.ReadFile(c.dockerLog)
	require.NoError(t, err)
	ps := "ps --all --quiet --filter label=com.docker.compose.project=hsmsim-test --filter label=com.docker.compose.service=127.0.0.11"
	require.Contains(t, string(logged), ps+"\npause 0123abcd\n"+ps+"\nunpause 0123abcd\n"+ps+"\nkill 0123abcd\n")
}

func requireLeaderAndFollowers(t *testing.T, ctx context.Context, mgr *cluster.Manager, clusterID string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		statuses, err := mgr.Refresh(ctx, clusterID)
		if err != nil || len(statuses) != n {
			return false
		}
		roles := map[string]int{}
		for _, s := range statuses {
			roles[s.GetRaftState()]++
		}
		return roles["Leader"] == 1 && roles["Follower"] == n-1
	}, 30*time.Second, 100*time.Millisecond)
}

// TestNoDocker: without a docker CLI the container faults say where they run.
func TestNoDocker(t *testing.T) {
	dir := t.TempDir()
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	slotsDir := filepath.Join(dir, "provision")
	require.NoError(t, os.MkdirAll(filepath.Join(slotsDir, "us-east-1a", "hsmd-a1"), 0o700))
	prov, err := container.New(container.Config{SlotsDir: slotsDir, PKI: pki, Docker: filepath.Join(dir, "no-docker")})
	require.NoError(t, err)
	rt := cluster.Runtime{APIAddr: "hsmd-a1:2223", DataDir: "/data/hsm-abc"}
	for name, fault := range map[string]func(cluster.Runtime) error{"kill": prov.Kill, "pause": prov.Pause, "resume": prov.Resume} {
		require.ErrorIs(t, fault(rt), container.ErrNoDocker, name)
	}
	require.False(t, prov.Running(rt), "an unclaimed container runs no HSM")
	require.ErrorContains(t, prov.Kill(cluster.Runtime{APIAddr: "hsmd-z9:2223"}), "no HSM container hsmd-z9")
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for name, cfg := range map[string]container.Config{
		"no slots dir":    {PKI: pki},
		"no PKI":          {SlotsDir: dir},
		"missing dir":     {SlotsDir: filepath.Join(dir, "none"), PKI: pki},
		"not a directory": {SlotsDir: file, PKI: pki},
	} {
		_, err := container.New(cfg)
		require.Error(t, err, name)
	}
}

// TestClaimIsExclusive: many control planes starting HSMs at once in one AZ
// never share a container; the ones left over get ErrNoSlot.
func TestClaimIsExclusive(t *testing.T) {
	dir := t.TempDir()
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	slotsDir := filepath.Join(dir, "provision")
	// Stand-in HSMs: a listener on each slot's address accepts at once.
	ln, err := net.Listen("tcp", "127.0.0.31:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.31", "127.0.0.32", "127.0.0.33"} {
		require.NoError(t, os.MkdirAll(filepath.Join(slotsDir, "us-east-1a", host), 0o700))
		if host != "127.0.0.31" {
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			require.NoError(t, err)
			defer l.Close()
		}
	}
	var mu sync.Mutex
	got := map[string]string{} // container -> HSM
	noSlot := 0
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prov, err := container.New(container.Config{SlotsDir: slotsDir, PKI: pki, APIPort: port, StartTimeout: 5 * time.Second})
			if !assert.NoError(t, err) {
				return
			}
			id := fmt.Sprintf("hsm-%02d", i)
			rt, err := prov.Start(context.Background(), cluster.HSMSpec{HsmID: id, ClusterID: "cluster-x", AZ: "us-east-1a"})
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, container.ErrNoSlot) {
				noSlot++
				return
			}
			if assert.NoError(t, err) {
				host, _, _ := net.SplitHostPort(rt.APIAddr)
				assert.NotContains(t, got, host, "two HSMs in one container")
				got[host] = id
			}
		}()
	}
	wg.Wait()
	require.Len(t, got, 3)
	require.Equal(t, 9, noSlot)
	prov, err := container.New(container.Config{SlotsDir: slotsDir, PKI: pki})
	require.NoError(t, err)
	all, err := prov.Slots()
	require.NoError(t, err)
	for _, s := range all {
		require.Equal(t, got[s.Name], s.HsmID, "the claim file names the HSM that won %s", s.Name)
		require.FileExists(t, filepath.Join(s.Dir, container.ConfigFile))
	}
}
