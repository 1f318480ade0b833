// Package sigv4 verifies AWS Signature Version 4 on requests to the
// endpoint, as KMS and CloudHSM do, and maps every failure to the
// exception AWS answers with.
//
// Verification accepts exactly what aws-sdk-go-v2's aws/signer/v4
// produces: it rebuilds the request the client signed (method, path,
// query, and only the headers the client listed in SignedHeaders), signs
// that copy with the SDK signer using the caller's secret and the
// request's own time, and compares the two signatures in constant time.
//
// The requests every SDK sends to a JSON protocol service (POST /, no
// query string, ordinary header names) take a fast path instead
// (canonical.go): it writes the same canonical request into one reusable
// buffer and keeps the signing key derived per access key, day, region and
// service, about three times cheaper than re-signing. A differential test
// holds it to the SDK signer's output on thousands of generated requests;
// anything outside that shape is re-signed by the SDK signer.
//
// # Errors (all JSON 1.1 exceptions, see awsjson)
//
//   - no Authorization header: MissingAuthenticationTokenException, "Missing
//     Authentication Token", HTTP 403 (AWS's common-errors pages give 403
//     for MissingAuthenticationToken).
//   - an Authorization header that cannot be parsed (no Credential,
//     SignedHeaders or Signature; no X-Amz-Date; a credential that is not
//     five slash-separated parts): IncompleteSignatureException, HTTP 400.
//   - a scope naming another service, another date than X-Amz-Date, an
//     empty region or a terminator other than aws4_request; a request time
//     more than 15 minutes from now ("Signature expired: ..." or "Signature
//     not yet current: ..."); a signature that does not match:
//     InvalidSignatureException, HTTP 400.
//   - an access key id the endpoint does not know: UnrecognizedClientException,
//     "The security token included in the request is invalid.", HTTP 400 (as
//     JSON-protocol services answer it).
//
// X-Amz-Security-Token (temporary credentials) is accepted and not checked:
// when the client signed it, it is part of the rebuilt request like any
// other signed header.
//
// Limits of re-signing with the SDK signer: it always signs host and, for a
// non-empty body, content-length, and never signs Authorization, User-Agent,
// X-Amzn-Trace-Id, Expect or Transfer-Encoding. A client that signs one of
// those last five (no AWS SDK or the AWS CLI does) fails verification.
package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's X-Amz-Date may be from the endpoint's
// clock, either way, as AWS allows.
const MaxSkew = 15 * time.Minute

// DefaultAccount is the account of a credential that names none.
const DefaultAccount = "123456789012"

// timeFormat is X-Amz-Date's ISO 8601 basic format.
const timeFormat = "20060102T150405Z"

// Sentinel errors. Every error Verify returns wraps exactly one of them and
// an *awsjson.Error, the exception to send to the caller.
var (
	// ErrMissingAuthentication is returned when the request has no
	// Authorization header.
	ErrMissingAuthentication = errors.New("sigv4: no Authorization header")
	// ErrIncompleteSignature is returned when the Authorization header or
	// X-Amz-Date cannot be parsed.
	ErrIncompleteSignature = errors.New("sigv4: malformed signature")
	// ErrWrongScope is returned when the credential scope does not fit the
	// request: another service, another date, no region, a bad terminator.
	ErrWrongScope = errors.New("sigv4: credential scope does not match the request")
	// ErrExpired is returned when the request time is more than MaxSkew
	// away from now.
	ErrExpired = errors.New("sigv4: request time out of range")
	// ErrUnknownAccessKey is returned for an access key id that is not
	// configured.
	ErrUnknownAccessKey = errors.New("sigv4: unknown access key")
	// ErrSignatureMismatch is returned when the signature is not the one the
	// secret key produces.
	ErrSignatureMismatch = errors.New("sigv4: signature does not match")
)

