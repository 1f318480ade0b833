package transport

import "errors"

var (
	// ErrBlocked is returned when traffic to or from a peer is refused because the peer is
	// blocked in a fault table: by Dial for a peer blocked locally or by the remote side, by
	// writes on a connection closed by Block, and by the gRPC interceptors.
	ErrBlocked = errors.New("transport: peer blocked by fault injection")

	// ErrLost is returned when a write or call is dropped by simulated loss (see Faults.Loss).
	ErrLost = errors.New("transport: message lost by fault injection")

	// ErrNoPeerCertificate is returned when the peer presented no certificate.
	ErrNoPeerCertificate = errors.New("transport: peer presented no certificate")

	// ErrUntrustedCertificate is returned when the peer's certificate chain does not verify
	// to the cluster's trust anchor (wrong CA, expired, malformed).
	ErrUntrustedCertificate = errors.New("transport: peer certificate not trusted by the cluster trust anchor")

	// ErrWrongCluster is returned when the peer's certificate verifies but its subject common
	// name is not the expected cluster id.
	ErrWrongCluster = errors.New("transport: peer certificate is for another cluster")

	// ErrBadPreamble is returned when a connection's preamble (see doc.go) is malformed.
	ErrBadPreamble = errors.New("transport: bad connection preamble")
)
