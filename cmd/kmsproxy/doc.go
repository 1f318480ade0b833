// Command kmsproxy runs the simulated regional endpoint: AWS KMS and
// CloudHSM v2 over AWS's JSON 1.1 protocol on one HTTP port, with SigV4
// authentication (see kmsproxy/DESIGN.md).
//
// Usage:
//
//	kmsproxy --credentials-file ~/.aws/credentials [--addr 127.0.0.1:4599] \
//	         [--data-dir DIR] [--deployment-dir DIR] [flags]
//	kmsproxy --auth any [flags]
//
// With --auth sigv4 (the default) every request must be signed with an
// access key from --credentials-file, an AWS shared credentials file in
// which every profile with aws_access_key_id and aws_secret_access_key is
// an IAM user named like the profile (in the account aws_account_id, or
// --account). With --auth any, any well-formed signature is accepted.
//
// The AWS CLI works with only the endpoint set:
//
//	aws --endpoint-url http://127.0.0.1:4599 kms list-keys
//
// kmsproxy logs through hclog to standard error (--log-level debug adds one
// line per request), stops cleanly on SIGTERM or SIGINT (a second signal
// cuts the graceful shutdown short) and exits 0 after a clean stop, 1 when
// the endpoint fails to start or stop, and 2 on a bad command line or
// configuration. "kmsproxy --help" lists every flag with its default.
package main
