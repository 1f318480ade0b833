package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/audit"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// auditEvents returns the (event, outcome, actor) of every line of node i's audit log.
func auditEvents(t *testing.T, c *nodetest.Cluster, i int) [][3]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.DataDir(i), node.AuditFile))
	require.NoError(t, err)
	lines, err := audit.Verify(bytes.NewReader(raw))
	require.NoError(t, err, "the audit chain must verify")
	var out [][3]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var l struct{ Event, Outcome, Actor string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
		out = append(out, [3]string{l.Event, l.Outcome, l.Actor})
	}
	require.Len(t, out, lines)
	return out
}

func TestAuditLogRecordsSecurityEvents(t *testing.T) {
	c := nodetest.New(t, 1)
	c.CreateCryptoUser(0, "alice", userPassword)
	_, err := c.TryLogin(0, "alice", "wrong-password-9", hsmv1.Role_ROLE_CRYPTO_USER)
	require.Error(t, err)
	ctx := c.Login(0, "alice", userPassword, hsmv1.Role_ROLE_CRYPTO_USER)
	key, err := c.Client(0).GenerateSymmetricKey(ctx, aes256("audited"))
	require.NoError(t, err)
	_, err = c.Client(0).CreateUser(ctx, &hsmv1.CreateUserRequest{Username: "mallory", Role: hsmv1.Role_ROLE_CRYPTO_USER, Password: userPassword})
	require.Error(t, err)
	_, err = c.Client(0).DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: key.GetKey().GetHandle()})
	require.NoError(t, err)

	events := auditEvents(t, c, 0)
	for _, want := range [][3]string{
		{audit.EventClusterInit, "ok", ""},
		{audit.EventClusterActivate, "ok", node.AdminUsername},
		{audit.EventUserCreate, "ok", node.AdminUsername},
		{audit.EventLogin, "denied", "alice"},
		{audit.EventLogin, "ok", "alice"},
		{audit.EventKeyCreate, "ok", "alice"},
		{audit.EventAuthorizationFailure, "denied", "alice"},
		{audit.EventKeyDelete, "ok", "alice"},
	} {
		require.Contains(t, events, want)
	}
	raw, err := os.ReadFile(filepath.Join(c.DataDir(0), node.AuditFile))
	require.NoError(t, err)
	for _, secret := range []string{userPassword, "wrong-password-9", nodetest.AdminPassword} {
		require.NotContains(t, string(raw), secret, "a password in the audit log")
	}
}

func TestMetricsCountRequestsByMethodAndCode(t *testing.T) {
	c := nodetest.New(t, 1)
	_, err := c.TryLogin(0, "", "", hsmv1.Role_ROLE_CRYPTO_USER)
	require.Error(t, err)
	c.Login(0, node.AdminUsername, nodetest.AdminPassword, hsmv1.Role_ROLE_ADMIN)

	families, err := c.Nodes[0].Registry().Gather()
	require.NoError(t, err)
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "hsm_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["method"]+" "+labels["code"]] += m.GetCounter().GetValue()
		}
	}
	require.Equal(t, 1.0, counts["/hsm.v1.HsmService/Login InvalidArgument"], "%v", counts)
	require.GreaterOrEqual(t, counts["/hsm.v1.HsmService/Login OK"], 1.0, "%v", counts)
}

func TestMetricsServedOverHTTP(t *testing.T) {
	c := nodetest.New(t, 1, func(cfg *node.Config) { cfg.MetricsAddr = "127.0.0.1:0" })
	// A second session beside the one the harness opened to activate.
	c.Login(0, node.AdminUsername, nodetest.AdminPassword, hsmv1.Role_ROLE_ADMIN)
	addr := c.Nodes[0].MetricsAddr()
	require.NotEmpty(t, addr)
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		// The gauges are refreshed when scraped; the login's counters may
		// lag a scrape that raced with it.
		return strings.Contains(body, `hsm_raft_state{state="Leader"} 1`) && strings.Contains(body, "hsm_sessions 2")
	}, 10*time.Second, 100*time.Millisecond, "metrics: %s", body)
	for _, want := range []string{`hsm_requests_total{code="OK",method="/hsm.v1.HsmService/Login"}`, "hsm_request_duration_seconds_bucket",
		"hsm_raft_term", "hsm_raft_commit_index", "hsm_raft_applied_index", "hsm_sessions 2", "hsm_users 1"} {
		require.Contains(t, body, want)
	}
}
