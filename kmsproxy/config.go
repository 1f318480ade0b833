package kmsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

// DefaultAddr is the endpoint's default listen address: loopback only,
// since the admin endpoints trust loopback callers.
const DefaultAddr = "127.0.0.1:4599"

// DefaultAccount is the account of the simulated region.
const DefaultAccount = sigv4.DefaultAccount

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("kmsproxy: invalid configuration")

// Service is one AWS service served on the endpoint: KMS (TrentService) or
// CloudHSM v2 (BaldrApiService). The Server routes a request to the service
// whose Mux's target prefix starts its X-Amz-Target, after verifying the
// request's signature for the Mux's signing name.
type Service interface {
	// Mux is the service's operations; every call returns the same Mux.
	Mux() *awsjson.Mux
	// Reset drops all of the service's state (POST /moto-api/reset).
	Reset(ctx context.Context) error
}

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on when Listener is nil; empty
	// means DefaultAddr.
	Addr string
	// Listener, when set, is used instead of listening on Addr. The Server
	// closes it.
	Listener net.Listener
	// Account is the 12-digit account of callers whose credential names
	// none, and of every caller with AnyCredentials; empty means
	// DefaultAccount.
	Account string
	// Credentials are the access keys accepted.
	Credentials []sigv4.Credential
	// AnyCredentials accepts any well-formed SigV4 Authorization header
	// without checking it (--auth=any).
	AnyCredentials bool
	// Logger is the root logger; nil discards logs.
	Logger hclog.Logger
	// Services are the services served; their target prefixes must differ.
	Services []Service
	// Clock is the simulated clock the admin endpoints move; nil means a
	// new in-memory clock. The services should share it.
	Clock *clock.Clock
}

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

// withDefaults returns c with its empty fields set to their defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Clock == nil {
		clk, err := clock.New("")
		if err != nil {
			return Config{}, fmt.Errorf("kmsproxy: clock: %w", err)
		}
		c.Clock = clk
	}
	return c, nil
}

// Validate reports the first problem with c (after defaults), wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Account != "" && !accountRE.MatchString(c.Account) {
		return fmt.Errorf("%w: account %q is not 12 digits", ErrInvalidConfig, c.Account)
	}
	if len(c.Credentials) == 0 && !c.AnyCredentials {
		return fmt.Errorf("%w: no credentials: give at least one access key, or accept any", ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for i, cred := range c.Credentials {
		switch {
		case cred.AccessKeyID == "":
			return fmt.Errorf("%w: credential %d has no access key id", ErrInvalidConfig, i)
		case cred.SecretAccessKey == "":
			return fmt.Errorf("%w: credential %s has no secret access key", ErrInvalidConfig, cred.AccessKeyID)
		case cred.Account != "" && !accountRE.MatchString(cred.Account):
			return fmt.Errorf("%w: credential %s: account %q is not 12 digits", ErrInvalidConfig, cred.AccessKeyID, cred.Account)
		case seen[cred.AccessKeyID]:
			return fmt.Errorf("%w: access key id %s is given twice", ErrInvalidConfig, cred.AccessKeyID)
		}
		seen[cred.AccessKeyID] = true
	}
	prefixes := map[string]bool{}
	for i, svc := range c.Services {
		if svc == nil || svc.Mux() == nil {
			return fmt.Errorf("%w: service %d has no Mux", ErrInvalidConfig, i)
		}
		p := svc.Mux().Service().TargetPrefix
		switch {
		case p == "" || svc.Mux().Service().SigningName == "":
			return fmt.Errorf("%w: service %d has no target prefix or signing name", ErrInvalidConfig, i)
		case prefixes[p]:
			return fmt.Errorf("%w: two services have the target prefix %s", ErrInvalidConfig, p)
		}
		prefixes[p] = true
	}
	return nil
}
