// Package transport carries node-to-node traffic: the Raft stream layer over mutual TLS, the
// TLS configurations shared with the node's internal gRPC API, and the fault injector that
// blocks, delays or drops traffic with given peers inside the node itself, so simulated
// partitions need no root.
//
// # Identity
//
// Every member holds the cluster certificate and key (see node/DESIGN.md, "Identity and
// TLS"). NewTLSConfigs builds a server and a client tls.Config that both present it and both
// require the peer to present a chain that verifies to the cluster's trust anchor, for any
// extended key usage, with the cluster id as subject common name (VerifyClusterChain). The
// certificate may lack SANs and CA flags, so Go's built-in verification is replaced by
// tls.Config.VerifyConnection. TLS 1.3 is the minimum.
//
// # Stream layer and preamble
//
// StreamLayer implements raft.StreamLayer for raft.NewNetworkTransportWithConfig. All members
// present the same certificate, so the certificate cannot tell the acceptor which peer
// dialled, and the source port is ephemeral. Right after the TLS handshake the dialer therefore
// sends a preamble naming its own advertised Raft address, and the acceptor answers with one
// byte before the connection is handed to Raft:
//
//	dialer → acceptor:  "HSMR" | version (1 byte, 1) | length (uint16, big endian, 1..1024) | address
//	acceptor → dialer:  0x00 accepted | 0x01 refused: the dialer is blocked in the acceptor's faults
//
// The answer also makes Dial fail when the acceptor rejects the dialer's certificate: in TLS
// 1.3 the client's handshake completes before the server has checked the client certificate.
// Handshake and preamble run in one goroutine per inbound connection, bounded by a timeout;
// Accept returns only connections that passed both and never returns their errors (raft's
// NetworkTransport backs off after each Accept error). Close closes the listener and every
// connection the layer made, as the process exiting would.
//
// # Faults
//
// Faults is the node's fault table, keyed by peer Raft address. Block refuses dials to a peer,
// refuses its inbound connections (by the preamble's address), closes live connections with
// it, and makes the gRPC interceptors refuse calls with it. Delay holds each write to the peer
// for the given time (egress latency, like netem: set it on both ends for symmetric latency).
// Loss fails a write (resetting the connection) or a call with a probability. Heal clears
// everything. For gRPC, node-to-node calls carry the caller's Raft address in the metadata key
// MetadataFrom; the interceptors apply the table to calls whose peer they can name and leave
// client and control-plane calls alone.
package transport
