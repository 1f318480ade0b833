package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/hsmsim/hsmsim/cluster/bringup"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

const (
	// kmsWorkers are the KMS workload's goroutines; kmsCryptoWorkers the
	// endpoint crypto workload's.
	kmsWorkers       = 3
	kmsCryptoWorkers = 2
	// kmsOpTimeout is a KMS call's budget, the SDK's retries included.
	kmsOpTimeout = 20 * time.Second
	// aliasEpoch is how long a generation of alias names is in use, and
	// aliasesPerEpoch how many names it has: few names, so that workers
	// contend on them; generations, so that each alias's history stays
	// short for porcupine even with several unknown outcomes.
	aliasEpoch      = 10 * time.Second
	aliasesPerEpoch = 4
	// poolKeys are the keys made before the faults in the custom key store:
	// the endpoint crypto workload's keys and the aliases' targets. They
	// stay Enabled all run.
	poolKeys = 3
	// scanWorkers describe keys in parallel in the final scan.
	scanWorkers = 4
)

// KMS error codes the workload provokes or meets (botocore).
const (
	codeNotFound      = "NotFoundException"
	codeAlreadyExists = "AlreadyExistsException"
	codeInvalidState  = "KMSInvalidStateException"
)

// createRefusals are the CreateKey refusals a fault may cause: the
// endpoint judges the cluster (two HSMs answering in two AZs, reference
// §4.4) or the store not fit for a new key. They are definite: no key.
var createRefusals = map[string]bool{
	"CloudHsmClusterInvalidConfigurationException": true,
	"CloudHsmClusterNotActiveException":            true,
	"CustomKeyStoreInvalidStateException":          true,
}

// attempt is one HTTP attempt of an SDK call, in the run's time.
type attempt struct {
	start, end int64
	// status is the HTTP status, 0 when no response came.
	status int
	// refused says the connection was never made (the endpoint was not
	// listening): the request did not leave.
	refused bool
}

// attemptLog collects the attempts of one SDK call; recordingClient finds
// it in the request's context.
type attemptLog struct {
	mu       sync.Mutex
	attempts []attempt
}

type attemptLogKey struct{}

// withAttemptLog returns ctx carrying a new attemptLog.
func withAttemptLog(ctx context.Context) (context.Context, *attemptLog) {
	l := &attemptLog{}
	return context.WithValue(ctx, attemptLogKey{}, l), l
}

func (l *attemptLog) list() []attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts)
}

// recordingClient is the SDK's HTTP client: it records every attempt of a
// call whose context carries an attemptLog, so that the workload knows
// which attempts may have reached the endpoint (the SDK retries writes that
// are not idempotent, CreateKey above all).
type recordingClient struct {
	rec *recorder
	hc  *http.Client
}

func (c *recordingClient) Do(req *http.Request) (*http.Response, error) {
	l, _ := req.Context().Value(attemptLogKey{}).(*attemptLog)
	if l == nil || c.rec == nil {
		return c.hc.Do(req)
	}
	a := attempt{start: c.rec.now()}
	resp, err := c.hc.Do(req)
	a.end = c.rec.now()
	if err != nil {
		var op *net.OpError
		a.refused = errors.As(err, &op) && op.Op == "dial"
	} else {
		a.status = resp.StatusCode
	}
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
	return resp, err
}

// kmsAnswer classifies an SDK call's error. A 4xx answer is definite: the
// endpoint decided, and code is its exception. Anything else (a 5xx after
// the retries, a connection cut by a restart, a timeout) leaves the
// outcome unknown.
func kmsAnswer(err error) (code string, definite bool) {
	if err == nil {
		return "", true
	}
	var re *awshttp.ResponseError
	var ae smithy.APIError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500 && errors.As(err, &ae) {
		return ae.ErrorCode(), true
	}
	return "", false
}

// kmsSealed is a ciphertext the endpoint returned, with its key, plaintext
// and encryption context.
type kmsSealed struct {
	keyID  string
	pt, ct []byte
	ectx   map[string]string
}

