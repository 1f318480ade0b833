// Package cputime reads the CPU time the running process has used, for
// benchmarks that report CPU per operation: on a busy 2-core machine that
// varies far less than wall time.
package cputime

import (
	"syscall"
	"time"
)

// Self returns the CPU time, user and system, that the calling process has
// used so far (getrusage(2), RUSAGE_SELF), or 0 if it cannot be read.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
