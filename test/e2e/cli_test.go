package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSeedWorkflowCLI runs seed_cli.sh: the workflow with the installed AWS
// CLI, so that its serialization and signing are exercised too.
func TestSeedWorkflowCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (pip install awscli)")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	d, _ := up(t, "--bare")
	cmd := exec.Command("bash", "seed_cli.sh")
	cmd.Env = append(os.Environ(),
		"ENDPOINT="+d.endpoint, "DIR="+d.dir, "HSMCTL="+filepath.Join(binDir, "hsmctl"),
		"AWS_SHARED_CREDENTIALS_FILE="+d.credsFile, "AWS_PROFILE=hsmsim", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), "seed workflow with the AWS CLI: ok")
}
