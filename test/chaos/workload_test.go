package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	// opTimeout is a workload operation's budget, retries included.
	opTimeout = 10 * time.Second
	// retryPause separates a worker's retries of one operation.
	retryPause = 50 * time.Millisecond
	// metadataRequestID is node.MetadataRequestID, the wire contract of
	// exactly-once writes: a worker sets it so that its own retries of a
	// write, beyond the client's, still take effect once.
	metadataRequestID = "x-hsm-request-id"
	// recentLabels is how many of the latest labels reads pick from, so
	// that reads race with the creates and deletes of the same keys.
	recentLabels = 64
)

// recorder keeps the history of the key database workload. Times are
// nanoseconds since start on the monotonic clock.
type recorder struct {
	start time.Time
	procs atomic.Int64

	mu  sync.Mutex
	ops []porcupine.Operation
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

// sibling returns a new, empty recorder on r's clock: another history of
// the same run, whose times compare with r's.
func (r *recorder) sibling() *recorder { return &recorder{start: r.start} }

// now returns the time since the start of the run.
func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// process returns a new process id. A worker takes a new one after an
// operation whose outcome is unknown: that operation stays open until the
// end of time, and a process runs one operation at a time (as in Jepsen).
func (r *recorder) process() int { return int(r.procs.Add(1) - 1) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// labelState is what the workload knows about a label, for the durability
// check.
type labelState struct {
	label string
	// handle is the label's key, 0 while unknown.
	handle uint64
	// acked says the create was acknowledged; seen that a read saw the
	// key. Either means the key was committed.
	acked, seen bool
	// deleting says a delete was sent; gone that one was answered OK or
	// NotFound: the key must not exist after heal.
	deleting, gone bool
}

// registry holds every label of the run.
type registry struct {
	mu     sync.Mutex
	order  []*labelState
	labels map[string]*labelState
}

func newRegistry() *registry { return &registry{labels: map[string]*labelState{}} }

func (g *registry) add(label string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &labelState{label: label}
	g.order = append(g.order, s)
	g.labels[label] = s
}

func (g *registry) update(label string, f func(*labelState)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g.labels[label])
}

// pickRecent returns one of the latest labels, "" when there is none.
func (g *registry) pickRecent(rng *mrand.Rand) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.order) == 0 {
		return ""
	}
	n := min(len(g.order), recentLabels)
	return g.order[len(g.order)-1-rng.IntN(n)].label
}

// pickDeletable marks and returns a label with a known key that no delete
// has been sent for, preferring recent ones; "" when there is none.
func (g *registry) pickDeletable(rng *mrand.Rand) (string, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var cands []*labelState
	for i := len(g.order) - 1; i >= 0 && len(cands) < recentLabels; i-- {
		if s := g.order[i]; s.handle != 0 && !s.deleting {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		return "", 0
	}
	s := cands[rng.IntN(len(cands))]
	s.deleting = true
	return s.label, s.handle
}

func (g *registry) snapshot() []labelState {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]labelState, len(g.order))
	for i, s := range g.order {
		out[i] = *s
	}
	return out
}

// sealed is a ciphertext a client was given, with its plaintext.
type sealed struct {
	handle uint64
	pt, ct []byte
}

// outcome classifies a workload call's error.
type outcome int

const (
	outOK outcome = iota
	// outNotFound is a definite NotFound.
	outNotFound
	// outUnknown: the call may or may not have taken effect (no answer,
	// no leader, timeouts: everything the client retries).
	outUnknown
	// outUnexpected: an answer the workload never provokes (a bug); the
	// history records it as unknown and the run fails.
	outUnexpected
)

// transient reports whether err is one the clients retry: the call may be
// tried again.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Unauthenticated, codes.Canceled:
		return true
	}
	return false
}

func classify(err error) outcome {
	switch {
	case err == nil:
		return outOK
	case status.Code(err) == codes.NotFound:
		return outNotFound
	case transient(err) || errors.Is(err, context.DeadlineExceeded):
		return outUnknown
	}
	return outUnexpected
}

// newRequestID returns 16 random bytes in hexadecimal.
func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// metadataWithRequestID returns ctx carrying a new request id for a write.
func metadataWithRequestID(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, metadataRequestID, newRequestID())
}

// call runs f until it succeeds, fails for good or opTimeout passes. A
// write carries one request id over every try, so it takes effect once.
func call(write bool, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if write {
		ctx = metadataWithRequestID(ctx)
	}
	for {
		err := f(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryPause):
		}
	}
}

