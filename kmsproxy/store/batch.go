package store

import (
	"errors"
	"runtime"
	"sync"
)

// maxBatch bounds how many Batch calls share one transaction.
const maxBatch = 256

// errBatchFailed rolls back a shared transaction in which a call failed.
var errBatchFailed = errors.New("store: a call of the batch failed")

// batcher runs concurrent Batch calls in shared transactions: group
// commit. While one transaction commits, the calls that arrive queue, and
// the next transaction takes them all, so that N concurrent writers pay
// one commit (two fsyncs in bbolt) instead of N, with no timer: a lone
// call runs at once. Before each transaction the batcher yields once, so
// that callers ready at the same moment join it.
type batcher struct {
	mu      sync.Mutex
	pending []*batchCall
	running bool
}

// batchCall is one Batch call waiting for its outcome.
type batchCall struct {
	f    func(*Tx) error
	done chan error
}

// Batch runs f in a read-write transaction that it may share with other
// concurrent Batch calls, and returns once that transaction has committed
// (and fsynced), or f's error. As with bbolt's DB.Batch, f may run more
// than once (when another call of its transaction fails, every call is
// retried alone) and must therefore be idempotent: it must not depend on
// state it changes outside the transaction, except to overwrite it.
//
// A failed f changes nothing; a successful f's changes are durable when
// Batch returns nil.
func (s *Store) Batch(f func(*Tx) error) error {
	call := &batchCall{f: f, done: make(chan error, 1)}
	b := &s.batch
	b.mu.Lock()
	b.pending = append(b.pending, call)
	if !b.running {
		b.running = true
		go s.runBatches()
	}
	b.mu.Unlock()
	return <-call.done
}

// runBatches commits the queued calls, a transaction at a time, until the
// queue is empty.
func (s *Store) runBatches() {
	b := &s.batch
	for {
		// Let the callers that are ready to run queue first, so that they
		// share this transaction: the CreateKeys whose HSM keys one Raft
		// batch made are answered together, and without this the first of
		// them would commit alone and the others wait for a second commit.
		// With nothing else to run, Gosched returns at once.
		runtime.Gosched()
		b.mu.Lock()
		calls := b.pending
		if len(calls) > maxBatch {
			calls = calls[:maxBatch:maxBatch]
		}
		b.pending = b.pending[len(calls):]
		if len(calls) == 0 {
			b.running = false
			b.pending = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		s.commitBatch(calls)
	}
}

// commitBatch runs calls in one transaction; when one fails, the
// transaction rolls back and every call runs alone.
func (s *Store) commitBatch(calls []*batchCall) {
	if len(calls) == 1 {
		calls[0].done <- s.Update(calls[0].f)
		return
	}
	err := s.Update(func(tx *Tx) error {
		for _, c := range calls {
			if err := c.f(tx); err != nil {
				return errBatchFailed
			}
		}
		return nil
	})
	if err == nil {
		for _, c := range calls {
			c.done <- nil
		}
		return
	}
	for _, c := range calls {
		c.done <- s.Update(c.f)
	}
}
