package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildHsmd puts a freshly built hsmd on PATH for the launcher to find.
func buildHsmd(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "hsmd"), "github.com/hsmsim/hsmsim/cmd/hsmd").CombinedOutput()
	require.NoError(t, err, string(out))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// hsmctl runs one command in-process and returns its stdout.
func hsmctl(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	require.Equal(t, 0, code, "hsmctl %s: %s", strings.Join(args, " "), errOut.String())
	return out.String()
}

func status(t *testing.T, dir string) statusReport {
	t.Helper()
	var rep statusReport
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "status", "--dir", dir, "--output", "json")), &rep))
	require.Len(t, rep.Clusters, 1)
	return rep
}

func leaderOf(rep statusReport) (hsmStatus, bool) {
	for _, h := range rep.Clusters[0].Hsms {
		if h.RaftState == "Leader" {
			return h, true
		}
	}
	return hsmStatus{}, false
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(itoa(pid)), "stat"))
	return err != nil || !strings.Contains(string(b), ") Z ")
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestUpFaultsDown(t *testing.T) {
	buildHsmd(t)
	dir := filepath.Join(t.TempDir(), "dep")
	var up upResult
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "up", "--detach", "--no-kms", "--dir", dir, "--output", "json")), &up))
	var pids []int
	for _, h := range up.Hsms {
		pids = append(pids, h.Runtime.PID)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	require.Len(t, up.Hsms, 3)
	for _, p := range pids {
		// The HSMs run with sysmon kept out of deep sleep and GOGC=400
		// (cluster/local).
		environ, err := os.ReadFile(filepath.Join("/proc", itoa(p), "environ"))
		require.NoError(t, err)
		env := map[string]string{}
		for kv := range strings.SplitSeq(string(environ), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		require.Contains(t, strings.Split(env["GODEBUG"], ","), "schedtrace=2147483647", "hsmd %d's GODEBUG", p)
		wantGOGC := cmp.Or(os.Getenv("GOGC"), "400")
		require.Equal(t, wantGOGC, env["GOGC"], "hsmd %d's GOGC", p)
	}
	st, err := os.Stat(up.KmsuserPasword)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the kmsuser password file is private")
	require.FileExists(t, filepath.Join(dir, "customerCA.crt"))
	require.FileExists(t, filepath.Join(dir, "deployment.json"))

	rep := status(t, dir)
	require.Equal(t, "ACTIVE", rep.Clusters[0].State)
	for _, h := range rep.Clusters[0].Hsms {
		require.True(t, h.Healthy, h.HsmID)
	}
	pw, err := os.ReadFile(up.KmsuserPasword)
	require.NoError(t, err)
	hsmctl(t, "login", "--dir", dir, "--cluster-id", up.ClusterID, "--username", "kmsuser", "--role", "crypto-user", "--password", strings.TrimSpace(string(pw)))

	// Logs: one HSM's, or all of them.
	one := hsmctl(t, "logs", "--dir", dir, "--hsm", up.Hsms[0].HsmID)
	require.Contains(t, one, "==> "+up.Hsms[0].HsmID)
	require.Contains(t, one, "hsm started")
	require.NotContains(t, one, "==> "+up.Hsms[1].HsmID)
	all := hsmctl(t, "logs", "--dir", dir)
	for _, h := range up.Hsms {
		require.Contains(t, all, "==> "+h.HsmID)
	}
	var errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{"logs", "--dir", dir, "--hsm", "hsm-nosuchhsm"}, &bytes.Buffer{}, &errOut))

	// Partition the leader's AZ: a new leader is elected elsewhere.
	leader, ok := leaderOf(rep)
	require.True(t, ok)
	hsmctl(t, "fault", "partition", "--dir", dir, "--az", leader.AZ)
	require.Eventually(t, func() bool {
		l, ok := leaderOf(status(t, dir))
		return ok && l.AZ != leader.AZ
	}, 20*time.Second, 200*time.Millisecond, "a leader outside %s", leader.AZ)
	for _, h := range status(t, dir).Clusters[0].Hsms {
		if h.AZ == leader.AZ {
			require.Len(t, h.BlockedPeers, 2, "the partitioned HSM is cut off from both others")
		}
	}
	// Heal: every HSM is back in one group with one leader.
	hsmctl(t, "fault", "heal", "--dir", dir)
	require.Eventually(t, func() bool {
		rep := status(t, dir)
		leaders, followers := 0, 0
		for _, h := range rep.Clusters[0].Hsms {
			switch {
			case len(h.BlockedPeers) > 0:
				return false
			case h.RaftState == "Leader":
				leaders++
			case h.RaftState == "Follower":
				followers++
			}
		}
		return leaders == 1 && followers == 2 && len(rep.Faults) == 0
	}, 20*time.Second, 200*time.Millisecond, "healed")

	// Isolate one HSM, then heal.
	victim := status(t, dir).Clusters[0].Hsms[1].HsmID
	hsmctl(t, "fault", "isolate", "--dir", dir, "--hsm", victim)
	require.Eventually(t, func() bool {
		for _, h := range status(t, dir).Clusters[0].Hsms {
			if h.HsmID == victim {
				return len(h.BlockedPeers) == 2 && h.RaftState != "Leader"
			}
		}
		return false
	}, 20*time.Second, 200*time.Millisecond)
	hsmctl(t, "fault", "heal", "--dir", dir)

	// Kill, then restart, an HSM.
	hsmctl(t, "fault", "kill", "--dir", dir, "--hsm", victim)
	require.Eventually(t, func() bool {
		for _, h := range status(t, dir).Clusters[0].Hsms {
			if h.HsmID == victim {
				return !h.Healthy
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, "DEGRADED", status(t, dir).Clusters[0].State)
	hsmctl(t, "fault", "restart", "--dir", dir, "--hsm", victim)
	require.Eventually(t, func() bool {
		rep := status(t, dir)
		return rep.Clusters[0].State == "ACTIVE"
	}, 20*time.Second, 200*time.Millisecond)

	// Pause and resume.
	hsmctl(t, "fault", "pause", "--dir", dir, "--hsm", victim)
	require.Eventually(t, func() bool { return status(t, dir).Clusters[0].State == "DEGRADED" }, 10*time.Second, 100*time.Millisecond)
	hsmctl(t, "fault", "resume", "--dir", dir, "--hsm", victim)
	require.Eventually(t, func() bool { return status(t, dir).Clusters[0].State == "ACTIVE" }, 10*time.Second, 100*time.Millisecond)

	// Latency between two AZs shows as a fault in force.
	hsmctl(t, "fault", "latency", "--dir", dir, "--between", "us-east-1a,us-east-1b", "--ms", "30")
	require.Len(t, status(t, dir).Faults, 1)
	hsmctl(t, "fault", "heal", "--dir", dir)

	// Down leaves no process behind.
	var final statusReport
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "status", "--dir", dir, "--output", "json")), &final))
	pids = pids[:0]
	for _, h := range final.Clusters[0].Hsms {
		pids = append(pids, h.PID)
	}
	hsmctl(t, "down", "--dir", dir, "--purge")
	for _, p := range pids {
		require.False(t, alive(p), "process %d survived hsmctl down", p)
	}
	require.NoDirExists(t, dir)
}
