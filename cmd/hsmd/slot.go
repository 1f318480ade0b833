package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"

	"github.com/hsmsim/hsmsim/node"
)

// The container modes. A container deployment (deploy/compose.yaml,
// cluster/container) pre-starts one hsmd per HSM container with
// --wait-config: the HSM is unassigned until a provisioner writes the file,
// runs while the file exists and stops, back to unassigned, when the
// provisioner removes it. --healthcheck is the container's health check:
// scratch images have no shell or curl, so hsmd probes itself.

// Polling periods of the container modes.
const (
	waitPoll    = 250 * time.Millisecond
	releasePoll = 500 * time.Millisecond
	// probeTimeout bounds --healthcheck's connection attempt.
	probeTimeout = 2 * time.Second
)

// slotMode is a --healthcheck or --wait-config invocation.
type slotMode struct {
	fs *flag.FlagSet
	o  options
	// args are the other flags, as --name=value, for serve.
	args []string
}

// containerMode reports whether args select a container mode. A command
// line that does not parse is left to serve, which reports it.
func containerMode(args []string) (*slotMode, bool) {
	m := &slotMode{}
	cfg := node.DefaultConfig()
	m.fs = newFlagSet(&m.o, &cfg)
	if err := m.fs.Parse(args); err != nil || m.fs.NArg() > 0 {
		return nil, false
	}
	if !m.o.healthcheck && m.o.waitConfig == "" {
		return nil, false
	}
	m.fs.Visit(func(f *flag.Flag) {
		if f.Name != "wait-config" && f.Name != "healthcheck" {
			m.args = append(m.args, "--"+f.Name+"="+f.Value.String())
		}
	})
	return m, true
}

func (m *slotMode) run(stdout, stderr io.Writer, stop <-chan os.Signal) int {
	if m.o.healthcheck {
		return m.health(stdout, stderr)
	}
	if m.o.configFile != "" {
		fmt.Fprintln(stderr, "hsmd: --wait-config and --config exclude each other")
		return exitUsage
	}
	log, err := newLogger(m.o.logLevel, m.o.logJSON, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hsmd: %v\n", err)
		return exitUsage
	}
	for {
		log.Info("unassigned: waiting for the configuration", "file", m.o.waitConfig)
		if !waitForFile(m.o.waitConfig, stop) {
			log.Info("stopped while unassigned")
			return exitOK
		}
		inner := make(chan os.Signal, 2)
		done := make(chan struct{})
		signalled := make(chan bool, 1)
		go func() { signalled <- forward(stop, inner, m.o.waitConfig, done) }()
		code := serve(append(m.args, "--config", m.o.waitConfig), stdout, stderr, inner)
		close(done)
		if <-signalled || code != exitOK {
			return code
		}
		log.Info("released: the configuration was removed")
	}
}

// waitForFile waits until path exists (true) or a value arrives on stop (false).
func waitForFile(path string, stop <-chan os.Signal) bool {
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		select {
		case <-stop:
			return false
		case <-time.After(waitPoll):
		}
	}
}

// released is the stop value serve gets when the configuration is removed.
type released struct{}

func (released) String() string { return "released" }

// Signal makes released an os.Signal.
func (released) Signal() {}

// forward passes signals from stop to inner, and released once path is
// gone, until done is closed. It reports whether it passed a signal.
func forward(stop <-chan os.Signal, inner chan<- os.Signal, path string, done <-chan struct{}) bool {
	signalled, gone := false, false
	t := time.NewTicker(releasePoll)
	defer t.Stop()
	send := func(s os.Signal) {
		select {
		case inner <- s:
		default: // serve already has two values: it is stopping now
		}
	}
	for {
		select {
		case s := <-stop:
			signalled = true
			send(s)
		case <-t.C:
			if _, err := os.Stat(path); !gone && errors.Is(err, fs.ErrNotExist) {
				gone = true
				send(released{})
			}
		case <-done:
			return signalled
		}
	}
}

// health probes the API port of the HSM the command line describes. An
// unassigned HSM (no --wait-config file yet) is healthy: it waits, as it
// should.
func (m *slotMode) health(stdout, stderr io.Writer) int {
	file := m.o.configFile
	if m.o.waitConfig != "" {
		if _, err := os.Stat(m.o.waitConfig); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stdout, "hsmd: unassigned, waiting for %s\n", m.o.waitConfig)
			return exitOK
		}
		file = m.o.waitConfig
	}
	if file != "" {
		if err := applyConfigFile(m.fs, file); err != nil {
			fmt.Fprintf(stderr, "hsmd: unhealthy: %v\n", err)
			return exitFailure
		}
	}
	addr, err := probeAddr(m.o.apiAddr)
	if err != nil {
		fmt.Fprintf(stderr, "hsmd: unhealthy: --api-addr: %v\n", err)
		return exitFailure
	}
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "hsmd: unhealthy: %v\n", err)
		return exitFailure
	}
	conn.Close()
	fmt.Fprintf(stdout, "hsmd: healthy, %s accepts connections\n", addr)
	return exitOK
}

// probeAddr is the address to probe for a listen address: an unspecified
// host (":2223", "0.0.0.0:2223") means loopback.
func probeAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