// kmsKey is what the workload knows about a KMS key, by Description.
type kmsKey struct {
	desc string
	// id is the key's id, "" until CreateKey is acknowledged.
	id string
	// deleting says a ScheduleKeyDeletion was sent; pending that the key
	// is known to be pending deletion (acknowledged, answered
	// KMSInvalidStateException, or read so).
	deleting, pending bool
}

// kmsRegistry holds the KMS keys of the run, in order of creation.
type kmsRegistry struct {
	mu    sync.Mutex
	order []*kmsKey
	byDes map[string]*kmsKey
}

func newKMSRegistry() *kmsRegistry { return &kmsRegistry{byDes: map[string]*kmsKey{}} }

func (g *kmsRegistry) add(desc string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := &kmsKey{desc: desc}
	g.order = append(g.order, k)
	g.byDes[desc] = k
}

func (g *kmsRegistry) update(desc string, f func(*kmsKey)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g.byDes[desc])
}

// pick returns one of the latest keys with a known id, nil when there is
// none; with forDeletion it prefers (three times in four) a key no
// deletion was sent for and marks it, else any (so that deletions race
// and some are answered KMSInvalidStateException).
func (g *kmsRegistry) pick(rng *mrand.Rand, forDeletion bool) *kmsKey {
	g.mu.Lock()
	defer g.mu.Unlock()
	fresh := forDeletion && rng.IntN(4) != 0
	var cands []*kmsKey
	for i := len(g.order) - 1; i >= 0 && len(cands) < recentLabels; i-- {
		if k := g.order[i]; k.id != "" && (!fresh || !k.deleting) {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	k := cands[rng.IntN(len(cands))]
	if forDeletion {
		k.deleting = true
	}
	c := *k
	return &c
}

func (g *kmsRegistry) snapshot() []kmsKey {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]kmsKey, len(g.order))
	for i, k := range g.order {
		out[i] = *k
	}
	return out
}

// kmsWorkload drives the endpoint with the AWS SDK: KMS keys in the custom
// key store (CreateKey, DescribeKey, ScheduleKeyDeletion) and aliases
// (CreateAlias, UpdateAlias, DeleteAlias, DescribeKey by alias,
// ListAliases), each recorded in a history of its own.
type kmsWorkload struct {
	e        *kmsEndpoint
	api      *kms.Client
	keyRec   *recorder
	aliasRec *recorder
	seed     uint64
	// targets are the aliases' targets: pool keys, Enabled all run.
	targets []string
	reg     *kmsRegistry

	mu sync.Mutex
	// pairs are ciphertexts made with the workload's keys.
	pairs []kmsSealed
	// unexpected are answers the workload never provokes.
	unexpected []string
	// refusals counts CreateKey's definite refusals by exception.
	refusals map[string]int
	// aliases are the alias names used, in order of first use.
	aliases []string
	used    map[string]bool
}

func newKMSWorkload(e *kmsEndpoint, rec *recorder, seed uint64, targets []string) *kmsWorkload {
	keyRec, aliasRec := rec.sibling(), rec.sibling()
	return &kmsWorkload{e: e, api: e.client(keyRec), keyRec: keyRec, aliasRec: aliasRec, seed: seed, targets: targets,
		reg: newKMSRegistry(), refusals: map[string]int{}, used: map[string]bool{}}
}

// start runs workers until stop closes; the function it returns waits for
// them.
func (w *kmsWorkload) start(stop <-chan struct{}, workers int) (wait func()) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { w.worker(i, stop) })
	}
	return wg.Wait
}

