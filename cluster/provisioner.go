package cluster

import "context"

// HSMSpec describes an HSM for a Provisioner to start.
type HSMSpec struct {
	HsmID     string
	ClusterID string
	AZ        string
	// Join, when set, makes the HSM join an existing cluster.
	Join *JoinSpec
	// RestoreFrom, when set, is a backup file the HSM restores its cluster from.
	RestoreFrom string
}

// JoinSpec tells a new HSM where its cluster's members are.
type JoinSpec struct {
	Addrs          []string
	TrustAnchorPEM string
	CertificateID  string
}

// Provisioner starts and stops HSM processes: locally (cluster/local) or by
// claiming containers. Every method is safe for concurrent use.
type Provisioner interface {
	// Start starts an HSM and returns once its API accepts connections.
	Start(ctx context.Context, spec HSMSpec) (Runtime, error)
	// Restart starts a stopped HSM again with the same identity, data and addresses.
	Restart(ctx context.Context, rt Runtime) (Runtime, error)
	// Stop stops an HSM gracefully, then forcibly.
	Stop(ctx context.Context, rt Runtime) error
	// Kill stops an HSM at once (SIGKILL), as a crash would.
	Kill(rt Runtime) error
	// Pause freezes an HSM (SIGSTOP); Resume thaws it (SIGCONT).
	Pause(rt Runtime) error
	// Resume thaws a paused HSM.
	Resume(rt Runtime) error
	// Running reports whether the HSM's process is alive.
	Running(rt Runtime) bool
}
