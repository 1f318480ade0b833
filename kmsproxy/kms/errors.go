package kms

import (
	"net/http"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// KMS exception names (botocore), with their HTTP status from the Smithy
// model (reference §1).
const (
	excAlreadyExists           = "AlreadyExistsException"
	excCHClusterInUse          = "CloudHsmClusterInUseException"
	excCHClusterInvalidConfig  = "CloudHsmClusterInvalidConfigurationException"
	excCHClusterNotActive      = "CloudHsmClusterNotActiveException"
	excCHClusterNotFound       = "CloudHsmClusterNotFoundException"
	excCHClusterNotRelated     = "CloudHsmClusterNotRelatedException"
	excCKSHasCMKs              = "CustomKeyStoreHasCMKsException"
	excCKSInvalidState         = "CustomKeyStoreInvalidStateException"
	excCKSNameInUse            = "CustomKeyStoreNameInUseException"
	excCKSNotFound             = "CustomKeyStoreNotFoundException"
	excDependencyTimeout       = "DependencyTimeoutException"
	excDisabled                = "DisabledException"
	excDryRun                  = "DryRunOperationException"
	excIncorrectKey            = "IncorrectKeyException"
	excIncorrectTrustAnchor    = "IncorrectTrustAnchorException"
	excInvalidAliasName        = "InvalidAliasNameException"
	excInvalidCiphertext       = "InvalidCiphertextException"
	excInvalidKeyUsage         = "InvalidKeyUsageException"
	excInvalidMarker           = "InvalidMarkerException"
	excInvalidState            = "KMSInvalidStateException"
	excInternal                = "KMSInternalException"
	excLimitExceeded           = "LimitExceededException"
	excMalformedPolicyDocument = "MalformedPolicyDocumentException"
	excNotFound                = "NotFoundException"
	excTag                     = "TagException"
	excUnsupportedOperation    = "UnsupportedOperationException"
	excValidation              = "ValidationException"
	excAccessDenied            = "AccessDeniedException"
	excInvalidSignature        = "KMSInvalidSignatureException"
	excInvalidMac              = "KMSInvalidMacException"
	excConflict                = "ConflictException"
	excExpiredImportToken      = "ExpiredImportTokenException"
	excInvalidImportToken      = "InvalidImportTokenException"
	excIncorrectKeyMaterial    = "IncorrectKeyMaterialException"
	excInvalidGrantID          = "InvalidGrantIdException"
	excInvalidGrantToken       = "InvalidGrantTokenException"
)

// statusOf is each exception's HTTP status: 404 NotFound; 409 Disabled,
// KMSInvalidState, AlreadyExists, Conflict; 412 DryRun; 500 the faults;
// 503 DependencyTimeout; 400 the rest.
func statusOf(typ string) int {
	switch typ {
	case excNotFound:
		return http.StatusNotFound
	case excDisabled, excInvalidState, excAlreadyExists, excConflict:
		return http.StatusConflict
	case excDryRun:
		return http.StatusPreconditionFailed
	case excInternal:
		return http.StatusInternalServerError
	case excDependencyTimeout:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// newErr returns the exception typ with a formatted message and its status.
func newErr(typ, format string, args ...any) *awsjson.Error {
	return awsjson.Errorf(typ, statusOf(typ), format, args...)
}

// Messages AWS uses.
const (
	// msgCannotCommunicate is AWS's KMSInvalidStateException message when a
	// CloudHSM key store's cluster cannot be reached.
	msgCannotCommunicate = "KMS cannot communicate with your CloudHSM cluster. This might be a transient network issue. If you see this error repeatedly, verify that the Network ACLs and the security group rules for the VPC of your AWS CloudHSM cluster are correct."
	msgInternal          = "An internal error occurred. Try again."
	msgDryRun            = "The request would have succeeded, but the DryRun option is set."
	msgInvalidCiphertext = "The ciphertext is invalid, was not produced by this KMS, or the encryption context does not match the one it was encrypted with."
	msgIncorrectKey      = "The key ID in the request does not identify a KMS key that can perform this operation."
	msgKeyNotExist       = "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access."
)

func internalErr() *awsjson.Error { return newErr(excInternal, msgInternal) }

// validation returns a ValidationException with a free-form message, for
// rules the model cannot express (exactly one of two members, ...).
func validation(format string, args ...any) *awsjson.Error {
	return newErr(excValidation, format, args...)
}
