// Package loadgen is the load generator behind `hsmctl bench`: it loads any
// KMS-compatible endpoint (hsmsim's, moto_server, local-kms, AWS) with
// SigV4-signed requests over keep-alive connections and reports
// throughput, latency percentiles, errors by code and, when the endpoint's
// processes are known, their CPU time per operation.
//
// # Comparing endpoints
//
// On a small machine the client's own CPU weighs as much as the server's,
// so an absolute figure says little. A run therefore loads several targets
// with the same workload, client and concurrency, in turn, in short slices
// (A, B, A, B, ...), so that background noise falls on every target
// alike, and reports each one's throughput relative to the first. A Floor
// target is a no-op endpoint in this process that answers every request
// with a canned, valid response: the most any endpoint can reach on the
// machine with this client.
//
// # Measurement
//
// Each worker keeps one request in flight and records the latency of each
// successful one in its own Histogram (log-linear buckets, at most 0.8%
// relative error, after HdrHistogram), merged at the end. Throughput is
// successful requests divided by the time the target was loaded. Server
// CPU is the growth of utime+stime in /proc/PID/stat of the endpoint's
// processes over the target's slices, divided by its requests; its
// resolution is 10 ms per process and slice.
//
// # Clients
//
// ClientSDK calls through aws-sdk-go-v2's KMS client (retries off), as an
// application would; ClientRaw signs prebuilt bodies with the SDK's SigV4
// signer and sends them with net/http, which costs the client far less CPU.
// Both reuse connections: the transport keeps one idle connection per
// worker.
package loadgen
