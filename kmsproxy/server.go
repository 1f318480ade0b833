package kmsproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

// Paths of the admin endpoints. They need no signature and answer only
// loopback callers.
const (
	PathReset        = "/moto-api/reset"
	PathClock        = "/hsmsim/clock"
	PathClockAdvance = "/hsmsim/clock/advance"
)

// Errors of the Server's lifecycle.
var (
	// ErrStarted is returned by Start on a Server already started.
	ErrStarted = errors.New("kmsproxy: server already started")
	// ErrClosed is returned by Start on a Server already closed.
	ErrClosed = errors.New("kmsproxy: server closed")
)

// readHeaderTimeout bounds how long a client may take to send its headers.
const readHeaderTimeout = 10 * time.Second

// Server is the endpoint: one HTTP port that serves every configured
// Service by X-Amz-Target, after SigV4 verification, and the admin
// endpoints.
type Server struct {
	cfg      Config
	log      hclog.Logger
	verifier *sigv4.Verifier
	// services maps a target prefix to its service's Mux.
	services map[string]*awsjson.Mux
	handler  http.Handler

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	served   chan struct{} // closed when Serve returns
	closed   bool
	serveErr error
}

// New validates cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.Named("endpoint"),
		verifier: sigv4.New(cfg.Credentials, cfg.AnyCredentials, time.Now, sigv4.WithDefaultAccount(cfg.Account)),
		services: map[string]*awsjson.Mux{},
	}
	for _, svc := range cfg.Services {
		mux := svc.Mux()
		s.services[mux.Service().TargetPrefix] = mux
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler is the endpoint's HTTP handler, for tests and for embedding the
// endpoint in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Clock is the simulated clock the admin endpoints move.
func (s *Server) Clock() *clock.Clock { return s.cfg.Clock }

// Start listens (on Config.Listener, or Config.Addr) and serves in the
// background until Close. It returns once the port is open.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.srv != nil:
		return ErrStarted
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("kmsproxy: listen: %w", err)
		}
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	s.served = make(chan struct{})
	go func(srv *http.Server, served chan struct{}) {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve failed", "error", err)
			s.mu.Lock()
			s.serveErr = err
			s.mu.Unlock()
		}
	}(s.srv, s.served)
	s.log.Info("listening", "addr", ln.Addr().String(), "services", len(s.services), "any_credentials", s.cfg.AnyCredentials)
	return nil
}

// Addr is the address the Server listens on (the configured one before
// Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Addr
}

// Close stops accepting requests and waits for those in flight to finish;
// when ctx ends first it cuts the remaining connections and returns ctx's
// error. Closing a Server that never started, or closing twice, is a no-op.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		if s.cfg.Listener != nil {
			s.cfg.Listener.Close()
		}
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("kmsproxy: graceful shutdown cut short: %w", err)
	}
	<-served
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.serveErr)
}

// exchange is one request as the access log sees it.
type exchange struct {
	http.ResponseWriter
	status    int
	op        string
	requestID string
}

// opName is the operation for the logs: the X-Amz-Target of an API call,
// else the method and path.
func (e *exchange) opName(r *http.Request) string {
	if e.op != "" {
		return e.op
	}
	return r.Method + " " + r.URL.Path
}

func (e *exchange) WriteHeader(code int) {
	if e.status == 0 {
		e.status = code
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exchange) Write(b []byte) (int, error) {
	if e.status == 0 {
		e.status = http.StatusOK
	}
	return e.ResponseWriter.Write(b)
}

// serveHTTP routes one request: the admin endpoints by path, the AWS APIs
// by X-Amz-Target on POST /, and anything else to a JSON
// UnknownOperationException (never an HTML page).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{ResponseWriter: w, requestID: awsjson.NewRequestID()}
	if s.log.IsDebug() {
		defer func() {
			s.log.Debug("request", "op", ex.opName(r), "status", ex.status, "duration", time.Since(start), "request_id", ex.requestID)
		}()
	}
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		s.serveAPI(ex, r)
	case r.URL.Path == PathReset && r.Method == http.MethodPost:
		s.admin(ex, r, s.reset)
	case r.URL.Path == PathClockAdvance && r.Method == http.MethodPost:
		s.admin(ex, r, s.advanceClock)
	case r.URL.Path == PathClock && r.Method == http.MethodGet:
		s.admin(ex, r, s.readClock)
	default:
		awsjson.WriteError(ex, awsjson.KMS, ex.requestID, awsjson.Errorf("UnknownOperationException", http.StatusBadRequest,
			"%s %s is not an operation of this endpoint: AWS APIs are POST / with an X-Amz-Target header", r.Method, r.URL.Path))
	}
}

