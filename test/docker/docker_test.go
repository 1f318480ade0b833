// Package docker tests the container deployment (deploy/compose.yaml) on
// this machine's Docker Engine, end to end: it builds the images (make
// images), starts the deployment (scripts/compose.sh up, what make
// compose-up runs), runs the AWS CLI's workflow against the published
// endpoint, cuts the KMS-facing leader's AZ off with `docker network
// disconnect`, checks that crypto goes on and that the others elect a new
// leader, heals, and removes everything (containers, networks, volumes)
// whatever happens.
//
// It is off by default (it takes minutes and the whole machine): run it
// with -docker or HSMSIM_DOCKER=1. It skips, saying why, when no Docker
// daemon answers, or compose or the AWS CLI is missing.
//
//	go test -count=1 -v -timeout 20m ./test/docker/ -docker
package docker_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var flagDocker = flag.Bool("docker", false, "run the Docker test (it builds images and starts containers)")

// envDocker turns the test on, like -docker.
const envDocker = "HSMSIM_DOCKER"

// slowCommand is how long a command may take before the log says so (the
// AWS CLI alone takes 1 to 3 s to start on a busy machine).
const slowCommand = 8 * time.Second

// deployment is one compose project of the test.
type deployment struct {
	t    *testing.T
	root string
	env  []string
	dir  string // the host-side files (credentials)
	url  string
}

// hsmStatus and clusterStatus are the parts of `hsmctl compose status
// --output json` the test reads.
type hsmStatus struct {
	HsmID     string `json:"hsm_id"`
	AZ        string `json:"az"`
	RaftState string `json:"raft_state"`
	Term      uint64 `json:"term"`
	Leader    string `json:"leader"`
	Healthy   bool   `json:"healthy"`
}

type clusterStatus struct {
	ClusterID string      `json:"cluster_id"`
	State     string      `json:"state"`
	Hsms      []hsmStatus `json:"hsms"`
}

