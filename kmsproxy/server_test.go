package kmsproxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

const (
	accessKey = "AKIATESTTEST00000001"
	secretKey = "test-secret-key-000000000000000000000000"
	region    = "eu-west-3"
	// marker is a value sent in request bodies that must never be logged.
	marker = "do-not-log-this-marker"
)

// fakeService is a Service whose Mux has a few canned operations.
type fakeService struct {
	mux      *awsjson.Mux
	resets   atomic.Int32
	resetErr atomic.Pointer[error]

	mu   sync.Mutex
	last *awsjson.Request
}

func (f *fakeService) Mux() *awsjson.Mux { return f.mux }

func (f *fakeService) Reset(context.Context) error {
	f.resets.Add(1)
	if err := f.resetErr.Load(); err != nil {
		return *err
	}
	return nil
}

func (f *fakeService) record(r *awsjson.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = r
}

func (f *fakeService) lastRequest() *awsjson.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// newKMS is a fake TrentService: ListKeys decodes its input strictly and
// returns no keys; Panic panics.
func newKMS() *fakeService {
	f := &fakeService{mux: awsjson.NewMux(awsjson.KMS)}
	f.mux.Handle("ListKeys", func(_ context.Context, r *awsjson.Request) (any, error) {
		f.record(r)
		var in struct {
			Limit  *int32
			Marker *string
		}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		return map[string]any{"Keys": []any{}, "Truncated": false}, nil
	})
	f.mux.Handle("Panic", func(context.Context, *awsjson.Request) (any, error) {
		panic("handler bug")
	})
	return f
}

// newCloudHSM is a fake BaldrApiService: DescribeClusters returns none;
// DeleteCluster does not find the cluster.
func newCloudHSM() *fakeService {
	f := &fakeService{mux: awsjson.NewMux(awsjson.CloudHSM)}
	f.mux.Handle("DescribeClusters", func(_ context.Context, r *awsjson.Request) (any, error) {
		f.record(r)
		return map[string]any{"Clusters": []any{}}, nil
	})
	f.mux.Handle("DeleteCluster", func(context.Context, *awsjson.Request) (any, error) {
		return nil, awsjson.Errorf("CloudHsmResourceNotFoundException", http.StatusBadRequest, "Cluster cluster-abcdefghijk not found")
	})
	return f
}

// logBuffer collects the server's logs for inspection and mirrors them to t.Log.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	t       *testing.T
	stopped bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.stopped {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	srv   *kmsproxy.Server
	url   string
	kms   *fakeService
	hsm   *fakeService
	clock *clock.Clock
	logs  *logBuffer
}

// start runs a Server with both fake services on 127.0.0.1:0.
func start(t *testing.T, mutate func(*kmsproxy.Config)) *env {
	t.Helper()
	logs := &logBuffer{t: t}
	t.Cleanup(func() {
		logs.mu.Lock()
		logs.stopped = true
		logs.mu.Unlock()
	})
	clk, err := clock.New("")
	require.NoError(t, err)
	e := &env{kms: newKMS(), hsm: newCloudHSM(), clock: clk, logs: logs}
	cfg := kmsproxy.Config{
		Addr:        "127.0.0.1:0",
		Credentials: []sigv4.Credential{{AccessKeyID: accessKey, SecretAccessKey: secretKey, UserName: "tester"}},
		Logger:      hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
		Services:    []kmsproxy.Service{e.kms, e.hsm},
		Clock:       clk,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e.srv, err = kmsproxy.New(cfg)
	require.NoError(t, err)
	require.NoError(t, e.srv.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, e.srv.Close(context.Background())) })
	e.url = "http://" + e.srv.Addr()
	return e
}

func (e *env) kmsClient(key, secret string) *kms.Client {
	return kms.New(kms.Options{
		Region:           region,
		BaseEndpoint:     aws.String(e.url),
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func (e *env) hsmClient(key, secret string) *cloudhsmv2.Client {
	return cloudhsmv2.New(cloudhsmv2.Options{
		Region:           region,
		BaseEndpoint:     aws.String(e.url),
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1,
	})
}

// requireAPIError checks err is the AWS exception code, with a message
// starting with msg.
func requireAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "not an API error: %v", err)
	require.Equal(t, code, ae.ErrorCode(), ae.ErrorMessage())
	require.True(t, strings.HasPrefix(ae.ErrorMessage(), msg), "message %q does not start with %q", ae.ErrorMessage(), msg)
}

// raw is a hand-built request.
type raw struct {
	method, path, target, body string
	sign                       bool
	service                    string
	at                         time.Time
}

// response is a decoded JSON answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (e *env) do(t *testing.T, r raw) response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/"
	}
	req, err := http.NewRequest(r.method, e.url+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", awsjson.ContentType)
	if r.target != "" {
		req.Header.Set("X-Amz-Target", r.target)
	}
	if r.sign {
		if r.service == "" {
			r.service = "kms"
		}
		if r.at.IsZero() {
			r.at = time.Now()
		}
		sum := sha256.Sum256([]byte(r.body))
		creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
		require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), r.service, region, r.at))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := response{status: resp.StatusCode, header: resp.Header}
	if len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, &out.body), "body is not JSON: %q", b)
	}
	return out
}

