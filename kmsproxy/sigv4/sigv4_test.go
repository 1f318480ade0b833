package sigv4_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

const (
	aliceKey    = "AKIAALICE0000000000A"
	aliceSecret = "alice-secret-0000000000000000000000000000"
	rootKey     = "AKIAROOT00000000000R"
	rootSecret  = "root-secret-00000000000000000000000000000"
	body        = `{"Limit":10}`
)

var now = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func verifier(anyCredentials bool) *sigv4.Verifier {
	return sigv4.New([]sigv4.Credential{
		{AccessKeyID: aliceKey, SecretAccessKey: aliceSecret, Account: "111122223333", UserName: "alice"},
		{AccessKeyID: rootKey, SecretAccessKey: rootSecret},
	}, anyCredentials, func() time.Time { return now }, sigv4.WithDefaultAccount("444455556666"))
}

// signed is a request as the server receives it, signed by the SDK signer.
type signed struct {
	key, secret, token string
	service, region    string
	at                 time.Time
	body               string
}

func (s signed) request(t *testing.T) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", strings.NewReader(s.body))
	r.Header.Set("Content-Type", awsjson.ContentType)
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	r.ContentLength = int64(len(s.body))
	sum := sha256.Sum256([]byte(s.body))
	creds := aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret, SessionToken: s.token}
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), s.service, s.region, s.at))
	return r
}

func good() signed {
	return signed{key: aliceKey, secret: aliceSecret, service: "kms", region: "us-west-2", at: now, body: body}
}

// requireAWSError checks err wraps sentinel and is the AWS exception typ
// with status, whose message starts with msg.
func requireAWSError(t *testing.T, err error, sentinel error, typ string, status int, msg string) {
	t.Helper()
	require.ErrorIs(t, err, sentinel)
	var ae *awsjson.Error
	require.True(t, errors.As(err, &ae), "not an *awsjson.Error: %v", err)
	require.Equal(t, typ, ae.Type)
	require.Equal(t, status, ae.Status)
	require.True(t, strings.HasPrefix(ae.Message, msg), "message %q does not start with %q", ae.Message, msg)
}