// AWS's messages.
const (
	msgMissingToken      = "Missing Authentication Token"
	msgUnrecognized      = "The security token included in the request is invalid."
	msgSignatureMismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// authError is an authentication failure: a sentinel for callers and logs,
// and the AWS exception for the response.
type authError struct {
	sentinel error
	aws      *awsjson.Error
}

func (e *authError) Error() string   { return e.sentinel.Error() + ": " + e.aws.Message }
func (e *authError) Unwrap() []error { return []error{e.sentinel, e.aws} }

func fail(sentinel error, typ string, status int, format string, args ...any) error {
	return &authError{sentinel: sentinel, aws: awsjson.Errorf(typ, status, format, args...)}
}

func incomplete(format string, args ...any) error {
	return fail(ErrIncompleteSignature, "IncompleteSignatureException", http.StatusBadRequest, format, args...)
}

func invalid(sentinel error, format string, args ...any) error {
	return fail(sentinel, "InvalidSignatureException", http.StatusBadRequest, format, args...)
}

// Credential is one access key the endpoint accepts and the IAM identity it
// stands for.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
	// Account is the 12-digit account id; empty means the Verifier's default.
	Account string
	// UserName names an IAM user; empty means the account's root.
	UserName string
}

// Verifier checks SigV4 signatures. It is safe for concurrent use.
type Verifier struct {
	creds          map[string]Credential
	anyCredentials bool
	now            func() time.Time
	account        string
	// signer re-signs the requests the fast path does not take; it caches
	// the keys it derives per secret, day, region and service.
	signer *v4.Signer
	// keys caches the fast path's derived keys.
	keys keyCache
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithDefaultAccount sets the account of credentials that name none, and of
// every caller with anyCredentials. The default is DefaultAccount.
func WithDefaultAccount(account string) Option {
	return func(v *Verifier) { v.account = account }
}

// New returns a Verifier that accepts creds. With anyCredentials it accepts
// any well-formed Authorization header without checking the key, the scope,
// the time or the signature. now is the clock requests are checked against
// (nil means time.Now); it is real time, not the simulated KMS clock,
// because clients sign with real time.
func New(creds []Credential, anyCredentials bool, now func() time.Time, opts ...Option) *Verifier {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		creds:          make(map[string]Credential, len(creds)),
		anyCredentials: anyCredentials,
		now:            now,
		account:        DefaultAccount,
		signer:         v4.NewSigner(),
	}
	for _, o := range opts {
		o(v)
	}
	for _, c := range creds {
		v.creds[c.AccessKeyID] = c
	}
	return v
}

// authorization is a parsed Authorization header.
type authorization struct {
	accessKeyID string
	date        string // the scope's yyyymmdd
	region      string
	service     string
	terminator  string
	// signedHeaders is SignedHeaders as sent: names separated by ';'.
	signedHeaders string
	signature     string
}