func TestComposeDeployment(t *testing.T) {
	if !*flagDocker && os.Getenv(envDocker) != "1" {
		t.Skipf("the Docker test is off: pass -docker or set %s=1 (it builds images and starts 12 containers)", envDocker)
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon answers (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if exec.Command("docker", "compose", "version").Run() != nil {
			t.Skip("neither docker-compose nor the docker compose plugin is installed")
		}
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (pip install awscli)")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	begin := time.Now()
	phase := func(name string, since time.Time) { t.Logf("phase %-28s %6.1fs", name, time.Since(since).Seconds()) }

	start := time.Now()
	make := exec.Command("make", "-C", root, "images")
	out, err := make.CombinedOutput()
	require.NoError(t, err, "make images:\n%s", out)
	t.Logf("make images:\n%s", out)
	phase("make images", start)
	// The servers' images carry the runtime settings of the local
	// deployment (deploy/Dockerfile, cluster/local).
	for _, image := range []string{"hsmsim/hsmd:dev", "hsmsim/kmsproxy:dev"} {
		env, err := exec.Command("docker", "image", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", image).CombinedOutput()
		require.NoError(t, err, "docker image inspect %s: %s", image, env)
		require.Contains(t, strings.Fields(string(env)), "GODEBUG=schedtrace=2147483647", image)
		require.Contains(t, strings.Fields(string(env)), "GOGC=400", image)
	}

	d := &deployment{t: t, root: root, dir: t.TempDir()}
	port := freePort(t)
	d.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	d.env = append(os.Environ(),
		fmt.Sprintf("COMPOSE_PROJECT=hsmsimtest%d", os.Getpid()), fmt.Sprintf("HSMSIM_KMS_PORT=%d", port),
		"HSMSIM_COMPOSE_DIR="+d.dir, "IMAGE_TAG=dev",
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(d.dir, "credentials"), "AWS_PROFILE=hsmsim",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	// Registered before up, so that a half-started deployment goes too.
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := d.cmd("scripts/compose.sh", "logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", logs)
		}
		start := time.Now()
		out, err := d.cmd("scripts/compose.sh", "down")
		if err != nil {
			t.Errorf("scripts/compose.sh down: %v\n%s", err, out)
		}
		phase("compose down", start)
		t.Logf("the whole test took %.1fs", time.Since(begin).Seconds())
	})

	start = time.Now()
	d.must("scripts/compose.sh", "up")
	phase("compose up (key store CONNECTED)", start)

	// The AWS CLI's workflow on the published endpoint.
	start = time.Now()
	store := d.aws("kms", "describe-custom-key-stores", "--custom-key-store-name", "hsmsim-custom-key-store",
		"--query", "CustomKeyStores[0].[CustomKeyStoreId,CloudHsmClusterId,ConnectionState]", "--output", "text")
	fields := strings.Fields(store)
	require.Len(t, fields, 3, store)
	storeID, clusterID := fields[0], fields[1]
	require.Equal(t, "CONNECTED", fields[2])
	key := d.aws("kms", "create-key", "--origin", "AWS_CLOUDHSM", "--custom-key-store-id", storeID,
		"--query", "KeyMetadata.KeyId", "--output", "text")
	before := d.encrypt(key, "before the partition")
	require.Equal(t, "before the partition", d.decrypt(before))
	phase("key in the custom key store", start)

	// The CloudHSM v2 API places an HSM in a spare container of its AZ.
	start = time.Now()
	other := d.aws("cloudhsmv2", "create-cluster", "--hsm-type", "hsm2m.medium", "--subnet-ids", "subnet-0a1b2c3d4e5f60001",
		"--query", "Cluster.ClusterId", "--output", "text")
	hsm := d.aws("cloudhsmv2", "create-hsm", "--cluster-id", other, "--availability-zone", "us-east-1a",
		"--query", "Hsm.[State,EniIp]", "--output", "text")
	require.Equal(t, []string{"ACTIVE", "hsmd-a3"}, strings.Fields(hsm), "the spare container of us-east-1a")
	phase("CloudHSM create-hsm", start)

	// Cut the customer cluster's leader's AZ off.
	old := d.leader(clusterID)
	t.Logf("leader of %s: %s in %s, term %d", clusterID, old.HsmID, old.AZ, old.Term)
	start = time.Now()
	t.Log(d.must("scripts/docker-fault.sh", "partition", old.AZ))
	during := d.encrypt(key, "during the partition")
	require.Equal(t, "during the partition", d.decrypt(during))
	require.Equal(t, "before the partition", d.decrypt(before))
	phase("crypto during the partition", start)

	start = time.Now()
	var elected hsmStatus
	require.Eventually(t, func() bool {
		c := d.cluster(clusterID)
		for _, h := range c.Hsms {
			if h.RaftState == "Leader" && h.HsmID != old.HsmID && h.Term > old.Term {
				require.NotEqual(t, old.AZ, h.AZ, "a leader in the partitioned AZ")
				elected = h
				return true
			}
		}
		return false
	}, 90*time.Second, time.Second, "no new leader outside %s", old.AZ)
	t.Logf("new leader: %s in %s, term %d", elected.HsmID, elected.AZ, elected.Term)
	phase("new leader seen", start)

	start = time.Now()
	t.Log(d.must("scripts/docker-fault.sh", "heal"))
	require.Eventually(t, func() bool {
		c := d.cluster(clusterID)
		leaders := 0
		for _, h := range c.Hsms {
			if !h.Healthy || h.Leader == "" {
				return false
			}
			if h.RaftState == "Leader" {
				leaders++
			}
		}
		return len(c.Hsms) == 3 && leaders == 1 && c.State == "ACTIVE"
	}, 90*time.Second, time.Second, "the cluster did not heal")
	require.Equal(t, "during the partition", d.decrypt(during))
	require.Equal(t, "after the heal", d.decrypt(d.encrypt(key, "after the heal")))
	phase("healed", start)
}

// cmd runs a command of the checkout with the deployment's environment and
// returns its standard output (and standard error, on failure).
func (d *deployment) cmd(name string, args ...string) (string, error) {
	c := exec.Command(name, args...)
	c.Dir, c.Env = d.root, d.env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	start := time.Now()
	err := c.Run()
	if took := time.Since(start); took > slowCommand {
		d.t.Logf("slow: %s %s took %.1fs", name, strings.Join(args, " "), took.Seconds())
	}
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

func (d *deployment) must(name string, args ...string) string {
	d.t.Helper()
	out, err := d.cmd(name, args...)
	require.NoError(d.t, err, out)
	return strings.TrimSpace(out)
}

func (d *deployment) aws(args ...string) string {
	d.t.Helper()
	return d.must("aws", append([]string{"--endpoint-url", d.url}, args...)...)
}

// encrypt returns the ciphertext blob, base64 as the CLI prints it.
func (d *deployment) encrypt(key, plaintext string) string {
	d.t.Helper()
	return d.aws("kms", "encrypt", "--key-id", key, "--plaintext", plaintext, "--query", "CiphertextBlob", "--output", "text")
}

func (d *deployment) decrypt(blob string) string {
	d.t.Helper()
	ct, err := base64.StdEncoding.DecodeString(blob)
	require.NoError(d.t, err, blob)
	file := filepath.Join(d.t.TempDir(), "ct.bin")
	require.NoError(d.t, os.WriteFile(file, ct, 0o600))
	plain := d.aws("kms", "decrypt", "--ciphertext-blob", "fileb://"+file, "--query", "Plaintext", "--output", "text")
	b, err := base64.StdEncoding.DecodeString(plain)
	require.NoError(d.t, err, plain)
	return string(b)
}

// cluster returns a cluster's row of `hsmctl compose status`, run in a
// one-shot container on the deployment's networks.
func (d *deployment) cluster(id string) clusterStatus {
	d.t.Helper()
	out := d.must("scripts/compose.sh", "hsmctl", "compose", "status", "--dir", "/deploy", "--output", "json")
	var rep struct {
		Clusters []clusterStatus `json:"clusters"`
	}
	require.NoError(d.t, json.Unmarshal([]byte(out), &rep), out)
	for _, c := range rep.Clusters {
		if c.ClusterID == id {
			return c
		}
	}
	d.t.Fatalf("no cluster %s in %s", id, out)
	return clusterStatus{}
}

// leader waits for the cluster's leader.
func (d *deployment) leader(id string) hsmStatus {
	d.t.Helper()
	var leader hsmStatus
	require.Eventually(d.t, func() bool {
		for _, h := range d.cluster(id).Hsms {
			if h.RaftState == "Leader" {
				leader = h
				return true
			}
		}
		return false
	}, 60*time.Second, time.Second)
	return leader
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
