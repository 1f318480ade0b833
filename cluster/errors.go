package cluster

import "errors"

// Errors of the control plane, wrapped with %w and details. The KMS
// endpoint maps them to CloudHSM's exceptions.
var (
	// ErrNotFound is returned for an unknown cluster, HSM or backup
	// (CloudHsmResourceNotFoundException).
	ErrNotFound = errors.New("resource not found")
	// ErrInvalidRequest is returned when a request does not fit the
	// resource's state or the rules (CloudHsmInvalidRequestException).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrHSM is returned when an HSM refused or failed an operation
	// (CloudHsmInternalFailureException, or a more precise one).
	ErrHSM = errors.New("HSM error")
)
