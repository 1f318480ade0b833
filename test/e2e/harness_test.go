// Package e2e runs the seed workflow against real processes: hsmctl up
// --bare starts the KMS endpoint and its fleet, and the test does the rest
// as a customer would, with the AWS SDK for Go (and, in cli_test.go, the
// AWS CLI) on the AWS side and hsmctl on the HSM side.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/testbin"
)

// binDir holds hsmd, hsmctl and kmsproxy, built once.
var binDir string

func TestMain(m *testing.M) { testbin.Main(m.Run, &binDir, "hsmd", "hsmctl", "kmsproxy") }

// deployment is a running `hsmctl up` in a temporary directory.
type deployment struct {
	t         *testing.T
	dir       string
	endpoint  string
	accessKey string
	secretKey string
	credsFile string
}

// upResult mirrors the JSON hsmctl up prints.
type upResult struct {
	ClusterID string `json:"cluster_id"`
	KMS       struct {
		Endpoint         string `json:"endpoint"`
		CredentialsFile  string `json:"credentials_file"`
		AccessKeyID      string `json:"access_key_id"`
		CustomKeyStoreID string `json:"custom_key_store_id"`
	} `json:"kms"`
	AdminPassword string `json:"admin_password_file"`
}

// up runs hsmctl up --detach with args and stops it when the test ends.
func up(t *testing.T, args ...string) (*deployment, upResult) {
	t.Helper()
	d := &deployment{t: t, dir: filepath.Join(t.TempDir(), "dep")}
	var res upResult
	out := d.hsmctl(append([]string{"up", "--detach", "--output", "json"}, args...)...)
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(binDir, "hsmctl"), "down", "--dir", d.dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Logf("hsmctl down: %v: %s", err, b)
		}
	})
	d.endpoint, d.credsFile, d.accessKey = res.KMS.Endpoint, res.KMS.CredentialsFile, res.KMS.AccessKeyID
	creds, err := os.ReadFile(d.credsFile)
	require.NoError(t, err)
	for _, line := range strings.Split(string(creds), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "aws_secret_access_key" {
			d.secretKey = strings.TrimSpace(v)
		}
	}
	require.NotEmpty(t, d.secretKey)
	return d, res
}

// hsmctl runs the hsmctl binary on the deployment and returns its stdout.
func (d *deployment) hsmctl(args ...string) string {
	d.t.Helper()
	out, err := d.tryHsmctl(args...)
	require.NoError(d.t, err, "hsmctl %s: %s", strings.Join(args, " "), out)
	return out
}

func (d *deployment) tryHsmctl(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "hsmctl"), append(args, "--dir", d.dir)...)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func (d *deployment) kms() *kms.Client {
	return kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(d.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(d.accessKey, d.secretKey, "")})
}

func (d *deployment) cloudhsm() *cloudhsmv2.Client {
	return cloudhsmv2.New(cloudhsmv2.Options{Region: "us-east-1", BaseEndpoint: aws.String(d.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(d.accessKey, d.secretKey, "")})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
