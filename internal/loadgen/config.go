package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// ErrConfig is returned for a Config that cannot run.
var ErrConfig = errors.New("loadgen: invalid configuration")

// Defaults of Config.
const (
	DefaultConcurrency  = 16
	DefaultDuration     = 10 * time.Second
	DefaultPayloadBytes = 64
	DefaultRegion       = "us-east-1"
	DefaultSlice        = time.Second
	DefaultWarmup       = time.Second
	DefaultTimeout      = 30 * time.Second
	// MaxPayloadBytes is KMS's limit on an Encrypt plaintext.
	MaxPayloadBytes = 4096
	// MaxConcurrency bounds the number of workers.
	MaxConcurrency = 4096
)

// Target is one endpoint to load.
type Target struct {
	// Name labels the target in the report ("A", "B", "floor").
	Name string
	// Endpoint is the endpoint's URL (http://host:port). Empty with Floor.
	Endpoint string
	// Floor starts a Floor for this target instead of using Endpoint.
	Floor bool
	// Credentials sign the requests; the zero value means AnyCredentials.
	Credentials Credentials
	// KeyID is the KMS key to use; empty creates one before the run (in
	// CustomKeyStoreID when set). Unused by OpCreateKey.
	KeyID string
	// CustomKeyStoreID is where keys are created (the key of the run when
	// KeyID is empty, and every key of OpCreateKey); empty is the default
	// key store.
	CustomKeyStoreID string
	// PIDs are the endpoint's processes, whose CPU time the report divides
	// by the operations served.
	PIDs []int
	// PIDNames labels some of PIDs in the report ("kmsproxy").
	PIDNames map[int]string
	// Op, when set, is this target's workload instead of Config.Op: two
	// targets on one endpoint with different operations compare the
	// operations in one run.
	Op Op
}

// Config is one run of the load generator.
type Config struct {
	// Targets are loaded in turn, slice after slice, with the same
	// workload. Ratios in the report are relative to the first.
	Targets []Target
	// Op is the workload.
	Op Op
	// Concurrency is the number of workers, each with one request in
	// flight at a time.
	Concurrency int
	// Duration is how long each target is measured (in slices), unless
	// Requests is set.
	Duration time.Duration
	// Requests, when positive, is the number of requests each target is
	// measured on, instead of Duration.
	Requests int
	// PayloadBytes is the plaintext size of Encrypt (and so of the blob
	// Decrypt and ReEncrypt use).
	PayloadBytes int
	// Region is the region requests are signed for.
	Region string
	// Client is how requests are made: ClientSDK or ClientRaw.
	Client Client
	// Slice is how long one target is loaded before the next one's turn.
	Slice time.Duration
	// Warmup is how long each target is loaded, unmeasured, before the
	// first slice (connections, caches). Zero skips it.
	Warmup time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// Progress receives a line per second while the run goes; nil is
	// silent.
	Progress io.Writer
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = DefaultDuration
	}
	if c.PayloadBytes == 0 {
		c.PayloadBytes = DefaultPayloadBytes
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Client == "" {
		c.Client = ClientSDK
	}
	if c.Slice == 0 {
		c.Slice = DefaultSlice
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	for i := range c.Targets {
		if c.Targets[i].Credentials == (Credentials{}) {
			c.Targets[i].Credentials = AnyCredentials
		}
		if c.Targets[i].Op == "" {
			c.Targets[i].Op = c.Op
		}
	}
	return c
}

// Validate reports the first problem of a Config whose defaults are
// filled, wrapping ErrConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if _, err := ParseOp(string(c.Op)); err != nil {
		return err
	}
	switch {
	case len(c.Targets) == 0:
		return bad("no target")
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return bad("concurrency %d: want 1 to %d", c.Concurrency, MaxConcurrency)
	case c.Requests < 0:
		return bad("requests %d: want a positive number", c.Requests)
	case c.Duration < 0:
		return bad("duration %v: want a positive duration", c.Duration)
	case c.Requests > 0 && c.Duration > 0:
		return bad("give a duration or a number of requests, not both")
	case c.PayloadBytes < 1 || c.PayloadBytes > MaxPayloadBytes:
		return bad("payload of %d bytes: want 1 to %d", c.PayloadBytes, MaxPayloadBytes)
	case c.Client != ClientSDK && c.Client != ClientRaw:
		return bad("client %q: want %s or %s", c.Client, ClientSDK, ClientRaw)
	case c.Slice <= 0:
		return bad("slice %v: want a positive duration", c.Slice)
	case c.Warmup < 0:
		return bad("warmup %v: want zero or a positive duration", c.Warmup)
	case c.Timeout <= 0:
		return bad("timeout %v: want a positive duration", c.Timeout)
	}
	names := map[string]bool{}
	for i, t := range c.Targets {
		switch {
		case t.Name == "":
			return bad("target %d has no name", i+1)
		case names[t.Name]:
			return bad("two targets are named %q", t.Name)
		case t.Floor && t.Endpoint != "":
			return bad("target %s: a floor target has no endpoint", t.Name)
		case !t.Floor:
			u, err := url.Parse(t.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad("target %s: endpoint %q is not an http:// or https:// URL", t.Name, t.Endpoint)
			}
		}
		names[t.Name] = true
		if t.Op != "" {
			if _, err := ParseOp(string(t.Op)); err != nil {
				return fmt.Errorf("target %s: %w", t.Name, err)
			}
		}
		for _, pid := range t.PIDs {
			if pid <= 0 {
				return bad("target %s: pid %d", t.Name, pid)
			}
		}
	}
	return nil
}
