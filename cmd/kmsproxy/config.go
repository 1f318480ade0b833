package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

// DefaultRegion is the simulated region.
const DefaultRegion = "us-east-1"

// Values of --auth.
const (
	authSigV4 = "sigv4"
	authAny   = "any"
)

// config is a parsed command line: the endpoint's configuration (without
// its clock and services, which run builds) and what buildServices needs.
type config struct {
	Server kmsproxy.Config
	// Region is the simulated region, in the ARNs the services return.
	Region string
	// DataDir holds the endpoint's durable state: the KMS metadata store
	// and the clock offset. Empty keeps state in memory.
	DataDir string
	// DeploymentDir is the deployment hsmctl manages: cluster.Store
	// (deployment.json) and its PKI.
	DeploymentDir string
	// FleetClusterID is the cluster that backs KMS's default key store.
	FleetClusterID string
	// FleetPasswordFile holds the password of the fleet's crypto user.
	FleetPasswordFile string
	// Provisioner is how the control plane starts HSMs: provisionerLocal
	// (hsmd processes) or provisionerContainer (claims HSM containers).
	Provisioner string
	// SlotsDir is where the container provisioner sees the HSM containers'
	// slot directories.
	SlotsDir string
	// PprofAddr, when set, serves net/http/pprof's profiles at
	// /debug/pprof/ on that address (loopback only), for profiling.
	PprofAddr string
}

