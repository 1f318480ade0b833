// Package metrics holds the Prometheus metrics of one HSM node.
//
// Each node registers its metrics on its own *prometheus.Registry, so that several nodes in one
// process (the test harness) do not collide; the package has no global state and never touches
// prometheus.DefaultRegisterer. The node serves the registry with Handler on its metrics
// listener.
//
// # Metrics
//
//	hsm_requests_total{method,code}          counter    gRPC requests served, by full method name
//	                                                    ("/hsm.v1.HSM/Encrypt") and status code name
//	                                                    ("OK", "InvalidArgument")
//	hsm_request_duration_seconds{method}     histogram  gRPC handler latency, 50µs to 5s
//	hsm_sessions                             gauge      open sessions on this node
//	hsm_raft_term                            gauge      current Raft term
//	hsm_raft_commit_index                    gauge      Raft commit index
//	hsm_raft_applied_index                   gauge      last index applied to the key database
//	hsm_raft_state{state}                    gauge      1 for the node's Raft state, 0 for the others
//	                                                    (Leader, Follower, Candidate, Shutdown)
//	hsm_keys                                 gauge      keys in the local replica
//	hsm_users                                gauge      users in the local replica
//
// Labels never carry request content (no usernames, handles or labels), so the series count
// stays bounded by the API's method set and the status codes.
package metrics
