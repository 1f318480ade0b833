package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUpPrintedCommandsWork pastes what hsmctl up prints — the export line
// and the three AWS CLI commands — into bash, as a user would.
func TestUpPrintedCommandsWork(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (pip install awscli)")
	}
	dir := filepath.Join(t.TempDir(), "dep")
	hsmctl := filepath.Join(binDir, "hsmctl")
	env := append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "AWS_CONFIG_FILE=/dev/null")
	up := exec.Command(hsmctl, "up", "--detach", "--dir", dir)
	up.Env = env
	var out, errOut bytes.Buffer
	up.Stdout, up.Stderr = &out, &errOut
	require.NoError(t, up.Run(), errOut.String())
	t.Cleanup(func() { exec.Command(hsmctl, "down", "--dir", dir).Run() })
	t.Logf("hsmctl up printed:\n%s", out.String())

	var script []string
	for _, line := range strings.Split(out.String(), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "export AWS_") || strings.HasPrefix(l, "KEY=$(aws ") || strings.HasPrefix(l, "aws --endpoint-url") {
			script = append(script, l)
		}
	}
	require.Len(t, script, 4, "an export line and three AWS CLI commands")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	cmd.Env = env
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, string(got))
	require.Equal(t, "hello, HSM", strings.TrimSpace(string(got)), "the last command prints the decrypted text")
}
