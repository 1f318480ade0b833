package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/hsmsim/hsmsim/internal/graceful"
	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
)

// shutdownTimeout bounds the graceful part of Close; after it, requests in
// flight are cut off.
const shutdownTimeout = 10 * time.Second

// clockFile is the simulated clock's offset, in --data-dir.
const clockFile = "clock.json"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the endpoint failed to start or to stop cleanly
	exitUsage   = 2 // bad command line or configuration
)

// run is one kmsproxy invocation: it parses args, starts the endpoint,
// waits for a value on stop and shuts the endpoint down. It returns the
// exit status. Help goes to stdout; errors and logs to stderr.
func run(args []string, stdout, stderr io.Writer, stop <-chan os.Signal) int {
	if code, ok := healthcheck(args, stdout, stderr); ok {
		return code
	}
	cfg, err := parseConfig(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "kmsproxy: %v\nRun 'kmsproxy --help' for usage.\n", err)
		return exitUsage
	}
	log := cfg.Server.Logger
	if cfg.Server.Clock, err = openClock(cfg.DataDir); err != nil {
		log.Error("cannot open the clock", "error", err)
		return exitFailure
	}
	var closeServices func() error
	if cfg.Server.Services, closeServices, err = buildServices(cfg); err != nil {
		log.Error("cannot build the services", "error", err)
		return exitFailure
	}
	defer func() {
		if err := closeServices(); err != nil {
			log.Error("closing the services failed", "error", err)
		}
	}()
	srv, err := kmsproxy.New(cfg.Server)
	if err != nil {
		fmt.Fprintf(stderr, "kmsproxy: %v\n", err)
		return exitUsage
	}
	if err := srv.Start(context.Background()); err != nil {
		log.Error("start failed", "error", err)
		return exitFailure
	}
	log.Info("kmsproxy running", "addr", srv.Addr(), "region", cfg.Region, "services", len(cfg.Server.Services))
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr)
		if err != nil {
			log.Error("cannot serve the profiles", "error", err)
			srv.Close(context.Background())
			return exitFailure
		}
		defer stopPprof()
		log.Info("serving profiles", "addr", cfg.PprofAddr)
	}

	if err := graceful.Stop(log, stop, shutdownTimeout, srv.Close); err != nil {
		log.Error("shutdown failed", "error", err)
		return exitFailure
	}
	log.Info("stopped")
	return exitOK
}

// servePprof serves net/http/pprof's handlers on addr until the returned
// function is called.
func servePprof(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// openClock returns the simulated clock, its offset kept in dataDir (in
// memory when dataDir is empty).
func openClock(dataDir string) (*clock.Clock, error) {
	if dataDir == "" {
		return clock.New("")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	return clock.New(filepath.Join(dataDir, clockFile))
}
