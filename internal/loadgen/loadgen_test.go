package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestFloorAnswersTheSDK checks that every operation the tool sends gets
// from the floor an answer the SDK accepts, of the size a real one has.
func TestFloorAnswersTheSDK(t *testing.T) {
	const payload = 100
	f, err := StartFloor(payload, "eu-west-3")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	cl := newKMSClient(f.URL(), "eu-west-3", AnyCredentials, newHTTPClient(1))
	ctx := testContext(t)

	created, err := createKey(ctx, cl, "cks-0123456789abcdef0")
	require.NoError(t, err)
	require.Equal(t, kmstypes.KeyStateEnabled, created.KeyMetadata.KeyState)
	require.Contains(t, aws.ToString(created.KeyMetadata.Arn), ":eu-west-3:")
	keyID := created.KeyMetadata.KeyId

	enc, err := cl.Encrypt(ctx, &kms.EncryptInput{KeyId: keyID, Plaintext: make([]byte, payload)})
	require.NoError(t, err)
	require.Len(t, enc.CiphertextBlob, blobOverhead+payload)
	require.Equal(t, kmstypes.EncryptionAlgorithmSpecSymmetricDefault, enc.EncryptionAlgorithm)

	dec, err := cl.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	require.NoError(t, err)
	require.Len(t, dec.Plaintext, payload)

	dk, err := cl.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: keyID, KeySpec: kmstypes.DataKeySpecAes256})
	require.NoError(t, err)
	require.Len(t, dk.Plaintext, 32)
	require.NotEmpty(t, dk.CiphertextBlob)

	re, err := cl.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: keyID})
	require.NoError(t, err)
	require.NotEmpty(t, re.CiphertextBlob)

	_, err = cl.ListKeys(ctx, &kms.ListKeysInput{})
	var api smithy.APIError
	require.True(t, errors.As(err, &api), "error %v", err)
	require.Equal(t, "UnknownOperationException", api.ErrorCode())
	require.Equal(t, "UnknownOperationException", errorCode(err))
}

func TestRawCallerAgainstFloor(t *testing.T) {
	f, err := StartFloor(64, DefaultRegion)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	fx := &fixture{keyID: "k", plaintext: make([]byte, 64), blob: make([]byte, 113)}
	c, err := newRawCaller(f.URL(), DefaultRegion, AnyCredentials, newHTTPClient(1), fx, OpMix)
	require.NoError(t, err)
	t.Cleanup(c.close)
	for _, op := range mixOps {
		require.NoError(t, c.call(testContext(t), op), "%s", op)
	}
	err = c.call(testContext(t), OpCreateKey)
	require.ErrorIs(t, err, ErrConfig, "no request was prepared for create-key")
}

