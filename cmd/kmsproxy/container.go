package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/container"
	"github.com/hsmsim/hsmsim/cluster/local"
	"github.com/hsmsim/hsmsim/kmsproxy"
)

// What a container deployment (deploy/compose.yaml) needs of kmsproxy: its
// flags from a file the one-shot `hsmctl compose init` writes (--config),
// the container provisioner, so that the CloudHSM v2 API's CreateHsm claims
// an HSM container, and a health check that needs no shell (--healthcheck).

// Values of --provisioner.
const (
	provisionerLocal     = "local"
	provisionerContainer = "container"
)

// healthProbeTimeout bounds --healthcheck's request.
const healthProbeTimeout = 3 * time.Second

// newProvisioner returns the provisioner cfg names for the deployment in dir.
func newProvisioner(cfg config, dir string, pki *cluster.PKI) (cluster.Provisioner, error) {
	if cfg.Provisioner == provisionerContainer {
		return container.New(container.Config{SlotsDir: cfg.SlotsDir, PKI: pki, Logger: cfg.Server.Logger})
	}
	return local.New(local.Config{Dir: dir, PKI: pki})
}

// applyConfigFile sets every flag named in the JSON object at path that the
// command line did not set.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var settings map[string]any
	if err := dec.Decode(&settings); err != nil {
		return fmt.Errorf("--config %s: not a JSON object: %w", path, err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	slices.Sort(names) // report the same first error every time
	for _, name := range names {
		if name == "config" || fs.Lookup(name) == nil {
			return fmt.Errorf("--config %s: unknown setting %q", path, name)
		}
		if onCommandLine[name] {
			continue
		}
		var value string
		switch v := settings[name].(type) {
		case string:
			value = v
		case bool:
			value = fmt.Sprint(v)
		case json.Number:
			value = v.String()
		default:
			return fmt.Errorf("--config %s: setting %q: unsupported value %v", path, name, v)
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("--config %s: setting %q: %w", path, name, err)
		}
	}
	return nil
}

// healthcheck runs --healthcheck when args ask for it: GET /hsmsim/clock on
// --addr (from the command line or --config), from loopback as the admin
// endpoints want. It reports false when args do not ask for it (or do not
// parse, which run then reports).
func healthcheck(args []string, stdout, stderr io.Writer) (int, bool) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil || !o.healthcheck {
		return 0, false
	}
	if o.configFile != "" {
		if err := applyConfigFile(fs, o.configFile); err != nil {
			fmt.Fprintf(stderr, "kmsproxy: unhealthy: %v\n", err)
			return exitFailure, true
		}
	}
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		fmt.Fprintf(stderr, "kmsproxy: unhealthy: --addr: %v\n", err)
		return exitFailure, true
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + kmsproxy.PathClock
	ctx, cancel := context.WithTimeout(context.Background(), healthProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "kmsproxy: unhealthy: %v\n", err)
		return exitFailure, true
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kmsproxy: unhealthy: %v\n", err)
		return exitFailure, true
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "kmsproxy: unhealthy: GET %s: %s\n", url, resp.Status)
		return exitFailure, true
	}
	fmt.Fprintf(stdout, "kmsproxy: healthy, %s answers\n", url)
	return exitOK, true
}
