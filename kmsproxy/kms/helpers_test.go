package kms_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
	"github.com/hsmsim/hsmsim/kmsproxy/kms"
	"github.com/hsmsim/hsmsim/node/nodetest"
)

const (
	account       = "111122223333"
	region        = "us-east-1"
	fleetUser     = "kms"
	fleetPassword = "fleet-password-1"
	kmsUser       = "kmsuser"
)

// env is a KMS endpoint over in-process HSM clusters, served through
// httptest and driven with aws-sdk-go-v2's KMS client.
//
// The control plane's records: the test writes cluster.Cluster records
// for the nodetest clusters into a cluster.Store (addCluster) rather than
// having the Manager create and Refresh them. Refresh reaches HSMs with
// the control plane's certificate under the deployment's hardware CA,
// and every nodetest cluster has its own hardware CA; KMS needs only the
// records (cluster state, HSM addresses and AZs, trust anchor, certificate
// id), which is what the Manager gives it in production.
type env struct {
	t      *testing.T
	dir    string
	cstore *cluster.Store
	mgr    *cluster.Manager
	fleet  *nodetest.Cluster
	clock  *clock.Clock
	log    hclog.Logger

	logMu sync.Mutex
	logs  bytes.Buffer

	svc *kms.Service
	mux atomic.Pointer[awsjson.Mux]
	srv *httptest.Server
	kms *kmssdk.Client
}

// testWriter sends the endpoint's logs to the test's log and keeps a copy
// (for the scans for key material).
type testWriter struct {
	t    testing.TB
	mu   *sync.Mutex
	copy *bytes.Buffer
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	w.mu.Lock()
	w.copy.Write(p)
	w.mu.Unlock()
	return len(p), nil
}

// logged returns everything the endpoint logged so far.
func (e *env) logged() []byte {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return bytes.Clone(e.logs.Bytes())
}

// newEnv starts the fleet (three HSMs, crypto user "kms"), records it and
// starts the Service.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.log = hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Info, Output: testWriter{t: t, mu: &e.logMu, copy: &e.logs}})
	var err error
	e.cstore, err = cluster.NewStore(e.dir)
	require.NoError(t, err)
	e.mgr = cluster.NewManager(e.cstore, nil, nil, e.log)
	e.clock, err = clock.New("")
	require.NoError(t, err)
	e.fleet = nodetest.New(t, 3, nodetest.Steady)
	e.fleet.CreateCryptoUser(0, fleetUser, fleetPassword)
	e.fleet.WaitConverged()
	fleetID := e.addCluster(e.fleet, nil)

	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	e.kms = kmssdk.New(kmssdk.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(e.srv.URL),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   e.srv.Client(),
	})
	e.start(fleetID)
	t.Cleanup(func() {
		if e.svc != nil {
			require.NoError(t, e.svc.Close())
		}
	})
	return e
}

// config is the Service's configuration.
func (e *env) config(fleetID string) kms.Config {
	return kms.Config{
		DBPath: filepath.Join(e.dir, "kms.db"), Account: account, Region: region, Clock: e.clock, Manager: e.mgr,
		Fleet:  kms.FleetConfig{ClusterID: fleetID, Username: fleetUser, Password: fleetPassword},
		Logger: e.log, SweepInterval: time.Hour, ReconnectInterval: 100 * time.Millisecond,
		ClientConfig: client.Config{HealthInterval: 100 * time.Millisecond},
	}
}

// start starts a Service and routes the server to it.
func (e *env) start(fleetID string) {
	e.t.Helper()
	svc, err := kms.New(context.Background(), e.config(fleetID))
	require.NoError(e.t, err)
	e.svc = svc
	e.mux.Store(svc.Mux())
}

// restart closes the Service and starts a new one on the same files.
func (e *env) restart() {
	e.t.Helper()
	require.NoError(e.t, e.svc.Close())
	e.svc = nil
	st, err := e.cstore.Load()
	require.NoError(e.t, err)
	e.start(st.Clusters[0].ClusterID)
}