func (w *kmsWorkload) worker(id int, stop <-chan struct{}) {
	rng := mrand.New(mrand.NewPCG(w.seed, uint64(id)+3000))
	kproc, aproc := w.keyRec.process(), w.aliasRec.process()
	cleaned := int64(0)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(10+rng.IntN(30)) * time.Millisecond):
		}
		// Worker 0 deletes the generation before last, so that the pool
		// keys stay far from KMS's quota of 50 aliases per key however
		// long the run.
		if epoch := w.aliasRec.now() / int64(aliasEpoch); id == 0 && epoch-2 > cleaned {
			cleaned = epoch - 2
			for i := range aliasesPerEpoch {
				w.deleteAlias(aproc, fmt.Sprintf("alias/chaos-%d/e%d-%d", w.seed, cleaned, i))
			}
			continue
		}
		switch r := rng.IntN(100); {
		case r < 16:
			w.createKey(kproc, fmt.Sprintf("chaos-%d-w%d-%d", w.seed, id, n))
		case r < 32:
			w.describeKey(kproc, rng)
		case r < 38:
			w.scheduleDeletion(kproc, rng)
		case r < 50:
			w.aliasWrite(aproc, aopCreate, rng)
		case r < 62:
			w.aliasWrite(aproc, aopUpdate, rng)
		case r < 70:
			w.aliasWrite(aproc, aopDelete, rng)
		case r < 90:
			w.describeAlias(aproc, rng)
		default:
			w.listAliases(aproc)
		}
	}
}

// unexpectedf records an answer the workload never provokes.
func (w *kmsWorkload) unexpectedf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unexpected = append(w.unexpected, fmt.Sprintf(format, args...))
}

// recordWrite adds a write's operations to rec: one with an unknown
// outcome (returning at infinity) for every attempt that may have reached
// the endpoint and is not the one that answered (CreateKey is not
// idempotent and the SDK retries it: each such attempt may have taken
// effect), and, when the call got a definite answer, the answering
// attempt, from its start to end, with out. Attempts refused at connect
// never left: they are not operations. It returns how many operations
// have an unknown outcome.
func recordWrite(rec *recorder, proc int, in any, attempts []attempt, definite bool, out, unknown any, end int64) int {
	n := 0
	if definite && len(attempts) > 0 {
		last := attempts[len(attempts)-1]
		attempts = attempts[:len(attempts)-1]
		rec.add(porcupine.Operation{ClientId: proc, Input: in, Call: last.start, Output: out, Return: end})
	}
	for _, a := range attempts {
		if a.refused {
			continue
		}
		rec.add(porcupine.Operation{ClientId: rec.process(), Input: in, Call: a.start, Output: unknown, Return: math.MaxInt64})
		n++
	}
	return n
}

// kmsCtx returns a call's context: kmsOpTimeout, and an attempt log.
func kmsCtx() (context.Context, context.CancelFunc, *attemptLog) {
	ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
	ctx, l := withAttemptLog(ctx)
	return ctx, cancel, l
}

// createKey creates a KMS key in the custom key store with Description
// desc, then encrypts once with it.
func (w *kmsWorkload) createKey(proc int, desc string) {
	w.reg.add(desc)
	ctx, cancel, l := kmsCtx()
	defer cancel()
	out, err := w.api.CreateKey(ctx, &kms.CreateKeyInput{Origin: kmstypes.OriginTypeAwsCloudhsm,
		CustomKeyStoreId: aws.String(w.e.storeID), Description: aws.String(desc)})
	end := w.keyRec.now()
	code, definite := kmsAnswer(err)
	var o kmsKeyOutput
	switch {
	case err == nil:
		m := out.KeyMetadata
		o.KeyID = aws.ToString(m.KeyId)
		if m.KeyState != kmstypes.KeyStateEnabled || aws.ToString(m.CustomKeyStoreId) != w.e.storeID || aws.ToString(m.Description) != desc {
			w.unexpectedf("CreateKey %q: metadata %s %s %q", desc, m.KeyState, aws.ToString(m.CustomKeyStoreId), aws.ToString(m.Description))
		}
	case definite && createRefusals[code]:
		o.Refused = true
		w.mu.Lock()
		w.refusals[code]++
		w.mu.Unlock()
	case definite:
		w.unexpectedf("CreateKey %q: %v", desc, err)
		definite = false
	}
	recordWrite(w.keyRec, proc, kmsKeyInput{Op: kopCreate, Desc: desc}, l.list(), definite, o, kmsKeyOutput{Unknown: true}, end)
	if err != nil {
		return
	}
	w.reg.update(desc, func(k *kmsKey) { k.id = o.KeyID })
	w.seal(o.KeyID, desc)
}