func TestVerifyAccepts(t *testing.T) {
	tests := []struct {
		name    string
		req     func(t *testing.T) *http.Request
		want    awsjson.Principal
		region  string
		service string
	}{
		{
			name: "IAM user",
			req:  good().request,
			want: awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
		{
			name: "root of the default account",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.key, s.secret = rootKey, rootSecret
				return s.request(t)
			},
			want: awsjson.Principal{AccessKeyID: rootKey, Account: "444455556666", ARN: "arn:aws:iam::444455556666:root"},
		},
		{
			name: "signed 14 minutes ago",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.at = now.Add(-14 * time.Minute)
				return s.request(t)
			},
			want: awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
		{
			name: "signed 14 minutes ahead",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.at = now.Add(14 * time.Minute)
				return s.request(t)
			},
			want: awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
		{
			name: "session token is signed and ignored",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.token = "FwoGZXIvYXdzEXAMPLETOKEN"
				r := s.request(t)
				require.NotEmpty(t, r.Header.Get("X-Amz-Security-Token"))
				return r
			},
			want: awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
		{
			name: "unsigned headers added after signing",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("User-Agent", "aws-cli/2.15")
				r.Header.Set("X-Forwarded-For", "10.1.2.3")
				return r
			},
			want: awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
		{
			name: "cloudhsm",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.service = "cloudhsm"
				return s.request(t)
			},
			service: "cloudhsm",
			want:    awsjson.Principal{AccessKeyID: aliceKey, Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service := tt.service
			if service == "" {
				service = "kms"
			}
			p, region, err := verifier(false).Verify(tt.req(t), []byte(body), service)
			require.NoError(t, err)
			require.Equal(t, tt.want, p)
			require.Equal(t, "us-west-2", region)
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	const mismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	tests := []struct {
		name     string
		req      func(t *testing.T) *http.Request
		body     string
		service  string
		sentinel error
		typ      string
		status   int
		msg      string
	}{
		{
			name: "no Authorization",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Del("Authorization")
				return r
			},
			sentinel: sigv4.ErrMissingAuthentication, typ: "MissingAuthenticationTokenException", status: http.StatusForbidden,
			msg: "Missing Authentication Token",
		},
		{
			name: "wrong secret",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.secret = "not-alice-secret"
				return s.request(t)
			},
			sentinel: sigv4.ErrSignatureMismatch, typ: "InvalidSignatureException", status: http.StatusBadRequest, msg: mismatch,
		},
		{
			name: "unknown access key",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.key = "AKIANOBODY0000000000"
				return s.request(t)
			},
			sentinel: sigv4.ErrUnknownAccessKey, typ: "UnrecognizedClientException", status: http.StatusBadRequest,
			msg: "The security token included in the request is invalid.",
		},
		{
			name: "body changed after signing",
			req:  good().request, body: `{"Limit":11}`,
			sentinel: sigv4.ErrSignatureMismatch, typ: "InvalidSignatureException", status: http.StatusBadRequest, msg: mismatch,
		},
		{
			name: "signed header changed after signing",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("X-Amz-Target", "TrentService.ScheduleKeyDeletion")
				return r
			},
			sentinel: sigv4.ErrSignatureMismatch, typ: "InvalidSignatureException", status: http.StatusBadRequest, msg: mismatch,
		},
		{
			name: "signed 20 minutes ago",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.at = now.Add(-20 * time.Minute)
				return s.request(t)
			},
			sentinel: sigv4.ErrExpired, typ: "InvalidSignatureException", status: http.StatusBadRequest,
			msg: "Signature expired: 20250314T144926Z is now earlier than 20250314T145426Z (20250314T150926Z - 15 min.)",
		},
		{
			name: "signed 20 minutes ahead",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.at = now.Add(20 * time.Minute)
				return s.request(t)
			},
			sentinel: sigv4.ErrExpired, typ: "InvalidSignatureException", status: http.StatusBadRequest,
			msg: "Signature not yet current: 20250314T152926Z is still later than 20250314T152426Z (20250314T150926Z + 15 min.)",
		},
		{
			name: "scoped to another service",
			req: func(t *testing.T) *http.Request {
				s := good()
				s.service = "cloudhsm"
				return s.request(t)
			},
			sentinel: sigv4.ErrWrongScope, typ: "InvalidSignatureException", status: http.StatusBadRequest,
			msg: "Credential should be scoped to correct service: 'kms'. ",
		},
		{
			name: "scope date is not X-Amz-Date's",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20250314/", "/20250313/", 1))
				return r
			},
			sentinel: sigv4.ErrWrongScope, typ: "InvalidSignatureException", status: http.StatusBadRequest,
			msg: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20250313' != '20250314', from '20250314T150926Z'.",
		},
		{
			name: "bad terminator",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/aws4_request", "/aws5_request", 1))
				return r
			},
			sentinel: sigv4.ErrWrongScope, typ: "InvalidSignatureException", status: http.StatusBadRequest,
			msg: "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'.",
		},
		{
			name: "no X-Amz-Date",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Del("X-Amz-Date")
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
		},
		{
			name: "unparsable X-Amz-Date",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("X-Amz-Date", "2025-03-14T15:09:26Z")
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Date must be in ISO-8601 'basic format'. Got '2025-03-14T15:09:26Z'.",
		},
		{
			name: "no Signature or SignedHeaders",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+aliceKey+"/20250314/us-west-2/kms/aws4_request")
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
		},
		{
			name: "another scheme",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Authorization header requires 'Credential' parameter.",
		},
		{
			name: "credential of four parts",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/kms/aws4_request", "/kms", 1))
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + aliceKey + "/20250314/us-west-2/kms'",
		},
		{
			name: "unsupported algorithm",
			req: func(t *testing.T) *http.Request {
				r := good().request(t)
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
				return r
			},
			sentinel: sigv4.ErrIncompleteSignature, typ: "IncompleteSignatureException", status: http.StatusBadRequest,
			msg: "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, service := body, "kms"
			if tt.body != "" {
				b = tt.body
			}
			if tt.service != "" {
				service = tt.service
			}
			_, _, err := verifier(false).Verify(tt.req(t), []byte(b), service)
			requireAWSError(t, err, tt.sentinel, tt.typ, tt.status, tt.msg)
			require.NotContains(t, err.Error(), aliceSecret)
		})
	}
}

func TestVerifyAnyCredentials(t *testing.T) {
	t.Run("wrong secret, unknown key, old and foreign scope are accepted", func(t *testing.T) {
		s := good()
		s.key, s.secret, s.service, s.at = "AKIAANYONE0000000000", "whatever", "cloudhsm", now.Add(-time.Hour)
		p, region, err := verifier(true).Verify(s.request(t), []byte(body), "kms")
		require.NoError(t, err)
		require.Equal(t, awsjson.Principal{AccessKeyID: "AKIAANYONE0000000000", Account: "444455556666", ARN: "arn:aws:iam::444455556666:root"}, p)
		require.Equal(t, "us-west-2", region)
	})
	t.Run("a missing header is still rejected", func(t *testing.T) {
		r := good().request(t)
		r.Header.Del("Authorization")
		_, _, err := verifier(true).Verify(r, []byte(body), "kms")
		requireAWSError(t, err, sigv4.ErrMissingAuthentication, "MissingAuthenticationTokenException", http.StatusForbidden, "Missing Authentication Token")
	})
	t.Run("a malformed header is still rejected", func(t *testing.T) {
		r := good().request(t)
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		_, _, err := verifier(true).Verify(r, []byte(body), "kms")
		requireAWSError(t, err, sigv4.ErrIncompleteSignature, "IncompleteSignatureException", http.StatusBadRequest, "Authorization header requires 'Signature' parameter.")
	})
}

func TestVerifyConcurrent(t *testing.T) {
	v := verifier(false)
	r := good().request(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, _, err := v.Verify(r.Clone(context.Background()), []byte(body), "kms")
			errs <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
}
