package audit

import "os"

// WithFsync replaces the fsync of Record and Close, so that tests can slow it down, fail it
// or watch what it covers.
func WithFsync(fsync func(*os.File) error) Option {
	return func(o *options) { o.fsync = fsync }
}

// Written returns the seq of the last line written, synced or not.
func (l *Log) Written() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}