// seal encrypts a random plaintext with key id (under an encryption
// context naming desc) and keeps the pair for the durability check.
func (w *kmsWorkload) seal(id, desc string) {
	pt := make([]byte, 32)
	rand.Read(pt)
	ectx := map[string]string{"chaos": desc}
	ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
	defer cancel()
	out, err := w.api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: pt, EncryptionContext: ectx})
	if err == nil {
		w.mu.Lock()
		w.pairs = append(w.pairs, kmsSealed{keyID: id, pt: pt, ct: out.CiphertextBlob, ectx: ectx})
		w.mu.Unlock()
	}
}

// describeKey reads a recent key's state.
func (w *kmsWorkload) describeKey(proc int, rng *mrand.Rand) {
	k := w.reg.pick(rng, false)
	if k == nil {
		return
	}
	in := kmsKeyInput{Op: kopDescribe, Desc: k.desc, KeyID: k.id}
	callAt := w.keyRec.now()
	ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
	defer cancel()
	out, err := w.api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.id)})
	end := w.keyRec.now()
	code, definite := kmsAnswer(err)
	var o kmsKeyOutput
	switch {
	case !definite:
		return // a read whose answer was lost tells nothing
	case err == nil:
		o.State = string(out.KeyMetadata.KeyState)
		if o.State != keyEnabled && o.State != keyPendingDeletion {
			w.unexpectedf("DescribeKey %s (%q): %s", k.id, k.desc, o.State)
			return
		}
	case code == codeNotFound:
		o.NotFound = true
	default:
		w.unexpectedf("DescribeKey %s (%q): %v", k.id, k.desc, err)
		return
	}
	w.keyRec.add(porcupine.Operation{ClientId: proc, Input: in, Call: callAt, Output: o, Return: end})
	if o.State == keyPendingDeletion {
		w.reg.update(k.desc, func(k *kmsKey) { k.pending = true })
	}
}

// scheduleDeletion schedules a recent key's deletion (7 days, on a clock
// the suite does not advance: the key stays PendingDeletion).
func (w *kmsWorkload) scheduleDeletion(proc int, rng *mrand.Rand) {
	k := w.reg.pick(rng, true)
	if k == nil {
		return
	}
	in := kmsKeyInput{Op: kopSchedule, Desc: k.desc, KeyID: k.id}
	ctx, cancel, l := kmsCtx()
	defer cancel()
	_, err := w.api.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(k.id), PendingWindowInDays: aws.Int32(7)})
	end := w.keyRec.now()
	code, definite := kmsAnswer(err)
	var o kmsKeyOutput
	switch {
	case err == nil || !definite:
	case code == codeInvalidState:
		o.InvalidState = true
	case code == codeNotFound:
		o.NotFound = true
	default:
		w.unexpectedf("ScheduleKeyDeletion %s (%q): %v", k.id, k.desc, err)
		definite = false
	}
	recordWrite(w.keyRec, proc, in, l.list(), definite, o, kmsKeyOutput{Unknown: true}, end)
	if definite && !o.NotFound {
		w.reg.update(k.desc, func(k *kmsKey) { k.pending = true })
	}
}

// aliasName picks one of the current generation's alias names and
// remembers it.
func (w *kmsWorkload) aliasName(rng *mrand.Rand) string {
	epoch := w.aliasRec.now() / int64(aliasEpoch)
	name := fmt.Sprintf("alias/chaos-%d/e%d-%d", w.seed, epoch, rng.IntN(aliasesPerEpoch))
	w.mu.Lock()
	if !w.used[name] {
		w.used[name] = true
		w.aliases = append(w.aliases, name)
	}
	w.mu.Unlock()
	return name
}

// aliasWrite creates, updates or deletes a current alias.
func (w *kmsWorkload) aliasWrite(proc int, op kmsAliasOp, rng *mrand.Rand) {
	in := kmsAliasInput{Op: op, Alias: w.aliasName(rng)}
	if op != aopDelete {
		in.Target = w.targets[rng.IntN(len(w.targets))]
	}
	w.writeAlias(proc, in)
}

// deleteAlias deletes an alias of an older generation.
func (w *kmsWorkload) deleteAlias(proc int, name string) {
	w.writeAlias(proc, kmsAliasInput{Op: aopDelete, Alias: name})
}