// serveAPI serves POST /: it finds the service by X-Amz-Target, reads the
// body, verifies the signature for that service and runs the operation.
func (s *Server) serveAPI(ex *exchange, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	ex.op = target
	prefix, op, ok := strings.Cut(target, ".")
	mux := s.services[prefix]
	if !ok || op == "" || mux == nil {
		msg := "Missing X-Amz-Target header"
		if target != "" {
			msg = fmt.Sprintf("The target %q names no operation of a service served here", target)
		}
		awsjson.WriteError(ex, awsjson.KMS, ex.requestID, awsjson.Errorf("UnknownOperationException", http.StatusBadRequest, "%s", msg))
		return
	}
	svc := mux.Service()
	body, err := awsjson.ReadRequestBody(r)
	if err != nil {
		awsjson.WriteError(ex, svc, ex.requestID, err)
		return
	}
	principal, region, err := s.verifier.Verify(r, body, svc.SigningName)
	if err != nil {
		// Only the exception's type: its message may echo the Authorization header.
		exception := "internal"
		var ae *awsjson.Error
		if errors.As(err, &ae) {
			exception = ae.Type
		}
		s.log.Debug("authentication failed", "op", target, "request_id", ex.requestID, "exception", exception)
		awsjson.WriteError(ex, svc, ex.requestID, err)
		return
	}
	req := &awsjson.Request{Operation: op, Body: body, Region: region, Principal: principal, RequestID: ex.requestID}
	s.serveOperation(r.Context(), ex, mux, req)
}

// serveOperation runs one operation; a panic becomes the service's internal
// error instead of a dropped connection.
func (s *Server) serveOperation(ctx context.Context, ex *exchange, mux *awsjson.Mux, req *awsjson.Request) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.log.Error("operation panicked", "op", ex.op, "request_id", ex.requestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if ex.status == 0 {
			awsjson.WriteError(ex, mux.Service(), ex.requestID, fmt.Errorf("panic in %s", req.Operation))
		}
	}()
	mux.Serve(ctx, ex, req)
}

// adminError is a JSON error of an admin endpoint.
func adminError(status int, typ, format string, args ...any) error {
	return awsjson.Errorf(typ, status, format, args...)
}

// admin runs an admin endpoint for a loopback caller and writes its JSON
// answer.
func (s *Server) admin(ex *exchange, r *http.Request, h func(ctx context.Context, body []byte) (any, error)) {
	if !fromLoopback(r) {
		awsjson.WriteError(ex, awsjson.KMS, ex.requestID, adminError(http.StatusForbidden, "AccessDeniedException", "The admin endpoints only answer loopback callers"))
		return
	}
	body, err := awsjson.ReadRequestBody(r)
	if err == nil {
		var out any
		if out, err = h(r.Context(), body); err == nil {
			awsjson.WriteJSON(ex, ex.requestID, out)
			return
		}
	}
	var ae *awsjson.Error
	if !errors.As(err, &ae) {
		s.log.Error("admin request failed", "op", ex.opName(r), "request_id", ex.requestID, "error", err)
	}
	awsjson.WriteError(ex, awsjson.KMS, ex.requestID, err)
}

// fromLoopback reports whether r came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reset clears every service's state.
func (s *Server) reset(ctx context.Context, _ []byte) (any, error) {
	var errs []error
	for _, svc := range s.cfg.Services {
		if err := svc.Reset(ctx); err != nil {
			errs = append(errs, fmt.Errorf("reset %s: %w", svc.Mux().Service().TargetPrefix, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.log.Info("state reset")
	return map[string]bool{"reset": true}, nil
}

// clockAdvance is the body of POST /hsmsim/clock/advance.
type clockAdvance struct {
	// Duration is a Go duration or whole days: "720h", "30d", "1d12h".
	Duration string `json:"duration"`
}

// clockState is the answer of the clock endpoints.
type clockState struct {
	Now           awsjson.Timestamp `json:"now"`
	OffsetSeconds *float64          `json:"offset_seconds,omitempty"`
}

// advanceClock moves the simulated clock forward.
func (s *Server) advanceClock(_ context.Context, body []byte) (any, error) {
	var in clockAdvance
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, adminError(http.StatusBadRequest, "SerializationException", `The body must be {"duration": "30d"}`)
	}
	d, err := clock.ParseDuration(in.Duration)
	if err != nil || d <= 0 {
		return nil, adminError(http.StatusBadRequest, "ValidationException", "duration %q must be a positive Go duration or a number of days, like 30d or 36h", in.Duration)
	}
	now, err := s.cfg.Clock.Advance(d)
	if err != nil {
		return nil, err
	}
	s.log.Info("clock advanced", "by", d.String(), "now", now.Format(time.RFC3339))
	return clockState{Now: awsjson.Timestamp(now)}, nil
}

// readClock reports the simulated time and its offset from real time.
func (s *Server) readClock(context.Context, []byte) (any, error) {
	off := s.cfg.Clock.Offset().Seconds()
	return clockState{Now: awsjson.Timestamp(s.cfg.Clock.Now()), OffsetSeconds: &off}, nil
}