// kdbWorkload creates, reads and deletes keys by label through one client
// and records every operation.
type kdbWorkload struct {
	api  hsmv1.HsmServiceClient
	rec  *recorder
	reg  *registry
	seed uint64

	mu sync.Mutex
	// pairs are ciphertexts made with the workload's keys.
	pairs []sealed
	// writes are the completion times of acknowledged writes.
	writes []int64
	// unexpected are errors the workload never provokes.
	unexpected []string
}

// start runs workers until stop closes; the function it returns waits for
// them (each finishes its operation in flight).
func (w *kdbWorkload) start(stop <-chan struct{}, workers int) (wait func()) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { w.worker(i, stop) })
	}
	return wg.Wait
}

func (w *kdbWorkload) worker(id int, stop <-chan struct{}) {
	rng := mrand.New(mrand.NewPCG(w.seed, uint64(id)+1))
	proc := w.rec.process()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
		}
		label := fmt.Sprintf("k%d-w%d-%d", w.seed, id, n)
		var known bool
		switch r := rng.IntN(100); {
		case r < 30:
			if l, h := w.reg.pickDeletable(rng); l != "" {
				known = w.delete(proc, l, h)
			} else {
				known = w.create(proc, label)
			}
		case r < 65:
			known = w.get(proc, rng)
		default:
			known = w.create(proc, label)
		}
		if !known {
			proc = w.rec.process()
		}
	}
}

// record adds an operation; it returns false when its outcome is unknown.
func (w *kdbWorkload) record(proc int, in kdbInput, out kdbOutput, callAt int64, o outcome, err error) bool {
	ret := w.rec.now()
	switch o {
	case outUnexpected:
		w.mu.Lock()
		w.unexpected = append(w.unexpected, fmt.Sprintf("%s: %v", describeOp(in, kdbOutput{Unknown: true}), err))
		w.mu.Unlock()
		fallthrough
	case outUnknown:
		out, ret = kdbOutput{Unknown: true}, math.MaxInt64
	}
	if o == outOK && in.Op != opGet {
		w.mu.Lock()
		w.writes = append(w.writes, ret)
		w.mu.Unlock()
	}
	w.rec.add(porcupine.Operation{ClientId: proc, Input: in, Call: callAt, Output: out, Return: ret})
	return !out.Unknown
}

// create generates a key with a new label, then encrypts once with it.
func (w *kdbWorkload) create(proc int, label string) bool {
	w.reg.add(label)
	in := kdbInput{Op: opCreate, Label: label}
	callAt := w.rec.now()
	var resp *hsmv1.GenerateSymmetricKeyResponse
	err := call(true, func(ctx context.Context) (err error) {
		resp, err = w.api.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{
			Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: label,
			Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true}})
		return err
	})
	o := classify(err)
	if o == outNotFound {
		o = outUnexpected
	}
	h := resp.GetKey().GetHandle()
	known := w.record(proc, in, kdbOutput{Handle: h}, callAt, o, err)
	if !known {
		return false
	}
	w.reg.update(label, func(s *labelState) { s.handle, s.acked = h, true })
	w.seal(h)
	return true
}

// seal encrypts a random plaintext with key h and keeps the pair.
func (w *kdbWorkload) seal(h uint64) {
	pt := make([]byte, 32)
	rand.Read(pt)
	var resp *hsmv1.EncryptResponse
	err := call(false, func(ctx context.Context) (err error) {
		resp, err = w.api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: h,
			Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: pt})
		return err
	})
	if err == nil {
		w.mu.Lock()
		w.pairs = append(w.pairs, sealed{handle: h, pt: pt, ct: resp.GetCiphertext()})
		w.mu.Unlock()
	}
}

// get reads a recent label's keys.
func (w *kdbWorkload) get(proc int, rng *mrand.Rand) bool {
	label := w.reg.pickRecent(rng)
	if label == "" {
		return true
	}
	in := kdbInput{Op: opGet, Label: label}
	callAt := w.rec.now()
	var resp *hsmv1.FindKeysResponse
	err := call(false, func(ctx context.Context) (err error) {
		resp, err = w.api.FindKeys(ctx, &hsmv1.FindKeysRequest{Label: label})
		return err
	})
	o := classify(err)
	if o == outNotFound {
		o = outUnexpected
	}
	var hs []uint64
	for _, k := range resp.GetKeys() {
		hs = append(hs, k.GetHandle())
	}
	slices.Sort(hs)
	known := w.record(proc, in, kdbOutput{Handles: hs}, callAt, o, err)
	if known && len(hs) == 1 {
		w.reg.update(label, func(s *labelState) {
			s.seen = true
			if s.handle == 0 {
				s.handle = hs[0]
			}
		})
	}
	return known
}

