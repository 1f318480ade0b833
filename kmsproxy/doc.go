// Package kmsproxy is the regional endpoint: one HTTP port that speaks AWS's
// JSON 1.1 protocol for KMS (X-Amz-Target TrentService.<Op>, SigV4 service
// "kms") and CloudHSM v2 (BaldrApiService.<Op>, SigV4 service "cloudhsm"),
// so that the AWS CLI and SDKs work against it with only an endpoint URL
// set. See DESIGN.md.
//
// A Server routes; it implements no operation itself. Each Service (the KMS
// and CloudHSM v2 APIs live in kmsproxy/kms and kmsproxy/cloudhsm) supplies
// an awsjson.Mux. For POST / the Server picks the service by the target's
// prefix, reads the body, verifies the signature for the service's signing
// name (kmsproxy/sigv4) and passes the operation, body, region of the
// credential scope, caller and request id to the Mux. Anything else — no
// or an unknown target, another method or path — gets a JSON
// UnknownOperationException (HTTP 400), never an HTML page. A panic in an
// operation becomes the service's internal error (KMSInternalException,
// CloudHsmInternalFailureException; HTTP 500).
//
// # Admin endpoints
//
// These need no signature and answer only callers on a loopback address
// (others get a 403 AccessDeniedException):
//
//	POST /moto-api/reset          → Reset on every service; {"reset": true}
//	POST /hsmsim/clock/advance    {"duration": "30d"} (Go durations or days)
//	                              → {"now": <epoch seconds>}
//	GET  /hsmsim/clock            → {"now": <epoch seconds>, "offset_seconds": <seconds>}
//
// Times are epoch seconds with a millisecond fraction, as AWS JSON encodes
// timestamps. Signature expiry is checked against real time, not the
// simulated clock: clients sign with real time.
//
// # Logging
//
// One Debug line per request (op, status, duration, request_id); bodies,
// signatures and secrets are never logged.
package kmsproxy
