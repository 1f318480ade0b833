package client

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Defaults for the zero values of Config.
const (
	// DefaultRetryInterval is the pause between two full rounds of retries.
	DefaultRetryInterval = 50 * time.Millisecond
	// DefaultHealthInterval is how often unhealthy HSMs are probed.
	DefaultHealthInterval = 250 * time.Millisecond
	// DefaultAttemptTimeout bounds one attempt of a call on one HSM. A
	// write waits for Raft (an election takes about a second with
	// hashicorp/raft's defaults), a read may wait for its replica to catch
	// up: 3 s leaves room for both and still fails over from a paused HSM
	// well within a typical caller's deadline.
	DefaultAttemptTimeout = 3 * time.Second
	// DefaultHedgeDelay is how long a read or crypto call waits for its
	// HSM's answer before the Client sends it to a second HSM too: far
	// above a crypto call's round trip (under a millisecond here), and a
	// thirtieth of the AttemptTimeout that a paused HSM would otherwise
	// cost.
	DefaultHedgeDelay = 100 * time.Millisecond
	// attemptsPerEndpoint gives the default MaxAttempts: three rounds.
	attemptsPerEndpoint = 3
)

// Endpoint is one HSM of the cluster, as the control plane lists it
// (CloudHSM's DescribeClusters: HsmId, AvailabilityZone, EniIp).
type Endpoint struct {
	// ID is the HSM's id; it names the HSM in Health and in logs.
	ID string
	// AZ is the HSM's availability zone, informational.
	AZ string
	// Addr is the HSM's gRPC API address, host:port.
	Addr string
}

// Config configures a Client. Zero durations and counts take the defaults
// documented on each field.
type Config struct {
	// Endpoints are the HSMs of the cluster; at least one.
	Endpoints []Endpoint
	// TrustAnchor is the customer CA certificate that signed the cluster
	// certificate (CloudHSM's customerCA.crt).
	TrustAnchor *x509.Certificate
	// CertificateID is the common name the cluster certificate must carry:
	// the id of the first cluster of the lineage (a cluster restored from a
	// backup keeps its source's certificate).
	CertificateID string
	// Username, Password and Role are the HSM user the Client logs in as on
	// every HSM.
	Username, Password string
	Role               hsmv1.Role
	// RetryInterval is the pause between two full rounds of retries over
	// the HSMs (default DefaultRetryInterval).
	RetryInterval time.Duration
	// MaxAttempts bounds the attempts of one call, over all HSMs (default
	// three per endpoint).
	MaxAttempts int
	// HealthInterval is how often the Client probes unhealthy HSMs by
	// logging in again (default DefaultHealthInterval).
	HealthInterval time.Duration
	// AttemptTimeout bounds each attempt of a call, and each login of New:
	// an attempt runs until the earlier of the caller's deadline and
	// AttemptTimeout. An attempt that times out while the caller's context
	// lives makes the HSM unhealthy and the call is retried on another
	// (default DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// BatchesInFlight is how many batches of crypto calls (Encrypt,
	// Decrypt, Sign, Verify, GenerateMac, VerifyMac, GenerateRandom) the
	// Client keeps in flight to one HSM (default DefaultBatchesInFlight).
	// A call that comes while they are all out waits for the next batch,
	// which leaves as soon as one comes back: calls share round trips only
	// when they would otherwise queue.
	BatchesInFlight int
	// Unbatched sends every call alone, as its own RPC.
	Unbatched bool
	// HedgeDelay is how long a read or crypto call (see the package
	// documentation) waits for an answer before the Client sends it to a
	// second HSM as well, the first success winning (default
	// DefaultHedgeDelay). Hedges are rationed: a burst of ten, then one
	// per ten calls that succeed.
	HedgeDelay time.Duration
	// Unhedged turns hedging off: a call waits for each attempt's answer,
	// up to AttemptTimeout, before it tries another HSM.
	Unhedged bool
	// Logger receives the Client's logs (default: none).
	Logger hclog.Logger
}

// Validate reports the first problem of c, or nil. Zero values that have a
// default are valid.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("client: at least one endpoint is required")
	}
	ids := make(map[string]bool, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		switch {
		case ep.ID == "":
			return fmt.Errorf("client: endpoint %d: ID is required", i)
		case ep.Addr == "":
			return fmt.Errorf("client: endpoint %q: Addr is required", ep.ID)
		case ids[ep.ID]:
			return fmt.Errorf("client: endpoint %q is listed twice", ep.ID)
		}
		ids[ep.ID] = true
	}
	switch {
	case c.TrustAnchor == nil:
		return errors.New("client: TrustAnchor is required")
	case !c.TrustAnchor.IsCA:
		return errors.New("client: TrustAnchor is not a CA certificate")
	case c.CertificateID == "":
		return errors.New("client: CertificateID (the cluster certificate's common name) is required")
	case c.Username == "":
		return errors.New("client: Username is required")
	case c.Password == "":
		return errors.New("client: Password is required")
	case c.Role == hsmv1.Role_ROLE_UNSPECIFIED || hsmv1.Role_name[int32(c.Role)] == "":
		return fmt.Errorf("client: Role %d is not a valid role", c.Role)
	case c.RetryInterval < 0:
		return errors.New("client: RetryInterval must not be negative")
	case c.MaxAttempts < 0:
		return errors.New("client: MaxAttempts must not be negative")
	case c.HealthInterval < 0:
		return errors.New("client: HealthInterval must not be negative")
	case c.AttemptTimeout < 0:
		return errors.New("client: AttemptTimeout must not be negative")
	case c.BatchesInFlight < 0:
		return errors.New("client: BatchesInFlight must not be negative")
	case c.HedgeDelay < 0:
		return errors.New("client: HedgeDelay must not be negative")
	}
	return nil
}

// withDefaults returns c with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = len(c.Endpoints) * attemptsPerEndpoint
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.BatchesInFlight == 0 {
		c.BatchesInFlight = DefaultBatchesInFlight
	}
	if c.HedgeDelay == 0 {
		c.HedgeDelay = DefaultHedgeDelay
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.Endpoints = append([]Endpoint(nil), c.Endpoints...)
	return c
}