// options holds the raw flag values before they become a config.
type options struct {
	addr, account, region, auth       string
	credentialsFile                   string
	dataDir, deploymentDir            string
	fleetClusterID, fleetPasswordFile string
	logLevel                          string
	// configFile, provisioner, slotsDir and healthcheck serve container
	// deployments (container.go).
	configFile, provisioner, slotsDir string
	healthcheck                       bool
	pprofAddr                         string
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$`)

// newFlagSet declares every kmsproxy flag, bound to o.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("kmsproxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors; --help prints usage itself.
	fs.StringVar(&o.addr, "addr", kmsproxy.DefaultAddr, "HTTP listen `address` of the KMS and CloudHSM v2 APIs and the admin endpoints")
	fs.StringVar(&o.account, "account", kmsproxy.DefaultAccount, "12-digit `account` id of callers whose credentials name none")
	fs.StringVar(&o.region, "region", DefaultRegion, "simulated `region`, in the ARNs the endpoint returns")
	fs.StringVar(&o.auth, "auth", authSigV4, "request authentication: `mode` sigv4 checks Signature Version 4 against --credentials-file; any accepts any well-formed signature")
	fs.StringVar(&o.credentialsFile, "credentials-file", "", "AWS shared credentials `file`: every [profile] with aws_access_key_id and aws_secret_access_key (and optionally aws_account_id) is accepted; required with --auth sigv4")
	fs.StringVar(&o.dataDir, "data-dir", "", "`directory` for the endpoint's durable state (KMS metadata, clock offset); empty keeps it in memory")
	fs.StringVar(&o.deploymentDir, "deployment-dir", "", "deployment `directory` hsmctl manages (deployment.json and its PKI), for the CloudHSM v2 API and custom key stores")
	fs.StringVar(&o.fleetClusterID, "fleet-cluster-id", "", "`id` of the HSM cluster that backs KMS's default key store")
	fs.StringVar(&o.fleetPasswordFile, "fleet-password-file", "", "`file` with the password of the KMS fleet's crypto user")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: trace, debug (one line per request), info, warn or error")
	fs.StringVar(&o.configFile, "config", "", "JSON `file` whose keys are these flags' names; flags on the command line override it")
	fs.StringVar(&o.provisioner, "provisioner", provisionerLocal, "how the control plane starts HSMs: `kind` local runs hsmd processes; container claims pre-started HSM containers (deploy/compose.yaml)")
	fs.StringVar(&o.slotsDir, "slots-dir", "", "`directory` of the HSM containers' slot directories, one folder per AZ (with --provisioner container)")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "probe the endpoint at --addr (GET /hsmsim/clock from loopback) and exit 0 when it answers, else 1; for container health checks")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "loopback `address` serving Go's profiles at /debug/pprof/ (go tool pprof http://ADDR/debug/pprof/profile); empty disables them")
	return fs
}

// parseConfig turns kmsproxy's arguments into a config whose logger writes
// to logOut. For --help it prints the usage to helpOut and returns
// flag.ErrHelp. Errors name the flag at fault.
func parseConfig(args []string, helpOut, logOut io.Writer) (config, error) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(helpOut, fs)
		}
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if o.configFile != "" {
		if err := applyConfigFile(fs, o.configFile); err != nil {
			return config{}, err
		}
	}
	switch {
	case o.provisioner != provisionerLocal && o.provisioner != provisionerContainer:
		return config{}, fmt.Errorf("--provisioner: unknown kind %q (want local or container)", o.provisioner)
	case o.provisioner == provisionerContainer && o.slotsDir == "":
		return config{}, errors.New("--provisioner container needs --slots-dir")
	}
	cfg := config{
		Region: o.region, DataDir: o.dataDir, DeploymentDir: o.deploymentDir,
		FleetClusterID: o.fleetClusterID, FleetPasswordFile: o.fleetPasswordFile, PprofAddr: o.pprofAddr,
		Provisioner: o.provisioner, SlotsDir: o.slotsDir,
		Server: kmsproxy.Config{Addr: o.addr, Account: o.account},
	}
	if !regionRE.MatchString(o.region) {
		return config{}, fmt.Errorf("--region: %q is not a region name like us-east-1", o.region)
	}
	switch o.auth {
	case authSigV4:
		if o.credentialsFile == "" {
			return config{}, errors.New("--auth sigv4 needs --credentials-file")
		}
	case authAny:
		cfg.Server.AnyCredentials = true
	default:
		return config{}, fmt.Errorf("--auth: unknown mode %q (want sigv4 or any)", o.auth)
	}
	if o.credentialsFile != "" {
		creds, err := loadCredentials(o.credentialsFile)
		if err != nil {
			return config{}, fmt.Errorf("--credentials-file: %w", err)
		}
		if len(creds) == 0 && !cfg.Server.AnyCredentials {
			return config{}, fmt.Errorf("--credentials-file %s: no profile with aws_access_key_id and aws_secret_access_key", o.credentialsFile)
		}
		cfg.Server.Credentials = creds
	}
	if o.pprofAddr != "" {
		if err := checkLoopback(o.pprofAddr); err != nil {
			return config{}, fmt.Errorf("--pprof-addr: %w", err)
		}
	}
	lvl := hclog.LevelFromString(o.logLevel)
	if lvl == hclog.NoLevel {
		return config{}, fmt.Errorf("--log-level: unknown level %q (want trace, debug, info, warn or error)", o.logLevel)
	}
	cfg.Server.Logger = hclog.New(&hclog.LoggerOptions{Name: "kmsproxy", Level: lvl, Output: logOut})
	if err := cfg.Server.Validate(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// checkLoopback accepts a host:port whose host is a loopback IP or
// "localhost": the profiles reveal the process's internals.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// loadCredentials reads an AWS shared credentials file. Every profile
// becomes a credential for the IAM user named like the profile; a profile
// with neither key (only a region, say) is skipped, one with only one of
// them is an error. Errors never quote a secret.
func loadCredentials(path string) ([]sigv4.Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type profile struct {
		name   string
		values map[string]string
	}
	var profiles []*profile
	var cur *profile
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			continue // a nested setting (s3 =\n  max_concurrent_requests = 4): not a key
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: unterminated section header", path, n)
			}
			name := strings.TrimSpace(strings.TrimPrefix(line[1:len(line)-1], "profile "))
			if name == "" {
				return nil, fmt.Errorf("%s:%d: empty profile name", path, n)
			}
			cur = &profile{name: name, values: map[string]string{}}
			profiles = append(profiles, cur)
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: want key = value", path, n)
			}
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: setting outside a [profile] section", path, n)
			}
			cur.values[strings.ToLower(strings.TrimSpace(key))] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var creds []sigv4.Credential
	for _, p := range profiles {
		id, secret := p.values["aws_access_key_id"], p.values["aws_secret_access_key"]
		switch {
		case id == "" && secret == "":
			continue
		case id == "":
			return nil, fmt.Errorf("%s: profile %s has aws_secret_access_key but no aws_access_key_id", path, p.name)
		case secret == "":
			return nil, fmt.Errorf("%s: profile %s has aws_access_key_id but no aws_secret_access_key", path, p.name)
		}
		creds = append(creds, sigv4.Credential{AccessKeyID: id, SecretAccessKey: secret, Account: p.values["aws_account_id"], UserName: p.name})
	}
	return creds, nil
}

// printUsage writes kmsproxy's help: a summary, then every flag with its
// default, in the double-dash spelling the docs use.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `kmsproxy: the simulated regional AWS KMS and CloudHSM v2 endpoint.

Usage:
  kmsproxy --credentials-file FILE [flags]
  kmsproxy --auth any [flags]

Point the AWS CLI or an SDK at it with --endpoint-url http://ADDR.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		def := "(default: " + f.DefValue + ")"
		if f.DefValue == "" {
			def = "(default: none)"
		}
		fmt.Fprintf(w, "  --%s\n      %s %s\n", strings.TrimSpace(f.Name+" "+typ), usage, def)
	})
	fmt.Fprint(w, `
Admin endpoints (no signature, loopback callers only):
  POST /moto-api/reset                         clear all KMS and CloudHSM state
  POST /hsmsim/clock/advance {"duration":"30d"} move the simulated clock forward
  GET  /hsmsim/clock                           the simulated time and its offset
`)
}
