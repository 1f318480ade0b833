package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/node"
)

// Default listen addresses: CloudHSM's client port, and the next one for Raft.
const (
	defaultAPIAddr  = "127.0.0.1:2223"
	defaultRaftAddr = "127.0.0.1:2224"
)

// requiredFlags must be set, on the command line or in the config file.
var requiredFlags = []string{"id", "az", "cluster-id", "data-dir", "device-cert", "device-key", "hardware-ca"}

// listFlags are comma-separated lists on the command line; a config file
// may give them as a JSON array of strings.
var listFlags = []string{"join"}

// options holds the raw flag values before they become a node.Config.
type options struct {
	id, az, clusterID, dataDir                     string
	apiAddr, raftAddr, advertiseAPI, advertiseRaft string
	metricsAddr                                    string
	deviceCert, deviceKey, hardwareCA              string
	join, joinTrustAnchor, joinCertificateID       string
	backupKey, restoreFrom                         string
	logLevel                                       string
	logJSON                                        bool
	configFile                                     string
	// waitConfig and healthcheck select the container modes (slot.go).
	waitConfig  string
	healthcheck bool
}

// newFlagSet declares every hsmd flag, bound to o and cfg (whose current
// values are the defaults).
func newFlagSet(o *options, cfg *node.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("hsmd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors; --help prints usage itself.
	fs.StringVar(&o.id, "id", "", "HSM `id` (CloudHSM's hsm-...), also its Raft server id")
	fs.StringVar(&o.az, "az", "", "simulated availability `zone`, e.g. us-east-1a")
	fs.StringVar(&o.clusterID, "cluster-id", "", "`id` of the cluster the HSM belongs to")
	fs.StringVar(&o.dataDir, "data-dir", "", "`directory` for the Raft log, snapshots, device key and sealed cluster secrets")
	fs.StringVar(&o.apiAddr, "api-addr", defaultAPIAddr, "gRPC listen `address` (customer, control plane and peer APIs)")
	fs.StringVar(&o.raftAddr, "raft-addr", defaultRaftAddr, "Raft listen `address`")
	fs.StringVar(&o.advertiseAPI, "advertise-api", "", "API `address` peers and clients reach this HSM at; empty means the listener's")
	fs.StringVar(&o.advertiseRaft, "advertise-raft", "", "Raft `address` peers reach this HSM at; empty means the listener's")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`address` serving Prometheus metrics at /metrics; empty disables them")
	fs.StringVar(&o.deviceCert, "device-cert", "", "PEM `file` with the device certificate (and any intermediates), signed by the hardware CA")
	fs.StringVar(&o.deviceKey, "device-key", "", "PEM `file` with the device certificate's private key")
	fs.StringVar(&o.hardwareCA, "hardware-ca", "", "PEM `file` with the hardware CA certificate (the simulated manufacturer)")
	fs.StringVar(&o.join, "join", "", "comma-separated API `addresses` of cluster members to join through; empty waits to be initialized")
	fs.StringVar(&o.joinTrustAnchor, "join-trust-anchor", "", "PEM `file` with the cluster's trust anchor (customerCA.crt); required with --join")
	fs.StringVar(&o.joinCertificateID, "join-certificate-id", "", "common name of the members' cluster certificate, for a cluster restored from a backup (the source's cluster id); empty means --cluster-id")
	fs.StringVar(&o.backupKey, "backup-key", "", "`file` with the deployment's backup key: 32 raw bytes or 64 hex characters; backups and restores need it")
	fs.StringVar(&o.restoreFrom, "restore-from", "", "backup `file` to restore when the HSM holds no cluster secrets yet; needs --backup-key, excludes --join")
	fs.Var(durationValue{&cfg.HeartbeatTimeout}, "heartbeat-timeout", "Raft heartbeat timeout, a Go `duration`")
	fs.Var(durationValue{&cfg.ElectionTimeout}, "election-timeout", "Raft election timeout, a Go `duration`")
	fs.Var(durationValue{&cfg.LeaderLeaseTimeout}, "leader-lease-timeout", "Raft leader lease timeout, a Go `duration` at most --heartbeat-timeout")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "Raft log entries that trigger a snapshot")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", cfg.MaxSessions, "most login sessions this HSM holds")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: trace, debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	fs.StringVar(&o.configFile, "config", "", "JSON `file` whose keys are these flags' names; flags on the command line override it")
	fs.StringVar(&o.waitConfig, "wait-config", "", "JSON `file` as for --config, written by a container provisioner: wait until it exists, run the HSM it describes, stop the HSM when it is removed and wait again (an unassigned HSM container)")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "probe the API port of the HSM this command line (or its --config or --wait-config file) describes, and exit 0 when it accepts connections or is still waiting for --wait-config, else 1; for container health checks")
	return fs
}

