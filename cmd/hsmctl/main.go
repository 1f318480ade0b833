// Command hsmctl is hsmsim's operator tool and local launcher: it starts a
// whole deployment (hsmctl up), shows and breaks it (status, logs, fault),
// and speaks to the HSMs as CloudHSM's CLI does (cluster activate, login,
// user, key, quorum, backup). Run "hsmctl help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
