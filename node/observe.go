package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node/audit"
	"github.com/hsmsim/hsmsim/node/metrics"
)

// AuditFile is the audit log's name in the data directory.
const AuditFile = "audit.log"

// openObservability opens the audit log and registers the metrics.
func (n *Node) openObservability() error {
	l, err := audit.Open(filepath.Join(n.cfg.DataDir, AuditFile), nil)
	if err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	}
	n.auditLog = l
	n.registry = prometheus.NewRegistry()
	n.metrics = metrics.New(n.registry)
	return nil
}

// serveMetrics serves /metrics on cfg.MetricsAddr (when set). The gauges are
// read from the node when the registry is gathered (a scrape, or a Gather of
// Registry), not on a timer: an idle HSM spends nothing on them.
func (n *Node) serveMetrics() error {
	n.metrics.RefreshOnGather(n.refreshGauges)
	if n.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("node: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(n.registry))
	n.metricsAddr = ln.Addr().String()
	n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "error", err)
		}
	}()
	return nil
}

// refreshGauges sets the gauges from Raft's and the replica's own counters. It
// reads only what the gauges show: none of Status's peer and configuration
// work, which goes through Raft's main loop.
func (n *Node) refreshGauges() {
	state, term, commit, applied := "None", uint64(0), uint64(0), n.fsm.AppliedIndex()
	if r, err := n.raftNode(); err == nil {
		state = r.State().String()
		term, commit = r.CurrentTerm(), r.CommitIndex()
		applied = n.replicaApplied(r)
	}
	n.metrics.SetRaft(state, term, commit, applied)
	n.metrics.SetSessions(n.sessions.count())
	counts := n.db.Counts()
	n.metrics.SetCounts(counts.Keys, counts.Users)
}

// MetricsAddr is the address serving /metrics, or "" when none.
func (n *Node) MetricsAddr() string { return n.metricsAddr }

// Registry is the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.registry }

// record writes an audit event whose outcome follows err: nil is "ok", a
// refusal of the caller's identity or rights is "denied", anything else is
// "failed". fields are name, value pairs and must carry no secret. A failure
// to write the audit log is logged; the request's outcome stands.
func (n *Node) record(name, actor string, err error, fields ...string) {
	ev := audit.Event{Name: name, Actor: actor, SessionHSM: n.cfg.NodeID, Outcome: outcomeOf(err)}
	if len(fields) > 0 {
		ev.Fields = make(map[string]string, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			ev.Fields[fields[i]] = fields[i+1]
		}
	}
	if err != nil {
		if ev.Fields == nil {
			ev.Fields = map[string]string{}
		}
		ev.Fields["error"] = status.Convert(toStatus(err)).Message()
	}
	if werr := n.auditLog.Record(ev); werr != nil {
		n.log.Error("audit log write failed", "event", name, "error", werr)
	}
}

func outcomeOf(err error) audit.Outcome {
	if err == nil {
		return audit.OutcomeOK
	}
	switch status.Code(toStatus(err)) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return audit.OutcomeDenied
	}
	return audit.OutcomeFailed
}

// closeObservability stops the metrics server and closes the audit log.
func (n *Node) closeObservability(ctx context.Context) error {
	var errs []error
	if n.metricsSrv != nil {
		errs = append(errs, n.metricsSrv.Shutdown(ctx))
	}
	if n.auditLog != nil {
		errs = append(errs, n.auditLog.Close())
	}
	return errors.Join(errs...)
}
