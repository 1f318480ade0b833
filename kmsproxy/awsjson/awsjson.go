// Package awsjson is the AWS JSON 1.1 protocol as KMS (TrentService) and
// CloudHSM v2 (BaldrApiService) speak it: operations routed by
// X-Amz-Target, strict request decoding, AWS's validation messages, error
// bodies {"__type": ..., "message": ...} with AWS's HTTP status codes, and
// the x-amzn-RequestId header. It knows nothing of either service's
// operations.
package awsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ContentType is the JSON 1.1 content type.
const ContentType = "application/x-amz-json-1.1"

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Service says which service's conventions apply.
type Service struct {
	// TargetPrefix is the X-Amz-Target prefix, "TrentService" or "BaldrApiService".
	TargetPrefix string
	// SigningName is the SigV4 service name, "kms" or "cloudhsm".
	SigningName string
	// CapitalMessage spells the error member "Message" (CloudHSM) rather than "message" (KMS).
	CapitalMessage bool
	// InternalError is the exception for unexpected failures.
	InternalError string
}

// The two services.
var (
	KMS      = Service{TargetPrefix: "TrentService", SigningName: "kms", InternalError: "KMSInternalException"}
	CloudHSM = Service{TargetPrefix: "BaldrApiService", SigningName: "cloudhsm", CapitalMessage: true, InternalError: "CloudHsmInternalFailureException"}
)

// Error is an AWS exception: its __type, its message and its HTTP status.
type Error struct {
	Type    string
	Message string
	Status  int
}

// Error implements error.
func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Errorf returns an Error of type typ with status and a formatted message.
func Errorf(typ string, status int, format string, args ...any) *Error {
	return &Error{Type: typ, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Common errors of the protocol itself.
func serialization(format string, args ...any) *Error {
	return Errorf("SerializationException", http.StatusBadRequest, format, args...)
}

// Principal is the authenticated caller.
type Principal struct {
	AccessKeyID string
	Account     string
	// ARN is the caller's ARN, arn:aws:iam::<account>:user/<name> or :root.
	ARN string
}

// Request is one decoded call.
type Request struct {
	// Operation is the operation name, e.g. "Encrypt".
	Operation string
	// Body is the raw JSON body.
	Body []byte
	// Region is the region of the request's credential scope.
	Region    string
	Principal Principal
	RequestID string
}

// Decode decodes the request body into v strictly: malformed JSON, a value
// of the wrong type or an unknown member is a SerializationException, as
// AWS's JSON protocol answers. An empty body decodes as {}.
func (r *Request) Decode(v any) error {
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return serialization("Unexpected value type for member %s: expected %s", typeErr.Field, jsonKind(typeErr.Type.String()))
		case errors.As(err, &syntaxErr):
			return serialization("Request body is not valid JSON")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return serialization("Unexpected member in request: %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case strings.Contains(err.Error(), "illegal base64"):
			return serialization("Blob member is not valid base64")
		}
		return serialization("Cannot read the request body: %v", err)
	}
	if dec.More() {
		return serialization("Request body has data after its JSON object")
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "string"
	case strings.HasPrefix(goType, "[]uint8"):
		return "blob (base64 string)"
	case strings.HasPrefix(goType, "[]"):
		return "list"
	case strings.HasPrefix(goType, "map"):
		return "map"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "number"
	case goType == "bool":
		return "boolean"
	}
	return "object"
}

// Handler serves one operation and returns its output (encoded as JSON;
// nil means an empty body) or an error (an *Error, or anything else, which
// becomes the service's internal error).
type Handler func(ctx context.Context, r *Request) (any, error)

// Mux routes one service's operations.
type Mux struct {
	svc Service
	ops map[string]Handler
}

// NewMux returns an empty Mux for svc.
func NewMux(svc Service) *Mux { return &Mux{svc: svc, ops: map[string]Handler{}} }

// Handle registers op.
func (m *Mux) Handle(op string, h Handler) { m.ops[op] = h }

// Service is the Mux's service.
func (m *Mux) Service() Service { return m.svc }

// Operations lists the registered operations.
func (m *Mux) Operations() []string {
	out := make([]string, 0, len(m.ops))
	for op := range m.ops {
		out = append(out, op)
	}
	return out
}

// Serve runs the operation named by r and writes the response.
func (m *Mux) Serve(ctx context.Context, w http.ResponseWriter, r *Request) {
	h, ok := m.ops[r.Operation]
	if !ok {
		WriteError(w, m.svc, r.RequestID, Errorf("UnknownOperationException", http.StatusBadRequest,
			"The operation %s is not supported by %s", r.Operation, m.svc.TargetPrefix))
		return
	}
	out, err := h(ctx, r)
	if err != nil {
		WriteError(w, m.svc, r.RequestID, err)
		return
	}
	WriteJSON(w, r.RequestID, out)
}

// NewRequestID returns a request id in AWS's UUID form.
func NewRequestID() string { return uuid.NewString() }

// Response header names, in canonical form so that setting them does not
// canonicalize them again on every response.
const (
	headerContentType = "Content-Type"
	headerRequestID   = "X-Amzn-Requestid" // x-amzn-RequestId
	headerErrorType   = "X-Amzn-Errortype" // x-amzn-ErrorType
)

// contentType is the Content-Type header's value; header maps share it
// and never modify it.
var contentType = []string{ContentType}

// WriteJSON writes a 200 response with v as JSON (an empty body for nil).
func WriteJSON(w http.ResponseWriter, requestID string, v any) {
	h := w.Header()
	h[headerContentType] = contentType
	h[headerRequestID] = []string{requestID}
	if v == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, KMS, requestID, fmt.Errorf("encode response: %w", err))
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// WriteError writes err as svc's error body. An error that is not an
// *Error becomes the service's internal error with a generic message:
// internal details never reach the caller.
func WriteError(w http.ResponseWriter, svc Service, requestID string, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Type: svc.InternalError, Status: http.StatusInternalServerError, Message: "An internal error occurred. Try again."}
	}
	member := "message"
	if svc.CapitalMessage {
		member = "Message"
	}
	b, _ := json.Marshal(map[string]string{"__type": e.Type, member: e.Message})
	h := w.Header()
	h[headerContentType] = contentType
	h[headerRequestID] = []string{requestID}
	h[headerErrorType] = []string{e.Type}
	w.WriteHeader(e.Status)
	w.Write(b)
}