// requireJSONError checks a response is the JSON exception typ.
func requireJSONError(t *testing.T, resp response, status int, typ string) {
	t.Helper()
	require.Equal(t, status, resp.status, resp.body)
	require.Equal(t, awsjson.ContentType, resp.header.Get("Content-Type"))
	require.NotEmpty(t, resp.header.Get("x-amzn-RequestId"))
	require.Equal(t, typ, resp.body["__type"], resp.body)
}

func TestSDKRoundTrip(t *testing.T) {
	e := start(t, nil)
	out, err := e.kmsClient(accessKey, secretKey).ListKeys(context.Background(), &kms.ListKeysInput{Marker: aws.String(marker)})
	require.NoError(t, err)
	require.Empty(t, out.Keys)

	req := e.kms.lastRequest()
	require.NotNil(t, req)
	require.Equal(t, "ListKeys", req.Operation)
	require.Equal(t, region, req.Region)
	require.Equal(t, awsjson.Principal{AccessKeyID: accessKey, Account: kmsproxy.DefaultAccount, ARN: "arn:aws:iam::123456789012:user/tester"}, req.Principal)
	require.NotEmpty(t, req.RequestID)
	require.Contains(t, string(req.Body), marker)

	// One Debug line per request, never the body.
	require.Eventually(t, func() bool {
		return strings.Contains(e.logs.String(), "op=TrentService.ListKeys status=200")
	}, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, e.logs.String(), "request_id="+req.RequestID)
	require.NotContains(t, e.logs.String(), marker)
	require.NotContains(t, e.logs.String(), secretKey)
}

func TestCloudHSMRoundTrip(t *testing.T) {
	e := start(t, nil)
	cl := e.hsmClient(accessKey, secretKey)
	out, err := cl.DescribeClusters(context.Background(), &cloudhsmv2.DescribeClustersInput{})
	require.NoError(t, err)
	require.Empty(t, out.Clusters)
	require.Equal(t, region, e.hsm.lastRequest().Region)

	_, err = cl.DeleteCluster(context.Background(), &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String("cluster-abcdefghijk")})
	requireAPIError(t, err, "CloudHsmResourceNotFoundException", "Cluster cluster-abcdefghijk not found")

	// CloudHSM spells the member "Message".
	resp := e.do(t, raw{target: "BaldrApiService.DeleteCluster", body: `{"ClusterId":"cluster-abcdefghijk"}`, sign: true, service: "cloudhsm"})
	requireJSONError(t, resp, http.StatusBadRequest, "CloudHsmResourceNotFoundException")
	require.Equal(t, "Cluster cluster-abcdefghijk not found", resp.body["Message"])

	_, err = e.hsmClient(accessKey, "wrong").DescribeClusters(context.Background(), &cloudhsmv2.DescribeClustersInput{})
	requireAPIError(t, err, "InvalidSignatureException", "The request signature we calculated does not match")
}

func TestSDKAuthFailures(t *testing.T) {
	tests := []struct {
		name        string
		key, secret string
		code, msg   string
	}{
		{"wrong secret", accessKey, "not-the-secret", "InvalidSignatureException",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."},
		{"unknown access key", "AKIAUNKNOWN000000000", secretKey, "UnrecognizedClientException",
			"The security token included in the request is invalid."},
	}
	e := start(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kmsClient(tt.key, tt.secret).ListKeys(context.Background(), &kms.ListKeysInput{})
			requireAPIError(t, err, tt.code, tt.msg)
		})
	}
	require.Nil(t, e.kms.lastRequest(), "no failed request reached the service")
}