// serve routes a request by X-Amz-Target, as the endpoint's server does
// (without SigV4).
func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	body, err := awsjson.ReadBody(r.Body)
	req := &awsjson.Request{Region: region, RequestID: awsjson.NewRequestID(), Body: body}
	if err != nil {
		awsjson.WriteError(w, awsjson.KMS, req.RequestID, err)
		return
	}
	op, found := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	if !found {
		awsjson.WriteError(w, awsjson.KMS, req.RequestID, awsjson.Errorf("UnknownOperationException", 400, "no target"))
		return
	}
	req.Operation = op
	e.mux.Load().Serve(r.Context(), w, req)
}

// post sends a raw JSON body to an operation and returns the status and body.
func (e *env) post(op, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", awsjson.ContentType)
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// addCluster records a nodetest cluster as the control plane would: an
// ACTIVE cluster whose HSMs are the running nodes (or those of nodes),
// with the cluster's trust anchor and certificate id. The record gets a
// fresh id in CloudHSM's format (nodetest's are hex, which the KMS model's
// pattern refuses); HSM identity is checked against CertificateID, which
// is nodetest's cluster id, so several records may describe one cluster,
// as clusters restored from a backup do.
func (e *env) addCluster(c *nodetest.Cluster, nodes []int, edit ...func(*cluster.Cluster)) string {
	e.t.Helper()
	rec := clusterRecord(c, nodes)
	for _, f := range edit {
		f(rec)
	}
	require.NoError(e.t, e.cstore.Update(func(st *cluster.State) error {
		st.Clusters = append(st.Clusters, rec)
		return nil
	}))
	return rec.ClusterID
}

func clusterRecord(c *nodetest.Cluster, nodes []int) *cluster.Cluster {
	if nodes == nil {
		for i := range c.Nodes {
			nodes = append(nodes, i)
		}
	}
	rec := &cluster.Cluster{
		ClusterID: cluster.NewID("cluster"), State: cluster.ClusterActive, CreatedAt: time.Now(),
		HsmType: "hsm2m.medium", Mode: "FIPS", SubnetMapping: map[string]string{},
		TrustAnchor: string(c.CustomerCA.CertPEM()), CertificateID: c.CertificateID,
	}
	for _, i := range nodes {
		az := nodetest.AZs[i%len(nodetest.AZs)]
		rec.SubnetMapping[az] = "subnet-" + az
		rec.Hsms = append(rec.Hsms, &cluster.HSM{
			HsmID: c.Nodes[i].ID(), ClusterID: rec.ClusterID, AvailabilityZone: az, State: cluster.HsmActive,
			Runtime: cluster.Runtime{APIAddr: c.Nodes[i].APIAddr()},
		})
	}
	return rec
}

// editCluster changes a cluster record.
func (e *env) editCluster(id string, f func(*cluster.Cluster)) {
	e.t.Helper()
	require.NoError(e.t, e.cstore.Update(func(st *cluster.State) error {
		c := st.Cluster(id)
		require.NotNil(e.t, c, id)
		f(c)
		return nil
	}))
}

// newCustomer starts a customer cluster of n HSMs with kmsuser.
func newCustomer(t *testing.T, n int, password string) *nodetest.Cluster {
	t.Helper()
	c := nodetest.New(t, n, nodetest.Steady)
	c.CreateCryptoUser(0, kmsUser, password)
	c.WaitConverged()
	return c
}

// requireAPIError checks err is the AWS exception code, with a message
// containing each of msgs.
func requireAPIError(t *testing.T, err error, code string, msgs ...string) {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want %s, got %v", code, err)
	require.Equal(t, code, ae.ErrorCode(), ae.ErrorMessage())
	for _, m := range msgs {
		require.Contains(t, ae.ErrorMessage(), m)
	}
}

var ctx = context.Background()
