package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node/metrics"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return metrics.New(reg), reg
}

// scrape fetches the registry's exposition through Handler.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

const (
	encrypt = "/hsm.v1.HSM/Encrypt"
	login   = "/hsm.v1.HSM/Login"
)

func TestUnaryServerInterceptor(t *testing.T) {
	m, reg := newMetrics(t)
	icpt := m.UnaryServerInterceptor()

	calls := []struct {
		method string
		err    error
	}{
		{encrypt, nil},
		{encrypt, nil},
		{encrypt, status.Error(codes.InvalidArgument, "bad size")},
		{login, status.Error(codes.Unauthenticated, "wrong password")},
		{login, errors.New("not a status")},
	}
	for _, c := range calls {
		resp, err := icpt(context.Background(), "req", &grpc.UnaryServerInfo{FullMethod: c.method},
			func(context.Context, any) (any, error) { return "resp", c.err })
		require.Equal(t, c.err, err, "the handler's error passes through")
		require.Equal(t, "resp", resp)
	}

	body := scrape(t, reg)
	for _, line := range []string{
		`hsm_requests_total{code="OK",method="/hsm.v1.HSM/Encrypt"} 2`,
		`hsm_requests_total{code="InvalidArgument",method="/hsm.v1.HSM/Encrypt"} 1`,
		`hsm_requests_total{code="Unauthenticated",method="/hsm.v1.HSM/Login"} 1`,
		`hsm_requests_total{code="Unknown",method="/hsm.v1.HSM/Login"} 1`,
		`hsm_request_duration_seconds_count{method="/hsm.v1.HSM/Encrypt"} 3`,
		`hsm_request_duration_seconds_count{method="/hsm.v1.HSM/Login"} 2`,
		`hsm_request_duration_seconds_bucket{method="/hsm.v1.HSM/Encrypt",le="5e-05"}`,
		`hsm_request_duration_seconds_bucket{method="/hsm.v1.HSM/Encrypt",le="5"} 3`,
	} {
		require.Contains(t, body, line)
	}
	require.NotContains(t, body, `code="OK",method="/hsm.v1.HSM/Login"`)
}

func TestGauges(t *testing.T) {
	tests := []struct {
		name                  string
		state                 string
		term, commit, applied uint64
		sessions, keys, users int
	}{
		{"leader", "Leader", 3, 42, 41, 2, 10, 4},
		{"follower", "Follower", 4, 50, 50, 0, 11, 4},
		{"unknown state", "Bogus", 5, 60, 59, 7, 0, 1},
	}
	m, reg := newMetrics(t)
	require.Contains(t, scrape(t, reg), `hsm_raft_state{state="Leader"} 0`, "state series exist from the start")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.SetRaft(tt.state, tt.term, tt.commit, tt.applied)
			m.SetSessions(tt.sessions)
			m.SetCounts(tt.keys, tt.users)

			body := scrape(t, reg)
			for _, s := range metrics.RaftStates {
				want := "0"
				if s == tt.state {
					want = "1"
				}
				require.Contains(t, body, `hsm_raft_state{state="`+s+`"} `+want+"\n")
			}
			require.NotContains(t, body, `state="Bogus"`, "only the known states")

			require.Equal(t, float64(tt.term), gauge(t, reg, "hsm_raft_term"))
			require.Equal(t, float64(tt.commit), gauge(t, reg, "hsm_raft_commit_index"))
			require.Equal(t, float64(tt.applied), gauge(t, reg, "hsm_raft_applied_index"))
			require.Equal(t, float64(tt.sessions), gauge(t, reg, "hsm_sessions"))
			require.Equal(t, float64(tt.keys), gauge(t, reg, "hsm_keys"))
			require.Equal(t, float64(tt.users), gauge(t, reg, "hsm_users"))
		})
	}
}

// gauge returns the value of the unlabelled gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1)
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.Failf(t, "no such metric", "%s", name)
	return 0
}

func TestSeparateRegistries(t *testing.T) {
	a, regA := newMetrics(t)
	_, regB := newMetrics(t)
	a.SetSessions(3)
	require.Equal(t, 3.0, gauge(t, regA, "hsm_sessions"))
	require.Equal(t, 0.0, gauge(t, regB, "hsm_sessions"), "no shared state between nodes")
	require.Panics(t, func() { metrics.New(regA) }, "registering twice is a wiring bug")
	mfs, err := regA.Gather()
	require.NoError(t, err)
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	require.Equal(t, map[string]int{
		"hsm_raft_state": 4, "hsm_sessions": 1, "hsm_raft_term": 1, "hsm_raft_commit_index": 1,
		"hsm_raft_applied_index": 1, "hsm_keys": 1, "hsm_users": 1,
	}, series, "only the node's metrics; request series appear with the first call")
}

func TestRefreshOnGather(t *testing.T) {
	m, reg := newMetrics(t)
	calls := 0
	m.RefreshOnGather(func() {
		calls++
		m.SetSessions(calls)
	})
	require.Equal(t, 1.0, gauge(t, reg, "hsm_sessions"), "Gather refreshes the gauges first")
	require.Contains(t, scrape(t, reg), "hsm_sessions 2\n", "so does a scrape")
	m.RefreshOnGather(nil)
	require.Equal(t, 2.0, gauge(t, reg, "hsm_sessions"), "no hook, no refresh")
	require.Equal(t, 2, calls)
}