func TestRawAuthFailures(t *testing.T) {
	e := start(t, nil)
	t.Run("signed 20 minutes ago", func(t *testing.T) {
		resp := e.do(t, raw{target: "TrentService.ListKeys", body: "{}", sign: true, at: time.Now().Add(-20 * time.Minute)})
		requireJSONError(t, resp, http.StatusBadRequest, "InvalidSignatureException")
		require.Regexp(t, `^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$`, resp.body["message"])
	})
	t.Run("no Authorization", func(t *testing.T) {
		resp := e.do(t, raw{target: "TrentService.ListKeys", body: "{}"})
		requireJSONError(t, resp, http.StatusForbidden, "MissingAuthenticationTokenException")
		require.Equal(t, "Missing Authentication Token", resp.body["message"])
	})
	t.Run("KMS signature on a CloudHSM target", func(t *testing.T) {
		resp := e.do(t, raw{target: "BaldrApiService.DescribeClusters", body: "{}", sign: true, service: "kms"})
		requireJSONError(t, resp, http.StatusBadRequest, "InvalidSignatureException")
		require.Equal(t, "Credential should be scoped to correct service: 'cloudhsm'. ", resp.body["Message"])
	})
	t.Run("CloudHSM signature on a KMS target", func(t *testing.T) {
		resp := e.do(t, raw{target: "TrentService.ListKeys", body: "{}", sign: true, service: "cloudhsm"})
		requireJSONError(t, resp, http.StatusBadRequest, "InvalidSignatureException")
		require.Equal(t, "Credential should be scoped to correct service: 'kms'. ", resp.body["message"])
	})
	require.Nil(t, e.kms.lastRequest())
	require.Nil(t, e.hsm.lastRequest())
}

func TestAnyCredentials(t *testing.T) {
	e := start(t, func(c *kmsproxy.Config) {
		c.AnyCredentials = true
		c.Credentials = nil
		c.Account = "210987654321"
	})
	_, err := e.kmsClient("AKIAWHOEVER000000000", "any-secret-at-all").ListKeys(context.Background(), &kms.ListKeysInput{})
	require.NoError(t, err)
	require.Equal(t, awsjson.Principal{AccessKeyID: "AKIAWHOEVER000000000", Account: "210987654321", ARN: "arn:aws:iam::210987654321:root"},
		e.kms.lastRequest().Principal)

	resp := e.do(t, raw{target: "TrentService.ListKeys", body: "{}"})
	requireJSONError(t, resp, http.StatusForbidden, "MissingAuthenticationTokenException")
}

func TestRouting(t *testing.T) {
	e := start(t, nil)
	_, err := e.kmsClient(accessKey, secretKey).DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/x")})
	requireAPIError(t, err, "UnknownOperationException", "The operation DescribeKey is not supported")

	tests := []struct {
		name string
		req  raw
		typ  string
	}{
		{"unknown target prefix", raw{target: "DynamoDB_20120810.ListTables", body: "{}", sign: true}, "UnknownOperationException"},
		{"no target", raw{body: "{}", sign: true}, "UnknownOperationException"},
		{"target without operation", raw{target: "TrentService", body: "{}", sign: true}, "UnknownOperationException"},
		{"GET /", raw{method: http.MethodGet}, "UnknownOperationException"},
		{"other path", raw{path: "/2015-03-31/functions", body: "{}"}, "UnknownOperationException"},
		{"GET on an admin path", raw{method: http.MethodGet, path: kmsproxy.PathReset}, "UnknownOperationException"},
		{"malformed JSON", raw{target: "TrentService.ListKeys", body: `{"Limit": 1,`, sign: true}, "SerializationException"},
		{"wrong member type", raw{target: "TrentService.ListKeys", body: `{"Limit": "ten"}`, sign: true}, "SerializationException"},
		{"unknown member", raw{target: "TrentService.ListKeys", body: `{"Limmit": 1}`, sign: true}, "SerializationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireJSONError(t, e.do(t, tt.req), http.StatusBadRequest, tt.typ)
		})
	}
}

func TestPanicBecomesInternalError(t *testing.T) {
	e := start(t, nil)
	resp := e.do(t, raw{target: "TrentService.Panic", body: "{}", sign: true})
	requireJSONError(t, resp, http.StatusInternalServerError, "KMSInternalException")
	require.NotContains(t, resp.body["message"], "handler bug")
	// The server still serves.
	_, err := e.kmsClient(accessKey, secretKey).ListKeys(context.Background(), &kms.ListKeysInput{})
	require.NoError(t, err)
}

func TestReset(t *testing.T) {
	e := start(t, nil)
	resp := e.do(t, raw{path: kmsproxy.PathReset})
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, map[string]any{"reset": true}, resp.body)
	require.EqualValues(t, 1, e.kms.resets.Load())
	require.EqualValues(t, 1, e.hsm.resets.Load())

	fire := errors.New("disk on fire")
	e.hsm.resetErr.Store(&fire)
	resp = e.do(t, raw{path: kmsproxy.PathReset})
	requireJSONError(t, resp, http.StatusInternalServerError, "KMSInternalException")
	require.EqualValues(t, 2, e.kms.resets.Load(), "every service is reset even when one fails")
	require.EqualValues(t, 2, e.hsm.resets.Load())
}