// delete deletes key h of label; false when the outcome is unknown.
func (w *kdbWorkload) delete(proc int, label string, h uint64) bool {
	in := kdbInput{Op: opDelete, Label: label, Handle: h}
	callAt := w.rec.now()
	err := call(true, func(ctx context.Context) error {
		_, err := w.api.DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: h})
		return err
	})
	o := classify(err)
	known := w.record(proc, in, kdbOutput{NotFound: o == outNotFound}, callAt, o, err)
	if known {
		w.reg.update(label, func(s *labelState) { s.gone = true })
	}
	return known
}

// cryptoWorkload runs Encrypt then Decrypt in a loop, on keys made before
// the faults, and records when each operation succeeded or failed. It runs
// twice: on the HSMs through a multi-HSM client, and through the KMS
// endpoint; encrypt and decrypt are the layer's.
type cryptoWorkload struct {
	rec  *recorder
	seed uint64
	// stream separates the workers' random streams from other workloads'.
	stream uint64
	// keys is how many keys encrypt and decrypt know, by index.
	keys    int
	encrypt func(ctx context.Context, key int, pt []byte) ([]byte, error)
	decrypt func(ctx context.Context, key int, ct []byte) ([]byte, error)
	// timeout bounds each call.
	timeout time.Duration

	mu        sync.Mutex
	successes []int64
	failures  []string
	// failedAt are the failures' spans: invocation and completion.
	failedAt   []span
	mismatches int
	pairs      []cryptoPair
}

// span is an interval of the run's time, in nanoseconds since its start.
type span struct{ from, to int64 }

// overlaps reports whether s and o share an instant.
func (s span) overlaps(o span) bool { return s.from <= o.to && o.from <= s.to }

// cryptoPair is a ciphertext the crypto workload was given, with its key
// (an index) and plaintext.
type cryptoPair struct {
	key    int
	pt, ct []byte
}

// cryptoPace is each crypto worker's pause between two Encrypt+Decrypt:
// enough samples to see a stall of a few tens of milliseconds, few enough
// ciphertexts to check them all on every HSM afterwards.
const cryptoPace = 20 * time.Millisecond

func (w *cryptoWorkload) start(stop <-chan struct{}, workers int) (wait func()) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { w.worker(i, stop) })
	}
	return wg.Wait
}

func (w *cryptoWorkload) worker(id int, stop <-chan struct{}) {
	rng := mrand.New(mrand.NewPCG(w.seed, uint64(id)+w.stream))
	for {
		select {
		case <-stop:
			return
		case <-time.After(cryptoPace):
		}
		k := rng.IntN(w.keys)
		pt := make([]byte, 48)
		rand.Read(pt)
		callAt := w.rec.now()
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		ct, err := w.encrypt(ctx, k, pt)
		cancel()
		if !w.result("encrypt", callAt, err) {
			continue
		}
		callAt = w.rec.now()
		ctx, cancel = context.WithTimeout(context.Background(), w.timeout)
		out, err := w.decrypt(ctx, k, ct)
		cancel()
		w.mu.Lock()
		w.pairs = append(w.pairs, cryptoPair{key: k, pt: pt, ct: ct})
		if err == nil && !bytes.Equal(out, pt) {
			w.mismatches++
		}
		w.mu.Unlock()
		w.result("decrypt", callAt, err)
	}
}

// result records a crypto operation invoked at callAt; true on success.
func (w *cryptoWorkload) result(op string, callAt int64, err error) bool {
	at := w.rec.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failures = append(w.failures, fmt.Sprintf("%s at %.3fs-%.3fs: %v", op, seconds(callAt), seconds(at), err))
		w.failedAt = append(w.failedAt, span{callAt, at})
		return false
	}
	w.successes = append(w.successes, at)
	return true
}

// hsmCrypto returns the crypto workload on the HSMs: AES-GCM with keys
// (handles) through api.
func hsmCrypto(api hsmv1.HsmServiceClient, keys []uint64, rec *recorder, seed uint64) *cryptoWorkload {
	return &cryptoWorkload{rec: rec, seed: seed, stream: 1000, keys: len(keys), timeout: opTimeout,
		encrypt: func(ctx context.Context, k int, pt []byte) ([]byte, error) {
			resp, err := api.Encrypt(ctx, &hsmv1.EncryptRequest{Handle: keys[k],
				Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: pt})
			return resp.GetCiphertext(), err
		},
		decrypt: func(ctx context.Context, k int, ct []byte) ([]byte, error) {
			resp, err := api.Decrypt(ctx, &hsmv1.DecryptRequest{Handle: keys[k],
				Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Ciphertext: ct})
			return resp.GetPlaintext(), err
		},
	}
}