// Verify checks r's signature for service ("kms" or "cloudhsm"); body is
// r's body, already read. It returns the caller and the region of the
// credential scope. Its errors wrap a sentinel and the *awsjson.Error to
// answer with; they never contain a secret.
func (v *Verifier) Verify(r *http.Request, body []byte, service string) (awsjson.Principal, string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 || strings.TrimSpace(values[0]) == "" {
		return awsjson.Principal{}, "", fail(ErrMissingAuthentication, "MissingAuthenticationTokenException", http.StatusForbidden, msgMissingToken)
	}
	if len(values) > 1 {
		return awsjson.Principal{}, "", incomplete("Only one Authorization header is allowed.")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	auth, err := parseAuthorization(values[0], amzDate != "")
	if err != nil {
		return awsjson.Principal{}, "", err
	}
	signedAt, err := time.Parse(timeFormat, amzDate)
	if err != nil {
		return awsjson.Principal{}, "", incomplete("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", amzDate)
	}
	if v.anyCredentials {
		return v.principal(Credential{AccessKeyID: auth.accessKeyID}), auth.region, nil
	}
	if err := checkScope(auth, amzDate, service); err != nil {
		return awsjson.Principal{}, "", err
	}
	if err := v.checkTime(signedAt); err != nil {
		return awsjson.Principal{}, "", err
	}
	cred, ok := v.creds[auth.accessKeyID]
	if !ok {
		return awsjson.Principal{}, "", fail(ErrUnknownAccessKey, "UnrecognizedClientException", http.StatusBadRequest, msgUnrecognized)
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	want, ok := v.fastSignature(r, len(body), payloadHash, auth, cred, signedAt)
	if !ok {
		if want, err = v.resign(r, body, payloadHash, auth, cred, signedAt); err != nil {
			return awsjson.Principal{}, "", err
		}
	}
	if !hmac.Equal([]byte(want), []byte(auth.signature)) {
		return awsjson.Principal{}, "", invalid(ErrSignatureMismatch, msgSignatureMismatch)
	}
	return v.principal(cred), auth.region, nil
}

// parseAuthorization parses "AWS4-HMAC-SHA256 Credential=AKID/20240101/
// us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date,
// Signature=hex". Missing parts are reported together, as AWS does.
func parseAuthorization(header string, haveDate bool) (authorization, error) {
	algorithm, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	var credential, signedHeaders, signature string
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch val = strings.TrimSpace(val); k {
		case "Credential":
			credential = val
		case "Signature":
			signature = val
		case "SignedHeaders":
			signedHeaders = val
		}
	}
	var missing []string
	for _, p := range [...]struct{ name, value string }{{"Credential", credential}, {"Signature", signature}, {"SignedHeaders", signedHeaders}} {
		if p.value == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", p.name))
		}
	}
	if !haveDate {
		missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if len(missing) > 0 {
		return authorization{}, incomplete("%s Authorization=%s", strings.Join(missing, " "), header)
	}
	if algorithm != Algorithm {
		return authorization{}, incomplete("Unsupported AWS 'algorithm': '%s'", algorithm)
	}
	if strings.Count(credential, "/") != 4 {
		return authorization{}, incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", credential)
	}
	var a authorization
	a.accessKeyID, rest, _ = strings.Cut(credential, "/")
	a.date, rest, _ = strings.Cut(rest, "/")
	a.region, rest, _ = strings.Cut(rest, "/")
	a.service, a.terminator, _ = strings.Cut(rest, "/")
	a.signedHeaders, a.signature = signedHeaders, signature
	return a, nil
}

// checkScope checks the credential scope against the request.
func checkScope(auth authorization, amzDate, service string) error {
	switch {
	case auth.terminator != "aws4_request":
		return invalid(ErrWrongScope, "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", auth.terminator)
	case auth.service != service:
		return invalid(ErrWrongScope, "Credential should be scoped to correct service: '%s'. ", service)
	case auth.region == "":
		return invalid(ErrWrongScope, "Credential should be scoped to a valid region, not '%s'. ", auth.region)
	case auth.date != amzDate[:8]:
		return invalid(ErrWrongScope, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", auth.date, amzDate[:8], amzDate)
	}
	return nil
}

// checkTime rejects a request signed more than MaxSkew from now, with
// AWS's wording.
func (v *Verifier) checkTime(signedAt time.Time) error {
	now := v.now().UTC()
	switch {
	case signedAt.Before(now.Add(-MaxSkew)):
		return invalid(ErrExpired, "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			signedAt.Format(timeFormat), now.Add(-MaxSkew).Format(timeFormat), now.Format(timeFormat))
	case signedAt.After(now.Add(MaxSkew)):
		return invalid(ErrExpired, "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			signedAt.Format(timeFormat), now.Add(MaxSkew).Format(timeFormat), now.Format(timeFormat))
	}
	return nil
}

// resign signs a copy of r that carries only the headers the client signed,
// with cred's secret at the client's time, and returns the copy's signature.
func (v *Verifier) resign(r *http.Request, body []byte, payloadHash string, auth authorization, cred Credential, signedAt time.Time) (string, error) {
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	clone := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for _, name := range strings.Split(auth.signedHeaders, ";") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "host":
			// The signer always signs the request's Host.
		case "content-length":
			// The signer signs the length field, not the header.
			clone.ContentLength = int64(len(body))
		default:
			if vals := r.Header.Values(name); len(vals) > 0 {
				clone.Header[textproto.CanonicalMIMEHeaderKey(name)] = slices.Clone(vals)
			}
		}
	}
	creds := aws.Credentials{AccessKeyID: cred.AccessKeyID, SecretAccessKey: cred.SecretAccessKey}
	if err := v.signer.SignHTTP(context.Background(), creds, clone, payloadHash, auth.service, auth.region, signedAt); err != nil {
		return "", fmt.Errorf("sigv4: re-sign: %w", err)
	}
	ours, err := parseAuthorization(clone.Header.Get("Authorization"), true)
	if err != nil {
		return "", fmt.Errorf("sigv4: re-sign produced an unreadable header: %w", err)
	}
	return ours.signature, nil
}

// principal is the caller a credential stands for.
func (v *Verifier) principal(c Credential) awsjson.Principal {
	account := c.Account
	if account == "" {
		account = v.account
	}
	arn := "arn:aws:iam::" + account + ":root"
	if c.UserName != "" {
		arn = "arn:aws:iam::" + account + ":user/" + c.UserName
	}
	return awsjson.Principal{AccessKeyID: c.AccessKeyID, Account: account, ARN: arn}
}
