package cloudhsm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/local"
	"github.com/hsmsim/hsmsim/internal/testbin"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/cloudhsm"
)

// hsmdPath is built once for the package's tests.
var hsmdPath string

func TestMain(m *testing.M) {
	var dir string
	testbin.Main(func() int {
		hsmdPath = filepath.Join(dir, "hsmd")
		return m.Run()
	}, &dir, "hsmd")
}

const (
	region  = "us-east-1"
	account = "111122223333"
)

// env is the CloudHSM API over a control plane of real hsmd processes,
// served by an httptest.Server and driven by the AWS SDK's client.
type env struct {
	t    *testing.T
	mgr  *cluster.Manager
	prov *local.Provisioner
	svc  *cloudhsm.Service
	url  string
	api  *cloudhsmv2.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := cluster.NewStore(dir)
	require.NoError(t, err)
	pki, err := cluster.LoadOrCreatePKI(dir)
	require.NoError(t, err)
	prov, err := local.New(local.Config{Dir: dir, PKI: pki, HsmdPath: hsmdPath,
		ExtraArgs: []string{"--heartbeat-timeout", "200ms", "--election-timeout", "200ms", "--leader-lease-timeout", "100ms"}})
	require.NoError(t, err)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
	mgr := cluster.NewManager(store, prov, pki, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		mgr.StopAll(ctx)
	})
	svc := cloudhsm.New(mgr, region, account, log)
	srv := httptest.NewServer(serve(svc.Mux()))
	t.Cleanup(srv.Close)
	api := cloudhsmv2.New(cloudhsmv2.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "not-checked-here", ""),
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      aws.NopRetryer{},
	})
	return &env{t: t, mgr: mgr, prov: prov, svc: svc, url: srv.URL, api: api}
}

// serve is the little of the endpoint's server the tests need: the
// operation from X-Amz-Target, no SigV4 (package kmsproxy checks it).
func serve(mux *awsjson.Mux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix, op, ok := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		if !ok || prefix != mux.Service().TargetPrefix {
			http.Error(w, "bad target", http.StatusBadRequest)
			return
		}
		id := awsjson.NewRequestID()
		body, err := awsjson.ReadBody(r.Body)
		if err != nil {
			awsjson.WriteError(w, mux.Service(), id, err)
			return
		}
		mux.Serve(r.Context(), w, &awsjson.Request{Operation: op, Body: body, Region: region, RequestID: id})
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// requireAPIError checks that err is the AWS exception code and that its
// message contains each of contains.
func requireAPIError(t *testing.T, err error, code string, contains ...string) {
	t.Helper()
	var apiErr smithy.APIError
	require.True(t, errors.As(err, &apiErr), "want %s, got %v", code, err)
	require.Equal(t, code, apiErr.ErrorCode(), apiErr.ErrorMessage())
	for _, c := range contains {
		require.Contains(t, apiErr.ErrorMessage(), c)
	}
}
