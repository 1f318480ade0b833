package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
)

// Option configures Open.
type Option func(*options)

type options struct {
	sync  bool
	fsync func(*os.File) error // (*os.File).Sync; tests replace it
}

// WithSync sets whether Record waits for an fsync that covers its line (the default, true;
// concurrent Records share fsyncs). Turn it off only where losing the latest events in a
// crash is acceptable (tests, benchmarks); see the package comment, "Durability".
func WithSync(sync bool) Option {
	return func(o *options) { o.sync = sync }
}

// Log is an open audit log. It is safe for concurrent use; lines are written in the order the
// Records take the log's lock.
//
// Lock order: syncMu before mu. mu guards the chain and the file's writes and is never held
// across an fsync; syncMu is held by the one Record (or Close) that is fsyncing, so that the
// Records that wrote meanwhile queue behind it and then share the next fsync (group commit).
type Log struct {
	clock func() time.Time
	sync  bool
	fsync func(*os.File) error

	// syncMu serializes fsyncs and guards synced.
	syncMu sync.Mutex
	// synced is the seq of the last line known to be on stable storage: every line up to it
	// was written before an fsync (or the Close) that succeeded.
	synced uint64

	mu     sync.Mutex
	f      *os.File // nil after Close
	seq    uint64   // seq of the last line written, 0 for an empty log
	prev   string   // hash of the last line's bytes, zeroHash for an empty log
	broken error    // the write or fsync error that broke the log
}

// Open opens the audit log at path, creating it with mode 0600 if it does not exist. For an
// existing file, it reads and checks the last line (it must be complete, canonical and carry
// its own hash) and continues the chain after it; otherwise it returns an error wrapping
// ErrCorruptTail. Open checks only the tail: use Verify for the whole chain. clock gives each
// line's time; nil means time.Now.
func Open(path string, clock func() time.Time, opts ...Option) (*Log, error) {
	o := options{sync: true, fsync: (*os.File).Sync}
	for _, opt := range opts {
		opt(&o)
	}
	if clock == nil {
		clock = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	l := &Log{clock: clock, sync: o.sync, fsync: o.fsync, f: f, prev: zeroHash}
	last, err := lastLine(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if last != nil {
		rec, err := parseLine(last)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("audit: open %s: %w: last line: %v", path, ErrCorruptTail, err)
		}
		l.seq, l.prev = rec.Seq, hashOf(last)
	}
	// What Open found is taken as durable: the lines of a previous run were synced by its
	// Records or its Close, or are unknown to any caller of this Log.
	l.synced = l.seq
	return l, nil
}

// tailChunk is how much lastLine reads per step, backwards from the end of the file.
const tailChunk = 4096

// lastLine returns the last line of f without its newline, or nil for an empty file. A file
// that does not end with a newline has a torn last line: ErrCorruptTail.
func lastLine(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	var tail []byte // the bytes from off to the end of the file
	for off := size; off > 0; {
		n := min(int64(tailChunk), off)
		off -= n
		chunk := make([]byte, n)
		if _, err := f.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		tail = append(chunk, tail...)
		if tail[len(tail)-1] != '\n' {
			return nil, fmt.Errorf("%w: the last line has no newline (torn write?)", ErrCorruptTail)
		}
		if i := bytes.LastIndexByte(tail[:len(tail)-1], '\n'); i >= 0 {
			return tail[i+1 : len(tail)-1], nil
		}
	}
	return tail[:len(tail)-1], nil
}

// Record appends ev to the log as one line: it fills in seq, time, prev and hash, writes the
// line with a single write call and, unless the log was opened WithSync(false), returns only
// once an fsync that began after the write has succeeded, so that the line survives a crash
// (see the package comment, "Durability"). Concurrent Records share fsyncs: the lines are
// written under the log's lock, the fsync runs outside it, and one fsync covers every line
// written before it began. It refuses an invalid event with ErrInvalidEvent (see Event and the
// package comment, "Secrets") without writing anything. A failed write or fsync breaks the Log
// for good (ErrBroken). Record is safe for concurrent use.
func (l *Log) Record(ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	fields := make(map[string]string, len(ev.Fields))
	for k, v := range ev.Fields {
		fields[k] = v
	}
	seq, err := l.write(ev, fields)
	if err != nil || !l.sync {
		return err
	}
	return l.waitDurable(seq)
}

// write appends ev's line under the log's lock and returns its seq. It does not fsync.
func (l *Log) write(ev Event, fields map[string]string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, ErrClosed
	}
	if l.broken != nil {
		return 0, fmt.Errorf("%w: %v", ErrBroken, l.broken)
	}
	rec := line{
		Seq:        l.seq + 1,
		Time:       l.clock().UTC().Format(timeLayout),
		Event:      ev.Name,
		Actor:      ev.Actor,
		SessionHSM: ev.SessionHSM,
		Outcome:    ev.Outcome,
		Fields:     fields,
		Prev:       l.prev,
	}
	b, err := rec.seal()
	if err != nil {
		return 0, fmt.Errorf("audit: encode %s: %w", ev.Name, err)
	}
	buf := make([]byte, len(b)+1)
	copy(buf, b)
	buf[len(b)] = '\n'
	if _, err := l.f.Write(buf); err != nil {
		l.broken = err
		return 0, fmt.Errorf("audit: write: %w", err)
	}
	l.seq, l.prev = rec.Seq, hashOf(b)
	return rec.Seq, nil
}

// waitDurable returns once the line seq is on stable storage: at once if an fsync that began
// after its write has already succeeded, else after an fsync of its own, which also covers
// every line written before it began (the Records queued behind it on syncMu then find their
// lines synced and return without an fsync). It returns an error wrapping ErrBroken when the
// fsync failed before the line was known durable.
func (l *Log) waitDurable(seq uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= seq {
		return nil
	}
	// Let the Records that are ready to run write their lines first, so that this fsync
	// covers them too: the requests of one Raft batch are answered together, and without
	// this the first of them would fsync alone and the others queue for a second fsync.
	// With nothing else to run, Gosched returns at once.
	runtime.Gosched()
	l.mu.Lock()
	f, target, broken := l.f, l.seq, l.broken
	l.mu.Unlock()
	switch {
	case broken != nil:
		return fmt.Errorf("%w: %v", ErrBroken, broken)
	case f == nil:
		// Close fsyncs and sets synced under syncMu, so it cannot have closed the file
		// without covering this line.
		return ErrClosed
	}
	if err := l.fsync(f); err != nil {
		l.mu.Lock()
		if l.broken == nil {
			l.broken = err
		}
		l.mu.Unlock()
		return fmt.Errorf("audit: fsync: %w", err)
	}
	l.synced = target
	return nil
}

// Close syncs and closes the file, after any fsync in progress. Later Records return
// ErrClosed; a Record whose line Close synced returns nil. A second Close returns nil.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	err := l.fsync(f)
	if err == nil && l.broken == nil {
		l.synced = l.seq
	} else if err != nil && l.broken == nil {
		l.broken = err
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
