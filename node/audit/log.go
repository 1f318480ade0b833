package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Option configures Open.
type Option func(*options)

type options struct {
	sync bool
}

// WithSync sets whether Record fsyncs the file after each line (the default, true). Turn it
// off only where losing the latest events in a crash is acceptable (tests, benchmarks); see
// the package comment, "Durability".
func WithSync(sync bool) Option {
	return func(o *options) { o.sync = sync }
}

// Log is an open audit log. It is safe for concurrent use; lines are written in the order the
// Records take the log's lock.
type Log struct {
	clock func() time.Time
	sync  bool

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
	o := options{sync: true}
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
	l := &Log{clock: clock, sync: o.sync, f: f, prev: zeroHash}
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
// line with a single write call and, unless the log was opened WithSync(false), fsyncs the
// file before returning. It refuses an invalid event with ErrInvalidEvent (see Event and the
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

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	if l.broken != nil {
		return fmt.Errorf("%w: %v", ErrBroken, l.broken)
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
		return fmt.Errorf("audit: encode %s: %w", ev.Name, err)
	}
	buf := make([]byte, len(b)+1)
	copy(buf, b)
	buf[len(b)] = '\n'
	if _, err := l.f.Write(buf); err != nil {
		l.broken = err
		return fmt.Errorf("audit: write: %w", err)
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			l.broken = err
			return fmt.Errorf("audit: fsync: %w", err)
		}
	}
	l.seq, l.prev = rec.Seq, hashOf(b)
	return nil
}

// Close syncs and closes the file. Later Records return ErrClosed; a second Close returns
// nil.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
