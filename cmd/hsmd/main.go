package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hsmsim/hsmsim/internal/graceful"
	"github.com/hsmsim/hsmsim/node"
)

// shutdownTimeout bounds the graceful part of Close; after it, in-flight
// RPCs are cut off.
const shutdownTimeout = 10 * time.Second

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the HSM failed to start or to stop cleanly
	exitUsage   = 2 // bad command line or configuration
)

func main() {
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, stop))
}

// run is one hsmd invocation: it parses args, starts the HSM, waits for a
// value on stop and shuts the HSM down. It returns the exit status. Help
// goes to stdout; errors and logs to stderr. --healthcheck and
// --wait-config select the container modes of slot.go.
func run(args []string, stdout, stderr io.Writer, stop <-chan os.Signal) int {
	if m, ok := containerMode(args); ok {
		return m.run(stdout, stderr, stop)
	}
	return serve(args, stdout, stderr, stop)
}

// serve runs the HSM args describe until a value arrives on stop.
func serve(args []string, stdout, stderr io.Writer, stop <-chan os.Signal) int {
	cfg, err := parseConfig(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "hsmd: %v\nRun 'hsmd --help' for usage.\n", err)
		return exitUsage
	}
	log := cfg.Logger
	n, err := node.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "hsmd: invalid configuration: %v\n", err)
		return exitUsage
	}
	if err := n.Start(context.Background()); err != nil {
		log.Error("start failed", "error", err)
		return exitFailure
	}
	log.Info("hsmd running", "api", n.APIAddr(), "raft", n.RaftAddr())

	if err := graceful.Stop(log, stop, shutdownTimeout, n.Close); err != nil {
		log.Error("shutdown failed", "error", err)
		return exitFailure
	}
	log.Info("stopped")
	return exitOK
}
