// Command hsmd runs one simulated CloudHSM HSM: a gRPC server in one
// simulated availability zone that joins its cluster's Raft group (see
// node/DESIGN.md).
//
// Usage:
//
//	hsmd --id hsm-abc --az us-east-1a --cluster-id cluster-xyz --data-dir DIR \
//	     --device-cert device.pem --device-key device-key.pem --hardware-ca hardware-ca.pem \
//	     [--join host:2223,host:2223 --join-trust-anchor customerCA.crt] [flags]
//
// A new HSM with no --join waits to be initialized through the control
// plane (GetClusterCsr, InitializeCluster); with --join it fetches the
// cluster secrets from a member once the control plane has admitted it. An
// HSM that already holds cluster secrets in its data directory resumes its
// membership and ignores --join. A cluster restored from a backup keeps the
// source's cluster certificate: HSMs joining it name the source's cluster id
// with --join-certificate-id.
//
// --backup-key gives the HSM the deployment's backup key (32 raw bytes or 64
// hex characters), which backups (ClusterService.CreateBackup) are sealed
// under. With --restore-from FILE a new HSM restores that backup instead of
// waiting to be initialized: it becomes the only member of a cluster with
// the source's users, keys and cluster certificate, under --cluster-id.
//
// Every flag may also be given in a JSON file named by --config, an object
// whose keys are the flag names without dashes ({"id": "hsm-abc",
// "heartbeat-timeout": "1s", "join": ["a:2223", "b:2223"]}); flags on the
// command line override the file. Durations are Go durations ("500ms").
// "hsmd --help" lists every flag with its default.
//
// In a container deployment (deploy/compose.yaml) every HSM container runs
// hsmd --wait-config FILE: unassigned until the control plane writes FILE
// (a --config file), it runs the HSM FILE describes, stops it when FILE is
// removed and waits again. hsmd --healthcheck, with the same flags, is the
// container's health check: it exits 0 when the API port accepts
// connections or the container is still unassigned.
//
// hsmd logs through hclog to standard error (--log-level, --log-json),
// stops cleanly on SIGTERM or SIGINT (a second signal cuts the graceful
// shutdown short) and exits 0 after a clean stop, 1 when the HSM fails to
// start or stop, and 2 on a bad command line or configuration.
package main
