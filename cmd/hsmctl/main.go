// Command hsmctl is hsmsim's operator tool and local launcher.
//
// The launcher (hsmctl up) and the cluster commands arrive with the cluster
// package; until then hsmctl says so and exits non-zero.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `hsmctl: operate and launch hsmsim HSM clusters.

Usage:
  hsmctl up       start the local deployment (not built yet)
  hsmctl help     show this help
`

// run executes one hsmctl invocation and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "up":
		fmt.Fprintln(stderr, "hsmctl up: the local deployment is not built yet (see the README's status table)")
		return 1
	default:
		fmt.Fprintf(stderr, "hsmctl: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