func TestRawErrorCode(t *testing.T) {
	tests := []struct {
		name   string
		header string
		body   string
		status int
		want   string
	}{
		{"header", "ThrottlingException", `{}`, 400, "ThrottlingException"},
		{"header with a url", "ValidationException:http://internal.amazon.com/", `{}`, 400, "ValidationException"},
		{"body", "", `{"__type":"com.amazonaws.kms#NotFoundException","message":"x"}`, 400, "NotFoundException"},
		{"nothing", "", `<html>`, 503, "HTTP503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			if tt.header != "" {
				resp.Header.Set("X-Amzn-ErrorType", tt.header)
			}
			require.Equal(t, tt.want, rawErrorCode(resp, []byte(tt.body)))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Op: OpEncrypt, Targets: []Target{{Name: "A", Endpoint: "http://127.0.0.1:4599"}, {Name: "floor", Floor: true}}}.withDefaults()
	}
	require.NoError(t, good().Validate())
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"unknown op", func(c *Config) { c.Op = "sign" }, `unknown operation "sign"`},
		{"no target", func(c *Config) { c.Targets = nil }, "no target"},
		{"zero concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency 0"},
		{"huge concurrency", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }, "concurrency"},
		{"duration and requests", func(c *Config) { c.Requests = 10 }, "not both"},
		{"negative requests", func(c *Config) { c.Requests, c.Duration = -1, 0 }, "requests -1"},
		{"empty payload", func(c *Config) { c.PayloadBytes = 0 }, "payload of 0 bytes"},
		{"payload above KMS's limit", func(c *Config) { c.PayloadBytes = 4097 }, "payload of 4097 bytes"},
		{"unknown client", func(c *Config) { c.Client = "boto3" }, `client "boto3"`},
		{"no slice", func(c *Config) { c.Slice = 0 }, "slice"},
		{"negative warmup", func(c *Config) { c.Warmup = -time.Second }, "warmup"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"unnamed target", func(c *Config) { c.Targets[0].Name = "" }, "no name"},
		{"same names", func(c *Config) { c.Targets[1].Name = "A" }, `two targets are named "A"`},
		{"not a URL", func(c *Config) { c.Targets[0].Endpoint = "127.0.0.1:4599" }, "is not an http://"},
		{"floor with an endpoint", func(c *Config) { c.Targets[1].Endpoint = "http://x" }, "a floor target has no endpoint"},
		{"bad pid", func(c *Config) { c.Targets[0].PIDs = []int{0} }, "pid 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrConfig)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestParseOp(t *testing.T) {
	for _, op := range Ops {
		got, err := ParseOp(string(op))
		require.NoError(t, err)
		require.Equal(t, op, got)
	}
	_, err := ParseOp("Encrypt")
	require.ErrorIs(t, err, ErrConfig)
}

func TestLoadCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(path, []byte(`# comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[profile hsmsim]
aws_access_key_id=AKIAHSMSIM
aws_secret_access_key=hsmsim-secret
aws_session_token = token

[half]
aws_access_key_id = AKIAHALF
`), 0o600))
	c, err := LoadCredentials(path, "hsmsim")
	require.NoError(t, err)
	require.Equal(t, Credentials{AccessKeyID: "AKIAHSMSIM", SecretAccessKey: "hsmsim-secret", SessionToken: "token"}, c)
	c, err = LoadCredentials(path, "default")
	require.NoError(t, err)
	require.Equal(t, "AKIADEFAULT", c.AccessKeyID)

	_, err = LoadCredentials(path, "missing")
	require.ErrorIs(t, err, ErrConfig)
	_, err = LoadCredentials(path, "half")
	require.ErrorIs(t, err, ErrConfig)
	require.NotContains(t, err.Error(), "default-secret")
	require.NotContains(t, err.Error(), "hsmsim-secret")
	_, err = LoadCredentials(filepath.Join(t.TempDir(), "none"), "default")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 10 18446744073709551615"
	got, err := parseStat(line)
	require.NoError(t, err)
	require.Equal(t, 325*clockTick, got)
	_, err = parseStat("4242 (x) S 1 2")
	require.Error(t, err)
	_, err = parseStat("no parenthesis")
	require.Error(t, err)

	self, err := ProcessCPUTime(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, self, time.Duration(0))
	_, err = ProcessCPUTime(1 << 30)
	require.Error(t, err)
}

// TestRunAgainstFloors loads two floors in turn with each client and
// workload and checks the counts and the report.
func TestRunAgainstFloors(t *testing.T) {
	for _, client := range []Client{ClientSDK, ClientRaw} {
		for _, op := range Ops {
			t.Run(string(client)+"/"+string(op), func(t *testing.T) {
				var progress bytes.Buffer
				rep, err := Run(testContext(t), Config{
					Op: op, Client: client, Concurrency: 4, Requests: 50, Slice: 20 * time.Millisecond,
					Targets:  []Target{{Name: "floor", Floor: true, PIDs: []int{os.Getpid()}}, {Name: "floor2", Floor: true}},
					Progress: &progress,
				})
				require.NoError(t, err)
				require.Len(t, rep.Targets, 2)
				for _, tr := range rep.Targets {
					require.Equal(t, uint64(50), tr.Requests, "target %s", tr.Name)
					require.Zero(t, tr.Errors, "target %s: %v", tr.Name, tr.ErrorsByCode)
					require.Positive(t, tr.OpsPerSec)
					require.Positive(t, tr.Latency.P50)
					require.LessOrEqual(t, tr.Latency.P50, tr.Latency.P99)
					require.LessOrEqual(t, tr.Latency.P99, tr.Latency.Max)
				}
				require.Equal(t, 1.0, rep.Targets[0].ThroughputVsFirst)
				require.Positive(t, rep.Targets[1].ThroughputVsFirst)
				require.Len(t, rep.Targets[0].Processes, 1)
				require.Empty(t, rep.Targets[1].Processes)
				var text strings.Builder
				rep.WriteText(&text)
				require.Contains(t, text.String(), "floor / floor2: ")
			})
		}
	}
}