// writeAlias runs an alias write and records it.
func (w *kmsWorkload) writeAlias(proc int, in kmsAliasInput) {
	op, name := in.Op, aws.String(in.Alias)
	ctx, cancel, l := kmsCtx()
	defer cancel()
	var err error
	switch op {
	case aopCreate:
		_, err = w.api.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: name, TargetKeyId: aws.String(in.Target)})
	case aopUpdate:
		_, err = w.api.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: name, TargetKeyId: aws.String(in.Target)})
	case aopDelete:
		_, err = w.api.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: name})
	}
	end := w.aliasRec.now()
	code, definite := kmsAnswer(err)
	var o kmsAliasOutput
	switch {
	case err == nil || !definite:
	case code == codeAlreadyExists && op == aopCreate:
		o.Exists = true
	case code == codeNotFound && op != aopCreate:
		o.NotFound = true
	default:
		w.unexpectedf("%s: %v", describeKMSAliasOp(in, kmsAliasOutput{Unknown: true}), err)
		definite = false
	}
	recordWrite(w.aliasRec, proc, in, l.list(), definite, o, kmsAliasOutput{Unknown: true}, end)
}

// describeAlias reads a current alias with DescribeKey.
func (w *kmsWorkload) describeAlias(proc int, rng *mrand.Rand) {
	name := w.aliasName(rng)
	callAt := w.aliasRec.now()
	ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
	defer cancel()
	out, err := w.api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(name)})
	end := w.aliasRec.now()
	code, definite := kmsAnswer(err)
	var o kmsAliasOutput
	switch {
	case !definite:
		return
	case err == nil:
		o.Target = aws.ToString(out.KeyMetadata.KeyId)
	case code != codeNotFound:
		w.unexpectedf("DescribeKey %s: %v", name, err)
		return
	}
	w.aliasRec.add(porcupine.Operation{ClientId: proc, Input: kmsAliasInput{Op: aopRead, Alias: name}, Call: callAt, Output: o, Return: end})
}

// listAliases reads every alias with ListAliases and records one read per
// alias of the current and previous generations. Pages are read one after
// the other, not atomically, but each alias's entry (or absence) is read
// at one instant within the whole call, which is all a per-alias read
// claims.
func (w *kmsWorkload) listAliases(proc int) {
	epoch := w.aliasRec.now() / int64(aliasEpoch)
	callAt := w.aliasRec.now()
	all, err := w.listAll()
	end := w.aliasRec.now()
	if _, definite := kmsAnswer(err); err != nil {
		if definite {
			w.unexpectedf("ListAliases: %v", err)
		}
		return
	}
	for e := max(0, epoch-1); e <= epoch; e++ {
		for i := range aliasesPerEpoch {
			name := fmt.Sprintf("alias/chaos-%d/e%d-%d", w.seed, e, i)
			w.aliasRec.add(porcupine.Operation{ClientId: proc, Input: kmsAliasInput{Op: aopRead, Alias: name},
				Call: callAt, Output: kmsAliasOutput{Target: all[name]}, Return: end})
		}
	}
}

// listAll returns every alias's target.
func (w *kmsWorkload) listAll() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
	defer cancel()
	out := map[string]string{}
	p := kms.NewListAliasesPaginator(w.api, &kms.ListAliasesInput{Limit: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range page.Aliases {
			out[aws.ToString(a.AliasName)] = aws.ToString(a.TargetKeyId)
		}
	}
	return out, nil
}

// finalAliasRead reads every alias used, once the cluster and the
// endpoint are whole again, into the history: a lost alias write shows.
func (w *kmsWorkload) finalAliasRead() error {
	callAt := w.aliasRec.now()
	all, err := w.listAll()
	if err != nil {
		return fmt.Errorf("list the aliases: %w", err)
	}
	end, proc := w.aliasRec.now(), w.aliasRec.process()
	for _, name := range w.aliases {
		w.aliasRec.add(porcupine.Operation{ClientId: proc, Input: kmsAliasInput{Op: aopRead, Alias: name},
			Call: callAt, Output: kmsAliasOutput{Target: all[name]}, Return: end})
	}
	return nil
}

