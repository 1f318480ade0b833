package metrics

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RaftStates are the values of hsm_raft_state's state label, as hashicorp/raft's
// RaftState.String names them.
var RaftStates = []string{"Leader", "Follower", "Candidate", "Shutdown"}

// DurationBuckets are the upper bounds, in seconds, of hsm_request_duration_seconds: from
// 50µs (a cached read) to 5s (the longest a request waits for its replica to catch up).
var DurationBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5,
}

// Metrics is one node's set of metrics. Its methods are safe for concurrent use.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	sessions    prometheus.Gauge
	raftTerm    prometheus.Gauge
	raftCommit  prometheus.Gauge
	raftApplied prometheus.Gauge
	raftState   *prometheus.GaugeVec
	keys        prometheus.Gauge
	users       prometheus.Gauge

	// methods caches, per full method name, the request series the interceptor updates, so
	// that a call does not hash its label values and look its series up under the vectors'
	// locks (WithLabelValues) twice. Keys are strings, values *methodSeries.
	methods sync.Map
	// raftStates holds hsm_raft_state's series, in RaftStates order.
	raftStates []prometheus.Gauge
	// gauges collects the gauges, after running the refresh hook.
	gauges *gaugeSet
}

// gaugeSet is a Collector of the node's gauges that first runs a refresh hook, so that the
// gauges are read from the node when they are gathered, and cost nothing in between.
type gaugeSet struct {
	refresh    atomic.Pointer[func()]
	collectors []prometheus.Collector
}

// Describe implements prometheus.Collector.
func (g *gaugeSet) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range g.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector: it runs the refresh hook, then collects the
// gauges.
func (g *gaugeSet) Collect(ch chan<- prometheus.Metric) {
	if f := g.refresh.Load(); f != nil {
		(*f)()
	}
	for _, c := range g.collectors {
		c.Collect(ch)
	}
}

// numCodes is the number of gRPC status codes (OK to Unauthenticated) whose counters
// methodSeries caches; a call ending with another code takes the uncached path.
const numCodes = int(codes.Unauthenticated) + 1

// methodSeries is one method's hsm_request_duration_seconds series and its
// hsm_requests_total series by status code. A counter is created at the first call ending
// with its code, as WithLabelValues would, so that no series appears before it counts.
type methodSeries struct {
	duration prometheus.Observer
	requests [numCodes]atomic.Pointer[prometheus.Counter]
}

// New creates the node's metrics and registers them on reg, normally a registry of the node's
// own (prometheus.NewRegistry). It panics if reg already holds metrics of the same names, as
// prometheus.MustRegister does: that is a wiring bug. Every hsm_raft_state series starts at 0.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hsm_requests_total",
			Help: "gRPC requests served, by full method name and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hsm_request_duration_seconds",
			Help:    "Time spent in gRPC handlers, by full method name.",
			Buckets: DurationBuckets,
		}, []string{"method"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_sessions",
			Help: "Open sessions on this node.",
		}),
		raftTerm: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_raft_term",
			Help: "Current Raft term.",
		}),
		raftCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_raft_commit_index",
			Help: "Raft commit index.",
		}),
		raftApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_raft_applied_index",
			Help: "Last Raft index applied to the local key database.",
		}),
		raftState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hsm_raft_state",
			Help: "1 for the node's current Raft state, 0 for the others.",
		}, []string{"state"}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_keys",
			Help: "Keys in the local replica of the key database.",
		}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hsm_users",
			Help: "Users in the local replica of the key database.",
		}),
	}
	m.gauges = &gaugeSet{collectors: []prometheus.Collector{m.sessions, m.raftTerm, m.raftCommit,
		m.raftApplied, m.raftState, m.keys, m.users}}
	reg.MustRegister(m.requests, m.duration, m.gauges)
	for _, s := range RaftStates {
		g := m.raftState.WithLabelValues(s)
		g.Set(0)
		m.raftStates = append(m.raftStates, g)
	}
	return m
}

// UnaryServerInterceptor returns a gRPC interceptor that counts every unary call in
// hsm_requests_total under its full method name and the name of its status code
// (status.Code(err).String(): "OK", "InvalidArgument", "Unknown" for a non-status error), and
// observes the handler's duration in hsm_request_duration_seconds. Install it outermost so that
// the duration includes the other interceptors.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.Observe(info.FullMethod, err, time.Since(start))
		return resp, err
	}
}

// Observe counts one call of method that ended with err in hsm_requests_total and
// observes its duration in hsm_request_duration_seconds, as the interceptor does for
// each RPC: the calls of a Batch are counted under their own methods this way.
func (m *Metrics) Observe(method string, err error, elapsed time.Duration) {
	ms := m.series(method)
	ms.duration.Observe(elapsed.Seconds())
	m.count(ms, method, status.Code(err))
}

// series returns method's cached series, creating them at its first call.
func (m *Metrics) series(method string) *methodSeries {
	if v, ok := m.methods.Load(method); ok {
		return v.(*methodSeries)
	}
	ms := &methodSeries{duration: m.duration.WithLabelValues(method)}
	v, _ := m.methods.LoadOrStore(method, ms)
	return v.(*methodSeries)
}

// count adds one to hsm_requests_total{method, code}.
func (m *Metrics) count(ms *methodSeries, method string, code codes.Code) {
	if int(code) >= numCodes {
		m.requests.WithLabelValues(method, code.String()).Inc()
		return
	}
	slot := &ms.requests[code]
	c := slot.Load()
	if c == nil {
		// Racing first calls get the same series from the vector; either may store it.
		nc := m.requests.WithLabelValues(method, code.String())
		slot.CompareAndSwap(nil, &nc)
		c = slot.Load()
	}
	(*c).Inc()
}

// SetRaft sets the Raft gauges: hsm_raft_state to 1 for state (a hashicorp/raft
// RaftState.String() value) and 0 for the other RaftStates, and the term, commit index and
// applied index. An unknown state sets every hsm_raft_state series to 0.
func (m *Metrics) SetRaft(state string, term, commit, applied uint64) {
	for i, s := range RaftStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.raftStates[i].Set(v)
	}
	m.raftTerm.Set(float64(term))
	m.raftCommit.Set(float64(commit))
	m.raftApplied.Set(float64(applied))
}

// RefreshOnGather makes every gathering of the registry (a scrape of Handler, a
// Registry.Gather) call refresh first, before it reads the gauges; refresh sets them with
// SetRaft, SetSessions and SetCounts. It replaces the hook set before; nil removes it. refresh
// may run concurrently with itself when gatherings overlap.
func (m *Metrics) RefreshOnGather(refresh func()) {
	if refresh == nil {
		m.gauges.refresh.Store(nil)
		return
	}
	m.gauges.refresh.Store(&refresh)
}

// SetSessions sets hsm_sessions to n, the number of open sessions on this node.
func (m *Metrics) SetSessions(n int) {
	m.sessions.Set(float64(n))
}

// SetCounts sets hsm_keys and hsm_users from the local replica.
func (m *Metrics) SetCounts(keys, users int) {
	m.keys.Set(float64(keys))
	m.users.Set(float64(users))
}

// Handler returns the HTTP handler that serves reg's metrics in the Prometheus exposition
// format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
