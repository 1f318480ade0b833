// Package testbin builds hsmsim's binaries for tests that run real
// processes, once per test binary, from TestMain.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Main builds the named commands (hsmd, hsmctl, kmsproxy) into a temporary
// directory, runs the tests with run, removes the directory and exits with
// the tests' status. It is the whole body of a TestMain:
//
//	func TestMain(m *testing.M) { testbin.Main(m.Run, &binDir, "hsmd") }
func Main(run func() int, dir *string, commands ...string) {
	d, err := Build(commands...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	*dir = d
	code := run()
	os.RemoveAll(d)
	os.Exit(code)
}

// Build builds the named commands into a new temporary directory and
// returns it.
func Build(commands ...string) (string, error) {
	dir, err := os.MkdirTemp("", "hsmsim-bin")
	if err != nil {
		return "", err
	}
	for _, name := range commands {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/hsmsim/hsmsim/cmd/"+name).CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("testbin: build %s: %v\n%s", name, err, out)
		}
	}
	return dir, nil
}