func TestClock(t *testing.T) {
	e := start(t, nil)
	before := e.clock.Now()
	resp := e.do(t, raw{path: kmsproxy.PathClockAdvance, body: `{"duration":"30d"}`})
	require.Equal(t, http.StatusOK, resp.status, resp.body)
	require.Equal(t, 30*24*time.Hour, e.clock.Offset())
	now := resp.body["now"].(float64)
	require.InDelta(t, float64(before.Add(30*24*time.Hour).Unix()), now, 60)

	resp = e.do(t, raw{method: http.MethodGet, path: kmsproxy.PathClock})
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, float64(30*24*3600), resp.body["offset_seconds"])
	require.GreaterOrEqual(t, resp.body["now"].(float64), now)

	for _, body := range []string{`{"duration":"soon"}`, `{"duration":"-1h"}`, `{"duration":""}`, `{"by":"1h"}`, `not json`} {
		resp := e.do(t, raw{path: kmsproxy.PathClockAdvance, body: body})
		require.Equal(t, http.StatusBadRequest, resp.status, body)
		require.Contains(t, []any{"ValidationException", "SerializationException"}, resp.body["__type"], body)
	}
	require.Equal(t, 30*24*time.Hour, e.clock.Offset(), "rejected advances do not move the clock")
}

func TestAdminOnlyForLoopback(t *testing.T) {
	e := start(t, nil)
	for _, path := range []string{kmsproxy.PathReset, kmsproxy.PathClockAdvance} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"duration":"1d"}`))
		req.RemoteAddr = "192.0.2.10:51234"
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusForbidden, rec.Code, path)
		require.Contains(t, rec.Body.String(), `"__type":"AccessDeniedException"`)
	}
	require.Zero(t, e.kms.resets.Load())
	require.Zero(t, e.clock.Offset())

	req := httptest.NewRequest(http.MethodPost, kmsproxy.PathReset, nil)
	req.RemoteAddr = "[::1]:51234"
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestLifecycle(t *testing.T) {
	e := start(t, nil)
	require.ErrorIs(t, e.srv.Start(context.Background()), kmsproxy.ErrStarted)
	require.NoError(t, e.srv.Close(context.Background()))
	require.NoError(t, e.srv.Close(context.Background()), "closing twice is a no-op")
	require.ErrorIs(t, e.srv.Start(context.Background()), kmsproxy.ErrClosed)
	_, err := http.Get(e.url + "/")
	require.Error(t, err, "the port is closed")

	never, err := kmsproxy.New(kmsproxy.Config{AnyCredentials: true})
	require.NoError(t, err)
	require.Equal(t, kmsproxy.DefaultAddr, never.Addr())
	require.NoError(t, never.Close(context.Background()))
}

func TestConfigValidate(t *testing.T) {
	cred := sigv4.Credential{AccessKeyID: accessKey, SecretAccessKey: secretKey}
	tests := []struct {
		name string
		cfg  kmsproxy.Config
		want string
	}{
		{"no credentials", kmsproxy.Config{}, "no credentials"},
		{"bad account", kmsproxy.Config{AnyCredentials: true, Account: "12345"}, `account "12345" is not 12 digits`},
		{"no access key id", kmsproxy.Config{Credentials: []sigv4.Credential{{SecretAccessKey: "s"}}}, "credential 0 has no access key id"},
		{"no secret", kmsproxy.Config{Credentials: []sigv4.Credential{{AccessKeyID: "AKIAX"}}}, "credential AKIAX has no secret access key"},
		{"bad credential account", kmsproxy.Config{Credentials: []sigv4.Credential{{AccessKeyID: "AKIAX", SecretAccessKey: "s", Account: "x"}}}, `credential AKIAX: account "x"`},
		{"duplicate key", kmsproxy.Config{Credentials: []sigv4.Credential{cred, cred}}, "given twice"},
		{"duplicate prefix", kmsproxy.Config{AnyCredentials: true, Services: []kmsproxy.Service{newKMS(), newKMS()}}, "two services have the target prefix TrentService"},
		{"nil mux", kmsproxy.Config{AnyCredentials: true, Services: []kmsproxy.Service{&fakeService{}}}, "service 0 has no Mux"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kmsproxy.New(tt.cfg)
			require.ErrorIs(t, err, kmsproxy.ErrInvalidConfig)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), secretKey)
		})
	}
}