// parseConfig turns hsmd's arguments into a validated node.Config whose
// Logger writes to logOut. For --help it prints the usage to helpOut and
// returns flag.ErrHelp. Errors name the flag at fault.
func parseConfig(args []string, helpOut, logOut io.Writer) (node.Config, error) {
	cfg := node.DefaultConfig()
	var o options
	fs := newFlagSet(&o, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(helpOut, fs)
		}
		return node.Config{}, err
	}
	if fs.NArg() > 0 {
		return node.Config{}, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if o.configFile != "" {
		if err := applyConfigFile(fs, o.configFile); err != nil {
			return node.Config{}, err
		}
	}
	for _, name := range requiredFlags {
		if fs.Lookup(name).Value.String() == "" {
			return node.Config{}, fmt.Errorf("missing required flag --%s", name)
		}
	}

	cfg.NodeID, cfg.AZ, cfg.ClusterID, cfg.DataDir = o.id, o.az, o.clusterID, o.dataDir
	cfg.APIAddr, cfg.RaftAddr = o.apiAddr, o.raftAddr
	cfg.AdvertiseAPI, cfg.AdvertiseRaft = o.advertiseAPI, o.advertiseRaft
	cfg.MetricsAddr = o.metricsAddr
	var err error
	if cfg.DeviceCert, err = loadKeyPair(o.deviceCert, o.deviceKey); err != nil {
		return node.Config{}, err
	}
	if cfg.HardwareCA, err = loadCert("hardware-ca", o.hardwareCA); err != nil {
		return node.Config{}, err
	}
	if cfg.Join, err = joinConfig(o.join, o.joinTrustAnchor); err != nil {
		return node.Config{}, err
	}
	if o.joinCertificateID != "" {
		if cfg.Join == nil {
			return node.Config{}, errors.New("--join-certificate-id is only used with --join")
		}
		cfg.Join.CertificateID = o.joinCertificateID
	}
	if cfg.BackupKey, err = loadBackupKey(o.backupKey); err != nil {
		return node.Config{}, err
	}
	if o.restoreFrom != "" {
		if o.backupKey == "" {
			return node.Config{}, errors.New("--restore-from needs --backup-key (the deployment's backup key)")
		}
		if o.join != "" {
			return node.Config{}, errors.New("--restore-from and --join exclude each other")
		}
		if cfg.RestoreFrom, err = os.ReadFile(o.restoreFrom); err != nil {
			return node.Config{}, fmt.Errorf("--restore-from: %w", err)
		}
		if len(cfg.RestoreFrom) == 0 {
			return node.Config{}, fmt.Errorf("--restore-from %s: empty file", o.restoreFrom)
		}
	}
	if cfg.Logger, err = newLogger(o.logLevel, o.logJSON, logOut); err != nil {
		return node.Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return node.Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// applyConfigFile sets every flag named in the JSON file at path that the
// command line did not set.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep --snapshot-threshold exact
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
		value, err := settingString(name, settings[name])
		if err != nil {
			return fmt.Errorf("--config %s: setting %q: %w", path, name, err)
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("--config %s: setting %q: %w", path, name, err)
		}
	}
	return nil
}

// settingString renders a config file value as the flag's text form.
func settingString(name string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return fmt.Sprint(v), nil
	case json.Number:
		return v.String(), nil
	case []any:
		if !slices.Contains(listFlags, name) {
			return "", errors.New("a list is not allowed here")
		}
		items := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return "", fmt.Errorf("list item %d is not a string", i)
			}
			items[i] = s
		}
		return strings.Join(items, ","), nil
	default:
		return "", fmt.Errorf("unsupported value %v", v)
	}
}

// loadKeyPair reads the device certificate and key PEM files.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--device-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--device-key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--device-cert %s / --device-key %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// loadCert reads the first certificate of the PEM file named by flag name.
func loadCert(name, path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("--%s %s: no PEM CERTIFICATE block", name, path)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", name, path, err)
		}
		return cert, nil
	}
}

// joinConfig builds the join settings from --join and --join-trust-anchor.
func joinConfig(addrs, anchorFile string) (*node.JoinConfig, error) {
	if addrs == "" {
		if anchorFile != "" {
			return nil, errors.New("--join-trust-anchor is only used with --join")
		}
		return nil, nil
	}
	if anchorFile == "" {
		return nil, errors.New("--join needs --join-trust-anchor (the cluster's trust anchor PEM file)")
	}
	j := &node.JoinConfig{}
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("--join: member address %q: %w", a, err)
		}
		j.Addrs = append(j.Addrs, a)
	}
	if _, err := loadCert("join-trust-anchor", anchorFile); err != nil {
		return nil, err
	}
	anchor, err := os.ReadFile(anchorFile)
	if err != nil {
		return nil, fmt.Errorf("--join-trust-anchor: %w", err)
	}
	j.TrustAnchorPEM = string(anchor)
	return j, nil
}

// loadBackupKey reads --backup-key: 32 raw bytes, or 64 hex characters
// (surrounding white space ignored). An empty path means no backup key.
func loadBackupKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--backup-key: %w", err)
	}
	if len(data) == cryptocore.KeySize {
		return data, nil
	}
	text := bytes.TrimSpace(data)
	if len(text) == 2*cryptocore.KeySize {
		key := make([]byte, cryptocore.KeySize)
		if _, err := hex.Decode(key, text); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("--backup-key %s: want %d raw bytes or %d hex characters, got %d bytes", path, cryptocore.KeySize, 2*cryptocore.KeySize, len(data))
}

// durationValue is a time.Duration flag whose errors say what is wrong
// (flag.Duration only says "parse error").
type durationValue struct{ d *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

// newLogger is hsmd's root logger.
func newLogger(level string, jsonFormat bool, out io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level: unknown level %q (want trace, debug, info, warn or error)", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "hsmd", Level: lvl, Output: out, JSONFormat: jsonFormat}), nil
}

// printUsage writes hsmd's help: a summary, then every flag with its
// default, in the double-dash spelling the docs use.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `hsmd: run one simulated CloudHSM HSM.

Usage:
  hsmd --id ID --az ZONE --cluster-id ID --data-dir DIR \
       --device-cert FILE --device-key FILE --hardware-ca FILE [flags]

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		def := "(default: " + f.DefValue + ")"
		switch {
		case slices.Contains(requiredFlags, f.Name):
			def = "(required)"
		case f.DefValue == "":
			def = "(default: none)"
		}
		fmt.Fprintf(w, "  --%s\n      %s %s\n", strings.TrimSpace(f.Name+" "+typ), usage, def)
	})
}