// ReadBody reads at most MaxBodyBytes of a request body.
func ReadBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, serialization("Cannot read the request body")
	}
	if len(b) > MaxBodyBytes {
		return nil, tooLarge()
	}
	return b, nil
}

// ReadRequestBody reads r's body, at most MaxBodyBytes, into a buffer of
// the size its Content-Length announces (ReadBody's growing buffer when
// the length is unknown).
func ReadRequestBody(r *http.Request) ([]byte, error) {
	n := r.ContentLength
	switch {
	case n < 0:
		return ReadBody(r.Body)
	case n > MaxBodyBytes:
		return nil, tooLarge()
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return nil, serialization("Cannot read the request body")
	}
	// net/http stops a body at its Content-Length; another reader may not.
	var extra [1]byte
	if m, _ := r.Body.Read(extra[:]); m > 0 {
		rest, err := ReadBody(io.MultiReader(bytes.NewReader(b), bytes.NewReader(extra[:m]), r.Body))
		if err != nil {
			return nil, err
		}
		return rest, nil
	}
	return b, nil
}

func tooLarge() *Error {
	return Errorf("RequestEntityTooLargeException", http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes", MaxBodyBytes)
}

// Timestamp is a time that encodes as AWS JSON does: epoch seconds with a
// fraction.
type Timestamp time.Time

// MarshalJSON encodes seconds since the epoch, millisecond precision.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(fmt.Sprintf("%.3f", float64(ms)/1000)), nil
}

// UnmarshalJSON decodes epoch seconds (a number).
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	sec, frac := math.Modf(f)
	*t = Timestamp(time.Unix(int64(sec), int64(frac*1e9)).UTC())
	return nil
}

// TimeOf returns a *Timestamp for t, or nil for the zero time.
func TimeOf(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	ts := Timestamp(t)
	return &ts
}
