package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// Client says how requests are made.
type Client string

// The clients.
const (
	// ClientSDK sends every request through aws-sdk-go-v2's KMS client
	// (serializers, middleware stack, signer, deserializers), with retries
	// off: what an application written with the SDK pays per call.
	ClientSDK Client = "sdk"
	// ClientRaw signs a prebuilt JSON body with the SDK's SigV4 signer and
	// sends it with net/http, checking only the status and, for an error,
	// its __type: the least a correct signed client can do per call.
	ClientRaw Client = "raw"
)

// Error codes for failures that carry no AWS exception.
const (
	// CodeTimeout is a request that did not finish within Config.Timeout.
	CodeTimeout = "Timeout"
	// CodeTransport is a connection or protocol failure.
	CodeTransport = "TransportError"
	// CodeHTTPPrefix prefixes the status of an error response without a
	// __type ("HTTP503").
	CodeHTTPPrefix = "HTTP"
)

// callError is a failed call, by the code the report counts it under.
type callError struct{ code string }

func (e *callError) Error() string { return "request failed: " + e.code }

// errorCode is the code err is counted under.
func errorCode(err error) string {
	var ce *callError
	if errors.As(err, &ce) {
		return ce.code
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	return CodeTransport
}

// caller makes one call of an operation against one endpoint. It is safe
// for concurrent use.
type caller interface {
	call(ctx context.Context, op Op) error
	close()
}

// newHTTPClient is an HTTP client that keeps a connection per worker
// alive, with no proxy and no compression.
func newHTTPClient(concurrency int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// newKMSClient is an SDK KMS client for endpoint, without retries.
func newKMSClient(endpoint, region string, creds Credentials, httpc *http.Client) *kms.Client {
	return kms.New(kms.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken),
		HTTPClient:   httpc,
		Retryer:      aws.NopRetryer{},
	})
}

// sdkCaller calls through the SDK's KMS client.
type sdkCaller struct {
	kms   *kms.Client
	httpc *http.Client
	fx    *fixture
}

func (c *sdkCaller) call(ctx context.Context, op Op) error {
	var err error
	switch op {
	case OpEncrypt:
		_, err = c.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &c.fx.keyID, Plaintext: c.fx.plaintext})
	case OpDecrypt:
		_, err = c.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: c.fx.blob})
	case OpGenerateDataKey:
		_, err = c.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &c.fx.keyID, KeySpec: kmstypes.DataKeySpecAes256})
	case OpReEncrypt:
		_, err = c.kms.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: c.fx.blob, DestinationKeyId: &c.fx.keyID})
	case OpCreateKey:
		_, err = createKey(ctx, c.kms, c.fx.customKeyStoreID)
	default:
		err = fmt.Errorf("%w: unknown operation %q", ErrConfig, op)
	}
	return err
}

func (c *sdkCaller) close() { c.httpc.CloseIdleConnections() }

// createKey creates a symmetric key, in customKeyStoreID when set.
func createKey(ctx context.Context, cl *kms.Client, customKeyStoreID string) (*kms.CreateKeyOutput, error) {
	in := &kms.CreateKeyInput{Description: aws.String(createKeyDescription)}
	if customKeyStoreID != "" {
		in.CustomKeyStoreId, in.Origin = aws.String(customKeyStoreID), kmstypes.OriginTypeAwsCloudhsm
	}
	return cl.CreateKey(ctx, in)
}

// rawRequest is one operation's prebuilt request: its body and the body's
// SHA-256, which SigV4 signs.
type rawRequest struct {
	target      []string
	body        []byte
	payloadHash string
}

// rawCaller signs prebuilt bodies and sends them with net/http.
type rawCaller struct {
	url      string
	region   string
	creds    aws.Credentials
	signer   *v4.Signer
	httpc    *http.Client
	requests map[Op]rawRequest
	bufs     sync.Pool
}

var hdrJSON11 = []string{"application/x-amz-json-1.1"}

func newRawCaller(endpoint, region string, creds Credentials, httpc *http.Client, fx *fixture, op Op) (*rawCaller, error) {
	c := &rawCaller{
		url: strings.TrimSuffix(endpoint, "/") + "/", region: region, httpc: httpc,
		creds:    aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken},
		signer:   v4.NewSigner(),
		requests: map[Op]rawRequest{},
		bufs:     sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	for _, o := range op.cycle() {
		body, err := fx.requestBody(o)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		c.requests[o] = rawRequest{target: []string{"TrentService." + o.apiName()}, body: body, payloadHash: hex.EncodeToString(sum[:])}
	}
	return c, nil
}

func (c *rawCaller) call(ctx context.Context, op Op) error {
	rr, ok := c.requests[op]
	if !ok {
		return fmt.Errorf("%w: no request prepared for %q", ErrConfig, op)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(rr.body))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = hdrJSON11
	req.Header["X-Amz-Target"] = rr.target
	if err := c.signer.SignHTTP(ctx, c.creds, req, rr.payloadHash, "kms", c.region, time.Now()); err != nil {
		return err
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return &callError{code: CodeTimeout}
		}
		return &callError{code: CodeTransport}
	}
	buf := c.bufs.Get().(*bytes.Buffer)
	defer c.bufs.Put(buf)
	buf.Reset()
	_, err = io.Copy(buf, resp.Body)
	resp.Body.Close()
	if err != nil {
		return &callError{code: CodeTransport}
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &callError{code: rawErrorCode(resp, buf.Bytes())}
}

func (c *rawCaller) close() { c.httpc.CloseIdleConnections() }

// rawErrorCode is the exception of an error response: its
// X-Amzn-ErrorType header, else its body's __type, without the namespace
// prefix ("com.amazonaws.kms#") or the ":url" suffix either may carry.
func rawErrorCode(resp *http.Response, body []byte) string {
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		var e struct {
			Type string `json:"__type"`
		}
		if json.Unmarshal(body, &e) == nil {
			code = e.Type
		}
	}
	code, _, _ = strings.Cut(code, ":")
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		return fmt.Sprintf("%s%d", CodeHTTPPrefix, resp.StatusCode)
	}
	return code
}