// TestRunCountsErrorsByCode loads an endpoint that throttles every other
// request.
func TestRunCountsErrorsByCode(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") == "TrentService.CreateKey" {
			w.Write([]byte(`{"KeyMetadata":{"KeyId":"k1","Arn":"arn:aws:kms:us-east-1:111122223333:key/k1"}}`))
			return
		}
		n++ // one worker: no race
		if n%2 == 0 {
			w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
			return
		}
		w.Write([]byte(`{"CiphertextBlob":"AAAA","KeyId":"k1","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`))
	}))
	t.Cleanup(srv.Close)
	for _, client := range []Client{ClientSDK, ClientRaw} {
		t.Run(string(client), func(t *testing.T) {
			n = 0
			rep, err := Run(testContext(t), Config{Op: OpEncrypt, Client: client, Concurrency: 1, Requests: 20,
				Targets: []Target{{Name: "A", Endpoint: srv.URL}}})
			require.NoError(t, err)
			tr := rep.Targets[0]
			require.Equal(t, "k1", tr.KeyID)
			require.Equal(t, uint64(20), tr.Requests)
			require.Equal(t, uint64(10), tr.Errors)
			require.Equal(t, map[string]uint64{"ThrottlingException": 10}, tr.ErrorsByCode)
			var text strings.Builder
			rep.WriteText(&text)
			require.Contains(t, text.String(), "errors of A: ThrottlingException 10")
		})
	}
}

func TestRunReportsSetupFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"AccessDeniedException","message":"no"}`))
	}))
	t.Cleanup(srv.Close)
	_, err := Run(testContext(t), Config{Op: OpDecrypt, Requests: 1, Targets: []Target{{Name: "A", Endpoint: srv.URL}}})
	require.ErrorContains(t, err, "create the key")
	require.ErrorContains(t, err, "AccessDeniedException")
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var progress bytes.Buffer
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		rep, err = Run(ctx, Config{Op: OpEncrypt, Client: ClientRaw, Concurrency: 2, Duration: time.Hour,
			Targets: []Target{{Name: "floor", Floor: true}}, Progress: &progress})
	}()
	time.AfterFunc(1500*time.Millisecond, cancel)
	<-done
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, rep)
	require.Positive(t, rep.Targets[0].Requests)
	require.Contains(t, progress.String(), "req/s", "a progress line a second")
}

// TestRunTargetsWithTheirOwnOps compares two workloads in one run.
func TestRunTargetsWithTheirOwnOps(t *testing.T) {
	rep, err := Run(testContext(t), Config{Op: OpEncrypt, Client: ClientRaw, Concurrency: 2, Requests: 20,
		Targets: []Target{{Name: "enc", Floor: true}, {Name: "dec", Floor: true, Op: OpDecrypt}}})
	require.NoError(t, err)
	require.Equal(t, OpEncrypt, rep.Targets[0].Op)
	require.Equal(t, OpDecrypt, rep.Targets[1].Op)
	for _, tr := range rep.Targets {
		require.Equal(t, uint64(20), tr.Requests)
		require.Zero(t, tr.Errors)
	}
	var text strings.Builder
	rep.WriteText(&text)
	require.Contains(t, text.String(), "encrypt (dec: decrypt)")
}