// scannedKey is a key the final scan found.
type scannedKey struct{ desc, state string }

// scan lists every KMS key and describes each (the endpoint's whole
// metadata), and adds one scan operation per Description of the run to
// the key history.
func (w *kmsWorkload) scan() (map[string]scannedKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	callAt := w.keyRec.now()
	var ids []string
	p := kms.NewListKeysPaginator(w.api, &kms.ListKeysInput{Limit: aws.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the keys: %w", err)
		}
		for _, k := range page.Keys {
			ids = append(ids, aws.ToString(k.KeyId))
		}
	}
	var mu sync.Mutex
	found := map[string]scannedKey{}
	var errs []error
	work := make(chan string)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Go(func() {
			for id := range work {
				out, err := w.api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("describe %s: %w", id, err))
				} else {
					found[id] = scannedKey{desc: aws.ToString(out.KeyMetadata.Description), state: string(out.KeyMetadata.KeyState)}
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	end, proc := w.keyRec.now(), w.keyRec.process()
	byDesc := map[string]map[string]string{}
	for id, k := range found {
		if byDesc[k.desc] == nil {
			byDesc[k.desc] = map[string]string{}
		}
		byDesc[k.desc][id] = k.state
	}
	for _, k := range w.reg.snapshot() {
		w.keyRec.add(porcupine.Operation{ClientId: proc, Input: kmsKeyInput{Op: kopScan, Desc: k.desc},
			Call: callAt, Output: kmsKeyOutput{Found: joinFound(byDesc[k.desc])}, Return: end})
	}
	return found, nil
}

// kmsDurability is what checkKMSDurability found.
type kmsDurability struct {
	// keys and pairs are what the check covered.
	keys, pairs int
	// lost are acknowledged keys missing; wrongState keys in another state
	// than acknowledged; badDecrypts ciphertexts that do not decrypt to
	// their plaintext; orphans keys of unknown creates (allowed).
	lost, wrongState, badDecrypts, orphans int
	// orphanHSMKeys are kmsuser's keys in the cluster that back no KMS
	// key: the HSM key of a CreateKey that failed after the HSM wrote it
	// (reported, allowed: AWS leaves such keys too).
	orphanHSMKeys int
	details       []string
}

// checkKMSDurability checks, through the endpoint, that every key whose
// CreateKey was acknowledged exists in the state the workload knows
// (PendingDeletion after an acknowledged ScheduleKeyDeletion, Enabled when
// none was sent, either after one with an unknown outcome), that the pool
// keys are Enabled, and that every ciphertext the endpoint returned for a
// key that is not pending deletion decrypts to its plaintext.
func checkKMSDurability(w *kmsWorkload, found map[string]scannedKey, pool []string, pairs []kmsSealed) kmsDurability {
	var res kmsDurability
	enabled := map[string]bool{}
	for _, id := range pool {
		enabled[id] = true
		res.keys++
		if k, ok := found[id]; !ok || k.state != keyEnabled {
			res.lost++
			res.details = append(res.details, fmt.Sprintf("pool key %s: %+v", id, k))
		}
	}
	acked := map[string]bool{}
	for _, k := range w.reg.snapshot() {
		if k.id == "" {
			continue
		}
		acked[k.id] = true
		res.keys++
		got, ok := found[k.id]
		switch {
		case !ok:
			res.lost++
			res.details = append(res.details, fmt.Sprintf("key %s (%q) acknowledged, missing", k.id, k.desc))
		case k.pending && got.state != keyPendingDeletion,
			!k.deleting && got.state != keyEnabled,
			got.state != keyEnabled && got.state != keyPendingDeletion:
			res.wrongState++
			res.details = append(res.details, fmt.Sprintf("key %s (%q) is %s (deletion sent %v, acknowledged %v)", k.id, k.desc, got.state, k.deleting, k.pending))
		case !k.deleting:
			enabled[k.id] = true
		}
	}
	descs := map[string]bool{}
	for _, k := range w.reg.snapshot() {
		descs[k.desc] = true
	}
	for id, k := range found {
		if descs[k.desc] && !acked[id] {
			res.orphans++
		}
	}
	var live []kmsSealed
	for _, p := range pairs {
		if enabled[p.keyID] {
			live = append(live, p)
		}
	}
	res.pairs = len(live)
	var mu sync.Mutex
	work := make(chan kmsSealed)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Go(func() {
			for p := range work {
				ctx, cancel := context.WithTimeout(context.Background(), kmsOpTimeout)
				out, err := w.api.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: p.ct, KeyId: aws.String(p.keyID), EncryptionContext: p.ectx})
				cancel()
				if err != nil || !bytes.Equal(out.Plaintext, p.pt) {
					mu.Lock()
					res.badDecrypts++
					res.details = append(res.details, fmt.Sprintf("ciphertext of key %s does not decrypt: %v", p.keyID, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range live {
		work <- p
	}
	close(work)
	wg.Wait()
	return res
}

// countOrphanHSMKeys logs in to the cluster as its admin and counts
// kmsuser's keys whose label (a KMS key's ARN) names none of the keys
// found.
func countOrphanHSMKeys(ctx context.Context, d *deployment, found map[string]scannedKey) (int, error) {
	admin, err := bringup.Login(ctx, d.mgr, d.clusterID, bringup.AdminUser, d.up.AdminPassword, hsmv1.Role_ROLE_ADMIN, d.log)
	if err != nil {
		return 0, fmt.Errorf("log in as admin: %w", err)
	}
	defer admin.Close()
	resp, err := hsmv1.NewHsmServiceClient(admin).FindKeys(ctx, &hsmv1.FindKeysRequest{Owner: kmsUser})
	if err != nil {
		return 0, fmt.Errorf("list %s's keys: %w", kmsUser, err)
	}
	n := 0
	for _, k := range resp.GetKeys() {
		_, id, _ := strings.Cut(k.GetLabel(), ":key/")
		if _, ok := found[id]; !ok {
			n++
		}
	}
	return n, nil
}

// createPool creates the pool keys in the custom key store.
func createPool(ctx context.Context, cl *kms.Client, storeID string, seed uint64) ([]string, error) {
	var ids []string
	for i := range poolKeys {
		out, err := cl.CreateKey(ctx, &kms.CreateKeyInput{Origin: kmstypes.OriginTypeAwsCloudhsm,
			CustomKeyStoreId: aws.String(storeID), Description: aws.String(fmt.Sprintf("chaos-%d-pool-%d", seed, i))})
		if err != nil {
			return nil, fmt.Errorf("create pool key %d: %w", i, err)
		}
		ids = append(ids, aws.ToString(out.KeyMetadata.KeyId))
	}
	return ids, nil
}

// kmsCrypto returns the crypto workload through the endpoint: Encrypt and
// Decrypt with the pool keys, under an encryption context.
func kmsCrypto(cl *kms.Client, pool []string, rec *recorder, seed uint64) *cryptoWorkload {
	ectx := map[string]string{"chaos": "crypto"}
	return &cryptoWorkload{rec: rec, seed: seed, stream: 2000, keys: len(pool), timeout: kmsOpTimeout,
		encrypt: func(ctx context.Context, k int, pt []byte) ([]byte, error) {
			out, err := cl.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(pool[k]), Plaintext: pt, EncryptionContext: ectx})
			if err != nil {
				return nil, err
			}
			return out.CiphertextBlob, nil
		},
		decrypt: func(ctx context.Context, k int, ct []byte) ([]byte, error) {
			out, err := cl.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct, KeyId: aws.String(pool[k]), EncryptionContext: ectx})
			if err != nil {
				return nil, err
			}
			return out.Plaintext, nil
		},
	}
}

// kmsPairs are the endpoint crypto workload's ciphertexts, for the
// durability check.
func kmsPairs(cw *cryptoWorkload, pool []string) []kmsSealed {
	var out []kmsSealed
	for _, p := range cw.pairs {
		out = append(out, kmsSealed{keyID: pool[p.key], pt: p.pt, ct: p.ct, ectx: map[string]string{"chaos": "crypto"}})
	}
	return out
}
